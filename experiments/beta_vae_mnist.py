"""beta-VAE (Higgins et al. 2017) on the offline MNIST digits: the VAE of vae_mnist.py
(Bernoulli likelihood on dynamically binarized digits; `:discretized` for the 8-bit digits)
with beta = 4.

  genvision train --config=experiments/beta_vae_mnist.py --workdir=runs/beta_vae
  genvision train --config=experiments/beta_vae_mnist.py:discretized --workdir=runs/beta_vae_8bit
  genvision train --config=experiments/beta_vae_mnist.py --config.vae.beta=10 --workdir=runs/b10
"""

from genvision_jax.configs import import_experiment


def get_config(arg=None):
  c = import_experiment('vae_mnist', __file__).get_config(arg)
  c.vae.beta = 4.0
  return c
