"""Progressive growing of GANs (Karras et al. 2018) on the digits padded to 32 px: G and D grow
4 -> 8 -> 16 -> 32 px, each new resolution faded in over `progan.fade_steps` steps and then
trained `progan.stable_steps` steps. WGAN-GP loss with one critic update per G update, Adam
(1e-3, 0, 0.99), equalized learning rate, pixel norm, minibatch stddev, G EMA 0.999 — the
paper's recipe at CPU-sized widths (16 channels at 32 px, doubling to 128 at 4 px).

  genvision train --config=experiments/gan/progan_mnist.py --workdir=runs/progan_mnist
  genvision train --config=experiments/gan/progan_mnist.py:smoke --workdir=/tmp/progan_smoke

Sample grids show the current stage upsampled to 32 px; metrics log `alpha` and `resolution`.
"""

import ml_collections

from genvision_jax.configs import import_experiment, optimizer


def get_config(arg=None):
  c = import_experiment('../dcgan_mnist', __file__).get_config(arg)
  c.method = 'progan'
  c.data.image_size = 32
  c.data.resize_method = 'pad'   # 28 px digits centred on a 32 px canvas
  c.model.generator = 'progan'
  c.model.discriminator = 'progan'
  c.model.d_norm = 'none'
  c.model.latent_dim = 128
  c.model.g_width = 16             # channels at 32 px; doubling per halving, up to 128 at 4 px
  c.model.d_width = 16
  c.gan.loss = 'wgan'
  c.gan.penalty = 'gradient'
  c.gan.penalty_weight = 10.0
  c.optim.g = optimizer('adam', learning_rate=1e-3, b1=0.0, b2=0.99)
  c.optim.d = optimizer('adam', learning_rate=1e-3, b1=0.0, b2=0.99)
  c.progan = ml_collections.ConfigDict(dict(
      stable_steps=300,   # steps at each resolution once it is fully faded in
      fade_steps=300,     # steps over which alpha rises 0 -> 1 for a new resolution
      drift=0.001,        # eps_drift: D's loss + drift * E[D(x)^2] (Karras et al.)
  ))
  c.train.d_steps = 1
  if arg == 'smoke':  # dcgan_mnist:smoke set the smoke schedule: 6 steps grow 4 -> 8 -> 16 px
    c.data.image_size = 16
    c.model.latent_dim = 8
    c.model.g_width = 4
    c.model.d_width = 4
    c.progan.stable_steps = 1
    c.progan.fade_steps = 1
  else:
    c.train.num_steps = 300 + 3 * 600  # the whole schedule: 2,100 steps
    c.train.sample_every = 300
    c.train.checkpoint_every = 300
  return c
