"""SD-GAN (Donahue et al. 2018) on the digits: latent = 50-d identity + 50-d observation; the
discriminator sees image pairs, real pairs are two different digits of one class (the class is
the "identity" on digits). Latents z_I, z_O ~ U[-1, 1] as in Donahue et al. Sample grids: each
row shares the identity code and each column draws a new observation code.

  genvision train --config=experiments/gan/sdgan_mnist.py --workdir=runs/sdgan_mnist
"""

from genvision_jax.configs import import_experiment, method_config


def get_config(arg=None):
  c = import_experiment('../dcgan_mnist', __file__).get_config(arg)
  c = method_config('sdgan', c)  # adds SDGANMethod's `sdgan` section
  c.sdgan.identity_dim = c.model.latent_dim // 2  # z_I, the rest z_O (Uniform[-1, 1])
  return c
