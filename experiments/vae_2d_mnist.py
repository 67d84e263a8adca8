"""A VAE with a 2-D latent space on the offline MNIST digits (Kingma & Welling 2014, Fig. 4):
the convolutional VAE of vae_mnist.py (Bernoulli likelihood on dynamically binarized digits)
with model.latent_dim = 2, so the decoder's manifold and the codes of the test digits can be
drawn in the plane.

  genvision train --config=experiments/vae_2d_mnist.py --workdir=runs/vae_2d
  genvision interpolate --workdir=runs/vae_2d --manifold --steps=20 --out=manifold.png
  genvision encode --workdir=runs/vae_2d --split=test --scatter=codes.png --out=codes.npz
  genvision train --config=experiments/vae_2d_mnist.py:smoke --workdir=/tmp/vae_2d_smoke

Variants are those of vae_mnist.py (`:smoke`, `:mlp`, `:discretized`, comma-separated); the
latent stays 2-D in each.
"""

from genvision_jax.configs import import_experiment


def get_config(arg=None):
  c = import_experiment('vae_mnist', __file__).get_config(arg)
  c.model.latent_dim = 2
  return c
