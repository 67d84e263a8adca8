"""DDPM (Ho et al. 2020) on the offline MNIST digits: U-Net denoiser, linear beta schedule over
T = 1000 steps, eps-prediction trained on the simple loss, EMA weights; DDIM sample grids.

  genvision train --config=experiments/ddpm_mnist.py --workdir=runs/ddpm_mnist
  genvision sample --workdir=runs/ddpm_mnist --sampler=ddim --steps=50 --out=ddim.png
  genvision sample --workdir=runs/ddpm_mnist --sampler=ddpm --out=ddpm.png   # all T steps
  genvision bpd --workdir=runs/ddpm_mnist          # bits/dim of the test split (the bound)
  genvision train --config=experiments/ddpm_mnist.py:smoke --workdir=/tmp/ddpm_smoke
"""

import ml_collections

from genvision_jax.configs import base_config, optimizer, smoke_schedule


def get_config(arg=None):
  c = base_config()
  c.method = 'diffusion'
  c.model = ml_collections.ConfigDict(dict(
      architecture='unet',
      base=16,                     # channels of the first level
      channel_mults=(1, 2, 4),     # widths per level: 28 -> 14 -> 7 px
      num_res_blocks=1,            # residual blocks per level (the decoder has one more)
      attention_resolutions=(7,),  # self-attention after the blocks at these sizes
      num_heads=4,
      dropout=0.0,                 # Ho et al.: 0.1 on CIFAR-10; short runs underfit anyway
      conditional=False,           # class embedding (+ null class for guidance)
  ))
  c.diffusion = ml_collections.ConfigDict(dict(
      schedule='linear',    # 'linear' (1e-4 .. 0.02 at T = 1000) or 'cosine'
      num_timesteps=1000,   # T
      prediction='eps',     # network output: 'eps' or 'v'
      loss='mse',           # 'mse' (L_simple) or 'l1'
      variance='large',     # sigma_t^2 of p(x_{t-1}|x_t): 'large' = beta_t, 'small' = beta~_t
      p_uncond=0.1,         # conditional models: label dropout to the null class
      sampler='ddim',       # sample grids and `genvision sample`: 'ddim' or 'ddpm' (all T)
      sample_steps=50,      # DDIM steps
      eta=0.0,              # DDIM stochasticity: 0 deterministic, 1 ancestral-like
      guidance=0.0,         # classifier-free guidance w (conditional models)
  ))
  c.optim = optimizer('adam', learning_rate=1e-3)
  c.optim.grad_clip = 1.0   # Ho et al. clip at 1 and warm up
  c.optim.warmup_steps = 200
  # 2,000 steps: recognizable digits (ddpm_cond_mnist: every class row right). Measured on the
  # shared 2-core CPU: 1.04 steps/s under load (1.5-1.7 when quieter), 39 min wall with compile
  # and sample grids; ~20-25 min on a quiet machine. Ho et al. train 800k steps.
  c.train.num_steps = 2000
  c.train.batch_size = 64
  c.train.ema_decay = 0.999  # Ho et al.: 0.9999 over 800k steps; this run is ~1000x shorter
  c.train.sample_every = 1000
  c.train.checkpoint_every = 1000
  if arg == 'smoke':
    c.model.update(dict(base=8, channel_mults=(1, 2), num_res_blocks=1,
                        attention_resolutions=(), num_heads=2))  # middle block attends
    c.diffusion.num_timesteps = 100
    c.diffusion.sample_steps = 4
    c.optim.warmup_steps = 0
    smoke_schedule(c)
  elif arg:
    raise ValueError(f"unknown variant '{arg}' of ddpm_mnist; use 'smoke'")
  return c
