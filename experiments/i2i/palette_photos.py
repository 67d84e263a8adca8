"""Conditional diffusion (SR3 / Palette) colorization on the offline colour patches
(`photo_patches/32`, test photos unseen in training): the DDPM U-Net (32 -> 16 -> 8 px,
attention at 8) sees the Rec. 601 luma concatenated to x_t and denoises the RGB image;
T = 1000 linear betas, eps-prediction, EMA; DDIM-50 sampling.

Variants: `smoke` (a few steps of a tiny model, for the tests).

RESULT: does NOT learn yet. 2,000 steps (seed 0, 65 min on loaded cores) give coloured noise
at steps 1,000 and 2,000, raw and EMA weights (open defect of issue 16).

  genvision train --config=experiments/i2i/palette_photos.py --workdir=runs/palette_col
  genvision evaluate --workdir=runs/palette_col
"""

from genvision_jax.configs import import_experiment, variants as parse_variants

VARIANTS = ('smoke',)


def get_config(arg=None):
  variants = parse_variants(arg, VARIANTS, 'palette_photos')
  # palette_mnist's U-Net, diffusion and schedule; the photo patches and the task replace its
  # padded digits and super-resolution.
  c = import_experiment('palette_mnist', __file__).get_config(','.join(variants) or None)
  c.data.name = 'photo_patches/32'
  c.data.resize_method = 'resize'  # a no-op: the patches are 32 px
  c.task.name = 'colorization'
  if 'smoke' not in variants:
    c.train.checkpoint_every = 500
  return c
