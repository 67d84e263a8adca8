"""Class-conditional DDPM with classifier-free guidance (Ho & Salimans 2022) on the offline
MNIST digits: the ddpm_mnist U-Net with a class embedding, labels dropped to the null class
with probability diffusion.p_uncond in training, and samples guided by
(1 + w) eps(x_t, c) - w eps(x_t, null). Sample grids show one row per class.

  genvision train --config=experiments/ddpm_cond_mnist.py --workdir=runs/ddpm_cond_mnist
  genvision sample --workdir=runs/ddpm_cond_mnist --steps=50 --sampler=ddim --guidance=3 \
      --label=7 --out=sevens.png
  genvision sample --workdir=runs/ddpm_cond_mnist --class_grid --num=8 --out=classes.png
  genvision bpd --workdir=runs/ddpm_cond_mnist     # bound on -log p(x | c), test split
"""

from genvision_jax.configs import import_experiment


def get_config(arg=None):
  c = import_experiment('ddpm_mnist', __file__).get_config(arg)
  c.model.conditional = True
  c.diffusion.p_uncond = 0.1
  c.diffusion.guidance = 2.0
  c.train.num_samples = 80  # 10 classes x 8
  if arg == 'smoke':
    c.train.num_samples = 20
  return c
