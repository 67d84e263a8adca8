"""Class-conditional DCGAN: label embedding into G (or conditional BatchNorm) and a projection
discriminator (or one-hot label planes); non-saturating loss. Sample grids show one row per class.

  genvision train --config=experiments/gan/cgan_mnist.py --workdir=runs/cgan_mnist
  genvision sample --workdir=runs/cgan_mnist --label=7 --num=16 --out=sevens.png
  genvision sample --workdir=runs/cgan_mnist --class_grid --num=8 --out=classes.png
  genvision train --config=experiments/gan/cgan_mnist.py --workdir=runs/cgan_cbn \
      --config.model.g_conditioning=cbn --config.model.d_conditioning=concat
"""

from genvision_jax.configs import import_experiment


def get_config(arg=None):
  c = import_experiment('../dcgan_mnist', __file__).get_config(arg)
  c.model.conditional = True
  c.train.num_samples = 80  # 10 classes x 8
  if arg == 'smoke':
    c.train.num_samples = 20
  return c
