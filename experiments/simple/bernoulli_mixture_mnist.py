"""A mixture of K = 50 products of Bernoullis fitted by EM (100 iterations, Laplace smoothing
alpha = 1) to one fixed binarization of each offline training digit.

  genvision train --config=experiments/simple/bernoulli_mixture_mnist.py --workdir=runs/mob
  genvision likelihoods runs/mob               # NLL of the binarized test digits
  genvision train --config=experiments/simple/bernoulli_mixture_mnist.py:smoke --workdir=/tmp/m

Each step is one EM iteration on the whole split (train.batch_size = its 4,500 digits);
metrics.jsonl logs the training log-likelihood and objective of every iteration.
`:k10` uses 10 components.
"""

from genvision_jax.configs import import_experiment, method_config, variants as parse_variants

VARIANTS = ('smoke', 'k10')


def get_config(arg=None):
  c = method_config('simple')
  c.model.family = 'bernoulli_mixture'
  c.model.components = 50
  c.model.alpha = 1.0
  c.data.binarize = 'static'
  variants = parse_variants(arg, VARIANTS, 'bernoulli_mixture_mnist')
  if 'k10' in variants:
    c.model.components = 10
  smoke = 'smoke' in variants
  if smoke:
    c.model.components = 3
  import_experiment('bernoulli_mnist', __file__).full_batch_schedule(c, 100, smoke)
  return c
