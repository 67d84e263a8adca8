"""Bayes nets (directed graphical models): P(X_1..X_T) = prod_t P(X_t | parents(X_t)).

Each variable has a finite domain and a conditional probability table (CPT) with one axis per
parent (in the order of its parents) and the variable's own values last, so every row
cpt[parent values] sums to one. A net checks that its graph is acyclic and its CPTs are
distributions; it converts to a factor graph (one factor per CPT) for inference, samples by
ancestral sampling, scores complete data, and is learned from complete data by maximum
likelihood (counts, with Laplace smoothing `alpha`: (count + alpha) / (row total + K alpha)).

Data are integer arrays [N, T] with columns in the order of `net.variables`.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from genvision_jax.pgm import factors as F
from genvision_jax.pgm.factors import ModelError


def topological_order(parents: Mapping[str, Sequence[str]]) -> list[str]:
  """Variables so that parents come first; a ModelError naming a cycle if there is one."""
  order, state = [], {}

  def visit(v, path):
    if state.get(v) == 'done':
      return
    if state.get(v) == 'active':
      cycle = path[path.index(v):][::-1]   # walked child -> parent; shown as edges
      raise ModelError(f'a Bayes net must be acyclic; it has the cycle {" -> ".join(cycle)}')
    state[v] = 'active'
    for p in parents[v]:
      visit(p, path + [p])
    state[v] = 'done'
    order.append(v)

  for v in parents:
    visit(v, [v])
  return order


def _check_data(data, domains: Mapping[str, int]) -> np.ndarray:
  variables = tuple(domains)
  x = np.asarray(data)
  if x.ndim != 2 or x.shape[1] != len(variables):
    raise ModelError(f'data must be an integer array [N, {len(variables)}] with columns '
                     f'{variables} (got shape {x.shape})')
  if x.size and not np.all(np.equal(np.mod(x, 1), 0)):
    raise ModelError('data must hold integer values (the index of each value in its domain)')
  for j, v in enumerate(variables):
    if x.size and (x[:, j].min() < 0 or x[:, j].max() >= domains[v]):
      raise ModelError(f'column {v} has values outside 0..{domains[v] - 1}')
  return x.astype(np.int64)


class BayesNet:
  """Variables (name -> domain size), their parents and CPTs (see the module docstring)."""

  def __init__(self, domains: Mapping[str, int], parents: Mapping[str, Sequence[str]],
               cpts: Mapping[str, object], atol: float = 1e-6):
    self.domains = {v: int(k) for v, k in domains.items()}
    for v, k in domains.items():
      if int(k) != k or k < 1:
        raise ModelError(f'variable {v}: its domain size must be an integer >= 1 (got {k!r})')
    self.parents = {v: tuple(parents.get(v, ())) for v in self.domains}
    extra = set(parents) - set(self.domains)
    if extra:
      raise ModelError(f'parents given for unknown variable(s) {sorted(extra)}')
    for v, ps in self.parents.items():
      unknown = [p for p in ps if p not in self.domains]
      if unknown:
        raise ModelError(f'{v}: unknown parent(s) {unknown}; the net has {list(self.domains)}')
      if v in ps:
        raise ModelError(f'a Bayes net must be acyclic; {v} is its own parent')
    self.order = topological_order(self.parents)
    missing = [v for v in self.domains if v not in cpts]
    if missing:
      raise ModelError(f'no CPT for {missing}')
    extra = set(cpts) - set(self.domains)
    if extra:
      raise ModelError(f'CPTs given for unknown variable(s) {sorted(extra)}')
    self.cpts = {}
    for v in self.domains:
      t = np.asarray(cpts[v], dtype=np.float64)
      want = tuple(self.domains[p] for p in self.parents[v]) + (self.domains[v],)
      if t.shape != want:
        raise ModelError(f'CPT of {v}: shape {t.shape}, but parents {self.parents[v]} and '
                         f'{v} itself need {want} (parents\' axes first, {v}\'s values last)')
      if np.isnan(t).any() or (t < 0).any():
        raise ModelError(f'CPT of {v}: probabilities must be >= 0 and not NaN')
      sums = t.sum(axis=-1)
      if np.abs(sums - 1).max() > atol:
        bad = np.unravel_index(np.abs(sums - 1).argmax(), sums.shape)
        given = ', '.join(f'{p}={x}' for p, x in zip(self.parents[v], bad)) or 'no parents'
        raise ModelError(f'CPT of {v}: the row for {given} sums to {sums[bad]:.6g}, not 1; '
                         f'each row P({v} | parents) must be a distribution')
      self.cpts[v] = t
    self.variables = tuple(self.domains)

  def __repr__(self) -> str:
    edges = ', '.join(f'P({v}|{",".join(ps)})' if ps else f'P({v})'
                      for v, ps in self.parents.items())
    return f'BayesNet({edges})'

  def to_factor_graph(self) -> F.FactorGraph:
    """One factor per CPT, over (parents..., variable); its Z is 1."""
    return F.FactorGraph(self.domains, [
        F.factor(self.parents[v] + (v,), self.cpts[v], name=f'P({v}|{",".join(self.parents[v])})')
        for v in self.variables])

  def _column(self, v):
    return self.variables.index(v)

  def sample(self, rng, num: int) -> jax.Array:
    """num complete samples [num, T] by ancestral sampling (parents before children)."""
    cols = {}
    for i, v in enumerate(self.order):
      log_cpt = jnp.log(jnp.asarray(self.cpts[v], jnp.float32))
      rows = log_cpt[tuple(cols[p] for p in self.parents[v])] if self.parents[v] else (
          jnp.broadcast_to(log_cpt, (num, self.domains[v])))
      cols[v] = jax.random.categorical(jax.random.fold_in(rng, i), rows)
    return jnp.stack([cols[v] for v in self.variables], axis=1)

  def log_likelihood(self, data) -> np.ndarray:
    """log P(x) of each complete row [N]: sum_t log P(x_t | x_parents(t))."""
    x = _check_data(data, self.domains)
    total = np.zeros(len(x))
    for v in self.variables:
      idx = tuple(x[:, self._column(p)] for p in self.parents[v]) + (x[:, self._column(v)],)
      with np.errstate(divide='ignore'):
        total += np.log(self.cpts[v][idx])
    return total

  @classmethod
  def fit(cls, data, domains: Mapping[str, int], parents: Mapping[str, Sequence[str]],
          alpha: float = 0.0) -> BayesNet:
    """The maximum-likelihood CPTs of complete data (counts / row totals), each count plus
    `alpha` (Laplace smoothing). A parent configuration never seen gets the uniform row."""
    if alpha < 0:
      raise ModelError(f'alpha must be >= 0 (got {alpha})')
    variables = tuple(domains)
    x = _check_data(data, domains)
    cpts = {}
    for v in variables:
      ps = tuple(parents.get(v, ()))
      shape = tuple(domains[p] for p in ps) + (domains[v],)
      counts = np.zeros(shape)
      np.add.at(counts, tuple(x[:, variables.index(p)] for p in ps) + (x[:, variables.index(v)],),
                1.0)
      counts += alpha
      totals = counts.sum(axis=-1, keepdims=True)
      cpts[v] = np.where(totals > 0, counts / np.where(totals > 0, totals, 1.0),
                         1.0 / domains[v])
    return cls(domains, parents, cpts)
