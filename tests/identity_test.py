"""SD-GAN identity preservation (`genvision_jax.evaluation.identity`): the same-class
fraction and its Wilson interval by hand, the real-pair sampler, and the three pair kinds on
a generator whose class is a known function of z_I."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from genvision_jax import configs, methods
from genvision_jax.evaluation import identity
from tests.conftest import REPO


def test_same_class_fraction_and_wilson_interval_by_hand():
  a = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
  b = np.array([0, 1, 2, 3, 4, 5, 6, 0, 0, 0])   # 7 of 10 agree
  fraction, same, (low, high) = identity.same_class_fraction(a, b)
  assert fraction == 0.7
  np.testing.assert_array_equal(same, [1] * 7 + [0] * 3)
  # Wilson score interval: (p + z^2/2n -+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n).
  z, n, p = 1.959963984540054, 10, 0.7
  center, half = p + z**2 / (2 * n), z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
  np.testing.assert_allclose([low, high], [(center - half) / (1 + z**2 / n),
                                           (center + half) / (1 + z**2 / n)], rtol=1e-6)


def test_real_pairs_are_two_different_examples_of_one_label():
  labels = np.random.default_rng(0).integers(0, 10, 700)
  first, second = identity.real_pairs(labels, 1000, seed=3, chunk=256)
  assert len(first) == len(second) == 1000
  assert np.all(first != second) and np.all(labels[first] == labels[second])
  assert len(np.unique(first)) > 500   # spread over the data set, not one chunk
  with pytest.raises(ValueError, match='more examples than classes'):
    identity.real_pairs(np.arange(8), 4, chunk=8)


def _class_from_identity_method():
  """The smoke SD-GAN with a decoder whose image is filled with the class
  floor(5 (z_I[0] + 1)) in 0..9: a perfect identity keeper over ten equally likely classes."""
  config = configs.load(str(REPO / 'experiments' / 'gan' / 'sdgan_mnist.py:smoke'))
  method = methods.create(config, (28, 28, 1), num_classes=10)

  def decode(state, z, use_ema=True):
    del state, use_ema
    cls = jnp.clip(jnp.floor(5.0 * (z[:, 0] + 1.0)), 0, 9)
    return jnp.broadcast_to(cls[:, None, None, None], (z.shape[0], 28, 28, 1))
  method.decode = decode
  return method


def test_identity_preservation_of_the_three_pair_kinds():
  method = _class_from_identity_method()
  classify = lambda images: np.asarray(images)[:, 0, 0, 0].astype(int)
  labels = np.random.default_rng(1).integers(0, 10, 600)
  real = np.broadcast_to(labels[:, None, None, None], (600, 28, 28, 1)).astype(np.float32)
  values, intervals, per_example, details = identity.identity_preservation(
      method, None, classify, real, labels, num_pairs=2000, seed=0)
  assert values['digits_cnn/identity_generated'] == 1.0   # z_I shared: same class always
  assert values['digits_cnn/identity_real'] == 1.0        # two images of one label
  # Independent z_I: two uniform classes of ten agree with probability 0.1 (se 0.007).
  assert abs(values['digits_cnn/identity_independent'] - 0.1) < 0.03
  low, high = intervals['digits_cnn/identity_independent']
  assert low < values['digits_cnn/identity_independent'] < high
  assert set(per_example) == {'digits_cnn/identity_generated',
                              'digits_cnn/identity_independent'}
  assert per_example['digits_cnn/identity_generated'].shape == (2000,)
  assert details['identity_pairs'] == 2000
