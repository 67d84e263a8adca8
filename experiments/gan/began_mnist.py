"""BEGAN (Berthelot et al. 2017) on the offline MNIST digits: an autoencoder discriminator with
reconstruction energy L(.), D loss L(x) - k_t L(G(z)), G loss L(G(z)), k_t by proportional
control k_{t+1} = clip(k_t + lambda_k (gamma L(x) - L(G(z_G))), 0, 1) with the generator step's
L(G(z_G)); the convergence measure M_global = L(x) + |gamma L(x) - L(G(z))| is logged as
began_m_global and k_t as began_k.

Networks: the InfoGAN-style MNIST pair (models/began.py), as in hwalsuklee's
tensorflow-generative-model-collections BEGAN: the InfoGAN generator (FC 1024, FC 7x7x128,
two transposed 4x4 convolutions, BatchNorm, tanh) and the small autoencoder 'infogan' (one 4x4
stride-2 convolution, a 32-d code with BatchNorm, back up by one transposed convolution);
z ~ Uniform[-1, 1]^62; gamma 0.75; Adam (b1 0.5), D 2e-4, G 1e-3 (5x); energy: the per-image
Euclidean norm ||x - AE(x)||_2 (gan.began_energy='l2') with lambda_k = 0.001 / 8: that
reference's energy is the batch's ||X - AE(X)||_F / B with lambda_k 0.001, and at B = 64 it is
about the per-image norm / 8, so this gain gives the same k_t dynamics.

The paper's own networks (variant :paper: ELU, no normalization, pairs of 3x3 convolutions,
nearest-neighbour upsampling, per-pixel L1 energy) do not learn the digits in this budget: they
collapse to "1", the digit of least ink and lowest L1 energy (measured below).

RESULT (2,000 steps, batch 64, seed 0, 2 shared CPU cores, 5,000 samples): all ten digits;
digits_cnn/fd 165.7 [159.4, 172.5] vs 105.4 [101.8, 109.3] for non_saturating_mnist in the same
`genvision compare`; precision 0.845 vs 0.475, recall 0.257 vs 0.853, density 0.71 vs 0.18,
coverage 0.46 vs 0.25, classifier score 6.38 vs 5.86: sharper, less varied digits. 2.9 steps/s
(12 min) on the loaded cores. k_t rises to 0.24 by step 500 and falls to 0.10; M_global falls
27.9 (step 100), 12.7 (500), 9.4 (900), 7.0 (1700).
:paper (its best settings, same budget, an earlier compare): fd 960.8 [951.1, 970.5], 92 % of the
samples "1", 9 classes; with the paper's gamma 0.5 and G starting at mid-grey k_t stays at 0
(grey noise). Probes of the same networks (a standalone script, 1,000 classified samples) with
the per-pixel L1 energy instead of L2: G's samples fall to a tenth of the real images' energy
within 250 steps and cover two to four classes up to step 750 (collapse); with the L2 norm all
ten classes appear from step 250 on.

  genvision train --config=experiments/gan/began_mnist.py --workdir=runs/began_mnist
  genvision evaluate --workdir=runs/began_mnist
  python benchmarks/began_curves.py runs/began_mnist    # k_t and M_global -> DIR/began_curves.png
  genvision train --config=experiments/gan/began_mnist.py:paper --workdir=runs/began_paper
  genvision train --config=experiments/gan/began_mnist.py:smoke --workdir=/tmp/began_smoke
"""

from genvision_jax.configs import import_experiment, optimizer, variants


def get_config(arg=None):
  chosen = variants(arg, ('paper', 'smoke'), 'began_mnist')
  c = import_experiment('../dcgan_mnist', __file__).get_config('smoke' if 'smoke' in chosen
                                                                else None)
  c.gan.loss = 'began'
  c.model.discriminator = 'began'
  c.model.d_norm = 'none'
  c.gan.began_gamma = 0.75
  if 'paper' in chosen:
    _paper(c)
  else:
    c.model.generator = 'infogan'
    c.model.began_arch = 'infogan'
    c.model.began_hidden = 32     # the autoencoder's code
    c.model.latent_dim = 62       # z, as InfoGAN's 62 continuous noise variables
    c.model.g_width = 64
    c.model.d_width = 64
    c.gan.began_energy = 'l2'
    c.gan.began_lambda_k = 0.001 / 8
    c.optim.g = optimizer('adam', learning_rate=1e-3, b1=0.5, b2=0.999)
    c.optim.d = optimizer('adam', learning_rate=2e-4, b1=0.5, b2=0.999)
  if 'smoke' in chosen:
    c.model.began_hidden = c.model.latent_dim = 8
    c.model.g_width = c.model.d_width = 4
    c.gan.began_lr_decay_steps = 4 if 'paper' in chosen else 0
  return c


def _paper(c):
  """Section 3.3 of the paper with the settings that came closest on the digits (see the
  module docstring): ELU, no normalization, n = 16 filters, h = 16, gamma 1, lambda_k 0.01,
  Adam 5e-4 halved every 1,000 steps, G's linear output starting at the digits' mean."""
  c.model.generator = 'began'
  c.model.began_arch = 'paper'
  c.model.began_hidden = c.model.latent_dim = 16
  c.model.began_g_output = 'linear'
  # The value G's output starts near (its last bias): the training digits' mean pixel, -0.738
  # in [-1, 1]. At 0 (mid-grey, the paper's centred faces) k_t stays at 0 on the digits.
  c.model.began_g_init = -0.74
  c.model.g_width = c.model.d_width = 16
  c.gan.began_gamma = 1.0
  c.gan.began_lambda_k = 0.01
  c.gan.began_energy = 'l1'
  c.gan.began_lr_decay_steps = 1000
  c.gan.began_lr_decay_factor = 0.5
  c.optim.g = optimizer('adam', learning_rate=5e-4, b1=0.5, b2=0.999)
  c.optim.d = optimizer('adam', learning_rate=5e-4, b1=0.5, b2=0.999)
