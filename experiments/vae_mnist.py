"""Convolutional VAE (Bernoulli likelihood) on the offline MNIST digits.

  genvision train --config=experiments/vae_mnist.py --workdir=runs/vae_mnist
  genvision train --config=experiments/vae_mnist.py:smoke --workdir=/tmp/vae_smoke
  genvision train --config=experiments/vae_mnist.py:mlp --workdir=runs/vae_mlp  # Kingma & Welling
"""

import ml_collections

from genvision_jax.configs import base_config, optimizer, smoke_schedule


def get_config(arg=None):
  c = base_config()
  c.method = 'vae'
  c.model = ml_collections.ConfigDict(dict(
      architecture='conv',     # 'conv' or 'mlp'
      latent_dim=16,
      width=32,                # channels of the first conv layer (doubles per stage)
      hidden=256,              # dense layer between convs and the latent
      likelihood='bernoulli',  # 'bernoulli' (logits) or 'gaussian' (mean, learned variance)
  ))
  c.vae = ml_collections.ConfigDict(dict(beta=1.0))
  c.optim = optimizer('adam', learning_rate=1e-3)
  c.train.num_steps = 3000
  c.train.batch_size = 64
  if arg == 'mlp':
    c.model.architecture = 'mlp'
    c.model.hidden = 500
    c.model.latent_dim = 20
  elif arg == 'smoke':
    c.model.latent_dim = 4
    c.model.width = 4
    c.model.hidden = 16
    smoke_schedule(c)
  elif arg:
    raise ValueError(f"unknown variant '{arg}' of vae_mnist; use 'smoke' or 'mlp'")
  return c
