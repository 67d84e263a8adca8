"""Deep autoencoder on the offline MNIST digits: 784 - 512 - 256 - code (ReLU, linear code)
and back, squared error, Adam 1e-3, 3,000 steps of 128 digits.

Variants (comma-separated): `code2`, `code8`, `code32` (default), `code64`, `code256`,
`code1024` (the code size: below 784 undercomplete, above overcomplete), `bernoulli`
(cross-entropy reconstruction), `linear` (one linear map each way: spans PCA's subspace),
`conv` (the VAE's convolutional encoder / decoder), `smoke` (a few steps, for the tests).
The denoising, sparse and k-sparse autoencoders build on this file (dae_mnist.py,
sparse_ae_mnist.py, ksparse_ae_mnist.py).

  genvision train --config=experiments/ae/ae_mnist.py --workdir=runs/ae32
  genvision evaluate --workdir=runs/ae32     # test reconstructions beside PCA (32 components)
  genvision compare runs/ae32 runs/ae32/eval/baselines/pca
  genvision finetune --workdir=runs/ae32 --labels=10,100,1000 --seeds=5
"""

from genvision_jax.configs import method_config, smoke_schedule, variants as parse_variants

CODES = ('code2', 'code8', 'code32', 'code64', 'code256', 'code1024')
VARIANTS = CODES + ('bernoulli', 'linear', 'conv', 'smoke')


def get_config(arg=None):
  return build(arg)[0]


def build(arg=None, experiment='ae_mnist', extra_variants=()):
  """(config, variants) of this file's autoencoder; the other autoencoder files add their
  own variants (`extra_variants`) and settings."""
  variants = parse_variants(arg, VARIANTS + tuple(extra_variants), experiment)
  c = method_config('autoencoder')  # AutoencoderMethod.default_sections: MLP, mse, code 32
  c.train.num_steps = 3000
  c.train.batch_size = 128
  c.train.num_samples = 24         # sample grids: 8 rows input | reconstruction | target
  c.train.sample_every = 1000
  c.train.checkpoint_every = 1000
  for v in variants:
    if v in CODES:
      c.model.code_dim = int(v[len('code'):])
  if 'bernoulli' in variants:
    c.ae.reconstruction = 'bernoulli'
  if 'linear' in variants:
    c.model.architecture = 'linear'
  if 'conv' in variants:
    c.model.architecture = 'conv'
  if 'smoke' in variants:
    c.model.hidden = (32, 16)
    smoke_schedule(c)
    c.train.num_samples = 6
  return c, variants
