"""DCGAN (non-saturating loss, Adam 2e-4 / 0.5) on the offline MNIST digits.

  genvision train --config=experiments/dcgan_mnist.py --workdir=runs/dcgan_mnist
  genvision train --config=experiments/dcgan_mnist.py:smoke --workdir=/tmp/dcgan_smoke
  genvision sample --workdir=runs/dcgan_mnist --num=64 --out=samples.png
"""

import ml_collections

from genvision_jax.configs import base_config, optimizer, smoke_schedule


def get_config(arg=None):
  c = base_config()
  c.method = 'gan'
  c.model = ml_collections.ConfigDict(dict(
      generator='dcgan',
      discriminator='dcgan',
      latent_dim=100,
      g_width=64,        # channels of G's last hidden layer (doubles towards z)
      d_width=64,        # channels of D's first layer (doubles per stage)
      g_norm='batch',    # 'batch' or 'none' (G's normalization; cbn conditioning needs batch)
      d_norm='batch',    # 'batch', 'layer' or 'none'
      d_spectral_norm=False,        # spectral normalization of every D layer
      d_layers=2,                   # PatchGAN only: stride-2 layers (receptive field)
      conditional=False,            # class-conditional G and D (labelled data)
      g_conditioning='embedding',   # 'embedding' (concatenated to z) or 'cbn'
      d_conditioning='projection',  # 'projection' or 'concat' (one-hot planes)
  ))
  c.gan = ml_collections.ConfigDict(dict(
      loss='non_saturating',  # minimax, non_saturating, wgan, lsgan, hinge
      penalty='none',         # none, gradient (WGAN-GP), dragan, r1; needs d_norm != batch
      penalty_weight=10.0,
      clip_value=0.0,         # WGAN weight clipping of D's parameters (0 = off)
      began_gamma=0.5,        # BEGAN: equilibrium E[L(G(z))] = gamma E[L(x)]
      began_lambda_k=0.001,   # BEGAN: gain of the k_t control
  ))
  c.optim = ml_collections.ConfigDict(dict(
      g=optimizer('adam', learning_rate=2e-4, b1=0.5, b2=0.999),
      d=optimizer('adam', learning_rate=2e-4, b1=0.5, b2=0.999),
  ))
  c.train.num_steps = 2000
  c.train.batch_size = 64
  c.train.d_steps = 1
  if arg == 'smoke':
    c.model.latent_dim = 8
    c.model.g_width = 4
    c.model.d_width = 4
    smoke_schedule(c)
    c.train.d_steps = 2
  elif arg:
    raise ValueError(f"unknown variant '{arg}' of dcgan_mnist; use 'smoke'")
  return c
