"""k-sparse autoencoder (Makhzani & Frey 2014) on the offline digits: ae_mnist.py's network
with an overcomplete-for-its-sparsity code of 256 units of which only the k = 25 largest are
kept per digit (in training and at test time; gradients flow through the kept units only).

Variants: those of ae_mnist.py (a code size sets `model.code_dim`; k stays 25 unless the code
is smaller, then k = code size / 4, at least 1) and `smoke`.

  genvision train --config=experiments/ae/ksparse_ae_mnist.py --workdir=runs/ksparse
  genvision evaluate --workdir=runs/ksparse
"""

from genvision_jax.configs import import_experiment


def get_config(arg=None):
  c, variants = import_experiment('ae_mnist', __file__).build(arg, 'ksparse_ae_mnist')
  if not any(v.startswith('code') for v in variants):
    c.model.code_dim = 256
  c.ae.sparsity = 'k_sparse'
  c.ae.k = 25 if c.model.code_dim >= 100 else max(1, c.model.code_dim // 4)
  return c
