"""Conditional diffusion (SR3 / Palette) colorization on the offline colour patches
(`photo_patches/32`, test photos unseen in training): the DDPM U-Net (32 -> 16 -> 8 px,
attention at 8) sees the Rec. 601 luma concatenated to x_t and denoises the BT.601 chroma
(`task.keep_luma`: 2 channels; the output is the input's luma with the sampled chroma);
T = 1000 linear betas, v-prediction, EMA; DDIM-50 sampling.

Why chroma and v: the first version denoised RGB with eps-prediction and gave coloured noise
after 2,000 steps. Probes of 200 steps on the training patches (DDIM-50 PSNR against the
targets; the grey image scores 21.1 dB): RGB + eps 7.3 dB, RGB + v (base 32) 17.3 dB, chroma
+ v (base 16, this config) 18.0 dB; with eps the one-step x0 estimate at t >= 700 was worse
than the grey input (8 dB), i.e. the network had not learned to use the condition there.

Variants: `smoke` (a few steps of a tiny model, for the tests).

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
  c.task.keep_luma = True            # diffuse the chroma; keep the input's luma
  c.diffusion.prediction = 'v'
  if 'smoke' not in variants:
    c.train.checkpoint_every = 500
  return c
