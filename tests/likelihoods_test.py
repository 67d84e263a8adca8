"""Tests of genvision_jax/evaluation/likelihoods.py: the unit conversions, the IWAE bounds from
shared log-weights and the 8-bit likelihoods of the GMM, by hand and against scipy."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from genvision_jax import configs
from genvision_jax.evaluation import likelihoods
from genvision_jax.methods import simple as simple_method
from tests.conftest import experiment


def test_nats_and_bits_per_dim_by_hand():
  # 784 pixels: 100 nats per image = 100 / (784 ln 2) = 100 / 543.4273 = 0.1840172 bits/dim
  assert float(likelihoods.nats_to_bits_per_dim(100.0, 784)) == pytest.approx(0.1840172, 1e-6)
  assert float(likelihoods.bits_per_dim_to_nats(1.0, 784)) == pytest.approx(543.4273, 1e-6)
  x = np.array([3.0, 250.0])
  np.testing.assert_allclose(
      likelihoods.bits_per_dim_to_nats(likelihoods.nats_to_bits_per_dim(x, 10), 10), x)
  # a uniform distribution over 256 levels is 8 bits/dim
  assert float(likelihoods.nats_to_bits_per_dim(784 * math.log(256), 784)) == pytest.approx(8)


def test_iwae_bounds_from_shared_log_weights_by_hand():
  log_w = np.log(np.array([[1.0, 3.0, 2.0, 6.0]]))
  # k = 1: the mean log-weight; k = 2: mean of log((1+3)/2), log((2+6)/2); k = 4: log mean
  assert likelihoods.iwae_from_log_weights(log_w, 1)[0] == pytest.approx(np.log([1, 3, 2, 6]).mean())
  assert likelihoods.iwae_from_log_weights(log_w, 2)[0] == pytest.approx(
      (math.log(2.0) + math.log(4.0)) / 2)
  assert likelihoods.iwae_from_log_weights(log_w, 4)[0] == pytest.approx(math.log(3.0))
  with pytest.raises(ValueError, match='does not divide'):
    likelihoods.iwae_from_log_weights(log_w, 3)


def _gmm_state(method, means, variances, weights):
  params = {'log_weights': jnp.log(jnp.asarray(weights, jnp.float32)),
            'means': jnp.asarray(means, jnp.float32),
            'covariances': jnp.asarray(variances, jnp.float32)}
  if method.covariance == 'full':
    params['covariances'] = jax.vmap(jnp.diag)(params['covariances'])
  return simple_method.SimpleState(step=jnp.int32(1), params=params, rng=jax.random.key(0))


@pytest.mark.parametrize('covariance', ['diag', 'full'])
def test_gmm_8bit_likelihoods_by_hand(covariance):
  """A 2-pixel image, 2 components, diagonal covariances (as a full matrix too):
  discretized = log sum_k pi_k prod_d P_k(bin of x_d) with scipy's normal CDF, edge bins to
  +-inf; dequantized = log p(x + w u) + D log w with the same u."""
  config = configs.load(experiment('simple/gmm_mnist.py:smoke'),
                        {'model.covariance': covariance})
  method = simple_method.SimpleMethod(config, (1, 2, 1))
  means, variances, weights = [[-0.9, 0.1], [0.5, 0.9]], [[0.04, 0.25], [0.09, 0.01]], [0.3, 0.7]
  state = _gmm_state(method, means, variances, weights)
  x = np.array([[-1.0, 1.0], [0.2, -0.6]], np.float32)  # edge bins, inner bins
  out = jax.device_get(method.test_log_likelihoods(state, jnp.asarray(x), jax.random.key(5)))
  w = 2 / 255
  norm = scipy.stats.norm
  want_disc, want_deq = [], []
  u = np.asarray(jax.random.uniform(jax.random.key(5), x.shape, minval=-0.5, maxval=0.5))
  for i, row in enumerate(x.astype(np.float64)):
    per_k_disc, per_k_deq = [], []
    for m, v, pi in zip(means, variances, weights):
      s = np.sqrt(v)
      hi = np.where(row > 0.999, np.inf, row + w / 2)
      lo = np.where(row < -0.999, -np.inf, row - w / 2)
      per_k_disc.append(pi * np.prod(norm.cdf(hi, m, s) - norm.cdf(lo, m, s)))
      per_k_deq.append(pi * np.prod(norm.pdf(row + w * u[i], m, s)))
    want_disc.append(np.log(sum(per_k_disc)))
    want_deq.append(np.log(sum(per_k_deq)) + 2 * np.log(w))
  np.testing.assert_allclose(out['dequantized'], want_deq, rtol=1e-4)
  if covariance == 'diag':
    np.testing.assert_allclose(out['discretized'], want_disc, rtol=1e-4)
  else:
    assert 'discretized' not in out  # no closed form for a full covariance

