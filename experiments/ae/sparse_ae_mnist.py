"""Sparse autoencoder on the offline digits: ae_mnist.py's network with an L1 penalty on the
code, `ae.l1_weight` * sum_j |code_j| per image (weight 0.1 against the per-image squared error
summed over 784 pixels). With `overcomplete` the code has 1,024 units (more than the 784
pixels): the penalty, not the size, keeps it from copying the input.

Variants: those of ae_mnist.py and `overcomplete`, `smoke`.

  genvision train --config=experiments/ae/sparse_ae_mnist.py --workdir=runs/sparse32
  genvision evaluate --workdir=runs/sparse32
"""

from genvision_jax.configs import import_experiment


def get_config(arg=None):
  c, variants = import_experiment('ae_mnist', __file__).build(arg, 'sparse_ae_mnist',
                                                              ('overcomplete',))
  c.ae.sparsity = 'l1'
  c.ae.l1_weight = 0.1
  if 'overcomplete' in variants:
    c.model.code_dim = 1024
  return c
