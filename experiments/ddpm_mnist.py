"""DDPM (Ho et al. 2020) on the offline MNIST digits: U-Net denoiser, linear beta schedule over
T = 1000 steps, eps-prediction trained on the simple loss, EMA weights; DDIM sample grids.

  genvision train --config=experiments/ddpm_mnist.py --workdir=runs/ddpm_mnist
  genvision sample --workdir=runs/ddpm_mnist --sampler=ddim --steps=50 --out=ddim.png
  genvision sample --workdir=runs/ddpm_mnist --sampler=ddpm --out=ddpm.png   # all T steps
  genvision bpd --workdir=runs/ddpm_mnist          # bits/dim of the test split (the bound)
  genvision train --config=experiments/ddpm_mnist.py:smoke --workdir=/tmp/ddpm_smoke

Variants (comma-separated): `pad32` (the digits padded to 32 px, as the image-to-image
experiments/i2i/*.py see them: the U-Net goes 32 -> 16 -> 8 px with attention at 8; the prior
of `genvision evaluate --workdir=I2I_RUN --prior=THIS_RUN`), `smoke` (a few steps of a tiny
model, for the tests).

  genvision train --config=experiments/ddpm_mnist.py:pad32 --workdir=runs/ddpm_mnist32
"""

from genvision_jax.configs import method_config, smoke_schedule, variants as parse_variants

VARIANTS = ('pad32', 'smoke')


def get_config(arg=None):
  variants = parse_variants(arg, VARIANTS, 'ddpm_mnist')
  c = method_config('diffusion')  # the U-Net and DDPM of DiffusionMethod.default_sections
  c.train.num_steps = 2000
  c.train.batch_size = 64
  c.train.ema_decay = 0.999  # Ho et al.: 0.9999 over 800k steps; this run is ~1000x shorter
  c.train.sample_every = 1000
  c.train.checkpoint_every = 1000
  if 'pad32' in variants:
    c.data.image_size = 32
    c.data.resize_method = 'pad'   # 28 px digits centred on a 32 px canvas
    c.model.attention_resolutions = (8,)  # 32 -> 16 -> 8 px
  if 'smoke' in variants:
    c.model.update(dict(base=8, channel_mults=(1, 2), num_res_blocks=1,
                        attention_resolutions=(), num_heads=2))  # middle block attends
    c.diffusion.num_timesteps = 100
    c.diffusion.sample_steps = 4
    c.optim.warmup_steps = 0
    smoke_schedule(c)
  return c
