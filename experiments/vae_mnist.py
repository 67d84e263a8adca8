"""Convolutional VAE on the offline MNIST digits: Bernoulli likelihood on dynamically binarized
digits (the binarized-MNIST protocol), or the discretized Gaussian on the 8-bit digits.

  genvision train --config=experiments/vae_mnist.py --workdir=runs/vae_mnist
  genvision train --config=experiments/vae_mnist.py:discretized --workdir=runs/vae_8bit
  genvision train --config=experiments/vae_mnist.py:smoke --workdir=/tmp/vae_smoke
  genvision train --config=experiments/vae_mnist.py:mlp --workdir=runs/vae_mlp  # Kingma & Welling
  genvision evaluate --workdir=runs/vae_mnist --metrics=likelihood  # IWAE in nats and bits/dim

Variants combine with commas, e.g. `:discretized,smoke`.
"""

from genvision_jax.configs import method_config, smoke_schedule, variants as parse_variants

VARIANTS = ('smoke', 'mlp', 'discretized')


def get_config(arg=None):
  c = method_config('vae')  # conv VAE, Bernoulli likelihood (VAEMethod.default_sections)
  c.data.binarize = 'dynamic'  # a fresh binarization of each digit whenever it is seen
  c.train.num_steps = 3000
  c.train.batch_size = 64
  variants = parse_variants(arg, VARIANTS, 'vae_mnist')
  if 'discretized' in variants:  # 8-bit digits, so bits/dim compare with diffusion's
    c.data.binarize = 'none'
    c.model.likelihood = 'discretized_gaussian'
  if 'mlp' in variants:
    c.model.architecture = 'mlp'
    c.model.hidden = 500
    c.model.latent_dim = 20
  if 'smoke' in variants:
    c.model.latent_dim = 4
    c.model.width = 4
    c.model.hidden = 16
    smoke_schedule(c)
  return c
