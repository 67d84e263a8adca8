"""BEGAN (Berthelot et al. 2017): an autoencoder discriminator with L1 reconstruction energy,
D loss L(x) - k_t L(G(z)), G loss L(G(z)), k_t by proportional control (lambda_k 0.001); the
convergence measure M_global is logged as began_m_global.

gamma = 1.0 here, not the paper's 0.5: measured on the 4,500 offline digits (2,000 steps),
gamma 0.5 collapses to one faint "1" (a blank-ish image the autoencoder reconstructs with half
the error of a real digit meets the equilibrium E[L(G(z))] = gamma E[L(x)], so k_t falls back
to ~0 and nothing pushes the generator off it); gamma 1.0 ends in a partial collapse (blurry
1/7/9/3-like strokes); a generator without BatchNorm (model.g_norm='none') gives blank images.
BEGAN is known to need many more steps and per-dataset tuning of gamma and the learning rate.

  genvision train --config=experiments/gan/began_mnist.py --workdir=runs/began_mnist
"""

from genvision_jax.configs import import_experiment, optimizer


def get_config(arg=None):
  c = import_experiment('../dcgan_mnist', __file__).get_config(arg)
  c.gan.loss = 'began'
  c.model.discriminator = 'began'
  c.model.d_norm = 'none'
  c.gan.began_gamma = 1.0
  c.optim.g = optimizer('adam', learning_rate=1e-4, b1=0.5, b2=0.999)
  c.optim.d = optimizer('adam', learning_rate=1e-4, b1=0.5, b2=0.999)
  return c
