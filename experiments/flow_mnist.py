"""Flow matching / rectified flow (Lipman et al. 2023; Liu et al. 2023) on the offline MNIST
digits: the ddpm_mnist U-Net, data and schedule, trained to regress the velocity eps - x_0 of
the straight path x_t = (1 - t) x_0 + t eps, t ~ U(0, 1); sampled by Euler on the ODE (the
rectified-flow sampler; every ODE sampler of `genvision_jax.diffusion.samplers` applies).

  genvision train --config=experiments/flow_mnist.py --workdir=runs/flow_mnist
  genvision sample --workdir=runs/flow_mnist --sampler=heun --steps=10 --out=heun.png
  genvision evaluate --workdir=runs/flow_mnist --nfe_sweep=5,10,20,50
  genvision bpd --workdir=runs/flow_mnist          # the continuous-time bound, Monte Carlo

Variants: `logit_normal` (t = sigmoid(n), n ~ N(0, 1): Esser et al. 2024's emphasis on the
middle of the path), `smoke` (a tiny model for the tests).
"""

from genvision_jax.configs import import_experiment, variants as parse_variants

VARIANTS = ('logit_normal', 'smoke')


def get_config(arg=None):
  variants = parse_variants(arg, VARIANTS, 'flow_mnist')
  c = import_experiment('ddpm_mnist', __file__).get_config('smoke' if 'smoke' in variants
                                                            else None)
  c.diffusion.process = 'flow'
  c.diffusion.prediction = 'velocity'
  c.diffusion.sampler = 'euler'
  if 'logit_normal' in variants:
    c.diffusion.t_sampling = 'logit_normal'
  return c
