"""BEGAN (Berthelot et al. 2017) on the offline MNIST digits: an autoencoder discriminator with
reconstruction energy L(.), D loss L(x) - k_t L(G(z)), G loss L(G(z)), k_t by proportional
control k_{t+1} = clip(k_t + lambda_k (gamma L(x) - L(G(z_G))), 0, 1) with the generator step's
L(G(z_G)); the convergence measure M_global = L(x) + |gamma L(x) - L(G(z))| is logged as
began_m_global and k_t as began_k.

Networks: the InfoGAN-style MNIST pair (models/began.py), as in hwalsuklee's
tensorflow-generative-model-collections BEGAN: the InfoGAN generator (FC 1024, FC 7x7x128,
two transposed 4x4 convolutions, BatchNorm, tanh) and the small autoencoder 'infogan' (one 4x4
stride-2 convolution, a 32-d code with BatchNorm, back up by one transposed convolution);
z ~ Uniform[-1, 1]^62; Adam (b1 0.5), D 2e-4, G 1e-3 (5x); energy: the per-image Euclidean
norm ||x - AE(x)||_2 (gan.began_energy='l2') with lambda_k = 0.001 / 8: that reference's
energy is the batch's ||X - AE(X)||_F / B with lambda_k 0.001, and at B = 64 it is about the
per-image norm / 8, so this gain gives the same k_t dynamics. gamma = 1 (the reference's 0.75
gives sharper but less varied digits and a higher FD, below); 3,000 steps of one D and one G
update each (WGAN-GP's 2,000 steps are 10,000 critic updates).

The paper's own networks (variant :paper: ELU, no normalization, pairs of 3x3 convolutions,
nearest-neighbour upsampling, per-pixel L1 energy) do not learn the digits: they collapse to
"1", the digit of least ink and lowest L1 energy (measured below).

RESULT (batch 64, seed 0, 5,000 samples, one `genvision compare` of eight runs on 2 shared
CPU cores; the others 2,000 steps): this config (3,000 steps, 5 min at 10 steps/s) covers all
ten digits with digits_cnn/fd 93.2 [88.8, 98.5], inside the range of the working objectives:
wgan_gp 81.5 [79.4, 85.1], non_saturating 105.4 [101.8, 109.3], hinge 105.6 [102.6, 109.3],
lsgan 125.5 [122.8, 129.4]. Precision 0.857 (the others 0.47-0.52), recall 0.376 (0.65-0.85):
sharper, less varied digits. At 2,000 steps: gamma 1 fd 140.1 [134.9, 146.4]; gamma 0.75 fd
165.7 [159.4, 172.5] (seed 0) and 148.7 [143.1, 155.4] (seed 1), recall 0.26, all ten classes.
With gamma 0.75 k_t rises to 0.24 by step 500 and falls to 0.10; M_global falls 27.9 (step 100),
12.7 (500), 9.4 (900), 7.0 (1700) (benchmarks/began_curves.py).
:paper (its best settings, 2,000 steps, an earlier compare): fd 960.8 [951.1, 970.5], 92 % of
the samples "1", 9 classes; with the paper's gamma 0.5 and G starting at mid-grey k_t stays at
0 (grey noise). Probes of these networks (a standalone script, 1,000 classified samples) with
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
    c.gan.began_gamma = 1.0
    if 'smoke' not in chosen:
      c.train.num_steps = 3000
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
