"""Fast style transfer (Johnson et al. 2016) on the offline colour photo patches: a
TransformerNet (width 32, 5 residual blocks, no normalization, residual output: it starts at the
identity) trained to paint 64x64 patches of the five training photos in the style of
scikit-image's immunohistochemistry photo (`ihc.png`, not a training photo), with the perceptual
losses of the random-filter network (genvision_jax/features, no weights needed), style weight
1e6 (10x Gatys's default here: on the 395 test patches it gave both lower style and lower
content loss than 1e5, paired bootstrap p < 1e-4, README). Adam 3e-4, batch 8, 1,000 steps. (Instance norm with a plain output, `--config.model.norm=instance
--config.model.residual=False --config.optim.learning_rate=1e-3
--config.style.style_weight=1e5`, painted a dark blob on every patch; README, "Fast style
transfer".)

Variants (comma-separated): `vgg19` (VGG-19 features: needs torchvision's vgg19-dcbb9e9d.pth via
--config.style.weights or $GENVISION_VGG19_WEIGHTS), `smoke` (a few steps of a tiny network, for
the tests). Another style: --config.style.image=PATH.

  genvision train --config=experiments/style/fast_style_photos.py --workdir=runs/fast_style
  genvision stylize --workdir=runs/fast_style --content=photo.png --out=stylized.png
"""

from genvision_jax.configs import method_config, smoke_schedule, variants as parse_variants

VARIANTS = ('vgg19', 'smoke')


def get_config(arg=None):
  variants = parse_variants(arg, VARIANTS, 'fast_style_photos')
  c = method_config('fast_style')
  c.data.name = 'photo_patches/64'
  c.data.image_size = 64
  c.data.resize_method = 'resize'  # a no-op: the patches are 64 px
  c.train.num_steps = 1000
  c.train.batch_size = 8
  c.train.num_samples = 16          # sample grids: 8 rows content | stylized
  c.train.sample_every = 500
  c.train.checkpoint_every = 500
  c.style.style_weight = 1e6
  if 'vgg19' in variants:
    c.style.features = 'vgg19'
    c.style.style_weight = None  # VGG-19's default (style.DEFAULT_STYLE_WEIGHTS)
  if 'smoke' in variants:
    c.model.width = 4
    c.model.res_blocks = 1
    c.style.size = 64
    smoke_schedule(c)
    c.train.num_samples = 4
  return c
