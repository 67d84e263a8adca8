"""Naive Bayes, the generative classifier: the Bayes net y -> x_1, ..., x_D,

  p(y, x) = p(y) prod_d p(x_d | y),   p(x_d = 1 | y = c) = theta_cd,

fitted by maximum likelihood of the joint (class frequencies and per-class pixel frequencies,
each with Laplace smoothing `alpha`), and used through Bayes' rule,
p(y | x) proportional to p(y) prod_d theta_cd^x_d (1 - theta_cd)^(1 - x_d). Its discriminative
twin is logistic regression, which fits p(y | x) of the same log-linear form by conditional
maximum likelihood (Ng & Jordan 2002: naive Bayes approaches its (higher) asymptotic error with
far fewer examples).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from genvision_jax.pgm import bayesnet
from genvision_jax.pgm.factors import ModelError


def fit(x, y, num_classes: int, alpha: float = 1.0) -> dict:
  """{'log_prior' [C], 'probs' [C, D]} from binary rows x [N, D] and labels y [N]:
  p(y = c) = (N_c + alpha) / (N + C alpha), theta_cd = (sum_{i: y_i = c} x_id + alpha) /
  (N_c + 2 alpha)."""
  x = jnp.asarray(x, jnp.float32)
  y = np.asarray(y)
  if x.ndim != 2 or y.shape != (x.shape[0],):
    raise ModelError(f'naive Bayes needs rows x [N, D] and labels y [N] (got {x.shape}, '
                     f'{y.shape})')
  if y.size and (y.min() < 0 or y.max() >= num_classes):
    raise ModelError(f'labels must be in 0..{num_classes - 1}')
  if alpha < 0:
    raise ModelError(f'alpha must be >= 0 (got {alpha})')
  onehot = jax.nn.one_hot(jnp.asarray(y), num_classes)            # [N, C]
  n_c = onehot.sum(0)
  on = onehot.T @ x                                                 # [C, D]
  prior = (n_c + alpha) / (x.shape[0] + num_classes * alpha)
  probs = (on + alpha) / (n_c[:, None] + 2 * alpha)
  return {'log_prior': jnp.log(prior), 'probs': probs}


def log_evidence(x, y, num_classes: int, alpha) -> jax.Array:
  """log p(x | y, alpha) of the training pixels with each theta_cd integrated out under a
  Beta(alpha, alpha) prior: sum_cd log B(k_cd + alpha, n_c - k_cd + alpha) - log B(alpha, alpha)
  (k_cd ones among the n_c examples of class c). The smoothed estimate (k + alpha) /
  (n + 2 alpha) of `fit` is the posterior mean under that prior."""
  from jax.scipy.special import betaln  # pylint: disable=g-import-not-at-top
  x = jnp.asarray(x, jnp.float32)
  onehot = jax.nn.one_hot(jnp.asarray(y), num_classes)
  n = onehot.sum(0)[:, None]
  k = onehot.T @ x
  a = jnp.asarray(alpha, jnp.float32)
  return jnp.sum(betaln(k + a, n - k + a) - betaln(a, a))


ALPHA_GRID = tuple(float(a) for a in np.logspace(-3, 1, 41))


def empirical_bayes_alpha(x, y, num_classes: int, grid=ALPHA_GRID) -> float:
  """The alpha of `grid` with the highest log_evidence of the training data (type-II maximum
  likelihood): the smoothing strength chosen from the training set alone."""
  values = jax.vmap(lambda a: log_evidence(x, y, num_classes, a))(jnp.asarray(grid))
  return float(grid[int(jnp.argmax(values))])


def log_joint(params: dict, x) -> jax.Array:
  """log p(y = c, x) for every row and class [N, C]."""
  x = jnp.asarray(x, jnp.float32)
  p = params['probs']
  on = jnp.where(p > 0, jnp.log(jnp.where(p > 0, p, 1.0)), -jnp.inf)
  off = jnp.where(p < 1, jnp.log1p(-jnp.where(p < 1, p, 0.0)), -jnp.inf)
  # x log p + (1 - x) log(1 - p), with 0 * -inf read as 0
  term = jnp.where(x[:, None, :] > 0, x[:, None, :] * on, 0.0) + jnp.where(
      x[:, None, :] < 1, (1 - x[:, None, :]) * off, 0.0)
  return params['log_prior'] + term.sum(-1)


def posterior(params: dict, x) -> jax.Array:
  """p(y | x) [N, C] by Bayes' rule."""
  return jax.nn.softmax(log_joint(params, x), axis=-1)


def predict(params: dict, x) -> jax.Array:
  return jnp.argmax(log_joint(params, x), axis=-1)


def as_bayes_net(params: dict, features=None) -> bayesnet.BayesNet:
  """The same model as a Bayes net y -> x_d over the chosen feature indices (for inference with
  the generic routines; few features, since every x_d becomes a variable)."""
  probs = np.asarray(params['probs'], np.float64)
  num_classes, dim = probs.shape
  features = range(dim) if features is None else features
  names = [f'x{d}' for d in features]
  prior = np.exp(np.asarray(params['log_prior'], np.float64))
  cpts = {'y': prior / prior.sum()}
  for d, n in zip(features, names):
    cpts[n] = np.stack([1 - probs[:, d], probs[:, d]], axis=-1)
  return bayesnet.BayesNet({'y': num_classes, **{n: 2 for n in names}},
                           {n: ['y'] for n in names}, cpts)
