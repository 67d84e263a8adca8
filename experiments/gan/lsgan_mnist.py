"""Least squares GAN (Mao et al. 2017) on the DCGAN architecture.

  genvision train --config=experiments/gan/lsgan_mnist.py --workdir=runs/lsgan_mnist
  genvision train --config=experiments/gan/lsgan_mnist.py:smoke --workdir=/tmp/lsgan_smoke
"""

from genvision_jax.configs import import_experiment


def get_config(arg=None):
  c = import_experiment('../dcgan_mnist', __file__).get_config(arg)
  c.gan.loss = 'lsgan'
  return c
