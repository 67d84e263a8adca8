"""HiDDeN (Zhu et al. 2018) on the offline digits: a 32-bit watermark written as a residual of at
most 0.1 (in [-1, 1] units, 12.75 of 255 levels) into 28 x 28 digits and read back after one
noise layer per batch (identity, 8-bit quantization, dropout, cropout, crop, resize, blur,
Gaussian noise, brightness, straight-through JPEG 50); BCE on the bits + 0.7 x MSE on the
image, both after a warm-up of 1,000 steps without them at strength 0.5, which then falls to
0.1 over the next 1,000 steps (see methods/hidden.py); Adam 1e-3,
64 digits per step, 5,000 steps.

  genvision train --config=experiments/provenance/hidden_mnist.py --workdir=runs/hidden32
  genvision train --config=experiments/provenance/hidden_mnist.py:smoke --workdir=/tmp/hidden

Variants: `bits48` (48 bits), `weak` (strength 0.05), `noattack` (identity noise layer only),
`smoke` (a few steps of a tiny model, for the tests).
"""

from genvision_jax.configs import method_config, smoke_schedule, variants as parse_variants

VARIANTS = ('bits48', 'weak', 'noattack', 'smoke')


def get_config(arg=None):
  chosen = parse_variants(arg, VARIANTS, 'hidden_mnist')
  c = method_config('hidden')
  c.train.num_steps = 5000
  c.train.batch_size = 64
  c.train.num_samples = 24          # sample grids: 8 rows cover | watermarked | 10 x difference
  c.train.sample_every = 1000
  c.train.checkpoint_every = 1000
  if 'bits48' in chosen:
    c.model.num_bits = 48
  if 'weak' in chosen:
    c.hidden.strength = 0.05
  if 'noattack' in chosen:
    c.hidden.noise = ('identity',)
  if 'smoke' in chosen:
    c.model.width = 8
    c.model.encoder_depth = 1
    c.model.decoder_depth = 1
    c.hidden.warmup_steps = 2
    smoke_schedule(c)
    c.train.num_samples = 6
  return c
