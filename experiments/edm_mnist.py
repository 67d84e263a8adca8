"""EDM (Karras et al. 2022) on the offline MNIST digits: the ddpm_mnist U-Net wrapped in EDM's
preconditioning D(x) = c_skip x + c_out F(c_in x, c_noise), sigma log-normal (P_mean = -1.2,
P_std = 1.2) in training with sigma_data = 0.5, sampled by Heun's method on the sigma grid of
rho = 7 from 80 to 0.002 (18 steps: 35 network calls).

  genvision train --config=experiments/edm_mnist.py --workdir=runs/edm_mnist
  genvision sample --workdir=runs/edm_mnist --sampler=dpmpp_2m --steps=10 --out=dpm.png

Variants: `smoke` (a tiny model for the tests).
"""

from genvision_jax.configs import import_experiment, variants as parse_variants

VARIANTS = ('smoke',)


def get_config(arg=None):
  variants = parse_variants(arg, VARIANTS, 'edm_mnist')
  c = import_experiment('ddpm_mnist', __file__).get_config('smoke' if 'smoke' in variants
                                                            else None)
  c.diffusion.process = 'edm'
  c.diffusion.prediction = 'edm'
  c.diffusion.sampler = 'heun'
  c.diffusion.sample_steps = 3 if 'smoke' in variants else 18
  return c
