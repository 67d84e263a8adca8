"""Tests of genvision_jax/pgm: closed forms by hand, log-likelihoods against scipy.stats,
EM against scikit-learn, EM monotonicity and parameter recovery on synthetic data."""

import functools
import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
import scipy.stats
from sklearn.mixture import GaussianMixture

from genvision_jax.pgm import mixtures
from genvision_jax.pgm import simple


# -- product of Bernoullis -------------------------------------------------------------------

def test_bernoulli_mle_by_hand():
  x = np.array([[1, 0, 1], [1, 0, 0], [1, 1, 0], [1, 0, 0]], np.float32)
  np.testing.assert_allclose(simple.bernoulli_fit(x), [1.0, 0.25, 0.25])


def test_laplace_smoothing_by_hand():
  x = np.array([[1, 0, 1], [1, 0, 0], [1, 1, 0], [1, 0, 0]], np.float32)
  # (count + alpha) / (N + 2 alpha) with alpha = 1: (4+1)/6, (1+1)/6, (1+1)/6
  np.testing.assert_allclose(simple.bernoulli_fit(x, alpha=1.0), [5 / 6, 2 / 6, 2 / 6],
                             rtol=1e-6)
  # alpha = 2: (4+2)/8, (1+2)/8
  np.testing.assert_allclose(simple.bernoulli_fit(x, alpha=2.0), [6 / 8, 3 / 8, 3 / 8],
                             rtol=1e-6)


def test_bernoulli_log_likelihood_against_scipy_and_edges():
  rng = np.random.default_rng(0)
  probs = rng.uniform(0.05, 0.95, 10).astype(np.float32)
  x = (rng.uniform(size=(6, 10)) < 0.5).astype(np.float32)
  want = scipy.stats.bernoulli.logpmf(x, probs).sum(-1)
  np.testing.assert_allclose(simple.log_bernoulli(probs, x), want, rtol=1e-5)
  # p = 0 or 1 where the data agree: finite; where they disagree: -inf
  p = np.array([0.0, 1.0, 0.5], np.float32)
  assert float(simple.log_bernoulli(p, np.array([0, 1, 1.0]))) == pytest.approx(math.log(0.5))
  assert float(simple.log_bernoulli(p, np.array([1, 1, 1.0]))) == -np.inf


def test_bernoulli_samples_have_the_probabilities():
  probs = jnp.array([0.1, 0.5, 0.9])
  x = simple.sample_bernoulli(jax.random.key(0), probs, 20000)
  np.testing.assert_allclose(x.mean(0), probs, atol=0.015)


# -- mixtures: likelihoods against scipy -------------------------------------------------------

def test_bernoulli_mixture_log_prob_against_scipy():
  rng = np.random.default_rng(1)
  probs = rng.uniform(0.05, 0.95, (3, 8)).astype(np.float32)
  weights = np.array([0.2, 0.5, 0.3], np.float32)
  x = (rng.uniform(size=(5, 8)) < 0.5).astype(np.float32)
  per_k = np.stack([scipy.stats.bernoulli.logpmf(x, p).sum(-1) for p in probs], 1)
  want = scipy.special.logsumexp(per_k + np.log(weights), axis=1)
  params = {'log_weights': jnp.log(weights), 'probs': probs}
  np.testing.assert_allclose(mixtures.bernoulli_mixture_log_prob(params, x), want, rtol=1e-5)


@pytest.mark.parametrize('covariance', ['diag', 'full'])
def test_gmm_log_prob_against_scipy(covariance):
  rng = np.random.default_rng(2)
  means = rng.normal(size=(2, 3)).astype(np.float32)
  if covariance == 'diag':
    covs = rng.uniform(0.5, 2.0, (2, 3)).astype(np.float32)
    full = np.stack([np.diag(c) for c in covs])
  else:
    a = rng.normal(size=(2, 3, 3))
    full = (a @ np.transpose(a, (0, 2, 1)) + np.eye(3)).astype(np.float32)
    covs = full
  weights = np.array([0.3, 0.7])
  x = rng.normal(size=(7, 3)).astype(np.float32)
  per_k = np.stack([scipy.stats.multivariate_normal(m, c).logpdf(x)
                    for m, c in zip(means, full)], 1)
  want = scipy.special.logsumexp(per_k + np.log(weights), axis=1)
  params = {'log_weights': jnp.log(weights), 'means': means, 'covariances': covs}
  np.testing.assert_allclose(mixtures.gmm_log_prob(params, x, covariance), want, rtol=1e-5)


# -- EM ----------------------------------------------------------------------------------------

def _synthetic_bernoulli_mixture(n=6000, seed=0):
  rng = np.random.default_rng(seed)
  probs = np.array([[0.9] * 10 + [0.1] * 10, [0.1] * 10 + [0.9] * 10,
                    [0.9, 0.1] * 10], np.float32)
  weights = np.array([0.5, 0.3, 0.2])
  k = rng.choice(3, n, p=weights)
  x = (rng.uniform(size=(n, 20)) < probs[k]).astype(np.float32)
  return x, probs, weights


def _synthetic_gmm(covariance, n=6000, seed=0):
  rng = np.random.default_rng(seed)
  means = np.array([[0.0, 0.0], [6.0, 6.0], [-6.0, 6.0]], np.float32)
  if covariance == 'diag':
    covs = np.array([[1.0, 0.25], [0.5, 2.0], [1.5, 1.0]], np.float32)
    full = np.stack([np.diag(c) for c in covs])
  else:
    full = np.array([[[1.0, 0.6], [0.6, 1.0]], [[2.0, -0.5], [-0.5, 0.5]],
                     [[1.0, 0.0], [0.0, 1.5]]], np.float32)
    covs = full
  weights = np.array([0.5, 0.3, 0.2])
  k = rng.choice(3, n, p=weights)
  chol = np.linalg.cholesky(full)
  x = (means[k] + np.einsum('nij,nj->ni', chol[k], rng.normal(size=(n, 2)))).astype(np.float32)
  return x, means, covs, weights


def _match(true, fitted):
  """Permutation of the fitted components closest to the true ones (Hungarian)."""
  cost = np.abs(true[:, None] - fitted[None]).reshape(len(true), len(fitted), -1).sum(-1)
  return scipy.optimize.linear_sum_assignment(cost)[1]


@pytest.mark.parametrize('alpha', [0.0, 1.0])
def test_bernoulli_mixture_em_rises_every_iteration_and_recovers(alpha):
  x, probs, weights = _synthetic_bernoulli_mixture()
  p0 = mixtures.bernoulli_mixture_init(jax.random.key(0), x, 3)
  step = functools.partial(mixtures.bernoulli_mixture_em_step, alpha=alpha)
  params, trace = mixtures.run_em(step, p0, jnp.asarray(x), 40)
  # alpha = 0: plain EM, the log-likelihood never falls; alpha > 0: MAP-EM, the objective
  objective = np.asarray(trace['log_likelihood' if alpha == 0 else 'objective'], np.float64)
  assert np.all(np.diff(objective) >= -1e-4 * np.abs(objective[1:])), np.diff(objective).min()
  assert objective[-1] > objective[0] + 1.0  # and it does rise
  order = _match(probs, np.asarray(params['probs']))
  np.testing.assert_allclose(np.asarray(params['probs'])[order], probs, atol=0.03)
  np.testing.assert_allclose(np.exp(params['log_weights'])[order], weights, atol=0.03)


@pytest.mark.parametrize('covariance', ['diag', 'full'])
def test_gmm_em_rises_every_iteration_and_recovers(covariance):
  x, means, covs, weights = _synthetic_gmm(covariance)
  p0 = mixtures.gmm_init(jax.random.key(1), x, 3, 1e-3, covariance)
  step = functools.partial(mixtures.gmm_em_step, reg=1e-3, covariance=covariance)
  params, trace = mixtures.run_em(step, p0, jnp.asarray(x), 60)
  objective = np.asarray(trace['objective'], np.float64)
  assert np.all(np.diff(objective) >= -1e-5 * np.abs(objective[1:])), np.diff(objective).min()
  assert objective[-1] > objective[0] + 0.1
  order = _match(means, np.asarray(params['means']))
  np.testing.assert_allclose(np.asarray(params['means'])[order], means, atol=0.1)
  np.testing.assert_allclose(np.asarray(params['covariances'])[order], covs, atol=0.15)
  np.testing.assert_allclose(np.exp(params['log_weights'])[order], weights, atol=0.02)


@pytest.mark.parametrize('covariance', ['diag', 'full'])
def test_gmm_em_matches_sklearn_from_the_same_init(covariance):
  """scikit-learn's GaussianMixture, started from our initial parameters, as an independent
  EM: the same means, covariances and weights after 15 iterations (reg tiny, so the two
  regularizations, ours S_k + reg N/(K N_k) and sklearn's S_k + reg, agree)."""
  x, *_ = _synthetic_gmm(covariance, n=2000, seed=3)
  reg = 1e-6
  p0 = jax.device_get(mixtures.gmm_init(jax.random.key(2), x, 3, reg, covariance))
  step = functools.partial(mixtures.gmm_em_step, reg=reg, covariance=covariance)
  params, trace = mixtures.run_em(step, p0, jnp.asarray(x), 15)
  cov0 = np.asarray(p0['covariances'], np.float64)
  precisions = 1.0 / cov0 if covariance == 'diag' else np.linalg.inv(cov0)
  weights0 = np.exp(np.asarray(p0['log_weights'], np.float64))
  sk = GaussianMixture(3, covariance_type=covariance, max_iter=15, tol=0.0, reg_covar=reg,
                       weights_init=weights0 / weights0.sum(),
                       means_init=np.asarray(p0['means'], np.float64),
                       precisions_init=precisions)
  with warnings.catch_warnings():  # "did not converge": tol=0 runs all 15 iterations
    warnings.simplefilter('ignore')
    sk.fit(x)
  assert sk.n_iter_ == 15
  np.testing.assert_allclose(np.asarray(params['means']), sk.means_, atol=1e-3)
  np.testing.assert_allclose(np.asarray(params['covariances']), sk.covariances_, atol=1e-3)
  np.testing.assert_allclose(np.exp(params['log_weights']), sk.weights_, atol=1e-4)
  # sklearn's lower_bound_ is the mean log-likelihood of its last E-step: our last trace entry
  assert float(trace['log_likelihood'][-1]) == pytest.approx(sk.lower_bound_, abs=1e-3)


def test_gmm_m_step_regularization_by_hand():
  """One component, responsibilities 1: Sigma = the scatter + reg N / (K N_k) = + reg."""
  x = np.array([[0.0, 1.0], [2.0, 3.0]], np.float32)
  r = np.ones((2, 1), np.float32)
  out = mixtures.gmm_m_step(r, x, 0.5, 'full')
  np.testing.assert_allclose(out['means'], [[1.0, 2.0]])
  np.testing.assert_allclose(out['covariances'][0], [[1.5, 1.0], [1.0, 1.5]])
  out = mixtures.gmm_m_step(r, x, 0.5, 'diag')
  np.testing.assert_allclose(out['covariances'][0], [1.5, 1.5])


def test_mixture_samples_follow_the_weights():
  params = {'log_weights': jnp.log(jnp.array([0.25, 0.75])),
            'means': jnp.array([[-10.0], [10.0]]), 'covariances': jnp.ones((2, 1))}
  x = mixtures.gmm_sample(jax.random.key(0), params, 8000, 'diag')
  assert float(jnp.mean(x > 0)) == pytest.approx(0.75, abs=0.02)
  bern = {'log_weights': jnp.log(jnp.array([0.25, 0.75])),
          'probs': jnp.array([[1.0, 0.0], [0.0, 1.0]])}
  b = mixtures.bernoulli_mixture_sample(jax.random.key(1), bern, 8000)
  assert float(jnp.mean(b[:, 1])) == pytest.approx(0.75, abs=0.02)
  assert bool(jnp.all(b.sum(1) == 1))
