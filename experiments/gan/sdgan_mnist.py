"""SD-GAN (Donahue et al. 2018) on the digits: latent = 50-d identity + 50-d observation; the
discriminator sees image pairs, real pairs are two digits of one class. Sample grids: each row
shares the identity code and each column draws a new observation code.

  genvision train --config=experiments/gan/sdgan_mnist.py --workdir=runs/sdgan_mnist
"""

import ml_collections

from genvision_jax.configs import import_experiment


def get_config(arg=None):
  c = import_experiment('../dcgan_mnist', __file__).get_config(arg)
  c.method = 'sdgan'
  c.sdgan = ml_collections.ConfigDict(dict(identity_dim=c.model.latent_dim // 2))
  return c
