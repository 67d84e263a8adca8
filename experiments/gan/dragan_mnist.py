"""DRAGAN (Kodali et al. 2017): the minimax losses of the notes' table plus
10 * (||grad D(x~)|| - 1)^2 at random points between the real data and its Gaussian
perturbation (see `losses.dragan_penalty`); LayerNorm in D.

  genvision train --config=experiments/gan/dragan_mnist.py --workdir=runs/dragan_mnist
  genvision train --config=experiments/gan/dragan_mnist.py:smoke --workdir=/tmp/dragan_smoke
"""

from genvision_jax.configs import import_experiment


def get_config(arg=None):
  c = import_experiment('../dcgan_mnist', __file__).get_config(arg)
  c.gan.loss = 'minimax'
  c.gan.penalty = 'dragan'
  c.gan.penalty_weight = 10.0
  c.model.d_norm = 'layer'
  return c
