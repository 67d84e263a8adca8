"""BEGAN (Berthelot et al. 2017) on the offline MNIST digits: an autoencoder discriminator with
L1 reconstruction energy L(.), D loss L(x) - k_t L(G(z)), G loss L(G(z)), k_t by proportional
control k_{t+1} = clip(k_t + lambda_k (gamma L(x) - L(G(z_G))), 0, 1) with the generator step's
L(G(z_G)); the convergence measure M_global = L(x) + |gamma L(x) - L(G(z))| is logged as
began_m_global and k_t as began_k.

The paper's architecture (model.began_arch='paper', models/began.py): ELU, no normalization,
pairs of 3x3 convolutions per scale (28 px: 7, 14, 28), stride-2 3x3 convolutions down,
nearest-neighbour upsampling, an h-d embedding (model.began_hidden = model.latent_dim = h) and a
generator shaped as the decoder; z ~ Uniform[-1, 1]^h; Adam (b1 0.5); the learning rate halved
every gan.began_lr_decay_steps steps (a fixed staircase standing in for the paper's "halve when
M_global stalls").

RESULT: see below (filled in from the measured run).

  genvision train --config=experiments/gan/began_mnist.py --workdir=runs/began_mnist
  genvision train --config=experiments/gan/began_mnist.py:smoke --workdir=/tmp/began_smoke
"""

from genvision_jax.configs import import_experiment, optimizer


def get_config(arg=None):
  c = import_experiment('../dcgan_mnist', __file__).get_config(arg)
  c.gan.loss = 'began'
  c.model.generator = 'began'
  c.model.discriminator = 'began'
  c.model.d_norm = 'none'
  c.model.began_arch = 'paper'   # 'paper' or 'dcgan' (the first, DCGAN-shaped autoencoder)
  c.model.began_hidden = 64      # h: the embedding size, also z's
  c.model.began_g_output = 'linear'  # G's output: 'linear' (paper; samples clipped) or 'tanh'
  # The value G's output starts near (its last bias): the training digits' mean pixel, -0.738
  # in [-1, 1]. The paper's zero start is the mean of its centred faces; at 0 (mid-grey) the
  # digits' G starts far from every digit, its samples stay harder to reconstruct than gamma L(x),
  # and k_t stays at 0 (no adversarial signal).
  c.model.began_g_init = -0.74
  c.model.latent_dim = c.model.began_hidden
  c.model.g_width = 32           # n: filters of G and of the decoder (encoder: n, 2n, 3n)
  c.model.d_width = 32
  c.gan.began_gamma = 0.5
  c.gan.began_lambda_k = 0.001
  c.gan.began_lr_decay_steps = 0   # halve both learning rates every this many steps (0: off)
  c.gan.began_lr_decay_factor = 0.5
  c.optim.g = optimizer('adam', learning_rate=1e-4, b1=0.5, b2=0.999)
  c.optim.d = optimizer('adam', learning_rate=1e-4, b1=0.5, b2=0.999)
  if arg == 'smoke':
    c.model.began_hidden = c.model.latent_dim = 8
    c.model.g_width = c.model.d_width = 4
    c.gan.began_lr_decay_steps = 4
  return c
