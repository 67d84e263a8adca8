"""pix2pix (Isola et al. 2017) colorization on the offline colour patches (`photo_patches/32`,
32x32 RGB patches of the scikit-image / scikit-learn sample photos, test photos unseen in
training): the Rec. 601 luma in, RGB out (G predicts the BT.601 chroma and the output keeps
the input's luma: `task.keep_luma`). U-Net G with dropout (five levels, 32 -> 1 px),
34x34 PatchGAN D on (luma, colour), non-saturating loss + 100 L1, Adam 2e-4 / 0.5.

Variants (comma-separated, e.g. `:l1,smoke`): `l1` (the L1-only U-Net of the paper's ablation:
`pix2pix.gan_weight=0`, no discriminator), `smoke` (a few steps of a tiny model, for the tests).

RESULT (2,000 steps, seed 0, 474 test patches of the two held-out photos, one compare with
:l1 and the grey baseline): PSNR 20.65 dB (L1 20.29, grey 19.46), SSIM 0.705 (0.716, 0.784),
CIEDE2000 17.36 (17.36, 16.95; no significant difference, p ~ 0.3), colourfulness 30.0
(targets 36.9). Colour is learned but its hues do not transfer from five training photos to
unseen ones (green backgrounds painted navy blue); see the README table.

  genvision train --config=experiments/i2i/pix2pix_photos.py --workdir=runs/p2p_col
  genvision train --config=experiments/i2i/pix2pix_photos.py:l1 --workdir=runs/l1_col
  genvision evaluate --workdir=runs/p2p_col
  genvision compare runs/p2p_col runs/l1_col runs/p2p_col/eval/baselines/grey
"""

from genvision_jax.configs import import_experiment, variants as parse_variants

VARIANTS = ('l1', 'smoke')


def get_config(arg=None):
  variants = parse_variants(arg, VARIANTS, 'pix2pix_photos')
  # pix2pix_mnist's networks, schedule and variants; the photo patches and the task replace
  # its padded digits and super-resolution.
  c = import_experiment('pix2pix_mnist', __file__).get_config(','.join(variants) or None)
  c.data.name = 'photo_patches/32'
  c.data.resize_method = 'resize'  # a no-op: the patches are 32 px
  c.task.name = 'colorization'
  c.task.keep_luma = True  # G predicts the chroma; the output keeps the input's luma
  return c
