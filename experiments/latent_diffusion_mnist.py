"""Latent diffusion (Rombach et al. 2022) on the offline MNIST digits, in the 32-d code space
of the package's deep autoencoder (experiments/ae/ae_mnist.py): a residual MLP denoiser on the
codes scaled by 1 / their std, the DDPM process (T = 1000, eps) and DDIM-50 as ddpm_mnist, the
codes decoded by the autoencoder in `generate`.

  genvision train --config=experiments/ae/ae_mnist.py --workdir=runs/ae32
  genvision train --config=experiments/latent_diffusion_mnist.py --workdir=runs/ldm_ae32 \
      --config.latent.autoencoder=runs/ae32
  genvision evaluate --workdir=runs/ldm_ae32           # generation FD of decoded samples
  genvision evaluate --workdir=runs/ae32               # reconstruction FD of the autoencoder

Variants: `flow` (flow matching on the codes, Euler sampler), `smoke` (a tiny model, for the
tests; its autoencoder: experiments/ae/ae_mnist.py:smoke).
"""

from genvision_jax.configs import method_config, smoke_schedule, variants as parse_variants

VARIANTS = ('flow', 'smoke')


def get_config(arg=None):
  variants = parse_variants(arg, VARIANTS, 'latent_diffusion_mnist')
  c = method_config('latent_diffusion')  # LatentDiffusionMethod.default_sections
  c.train.num_steps = 2000
  c.train.batch_size = 64
  c.train.ema_decay = 0.999
  c.train.sample_every = 1000
  c.train.checkpoint_every = 1000
  if 'flow' in variants:
    c.diffusion.process = 'flow'
    c.diffusion.prediction = 'velocity'
    c.diffusion.sampler = 'euler'
  if 'smoke' in variants:
    c.model.update(dict(base=32, num_res_blocks=1))
    c.diffusion.num_timesteps = 100
    c.diffusion.sample_steps = 4
    c.optim.warmup_steps = 0
    smoke_schedule(c)
  return c
