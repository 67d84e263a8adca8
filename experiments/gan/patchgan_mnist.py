"""DCGAN generator against a PatchGAN discriminator (Isola et al. 2017): one logit per
patch (d_layers=2 on 28 px digits: 7x7 logits, each seeing 34 px), the LS-GAN loss of
pix2pix, and spectral normalization in D.

  genvision train --config=experiments/gan/patchgan_mnist.py --workdir=runs/patchgan_mnist
"""

from genvision_jax.configs import import_experiment


def get_config(arg=None):
  c = import_experiment('../dcgan_mnist', __file__).get_config(arg)
  c.model.discriminator = 'patchgan'
  c.model.d_layers = 2
  c.model.d_spectral_norm = True
  c.gan.loss = 'lsgan'
  return c
