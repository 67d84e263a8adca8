"""WGAN-GP (Gulrajani et al. 2017): critic loss plus 10 * (||grad D(x_hat)|| - 1)^2 on
interpolates, LayerNorm instead of BatchNorm in the critic, Adam 1e-4 (0, 0.9), 5 critic updates.

  genvision train --config=experiments/gan/wgan_gp_mnist.py --workdir=runs/wgan_gp_mnist
  genvision train --config=experiments/gan/wgan_gp_mnist.py:smoke --workdir=/tmp/wgan_gp_smoke
"""

from genvision_jax.configs import import_experiment, optimizer


def get_config(arg=None):
  c = import_experiment('../dcgan_mnist', __file__).get_config(arg)
  c.gan.loss = 'wgan'
  c.gan.penalty = 'gradient'
  c.gan.penalty_weight = 10.0
  c.model.d_norm = 'layer'
  c.optim.g = optimizer('adam', learning_rate=1e-4, b1=0.0, b2=0.9)
  c.optim.d = optimizer('adam', learning_rate=1e-4, b1=0.0, b2=0.9)
  c.train.d_steps = 2 if arg == 'smoke' else 5
  return c
