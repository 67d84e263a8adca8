"""Conditional diffusion (SR3 / Palette) on the offline digits padded to 32 px: the DDPM U-Net
(32 -> 16 -> 8 px, attention at 8) sees the task's input concatenated to x_t; T = 1000 linear
betas, eps-prediction, EMA; DDIM-50 sampling. For inpainting and uncropping the known pixels
stay clean in x_t, the loss covers the hidden ones, and the sampler keeps them exactly.

Variants (comma-separated): `sr4` (super-resolution x4 from 8x8 area means, the default),
`inpainting` (centre box of half the side), `uncropping` (a border of a quarter of the side),
`smoke` (a few steps of a tiny model, for the tests).

  genvision train --config=experiments/i2i/palette_mnist.py --workdir=runs/palette_sr4
  genvision evaluate --workdir=runs/palette_sr4
"""

from genvision_jax import tasks
from genvision_jax.configs import method_config, smoke_schedule, variants as parse_variants

VARIANTS = ('sr4', 'inpainting', 'uncropping', 'smoke')


def get_config(arg=None):
  variants = parse_variants(arg, VARIANTS, 'palette_mnist')
  c = method_config('palette')  # PaletteMethod.default_sections
  c.data.image_size = 32
  c.data.resize_method = 'pad'   # 28 px digits centred on a 32 px canvas
  c.model.channel_mults = (1, 2, 2)       # 32 -> 16 -> 8 px
  c.model.attention_resolutions = (8,)
  c.train.num_steps = 2000
  c.train.batch_size = 64
  c.train.ema_decay = 0.999
  c.train.num_samples = 24       # sample grids: 8 rows input | output | target
  c.train.sample_every = 1000
  c.train.checkpoint_every = 1000
  tasks.apply_preset(c.task, variants + ['sr4'])  # the first preset named (tasks.PRESETS)
  if 'smoke' in variants:
    c.model.update(dict(base=8, channel_mults=(1, 2), num_res_blocks=1,
                        attention_resolutions=(), num_heads=2))
    c.diffusion.num_timesteps = 100
    c.diffusion.sample_steps = 4
    c.optim.warmup_steps = 0
    smoke_schedule(c)
    c.train.num_samples = 6
  return c
