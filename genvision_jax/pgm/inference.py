"""The three inference tasks on a factor graph — the partition function Z, marginals p(x_i), the
MAP assignment argmax_x p(x) — by four methods behind one API:

  enumeration   the full joint table (any model with few assignments; the reference)
  elimination   variable elimination in a min-fill or min-degree order: exact Z, marginals,
                and MAP by max-product elimination with back-tracking
  bp            belief propagation, sum-product (marginals, Bethe log Z) or max-product (MAP):
                two passes on a tree (exact), flooding with damping on a graph with cycles
                (approximate; `converged` and `iterations` say how it went)
  gibbs         Gibbs sampling, jit-compiled sweeps in lax.scan over several chains: marginals
                with Monte-Carlo standard errors, and the chains' final states

    result = infer(fg, 'elimination', evidence={'x1': 0})
    result.log_z, result.marginals['x2'], result.assignment

Everything is computed in log space, so a chain of 1,000 variables has a finite log Z. With
evidence, the graph is conditioned first: log_z is then log sum_{x: x_E = e} prod psi (so
p(e) = exp(log_z(e) - log_z)), marginals are p(x_i | e) and the MAP is argmax_x p(x | e).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from genvision_jax.pgm import factors as F
from genvision_jax.pgm.factors import Factor, FactorGraph, ModelError

METHODS = ('enumeration', 'elimination', 'bp', 'gibbs')
MAX_ENUMERATION = 1 << 24   # assignments of the joint table


@dataclasses.dataclass
class Result:
  """What an inference method found; fields it does not compute are None."""
  method: str
  log_z: float | None = None
  marginals: dict[str, np.ndarray] | None = None
  assignment: dict[str, int] | None = None
  log_score: float | None = None      # log prod psi of `assignment` (unnormalized)
  converged: bool = True
  iterations: int = 0
  stderr: dict[str, np.ndarray] | None = None   # Gibbs: Monte-Carlo standard error of marginals
  samples: np.ndarray | None = None   # Gibbs: final states [chains, variables]


def infer(fg: FactorGraph, method: str = 'elimination', evidence: Mapping[str, int] | None = None,
          tasks: Sequence[str] = ('log_z', 'marginals', 'map'), **options) -> Result:
  """Runs `method` for `tasks` (any of 'log_z', 'marginals', 'map') on fg given `evidence`.

  Options: elimination: heuristic='min_fill'|'min_degree'; bp: max_iters=200, damping=0.0 on
  trees / 0.5 on loopy graphs, tol=1e-8, schedule='auto'|'tree'|'flooding'; gibbs: rng=0,
  num_sweeps=2000, burn_in=200, num_chains=4, init=None."""
  if method not in METHODS:
    raise ModelError(f'unknown inference method {method!r}; choose one of {METHODS}')
  unknown = set(tasks) - {'log_z', 'marginals', 'map'}
  if unknown:
    raise ModelError(f'unknown inference task(s) {sorted(unknown)}; choose from log_z, '
                     'marginals, map')
  evidence = dict(evidence or {})
  cond = fg.condition(evidence) if evidence else fg
  run = {'enumeration': _enumeration, 'elimination': _elimination, 'bp': _bp,
         'gibbs': _gibbs}[method]
  result = run(cond, tuple(tasks), **options)
  if evidence:
    if result.marginals is not None:
      for v, x in evidence.items():
        result.marginals[v] = np.eye(fg.domains[v])[int(x)]
      result.marginals = {v: result.marginals[v] for v in fg.variables}
    if result.assignment is not None:
      result.assignment = {v: int(evidence[v]) if v in evidence else result.assignment[v]
                           for v in fg.variables}
  return result


def log_partition(fg, method: str = 'elimination', evidence=None, **options) -> float:
  """log Z (or log sum over the assignments that agree with `evidence`)."""
  return infer(fg, method, evidence, tasks=('log_z',), **options).log_z


def marginals(fg, method: str = 'elimination', evidence=None, **options) -> dict[str, np.ndarray]:
  """p(x_i | evidence) for every variable i, as probability vectors."""
  return infer(fg, method, evidence, tasks=('marginals',), **options).marginals


def map_assignment(fg, method: str = 'elimination', evidence=None, **options) -> dict[str, int]:
  """argmax_x p(x | evidence) as variable -> value (ties: the first maximizer found)."""
  return infer(fg, method, evidence, tasks=('map',), **options).assignment


def _np(x) -> np.ndarray:
  return np.asarray(x, dtype=np.float64)


def _isolated(fg: FactorGraph) -> list[str]:
  used = {v for f in fg.factors for v in f.variables}
  return [v for v in fg.variables if v not in used]


# ------------------------------------------------------------------------------- enumeration

def joint_log_table(fg: FactorGraph) -> jax.Array:
  """log prod psi over every assignment: a table with one axis per variable of fg.variables."""
  n = fg.num_assignments()
  if n > MAX_ENUMERATION:
    raise ModelError(f'enumeration needs the joint table of {n:.3g} assignments (limit '
                     f'{MAX_ENUMERATION:.3g}); use method="elimination" or "bp"')
  shape = [fg.domains[v] for v in fg.variables]
  log_t = jnp.zeros(shape, F.float_dtype())
  for f in fg.factors:
    log_t = log_t + F.aligned(f, fg.variables)
  return log_t


def _enumeration(fg: FactorGraph, tasks, **options) -> Result:
  if options:
    raise ModelError(f'enumeration takes no options (got {sorted(options)})')
  log_t = joint_log_table(fg)
  res = Result('enumeration')
  log_z = jax.nn.logsumexp(log_t)
  res.log_z = float(log_z)
  if 'marginals' in tasks:
    res.marginals = {}
    for i, v in enumerate(fg.variables):
      axes = tuple(j for j in range(log_t.ndim) if j != i)
      res.marginals[v] = _np(jnp.exp(jax.nn.logsumexp(log_t, axis=axes) - log_z))
  if 'map' in tasks:
    flat = int(jnp.argmax(log_t))
    idx = np.unravel_index(flat, log_t.shape) if log_t.ndim else ()
    res.assignment = {v: int(i) for v, i in zip(fg.variables, idx)}
    res.log_score = float(log_t.reshape(-1)[flat])
  return res


# ------------------------------------------------------------------------ variable elimination

def elimination_order(fg: FactorGraph, heuristic: str = 'min_fill',
                      keep: Sequence[str] = ()) -> list[str]:
  """A greedy elimination order of the variables not in `keep`: each step eliminates the
  variable with the fewest fill-in edges (min_fill) or the fewest neighbours (min_degree) in
  the current interaction graph, ties broken by the variables' order."""
  if heuristic not in ('min_fill', 'min_degree'):
    raise ModelError(f'unknown elimination heuristic {heuristic!r}; use min_fill or min_degree')
  adj = fg.interaction_graph()
  position = {v: i for i, v in enumerate(fg.variables)}
  remaining = [v for v in fg.variables if v not in set(keep)]
  order = []
  while remaining:
    def cost(v):
      nb = adj[v]
      if heuristic == 'min_degree':
        return (len(nb), position[v])
      fill = sum(1 for a in nb for b in nb if a < b and b not in adj[a])
      return (fill, position[v])
    v = min(remaining, key=cost)
    for a in adj[v]:
      adj[a] |= adj[v] - {a}
      adj[a].discard(v)
    del adj[v]
    remaining.remove(v)
    order.append(v)
  return order


def _combine(tables, scopes, union, variable, maximize):
  """The product of `tables` (over `scopes`) with `variable` summed or maxed out; and the argmax
  table when maximizing. Compiled once per layout (axis positions), not per variable name."""
  layout = tuple(tuple(union.index(u) for u in scope) for scope in scopes)
  return _combine_kernel(tables, layout, len(union), union.index(variable), maximize)


@functools.partial(jax.jit, static_argnames=('layout', 'ndim', 'axis', 'maximize'))
def _combine_kernel(tables, layout, ndim, axis, maximize):
  t = sum(F.align_axes(table, positions, ndim) for table, positions in zip(tables, layout))
  if maximize:
    return jnp.max(t, axis=axis), jnp.argmax(t, axis=axis)
  return jax.nn.logsumexp(t, axis=axis), None


def _eliminate(factors: list[Factor], order: Sequence[str], maximize: bool = False):
  """Sums (or maximizes) out `order` one variable at a time; returns the remaining factors and,
  when maximizing, the back-tracking record [(variable, scope, argmax table)]."""
  factors = list(factors)
  trace = []
  for v in order:
    touching = [f for f in factors if v in f.variables]
    if not touching:
      continue
    factors = [f for f in factors if v not in f.variables]
    scopes = tuple(f.variables for f in touching)
    union = tuple(dict.fromkeys(u for sc in scopes for u in sc))
    keep = tuple(u for u in union if u != v)
    out, arg = _combine(tuple(f.log_table for f in touching), scopes, union, v, maximize)
    if maximize:
      trace.append((v, keep, arg))
    factors.append(Factor(keep, out))
  return factors, trace


def _elimination(fg: FactorGraph, tasks, heuristic: str = 'min_fill', **options) -> Result:
  if options:
    raise ModelError(f'elimination takes heuristic= only (got {sorted(options)})')
  res = Result('elimination')
  isolated = _isolated(fg)
  iso_log = sum(math.log(fg.domains[v]) for v in isolated)
  if 'log_z' in tasks or 'marginals' in tasks:
    rest, _ = _eliminate(fg.factors, elimination_order(fg, heuristic))
    res.log_z = float(sum(f.log_table for f in rest)) + iso_log if rest else iso_log
  if 'marginals' in tasks:
    res.marginals = {}
    for q in fg.variables:
      if q in isolated:
        res.marginals[q] = np.full(fg.domains[q], 1.0 / fg.domains[q])
        continue
      rest, _ = _eliminate(fg.factors, elimination_order(fg, heuristic, keep=[q]))
      prod = F.product(rest)
      res.marginals[q] = _np(jnp.exp(F.normalize(F.aligned(prod, [q]).reshape(-1))))
  if 'map' in tasks:
    rest, trace = _eliminate(fg.factors, elimination_order(fg, heuristic), maximize=True)
    assignment = {v: 0 for v in isolated}
    for v, scope, arg in reversed(trace):
      assignment[v] = int(arg[tuple(assignment[u] for u in scope)])
    res.assignment = {v: assignment[v] for v in fg.variables}
    res.log_score = float(sum(f.log_table for f in rest)) if rest else 0.0
  return res


# ----------------------------------------------------------------------- belief propagation

def _bp_structure(fg: FactorGraph):
  """The factors with variables (edges of BP) and the constant ones (scalars)."""
  live = [i for i, f in enumerate(fg.factors) if f.variables]
  const = sum(float(fg.factors[i].log_table) for i in range(len(fg.factors)) if i not in live)
  return live, const


def _times_messages(log_table, incoming, skip: int | None = None):
  """log psi + sum_j log m_j(x_j) over the table's axes j (all but `skip`): incoming[j] is the
  message from the factor's j-th variable."""
  t = log_table
  for j, m in enumerate(incoming):
    if j != skip:
      shape = [1] * t.ndim
      shape[j] = -1
      t = t + m.reshape(shape)
  return t


@functools.partial(jax.jit, static_argnames=('axis', 'maximize'))
def _factor_to_var(log_table, incoming, axis: int, maximize: bool):
  """log m_{f->v}(x_v) = agg over x_f\\v of [log psi_f + sum_{u != v} log m_{u->f}(x_u)], with v
  the factor's axis `axis` and incoming[j] the message from its j-th variable (j != axis);
  normalized (uniform if every entry is -inf)."""
  t = _times_messages(log_table, incoming, skip=axis)
  axes = tuple(j for j in range(t.ndim) if j != axis)
  if axes:
    t = jnp.max(t, axis=axes) if maximize else jax.nn.logsumexp(t, axis=axes)
  return _safe_normalize(t)


@jax.jit
def _var_to_factor(incoming, zeros):
  """log m_{v->f} = sum of the other factors' messages into v, normalized."""
  return _safe_normalize(sum(incoming, zeros))


@jax.jit
def _damp(new, old, damping):
  """(1 - d) m_new + d m_old in probability, as logs, and the largest change of a probability."""
  mixed = F.normalize(jnp.logaddexp(jnp.log1p(-damping) + new, jnp.log(damping) + old))
  mixed = jnp.where(damping > 0, mixed, new)
  return mixed, jnp.max(jnp.abs(jnp.exp(mixed) - jnp.exp(old)))


def _safe_normalize(m):
  m = F.normalize(m)
  return jnp.where(jnp.isnan(m), -jnp.log(m.shape[0]) if m.shape else 0.0, m)


def _tree_schedule(fg: FactorGraph, live: list[int]):
  """Edges in the order of a collect pass (leaves to roots) over each tree of the forest, plus
  each node's parent: [(('v', name) | ('f', i), parent node)] in post-order."""
  nbrs = {('v', v): [] for v in fg.variables}
  for i in live:
    nbrs[('f', i)] = [('v', v) for v in fg.factors[i].variables]
    for v in fg.factors[i].variables:
      nbrs[('v', v)].append(('f', i))
  seen, post, roots = set(), [], []
  for v in fg.variables:
    root = ('v', v)
    if root in seen:
      continue
    roots.append(root)
    stack = [(root, None, iter(nbrs[root]))]
    seen.add(root)
    while stack:
      node, parent, it = stack[-1]
      child = next(it, None)
      if child is None:
        stack.pop()
        if parent is not None:
          post.append((node, parent))
      elif child != parent and child not in seen:
        seen.add(child)
        stack.append((child, node, iter(nbrs[child])))
  return post, roots, nbrs


def _bp(fg: FactorGraph, tasks, max_iters: int = 200, damping: float | None = None,
        tol: float = 1e-8, schedule: str = 'auto', maximize: bool | None = None) -> Result:
  if schedule not in ('auto', 'tree', 'flooding'):
    raise ModelError(f'unknown BP schedule {schedule!r}; use auto, tree or flooding')
  want_map = 'map' in tasks
  if maximize is None:
    maximize = want_map and not ({'log_z', 'marginals'} & set(tasks))
  if want_map and not maximize and ({'log_z', 'marginals'} & set(tasks)):
    # one run of each kind: sum-product for Z and marginals, max-product for the MAP
    res = _bp(fg, tuple(t for t in tasks if t != 'map'), max_iters, damping, tol, schedule, False)
    mp = _bp(fg, ('map',), max_iters, damping, tol, schedule, True)
    res.assignment, res.log_score = mp.assignment, mp.log_score
    res.converged = res.converged and mp.converged
    res.iterations = max(res.iterations, mp.iterations)
    return res
  tree = fg.is_tree()
  if schedule == 'tree' and not tree:
    raise ModelError('schedule="tree" needs a factor graph without cycles; use "flooding"')
  use_tree = tree and schedule != 'flooding'
  if damping is None:
    damping = 0.0 if tree else 0.5
  if not 0.0 <= damping < 1.0:
    raise ModelError(f'BP damping must be in [0, 1) (got {damping})')
  live, const = _bp_structure(fg)
  dt = F.float_dtype()
  uniform = {v: jnp.full(fg.domains[v], -math.log(fg.domains[v]), dt) for v in fg.variables}
  f2v = {(i, v): uniform[v] for i in live for v in fg.factors[i].variables}
  v2f = {(v, i): uniform[v] for i in live for v in fg.factors[i].variables}
  nb_factors = {v: [i for i in live if v in fg.factors[i].variables] for v in fg.variables}

  zeros = {v: jnp.zeros(fg.domains[v], dt) for v in fg.variables}

  def var_to_factor(v, i):
    return _var_to_factor(tuple(f2v[(j, v)] for j in nb_factors[v] if j != i), zeros[v])

  def factor_to_var(i, v):
    f = fg.factors[i]
    return _factor_to_var(f.log_table, tuple(v2f[(u, i)] for u in f.variables),
                          f.variables.index(v), maximize)

  res = Result('bp')
  if use_tree:
    post, roots, _ = _tree_schedule(fg, live)
    for node, parent in post:            # collect: leaves to roots
      if node[0] == 'v':
        v2f[(node[1], parent[1])] = var_to_factor(node[1], parent[1])
      else:
        f2v[(node[1], parent[1])] = factor_to_var(node[1], parent[1])
    for node, parent in reversed(post):  # distribute: roots to leaves
      if parent[0] == 'v':
        v2f[(parent[1], node[1])] = var_to_factor(parent[1], node[1])
      else:
        f2v[(parent[1], node[1])] = factor_to_var(parent[1], node[1])
    res.iterations, res.converged = 1, True
  else:
    res.converged = False
    d = jnp.asarray(damping, dt)
    for it in range(1, max_iters + 1):
      for key in v2f:
        v2f[key] = var_to_factor(*key)
      deltas = []
      for (i, v), old in list(f2v.items()):
        f2v[(i, v)], change = _damp(factor_to_var(i, v), old, d)
        deltas.append(change)
      res.iterations = it
      if float(jnp.max(jnp.stack(deltas))) < tol:
        res.converged = True
        break
    for key in v2f:
      v2f[key] = var_to_factor(*key)

  beliefs = {}
  for v in fg.variables:
    beliefs[v] = _var_to_factor(tuple(f2v[(i, v)] for i in nb_factors[v]), zeros[v])
  if not maximize:
    if 'marginals' in tasks:
      res.marginals = {v: _np(jnp.exp(b)) for v, b in beliefs.items()}
    if 'log_z' in tasks:
      res.log_z = const + _bethe_log_z(fg, live, beliefs, v2f, nb_factors)
    return res
  if use_tree:
    assignment = _tree_decode(fg, live, beliefs, v2f)
  else:
    assignment = {v: int(jnp.argmax(b)) for v, b in beliefs.items()}
  res.assignment = assignment
  res.log_score = fg.log_score(assignment)
  return res


def _bethe_log_z(fg, live, beliefs, v2f, nb_factors) -> float:
  """-F_Bethe = sum_a sum b_a (log psi_a - log b_a) + sum_i (d_i - 1) sum b_i log b_i (exact on
  trees, where the beliefs are the true marginals)."""
  terms = [_factor_term(fg.factors[i].log_table, tuple(v2f[(u, i)] for u in
                                                       fg.factors[i].variables)) for i in live]
  total = float(jnp.sum(jnp.stack(terms))) if terms else 0.0
  ents = []
  for v in fg.variables:
    d = len(nb_factors[v])
    if d == 0:
      total += math.log(fg.domains[v])     # an isolated variable sums to its domain size
    elif d > 1:
      ents.append((d - 1) * _neg_entropy(beliefs[v]))
  return total + (float(jnp.sum(jnp.stack(ents))) if ents else 0.0)


@jax.jit
def _factor_term(log_table, incoming):
  """sum b_a (log psi_a - log b_a), with b_a proportional to psi_a prod_u m_{u->a}."""
  t = _times_messages(log_table, incoming)
  log_b = F.normalize(t)
  b = jnp.exp(log_b)
  return jnp.sum(jnp.where(b > 0, b * (log_table - log_b), 0.0))


@jax.jit
def _neg_entropy(log_b):
  b = jnp.exp(log_b)
  return jnp.sum(jnp.where(b > 0, b * log_b, 0.0))


def _tree_decode(fg, live, beliefs, v2f) -> dict[str, int]:
  """Back-tracking on a tree after max-product: each root takes the argmax of its max-marginal,
  then each factor, given its parent variable's value, sets its children jointly to their
  argmax, so ties are resolved consistently."""
  post, roots, _ = _tree_schedule(fg, live)
  children = {}
  for node, parent in post:
    children.setdefault(parent, []).append(node)
  assignment = {}
  stack = []
  for root in roots:
    assignment[root[1]] = int(jnp.argmax(beliefs[root[1]]))
    stack.append(root)
  while stack:
    node = stack.pop()
    for child in children.get(node, []):
      if child[0] == 'f':
        f = fg.factors[child[1]]
        t = F.reduce(f, {node[1]: assignment[node[1]]})
        t = Factor(t.variables, _times_messages(t.log_table,
                                                [v2f[(u, child[1])] for u in t.variables]))
        if t.variables:
          idx = np.unravel_index(int(jnp.argmax(t.log_table)), t.log_table.shape)
          for u, x in zip(t.variables, idx):
            assignment[u] = int(x)
      stack.append(child)
  return {v: assignment[v] for v in fg.variables}


# --------------------------------------------------------------------------------- Gibbs

def gibbs_sampler(fg: FactorGraph, num_sweeps: int, burn_in: int):
  """A jitted function (rng, init [chains, n]) -> (counts [chains, n, K], final [chains, n]):
  systematic-scan Gibbs sweeps in lax.scan, each variable redrawn from its conditional
  p(x_i | x_-i) proportional to the product of its factors' slices; counts of each value after
  `burn_in` sweeps."""
  index = {v: i for i, v in enumerate(fg.variables)}
  kmax = max(fg.domains.values()) if fg.domains else 1
  plan = []
  for v in fg.variables:
    terms = []
    for f in fg.factors:
      if v in f.variables:
        terms.append((f.log_table, tuple(index[u] for u in f.variables), f.variables.index(v)))
    plan.append((index[v], fg.domains[v], terms))

  def sweep(x, key):
    for i, k, terms in plan:
      logits = jnp.zeros(k, F.float_dtype())
      for table, vars_idx, pos in terms:
        idx = tuple(slice(None) if j == pos else x[u] for j, u in enumerate(vars_idx))
        logits = logits + table[idx]
      x = x.at[i].set(jax.random.categorical(jax.random.fold_in(key, i), logits).astype(x.dtype))
    return x

  def chain(rng, x0):
    def body(carry, t):
      x, counts = carry
      x = sweep(x, jax.random.fold_in(rng, t))
      counts = counts + (t >= burn_in) * jax.nn.one_hot(x, kmax, dtype=counts.dtype)
      return (x, counts), None
    counts0 = jnp.zeros((len(plan), kmax), F.float_dtype())
    (x, counts), _ = jax.lax.scan(body, (x0, counts0), jnp.arange(num_sweeps))
    return counts, x

  return jax.jit(jax.vmap(chain))


def _gibbs(fg: FactorGraph, tasks, rng=0, num_sweeps: int = 2000, burn_in: int = 200,
           num_chains: int = 4, init: Mapping[str, int] | None = None) -> Result:
  if {'log_z', 'map'} & set(tasks):
    raise ModelError('Gibbs sampling estimates marginals (and draws samples), not log Z or the '
                     'MAP; use method="elimination" or "bp" for those')
  if not 0 <= burn_in < num_sweeps:
    raise ModelError(f'Gibbs needs 0 <= burn_in < num_sweeps (got {burn_in}, {num_sweeps})')
  if num_chains < 1:
    raise ModelError(f'Gibbs needs num_chains >= 1 (got {num_chains})')
  key = jax.random.PRNGKey(rng) if isinstance(rng, int) else rng
  n = len(fg.variables)
  res = Result('gibbs', iterations=num_sweeps)
  if n == 0:
    res.marginals, res.stderr = {}, {}
    return res
  if init is None and any(bool(jnp.any(jnp.isneginf(f.log_table))) for f in fg.factors):
    init = _elimination(fg, ('map',)).assignment   # a feasible start when some psi are 0
  if init is None:
    keys = jax.random.split(jax.random.fold_in(key, 1 << 30), n)
    x0 = jnp.stack([jax.random.randint(keys[i], (num_chains,), 0, fg.domains[v])
                    for i, v in enumerate(fg.variables)], axis=1)
  else:
    fg.check_assignment(init, full=True)
    x0 = jnp.tile(jnp.asarray([int(init[v]) for v in fg.variables]), (num_chains, 1))
  counts, final = gibbs_sampler(fg, num_sweeps, burn_in)(
      jax.random.split(key, num_chains), x0.astype(jnp.int32))
  freq = _np(counts) / (num_sweeps - burn_in)                 # [chains, n, K]
  mean = freq.mean(axis=0)
  se = (freq.std(axis=0, ddof=1) / math.sqrt(num_chains) if num_chains > 1
        else np.full_like(mean, np.nan))
  res.marginals = {v: mean[i, :fg.domains[v]] for i, v in enumerate(fg.variables)}
  res.stderr = {v: se[i, :fg.domains[v]] for i, v in enumerate(fg.variables)}
  res.samples = np.asarray(final)
  return res
