"""First-order Markov chains over K states: p(x_1..x_T) = p(x_1) prod_t p(x_t | x_{t-1}).

`initial` is p(x_1) [K]; `transition` is P [K, K] with P[i, j] = p(x_t = j | x_{t-1} = i), rows
summing to one. Sampling runs in lax.scan; the maximum-likelihood transition matrix is the
transition counts over the row totals (plus `alpha` per cell: Laplace smoothing); the
stationary distribution solves pi P = pi, sum pi = 1. `to_factor_graph` writes the chain as the
directed model it is (one factor per conditional), for inference over long chains.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from genvision_jax.pgm import factors as F
from genvision_jax.pgm.factors import ModelError


def check(initial=None, transition=None, atol: float = 1e-6) -> None:
  """ModelError unless `initial` is a distribution and `transition` a square row-stochastic
  matrix of the same size."""
  if transition is not None:
    p = np.asarray(transition, np.float64)
    if p.ndim != 2 or p.shape[0] != p.shape[1]:
      raise ModelError(f'a transition matrix must be square [K, K] (got shape {p.shape})')
    if np.isnan(p).any() or (p < 0).any():
      raise ModelError('transition probabilities must be >= 0 and not NaN')
    sums = p.sum(axis=1)
    if np.abs(sums - 1).max() > atol:
      i = int(np.abs(sums - 1).argmax())
      raise ModelError(f'row {i} of the transition matrix sums to {sums[i]:.6g}, not 1: row i '
                       'must be p(x_t | x_{t-1} = i)')
  if initial is not None:
    q = np.asarray(initial, np.float64)
    if q.ndim != 1 or (transition is not None and q.shape[0] != np.shape(transition)[0]):
      raise ModelError(f'the initial distribution must be a vector [K] (got shape {q.shape})')
    if np.isnan(q).any() or (q < 0).any() or abs(q.sum() - 1) > atol:
      raise ModelError(f'the initial distribution must be >= 0 and sum to 1 (sums to '
                       f'{q.sum():.6g})')


def stationary(transition) -> np.ndarray:
  """pi with pi P = pi and sum pi = 1 (unique for an irreducible chain; a reducible chain, with
  several, is a ModelError)."""
  check(transition=transition)
  p = np.asarray(transition, np.float64)
  k = p.shape[0]
  a = np.vstack([p.T - np.eye(k), np.ones((1, k))])
  b = np.zeros(k + 1)
  b[-1] = 1.0
  if np.linalg.matrix_rank(a) < k:
    raise ModelError('the chain has more than one stationary distribution (it is reducible: '
                     'some states never reach others)')
  pi, *_ = np.linalg.lstsq(a, b, rcond=None)
  return np.clip(pi, 0.0, None) / np.clip(pi, 0.0, None).sum()


def sample(rng, initial, transition, length: int, num: int) -> jax.Array:
  """num sequences [num, length] of states, x_1 ~ initial, x_t ~ P[x_{t-1}]."""
  check(initial, transition)
  log_p = jnp.log(jnp.asarray(transition, jnp.float32))
  x1 = jax.random.categorical(jax.random.fold_in(rng, 0), jnp.log(jnp.asarray(initial,
                                                                            jnp.float32)),
                              shape=(num,))

  def step(x, t):
    nxt = jax.random.categorical(jax.random.fold_in(rng, t), log_p[x])
    return nxt, nxt

  _, rest = jax.lax.scan(step, x1, jnp.arange(1, length))
  return jnp.concatenate([x1[:, None], rest.T], axis=1)


def _check_sequences(sequences, num_states: int) -> np.ndarray:
  x = np.asarray(sequences)
  if x.ndim != 2 or x.shape[1] < 1:
    raise ModelError(f'sequences must be an integer array [N, T] (got shape {x.shape})')
  if x.size and (x.min() < 0 or x.max() >= num_states or
                 not np.all(np.equal(np.mod(x, 1), 0))):
    raise ModelError(f'sequence values must be integers in 0..{num_states - 1}')
  return x.astype(np.int64)


def fit(sequences, num_states: int, alpha: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
  """(initial, transition) by maximum likelihood: first-state frequencies and transition counts
  over row totals, each count plus `alpha`; a state never left gets the uniform row."""
  if alpha < 0:
    raise ModelError(f'alpha must be >= 0 (got {alpha})')
  x = _check_sequences(sequences, num_states)
  first = np.bincount(x[:, 0], minlength=num_states) + alpha
  counts = np.zeros((num_states, num_states))
  np.add.at(counts, (x[:, :-1].ravel(), x[:, 1:].ravel()), 1.0)
  counts += alpha
  totals = counts.sum(axis=1, keepdims=True)
  transition = np.where(totals > 0, counts / np.where(totals > 0, totals, 1), 1.0 / num_states)
  return first / first.sum(), transition


def log_likelihood(sequences, initial, transition) -> np.ndarray:
  """log p(x_1..x_T) of each sequence [N]."""
  check(initial, transition)
  x = _check_sequences(sequences, len(initial))
  with np.errstate(divide='ignore'):
    log_q, log_p = np.log(np.asarray(initial, np.float64)), np.log(np.asarray(transition,
                                                                             np.float64))
  return log_q[x[:, 0]] + log_p[x[:, :-1], x[:, 1:]].sum(axis=1)


def to_factor_graph(initial, transition, length: int, prefix: str = 'x') -> F.FactorGraph:
  """The chain x_1 -> ... -> x_length as a factor graph (factors p(x_1), p(x_t | x_{t-1}))."""
  check(initial, transition)
  k = len(initial)
  names = [f'{prefix}{t}' for t in range(1, length + 1)]
  fs = [F.factor((names[0],), initial, name=f'p({names[0]})')]
  fs += [F.factor((names[t - 1], names[t]), transition, name=f'p({names[t]}|{names[t - 1]})')
         for t in range(1, length)]
  return F.FactorGraph({n: k for n in names}, fs)
