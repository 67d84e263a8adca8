"""DCGAN (non-saturating loss, Adam 2e-4 / 0.5) on the offline MNIST digits.

  genvision train --config=experiments/dcgan_mnist.py --workdir=runs/dcgan_mnist
  genvision train --config=experiments/dcgan_mnist.py:smoke --workdir=/tmp/dcgan_smoke
  genvision sample --workdir=runs/dcgan_mnist --num=64 --out=samples.png
"""

from genvision_jax.configs import method_config, smoke_schedule


def get_config(arg=None):
  c = method_config('gan')  # the DCGAN defaults of methods/gan.py (GANMethod.default_sections)
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
