"""pix2pix (Isola et al. 2017) on the offline digits, padded to 32 px so that the U-Net has five
levels (32 -> 1 px): U-Net G with dropout, 34x34 PatchGAN D on (input, output), non-saturating
loss + 100 L1, Adam 2e-4 / 0.5.

Variants (comma-separated, e.g. `:inpainting,smoke`): the task — `sr4` (super-resolution x4
from 8x8 area means, the default), `inpainting` (centre box of half the side), `uncropping`
(a border of a quarter of the side) — and `l1` (the L1-only U-Net of the paper's ablation:
no discriminator), `smoke` (a few steps of a tiny model, for the tests).

  genvision train --config=experiments/i2i/pix2pix_mnist.py --workdir=runs/p2p_sr4
  genvision train --config=experiments/i2i/pix2pix_mnist.py:inpainting --workdir=runs/p2p_inp
  genvision train --config=experiments/i2i/pix2pix_mnist.py:sr4,l1 --workdir=runs/l1_sr4
"""

from genvision_jax import tasks
from genvision_jax.configs import method_config, smoke_schedule, variants as parse_variants

VARIANTS = ('sr4', 'inpainting', 'uncropping', 'l1', 'smoke')


def get_config(arg=None):
  variants = parse_variants(arg, VARIANTS, 'pix2pix_mnist')
  c = method_config('pix2pix')  # Pix2PixMethod.default_sections
  c.data.image_size = 32
  c.data.resize_method = 'pad'   # 28 px digits centred on a 32 px canvas
  c.model.g_width = 32
  c.model.d_width = 32
  c.train.num_steps = 2000
  c.train.batch_size = 64
  c.train.num_samples = 24       # sample grids: 8 rows input | output | target
  tasks.apply_preset(c.task, variants + ['sr4'])  # the first preset named (tasks.PRESETS)
  if 'l1' in variants:
    c.pix2pix.gan_weight = 0.0
  if 'smoke' in variants:
    c.model.g_width = 4
    c.model.d_width = 4
    smoke_schedule(c)
    c.train.num_samples = 6
  return c
