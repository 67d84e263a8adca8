"""Mixtures of Bernoullis and Gaussian mixtures fitted by EM, in pure jax.

  p(x) = sum_k pi_k p_k(x),  p_k = a product of Bernoullis (probs [K, D]) or a Gaussian
  N(mu_k, Sigma_k) with Sigma_k diagonal (variances [K, D]) or full ([K, D, D]).

Parameters: {'log_weights': [K], 'probs': [K, D]} or {'log_weights', 'means': [K, D],
'covariances': [K, D] | [K, D, D]}.

An EM iteration (`bernoulli_mixture_em_step`, `gmm_em_step`) computes the responsibilities
r_ik = p(k | x_i) under the current parameters (E-step) and maximizes the expected complete
log-likelihood plus a log-prior (M-step). It returns the new parameters and, for the
parameters it was given, the mean log-likelihood per row and the mean objective
(log-likelihood + log-prior / N). EM never decreases the objective (nor, without a prior, the
log-likelihood); the priors keep the parameters inside the model:

  Bernoulli mixture: Laplace smoothing, a Beta(1 + alpha, 1 + alpha) prior on each p_kd:
    p_kd = (sum_i r_ik x_id + alpha) / (N_k + 2 alpha),  log-prior sum_kd alpha log p_kd(1 - p_kd).
  Gaussian mixture: a penalty -lambda / 2 tr(Sigma_k^-1) per component with lambda = reg N / K,
    whose maximizer is Sigma_k = S_k + (reg N / (K N_k)) I (S_k the responsibility-weighted
    scatter): about `reg` added to the diagonal (sklearn's reg_covar adds exactly `reg`, which
    is not the maximizer of any fixed objective, so its EM is not guaranteed monotone).

`run_em(step, params, x, num_iters)` runs iterations in one `lax.scan` under jit and returns
the trace of log-likelihoods and objectives.
"""

import functools
import math

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp

from genvision_jax.pgm import simple

COVARIANCES = ('diag', 'full')
_MIN_MASS = 1e-10  # floor of a component's responsibility mass N_k (an empty component)


def _responsibilities(log_joint):
  """(r [N, K], log p(x) [N]) from log pi_k + log p_k(x_i) [N, K]."""
  log_px = logsumexp(log_joint, axis=1)
  return jnp.exp(log_joint - log_px[:, None]), log_px


def _log_weights(mass):
  """log pi_k = log(N_k / N), an empty component floored at _MIN_MASS."""
  mass = jnp.maximum(mass, _MIN_MASS)
  return jnp.log(mass) - jnp.log(jnp.sum(mass))


# -- mixture of Bernoullis ---------------------------------------------------------------------

def bernoulli_mixture_log_joint(params, x):
  """log pi_k + log p_k(x_i), [N, K]."""
  x = jnp.asarray(x, jnp.float32)
  return params['log_weights'] + jax.vmap(simple.log_bernoulli, (0, None), 1)(params['probs'], x)


def bernoulli_mixture_log_prob(params, x):
  """log p(x_i) per row [N]."""
  return logsumexp(bernoulli_mixture_log_joint(params, x), axis=1)


def bernoulli_mixture_log_prior(params, alpha: float):
  """sum_kd alpha (log p_kd + log(1 - p_kd)): the Laplace-smoothing prior (up to a constant)."""
  p = params['probs']
  return alpha * jnp.sum(jnp.log(p) + jnp.log1p(-p)) if alpha else jnp.float32(0.0)


def bernoulli_mixture_init(rng, x, num_components: int):
  """Uniform weights; component k's probabilities halfway between the mean of x and a random
  row of x (distinct rows), so they start apart and away from 0 and 1."""
  x = jnp.asarray(x, jnp.float32)
  rows = jax.random.choice(rng, x.shape[0], (num_components,), replace=False)
  probs = 0.5 * jnp.mean(x, axis=0) + 0.5 * x[rows]
  probs = jnp.clip(probs, 0.05, 0.95)
  return {'log_weights': jnp.full((num_components,), -math.log(num_components)),
          'probs': probs}


def bernoulli_mixture_em_step(params, x, alpha: float = 1.0):
  """One EM iteration on rows x [N, D] in {0, 1}: (new params, {'log_likelihood',
  'objective'} of `params`, means per row)."""
  x = jnp.asarray(x, jnp.float32)
  r, log_px = _responsibilities(bernoulli_mixture_log_joint(params, x))
  mass = jnp.sum(r, axis=0)
  probs = (r.T @ x + alpha) / (mass[:, None] + 2.0 * alpha)
  log_lik = jnp.mean(log_px)
  stats = {'log_likelihood': log_lik,
           'objective': log_lik + bernoulli_mixture_log_prior(params, alpha) / x.shape[0]}
  return {'log_weights': _log_weights(mass), 'probs': probs}, stats


def bernoulli_mixture_sample(rng, params, num: int):
  """num rows of bits: k ~ pi, then x ~ p_k."""
  k_rng, x_rng = jax.random.split(rng)
  k = jax.random.categorical(k_rng, params['log_weights'], shape=(num,))
  probs = params['probs'][k]
  return (jax.random.uniform(x_rng, probs.shape) < probs).astype(jnp.float32)


# -- Gaussian mixture --------------------------------------------------------------------------

def _check_covariance(covariance: str):
  if covariance not in COVARIANCES:
    raise ValueError(f'covariance must be one of {COVARIANCES} (got {covariance!r})')


def gaussian_log_density(mean, cov, x, covariance: str):
  """log N(x_i; mean, cov) per row [N]; cov is variances [D] ('diag') or a matrix [D, D]."""
  d = x.shape[-1]
  diff = x - mean
  if covariance == 'diag':
    maha = jnp.sum(diff * diff / cov, axis=-1)
    log_det = jnp.sum(jnp.log(cov))
  else:
    chol = jnp.linalg.cholesky(cov)
    z = jax.scipy.linalg.solve_triangular(chol, diff.T, lower=True)
    maha = jnp.sum(z * z, axis=0)
    log_det = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol)))
  return -0.5 * (d * math.log(2.0 * math.pi) + log_det + maha)


def gmm_log_joint(params, x, covariance: str):
  """log pi_k + log N(x_i; mu_k, Sigma_k), [N, K]."""
  _check_covariance(covariance)
  x = jnp.asarray(x, jnp.float32)
  one = functools.partial(gaussian_log_density, x=x, covariance=covariance)
  if covariance == 'diag':
    dens = jax.vmap(one)(params['means'], params['covariances'])
  else:  # one Cholesky at a time: XLA:CPU hung (futex wait) on the batched one at D = 784
    dens = jax.lax.map(lambda mc: one(*mc), (params['means'], params['covariances']))
  return params['log_weights'] + dens.T


def gmm_log_prob(params, x, covariance: str):
  """log p(x_i) per row [N] (a density: nats per row, not a probability)."""
  return logsumexp(gmm_log_joint(params, x, covariance), axis=1)


def gmm_log_prior(params, reg: float, num_rows: int, covariance: str):
  """-lambda / 2 sum_k tr(Sigma_k^-1) with lambda = reg N / K (see the module docstring)."""
  cov = params['covariances']
  lam = reg * num_rows / cov.shape[0]
  if covariance == 'diag':
    trace = jnp.sum(1.0 / cov)
  else:
    trace = jnp.sum(jax.lax.map(lambda c: jnp.trace(jnp.linalg.inv(c)), cov))
  return -0.5 * lam * trace


def _scatter(r_k, mean_k, mass_k, x, covariance: str):
  diff = x - mean_k
  if covariance == 'diag':
    return (r_k @ (diff * diff)) / mass_k
  s = (diff * r_k[:, None]).T @ diff / mass_k
  return 0.5 * (s + s.T)


def gmm_m_step(r, x, reg: float, covariance: str):
  """The M-step from responsibilities r [N, K]: pi_k = N_k / N, mu_k the weighted means,
  Sigma_k = S_k + (reg N / (K N_k)) I."""
  _check_covariance(covariance)
  x = jnp.asarray(x, jnp.float32)
  n, k = r.shape
  mass = jnp.maximum(jnp.sum(r, axis=0), _MIN_MASS)
  means = (r.T @ x) / mass[:, None]
  scatter = jax.vmap(functools.partial(_scatter, x=x, covariance=covariance),
                     (1, 0, 0))(r, means, mass)
  ridge = reg * n / (k * mass)  # [K]
  if covariance == 'diag':
    cov = scatter + ridge[:, None]
  else:
    cov = scatter + ridge[:, None, None] * jnp.eye(x.shape[1], dtype=x.dtype)
  return {'log_weights': _log_weights(mass), 'means': means, 'covariances': cov}


def gmm_em_step(params, x, reg: float, covariance: str):
  """One EM iteration on rows x [N, D]: (new params, {'log_likelihood', 'objective'} of
  `params`, means per row)."""
  x = jnp.asarray(x, jnp.float32)
  r, log_px = _responsibilities(gmm_log_joint(params, x, covariance))
  log_lik = jnp.mean(log_px)
  stats = {'log_likelihood': log_lik, 'objective': log_lik + gmm_log_prior(
      params, reg, x.shape[0], covariance) / x.shape[0]}
  return gmm_m_step(r, x, reg, covariance), stats


def gmm_init(rng, x, num_components: int, reg: float, covariance: str):
  """Means at distinct random rows of x, uniform weights, every covariance the data's
  (diagonal or full) plus `reg` on the diagonal (sklearn's init_params='random_from_data'
  for the means)."""
  _check_covariance(covariance)
  x = jnp.asarray(x, jnp.float32)
  n, d = x.shape
  rows = jax.random.choice(rng, n, (num_components,), replace=False)
  ones = jnp.ones((n, 1), x.dtype)
  cov = _scatter(ones[:, 0], jnp.mean(x, axis=0), float(n), x, covariance)
  cov = cov + reg * (1.0 if covariance == 'diag' else jnp.eye(d, dtype=x.dtype))
  return {'log_weights': jnp.full((num_components,), -math.log(num_components)),
          'means': x[rows], 'covariances': jnp.broadcast_to(cov, (num_components, *cov.shape))}


def gmm_sample(rng, params, num: int, covariance: str):
  """num rows: k ~ pi, then x ~ N(mu_k, Sigma_k)."""
  k_rng, x_rng = jax.random.split(rng)
  k = jax.random.categorical(k_rng, params['log_weights'], shape=(num,))
  eps = jax.random.normal(x_rng, (num, params['means'].shape[1]))
  cov = params['covariances'][k]
  if covariance == 'diag':
    return params['means'][k] + jnp.sqrt(cov) * eps
  chol = jnp.linalg.cholesky(cov)
  return params['means'][k] + jnp.einsum('nij,nj->ni', chol, eps)


# -- the EM loop -------------------------------------------------------------------------------

@functools.partial(jax.jit, static_argnums=(0, 3))
def run_em(em_step, params, x, num_iters: int):
  """`num_iters` EM iterations in one lax.scan: (params, trace) with trace[name][t] the
  statistic `name` ('log_likelihood', 'objective') of the parameters entering iteration t.
  em_step(params, x) -> (params, stats), e.g. functools.partial(gmm_em_step, reg=1e-6,
  covariance='full') (hashable: it is a static argument)."""
  def body(p, _):
    return em_step(p, x)
  return jax.lax.scan(body, params, None, length=num_iters)
