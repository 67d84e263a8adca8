"""BEGAN (Berthelot et al. 2017): an autoencoder discriminator with L1 reconstruction energy,
D loss L(x) - k_t L(G(z)), G loss L(G(z)), k_t by proportional control (gamma 0.5,
lambda_k 0.001); the convergence measure M_global is logged as began_m_global.

  genvision train --config=experiments/gan/began_mnist.py --workdir=runs/began_mnist
"""

from genvision_jax.configs import import_experiment, optimizer


def get_config(arg=None):
  c = import_experiment('../dcgan_mnist', __file__).get_config(arg)
  c.gan.loss = 'began'
  c.model.discriminator = 'began'
  c.model.d_norm = 'none'
  c.optim.g = optimizer('adam', learning_rate=1e-4, b1=0.5, b2=0.999)
  c.optim.d = optimizer('adam', learning_rate=1e-4, b1=0.5, b2=0.999)
  return c
