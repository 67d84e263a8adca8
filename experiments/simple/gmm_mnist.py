"""A Gaussian mixture fitted by EM to the 8-bit offline digits, uniformly dequantized once
(y = x + (2/255) u, u ~ U(-1/2, 1/2), fixed per digit; methods/simple.py): K = 10 components
with diagonal covariances (100 iterations), or `:full` covariances (50 iterations).

  genvision train --config=experiments/simple/gmm_mnist.py --workdir=runs/gmm_diag
  genvision train --config=experiments/simple/gmm_mnist.py:full --workdir=runs/gmm_full
  genvision likelihoods runs/gmm_diag runs/gmm_full   # bits/dim of the 8-bit test digits
  genvision train --config=experiments/simple/gmm_mnist.py:smoke --workdir=/tmp/gmm_smoke

Each step is one EM iteration on the whole split (train.batch_size = its 4,500 digits).
model.reg_covar (1e-4, in the [-1, 1] pixel scale; the dequantization noise alone has
variance (2/255)^2 / 12 = 5e-6) keeps the covariances of the always-black border away from 0.
"""

from genvision_jax.configs import import_experiment, method_config, variants as parse_variants

VARIANTS = ('smoke', 'full')


def get_config(arg=None):
  c = method_config('simple')
  c.model.family = 'gmm'
  c.model.components = 10
  c.model.covariance = 'diag'
  c.model.reg_covar = 1e-4
  c.data.binarize = 'none'
  variants = parse_variants(arg, VARIANTS, 'gmm_mnist')
  num_steps = 100
  if 'full' in variants:
    c.model.covariance = 'full'
    num_steps = 50
  smoke = 'smoke' in variants
  if smoke:
    c.model.components = 3
  import_experiment('bernoulli_mnist', __file__).full_batch_schedule(c, num_steps, smoke)
  return c
