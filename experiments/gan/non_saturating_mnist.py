"""DCGAN with the non-saturating generator loss -log D(G(z)) (the DCGAN default).

  genvision train --config=experiments/gan/non_saturating_mnist.py --workdir=runs/non_saturating_mnist
  genvision train --config=experiments/gan/non_saturating_mnist.py:smoke --workdir=/tmp/non_saturating_smoke
"""

from genvision_jax.configs import import_experiment


def get_config(arg=None):
  c = import_experiment('../dcgan_mnist', __file__).get_config(arg)
  c.gan.loss = 'non_saturating'
  return c
