"""SD-GAN (Donahue et al. 2018) on the digits: latent = 50-d identity + 50-d observation; the
discriminator sees image pairs, real pairs are two different digits of one class (the class is
the "identity" on digits). Latents z_I, z_O ~ U[-1, 1] as in Donahue et al. Sample grids: each
row shares the identity code and each column draws a new observation code.

  genvision train --config=experiments/gan/sdgan_mnist.py --workdir=runs/sdgan_mnist
"""

import ml_collections

from genvision_jax.configs import import_experiment


def get_config(arg=None):
  c = import_experiment('../dcgan_mnist', __file__).get_config(arg)
  c.method = 'sdgan'
  c.sdgan = ml_collections.ConfigDict(dict(
      identity_dim=c.model.latent_dim // 2,
      latent_distribution='uniform',  # z ~ U[-1, 1] (the paper's); 'normal': N(0, I)
  ))
  return c
