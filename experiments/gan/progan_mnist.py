"""Progressive growing of GANs (Karras et al. 2018) on the digits padded to 32 px: G and D grow
4 -> 8 -> 16 -> 32 px, each new resolution faded in over `progan.fade_steps` steps and then
trained `progan.stable_steps` steps. WGAN-GP loss with one critic update per G update, Adam
(1e-3, 0, 0.99), equalized learning rate, pixel norm, minibatch stddev, G EMA 0.999 — the
paper's recipe at CPU-sized widths (16 channels at 32 px, doubling to 128 at 4 px).

  genvision train --config=experiments/gan/progan_mnist.py --workdir=runs/progan_mnist
  genvision train --config=experiments/gan/progan_mnist.py:smoke --workdir=/tmp/progan_smoke

Sample grids show the current stage upsampled to 32 px; metrics log `alpha` and `resolution`.
"""

from genvision_jax.configs import method_config, smoke_schedule


def get_config(arg=None):
  # ProGANMethod.default_sections: the progressive G and D, WGAN-GP, Adam (1e-3, 0, 0.99) and
  # the `progan` schedule.
  c = method_config('progan')
  c.data.image_size = 32
  c.data.resize_method = 'pad'   # 28 px digits centred on a 32 px canvas
  c.train.batch_size = 64
  c.train.d_steps = 1
  if arg == 'smoke':  # the smoke schedule's 6 steps grow 4 -> 8 -> 16 px
    smoke_schedule(c)
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
  if arg not in (None, 'smoke'):
    raise ValueError(f"unknown variant '{arg}' of progan_mnist; use 'smoke'")
  return c
