"""Text-to-image diffusion (Imagen-style, small) on the captioned digit scenes: a U-Net with
cross-attention to a 2-layer transformer text encoder trained with it, DDPM with v-prediction,
caption dropout 0.1 for classifier-free guidance (w = 2 for sample grids), DDIM-50 sampling.

  genvision train --config=experiments/tti/diffusion_digits.py --workdir=runs/tti_diffusion
  genvision sample --workdir=runs/tti_diffusion --prompt="a thick 3 to the left of a small 7" --num=16 --out=s.png
  genvision train --config=experiments/tti/diffusion_digits.py:smoke --workdir=/tmp/tti_smoke

Variants: `one` (one digit on 32x32 instead of two on 32x64), `smoke` (a few steps of a tiny
model, for the tests).
"""

from genvision_jax.configs import method_config, smoke_schedule, variants as parse_variants
from genvision_jax.data import digit_scenes

VARIANTS = ('one', 'smoke')


def get_config(arg=None):
  chosen = parse_variants(arg, VARIANTS, 'diffusion_digits')
  c = method_config('tti_diffusion')
  c.data.name = 'digit_scenes/' + ('one' if 'one' in chosen else 'two')
  c.data.image_size = 32
  c.text.vocab_size = len(digit_scenes.VOCABULARY)
  c.text.max_tokens = digit_scenes.MAX_TOKENS
  c.diffusion.prediction = 'v'
  c.model.base = 32
  c.model.channel_mults = (1, 2, 2)       # 32 -> 16 -> 8 rows
  c.model.num_res_blocks = 1
  c.model.attention_resolutions = (8,)    # self- and cross-attention at 8 x 16 positions
  c.train.num_steps = 6000
  c.train.batch_size = 32
  c.train.sample_every = 1000
  c.train.checkpoint_every = 1000
  c.train.num_samples = 32               # 8 captions x 4 samples
  if 'smoke' in chosen:
    c.model.base = 8
    c.model.channel_mults = (1, 2)
    c.model.attention_resolutions = (16,)
    c.model.num_heads = 2
    c.text.width = 16
    c.text.depth = 1
    c.text.num_heads = 2
    c.diffusion.sample_steps = 4
    smoke_schedule(c)
    c.train.num_samples = 8
  return c
