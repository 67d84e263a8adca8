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

RESULT (2,000 steps, batch 64, seed 0, 2 shared CPU cores; one seed each): BEGAN does NOT yet
learn all ten digits in this budget. This config: 27 min wall (1.39 steps/s), 92 % of 5,000
samples classified "1" (4,604; no "5"); digits_cnn/fd 960.8 [951.1, 970.5], classes_covered 9, precision 0.96,
recall 0.10. non_saturating_mnist in the same `genvision compare`: fd 105.4 [101.8, 109.3],
classes 10, 7.3 min. k_t rises to 0.14 by step 200 and settles at 0.10-0.13; M_global falls
0.47 (step 100), 0.21 (500), 0.17 (1000), 0.14 (2000) (benchmarks/began_curves.py).
What was measured on the way (same budget): the paper's settings (n 32, h 64, gamma 0.5,
lambda_k 0.001, lr 1e-4, G starting at 0) keep k_t at 0 and give grey noise (see began_g_init);
gamma 0.5 from the digits' mean gives faint blobs (G's brightest pixel -0.3, k_t ~0.003);
gamma 0.75-1.0 give bright strokes that collapse towards "1", the digit of least ink and lowest
L1 energy (h 64, gamma 1: 98 % "1", fd 1020, all 10 classes hit by >= 1 sample); lr 1e-4 or
2e-4 follow the same path more slowly. h = 16 (here) gives the most varied strokes of these.

  genvision train --config=experiments/gan/began_mnist.py --workdir=runs/began_mnist
  genvision evaluate --workdir=runs/began_mnist
  python benchmarks/began_curves.py runs/began_mnist    # k_t and M_global -> DIR/began_curves.png
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
  c.model.began_hidden = 16      # h: the embedding size, also z's (64 in the paper; see RESULT)
  c.model.began_g_output = 'linear'  # G's output: 'linear' (paper; samples clipped) or 'tanh'
  # The value G's output starts near (its last bias): the training digits' mean pixel, -0.738
  # in [-1, 1]. The paper's zero start is the mean of its centred faces; at 0 (mid-grey) the
  # digits' G starts far from every digit, its samples stay harder to reconstruct than gamma L(x),
  # and k_t stays at 0 (no adversarial signal).
  c.model.began_g_init = -0.74
  c.model.latent_dim = c.model.began_hidden
  c.model.g_width = 16           # n: filters of G and of the decoder (encoder: n, 2n, 3n)
  c.model.d_width = 16           # (n = 32 ran 2-4x slower here: 0.35-0.9 steps/s)
  c.gan.began_gamma = 1.0        # 0.5 (the paper's faces): faint blobs on the digits
  c.gan.began_lambda_k = 0.01    # 0.001 (paper): k_t needs ~10^4 steps to reach its level
  c.gan.began_lr_decay_steps = 1000  # halve both learning rates every this many steps (0: off)
  c.gan.began_lr_decay_factor = 0.5
  c.optim.g = optimizer('adam', learning_rate=5e-4, b1=0.5, b2=0.999)
  c.optim.d = optimizer('adam', learning_rate=5e-4, b1=0.5, b2=0.999)
  if arg == 'smoke':
    c.model.began_hidden = c.model.latent_dim = 8
    c.model.g_width = c.model.d_width = 4
    c.gan.began_lr_decay_steps = 4
  return c
