"""WGAN (Arjovsky et al. 2017): critic loss, weight clipping at 0.01, RMSProp 5e-5, 5 critic
updates per generator update.

  genvision train --config=experiments/gan/wgan_mnist.py --workdir=runs/wgan_mnist
  genvision train --config=experiments/gan/wgan_mnist.py:smoke --workdir=/tmp/wgan_smoke
"""

from genvision_jax.configs import import_experiment, optimizer


def get_config(arg=None):
  c = import_experiment('../dcgan_mnist', __file__).get_config(arg)
  c.gan.loss = 'wgan'
  c.gan.clip_value = 0.01
  c.optim.g = optimizer('rmsprop', learning_rate=5e-5, b1=0.0, b2=0.9)
  c.optim.d = optimizer('rmsprop', learning_rate=5e-5, b1=0.0, b2=0.9)
  c.train.d_steps = 2 if arg == 'smoke' else 5
  return c
