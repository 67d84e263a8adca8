"""DCGAN with the original minimax (saturating) generator loss log(1 - D(G(z))).

  genvision train --config=experiments/gan/minimax_mnist.py --workdir=runs/minimax_mnist
  genvision train --config=experiments/gan/minimax_mnist.py:smoke --workdir=/tmp/minimax_smoke
"""

from genvision_jax.configs import import_experiment


def get_config(arg=None):
  c = import_experiment('../dcgan_mnist', __file__).get_config(arg)
  c.gan.loss = 'minimax'
  return c
