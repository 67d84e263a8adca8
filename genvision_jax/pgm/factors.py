"""Discrete factor graphs, p(x) = (1/Z) prod_a psi_a(x_a), kept in log space.

A `Factor` is a table over its variables' axes (one axis per variable, in order, each as long as
the variable's domain); `log_table` holds log psi, so a zero potential is -inf and products of
many factors never underflow. A `FactorGraph` is the variables' domain sizes plus a list of
factors; it checks that every table matches its variables' domains. Bayes nets, Markov chains and
grid MRFs convert to factor graphs, and every inference routine of `inference.py` takes one.

The factor algebra here is what inference.py builds on: aligning a table to a list of axes,
the product of factors (log tables add, broadcast over the union of the variables),
conditioning on evidence and normalizing; summing and maximizing out happen inside
inference.py's compiled elimination and message kernels.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Iterable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np


class ModelError(ValueError):
  """An invalid graphical model: a table whose shape does not match its variables' domains, a
  negative or NaN potential, a Bayes net with a cycle, a CPT row that does not sum to one."""


@dataclasses.dataclass(frozen=True)
class Factor:
  """log psi(x_vars) as a table with one axis per variable (in the order of `variables`)."""
  variables: tuple[str, ...]
  log_table: jax.Array
  name: str = ''

  def __repr__(self) -> str:
    return f'Factor({self.name or "psi"}{self.variables}, shape={tuple(self.log_table.shape)})'


def _name(name: str, variables) -> str:
  return name or f'psi({", ".join(variables)})'


def _table(variables, table, name):
  variables = tuple(variables)
  t = np.asarray(table, dtype=np.float64)
  label = _name(name, variables)
  if t.ndim != len(variables):
    raise ModelError(f'factor {label}: its table has {t.ndim} axes but it has '
                     f'{len(variables)} variables {variables}; give one axis per variable')
  return variables, t, label


def factor(variables: Sequence[str], table, name: str = '') -> Factor:
  """A factor from its potentials psi >= 0 (not logs); a negative or NaN entry is a ModelError."""
  variables, t, label = _table(variables, table, name)
  if np.isnan(t).any() or (t < 0).any():
    bad = np.argwhere(np.isnan(t) | (t < 0))[0]
    raise ModelError(f'factor {label}: potentials must be finite and >= 0 (entry {tuple(bad)} is '
                     f'{t[tuple(bad)]}); use log_factor for log-potentials')
  if np.isinf(t).any():
    raise ModelError(f'factor {label}: potentials must be finite (an entry is inf)')
  with np.errstate(divide='ignore'):
    log_t = np.log(t)
  return Factor(variables, jnp.asarray(log_t, dtype=float_dtype()), name)


def log_factor(variables: Sequence[str], log_table, name: str = '') -> Factor:
  """A factor from its log-potentials (-inf allowed for a zero potential; NaN and +inf are not)."""
  variables, t, label = _table(variables, log_table, name)
  if np.isnan(t).any() or (t == np.inf).any():
    raise ModelError(f'factor {label}: log-potentials must be < +inf and not NaN')
  return Factor(variables, jnp.asarray(t, dtype=float_dtype()), name)


def float_dtype():
  return jnp.float64 if jax.config.jax_enable_x64 else jnp.float32


class FactorGraph:
  """Variables with finite domains (name -> number of values) and the factors over them."""

  def __init__(self, domains: Mapping[str, int], factors: Iterable[Factor]):
    self.domains = {}
    for v, k in domains.items():
      if not isinstance(v, str) or not v:
        raise ModelError(f'variable names must be non-empty strings (got {v!r})')
      if int(k) != k or k < 1:
        raise ModelError(f'variable {v}: its domain size must be an integer >= 1 (got {k!r})')
      self.domains[v] = int(k)
    self.factors = list(factors)
    for f in self.factors:
      if not isinstance(f, Factor):
        raise ModelError(f'factors must be Factor objects (from factor() or log_factor()), '
                         f'got {type(f).__name__}')
      if len(set(f.variables)) != len(f.variables):
        raise ModelError(f'factor {_name(f.name, f.variables)} names a variable twice')
      unknown = [v for v in f.variables if v not in self.domains]
      if unknown:
        raise ModelError(f'factor {_name(f.name, f.variables)}: unknown variable(s) {unknown}; '
                         f'the graph has {list(self.domains)}')
      want = tuple(self.domains[v] for v in f.variables)
      if tuple(f.log_table.shape) != want:
        raise ModelError(f'factor {_name(f.name, f.variables)}: table shape '
                         f'{tuple(f.log_table.shape)} does not match the domains of '
                         f'{f.variables}, which need {want}')
    self.variables = tuple(self.domains)

  def __repr__(self) -> str:
    return (f'FactorGraph({len(self.variables)} variables, {len(self.factors)} factors, '
            f'{"tree" if self.is_tree() else "with cycles"})')

  def num_assignments(self) -> int:
    return math.prod(self.domains.values())

  def log_score(self, assignment: Mapping[str, int]) -> float:
    """log prod_a psi_a(x_a) of one full assignment (the unnormalized log-probability)."""
    self.check_assignment(assignment, full=True)
    return float(sum(f.log_table[tuple(int(assignment[v]) for v in f.variables)]
                     for f in self.factors))

  def check_assignment(self, assignment: Mapping[str, int], full: bool = False) -> None:
    unknown = [v for v in assignment if v not in self.domains]
    if unknown:
      raise ModelError(f'unknown variable(s) {unknown}; the graph has {list(self.domains)}')
    for v, x in assignment.items():
      if int(x) != x or not 0 <= x < self.domains[v]:
        raise ModelError(f'{v} = {x!r} is outside its domain 0..{self.domains[v] - 1}')
    if full:
      missing = [v for v in self.variables if v not in assignment]
      if missing:
        raise ModelError(f'the assignment leaves {missing} unset')

  def is_tree(self) -> bool:
    """True if the bipartite variable-factor graph has no cycle (a forest): BP is exact on it."""
    parent = {}

    def find(a):
      while parent.setdefault(a, a) != a:
        parent[a] = parent[parent[a]]
        a = parent[a]
      return a

    for i, f in enumerate(self.factors):
      for v in f.variables:
        a, b = find(('f', i)), find(('v', v))
        if a == b:
          return False
        parent[a] = b
    return True

  def condition(self, evidence: Mapping[str, int]) -> FactorGraph:
    """The graph over the unobserved variables: every factor sliced at the evidence values.
    Its Z is sum over x with x_E = e of prod psi, i.e. Z * p(e)."""
    self.check_assignment(evidence)
    domains = {v: k for v, k in self.domains.items() if v not in evidence}
    factors = [reduce(f, evidence) for f in self.factors]
    return FactorGraph(domains, factors)

  def interaction_graph(self) -> dict[str, set[str]]:
    """Variable -> the variables it shares a factor with (the moral/Markov graph)."""
    adj = {v: set() for v in self.variables}
    for f in self.factors:
      for a, b in itertools.permutations(f.variables, 2):
        adj[a].add(b)
    return adj


# ---------------------------------------------------------------------------- factor algebra

def align_axes(table: jax.Array, positions: Sequence[int], ndim: int) -> jax.Array:
  """`table` (axis j going to axis positions[j] of the result) transposed and expanded to
  `ndim` axes, length 1 where it has none; the form jitted kernels use, as it names no
  variable."""
  order = sorted(range(len(positions)), key=lambda j: positions[j])
  shape = [1] * ndim
  for j in order:
    shape[positions[j]] = table.shape[j]
  return jnp.transpose(table, order).reshape(shape)


def aligned(f: Factor, variables: Sequence[str]) -> jax.Array:
  """f's log table transposed and expanded to broadcast against the axes `variables`
  (which must include all of f's variables)."""
  return align_axes(f.log_table, [list(variables).index(v) for v in f.variables],
                    len(variables))


def product(factors: Sequence[Factor], name: str = '') -> Factor:
  """prod_a psi_a as one factor over the union of the variables (log tables add)."""
  variables = []
  for f in factors:
    variables += [v for v in f.variables if v not in variables]
  log_t = sum(aligned(f, variables) for f in factors)
  shape = [None] * len(variables)
  for f in factors:
    for v, k in zip(f.variables, f.log_table.shape):
      shape[variables.index(v)] = k
  return Factor(tuple(variables), jnp.broadcast_to(log_t, shape), name)


def reduce(f: Factor, evidence: Mapping[str, int]) -> Factor:
  """f sliced at the observed values of its variables that appear in `evidence`."""
  index = tuple(int(evidence[v]) if v in evidence else slice(None) for v in f.variables)
  keep = tuple(v for v in f.variables if v not in evidence)
  return Factor(keep, f.log_table[index], f.name)


def normalize(log_values: jax.Array, axis=None) -> jax.Array:
  """log values shifted so that they exponentiate to a distribution (over `axis`, or all)."""
  return log_values - jax.nn.logsumexp(log_values, axis=axis, keepdims=True)
