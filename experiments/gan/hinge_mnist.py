"""Hinge-loss GAN (Lim & Ye 2017; Miyato et al. 2018) on the DCGAN architecture.

  genvision train --config=experiments/gan/hinge_mnist.py --workdir=runs/hinge_mnist
  genvision train --config=experiments/gan/hinge_mnist.py:smoke --workdir=/tmp/hinge_smoke
"""

from genvision_jax.configs import import_experiment


def get_config(arg=None):
  c = import_experiment('../dcgan_mnist', __file__).get_config(arg)
  c.gan.loss = 'hinge'
  return c
