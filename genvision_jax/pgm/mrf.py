"""Pairwise Markov random fields on an H x W pixel grid (4-neighbourhood), vectorized in jax:

  p(x) = (1/Z) prod_i phi_i(x_i) prod_(i,j) psi_ij(x_i, x_j),   x_i in {0..K-1}

stored as log-potentials: `unary` [H, W, K], `horizontal` [H, W-1, K, K] (pixel (r, c) with
(r, c+1)) and `vertical` [H-1, W, K, K] (pixel (r, c) with (r+1, c)). Inference works on whole
images at once, so it compiles once per image size and runs under jit and vmap:

  icm             iterated conditional modes: each pixel set to the argmax of its conditional,
                  checkerboard half-sweeps (a local MAP; never lowers the score)
  loopy_bp        sum-product (marginals) or max-product (max-marginals, MAP) on the grid, with
                  damping, stopping when messages change by less than `tol`
  gibbs           checkerboard Gibbs sampling (pixels of one colour are independent given the
                  other colour), marginals after burn-in and the final sample

The vision use is binary images: `ising` builds an Ising model (spins s = 2x - 1, log-potentials
bias_i s_i and w_ij s_i s_j), `noisy_channel` adds the likelihood of a picture whose pixels were
flipped with probability `flip`, and `fit_pseudolikelihood` learns per-pixel biases and per-edge
couplings from binary images by maximizing the pseudo-likelihood (Besag 1975), a concave
objective whose gradient needs no partition function. `to_factor_graph` gives the same model to
the generic routines of inference.py (for testing on small grids).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from genvision_jax.pgm import factors as F
from genvision_jax.pgm.factors import ModelError


@functools.partial(jax.tree_util.register_dataclass,
                   data_fields=['unary', 'horizontal', 'vertical'], meta_fields=[])
@dataclasses.dataclass(frozen=True)
class GridMRF:
  unary: jax.Array        # [H, W, K]
  horizontal: jax.Array   # [H, W-1, K, K]
  vertical: jax.Array     # [H-1, W, K, K]

  @property
  def shape(self) -> tuple[int, int]:
    return tuple(self.unary.shape[-3:-1])

  def check(self) -> GridMRF:
    """ModelError unless the three tables fit one H x W x K grid and hold no NaN / +inf."""
    u, h, v = (np.shape(a) for a in (self.unary, self.horizontal, self.vertical))
    if len(u) != 3:
      raise ModelError(f'unary must be [H, W, K] (got shape {u})')
    hh, ww, k = u
    if h != (hh, ww - 1, k, k) or v != (hh - 1, ww, k, k):
      raise ModelError(f'a {hh}x{ww} grid with {k} states needs horizontal {(hh, ww - 1, k, k)} '
                       f'and vertical {(hh - 1, ww, k, k)} tables (got {h} and {v})')
    for name, a in (('unary', self.unary), ('horizontal', self.horizontal),
                    ('vertical', self.vertical)):
      a = np.asarray(a)
      if np.isnan(a).any() or (a == np.inf).any():
        raise ModelError(f'the {name} log-potentials hold NaN or +inf')
    return self


def ising(bias, h_coupling, v_coupling) -> GridMRF:
  """Binary grid MRF with log phi_i(x) = bias_i s and log psi_ij = w_ij s_i s_j, s = 2x - 1.
  bias [H, W]; couplings [H, W-1] and [H-1, W] (or scalars, broadcast)."""
  bias = jnp.asarray(bias, jnp.float32)
  hh, ww = bias.shape
  spins = jnp.array([-1.0, 1.0])
  pair = spins[:, None] * spins[None, :]
  h = jnp.broadcast_to(jnp.asarray(h_coupling, jnp.float32), (hh, ww - 1))
  v = jnp.broadcast_to(jnp.asarray(v_coupling, jnp.float32), (hh - 1, ww))
  return GridMRF(bias[..., None] * spins, h[..., None, None] * pair, v[..., None, None] * pair)


def noisy_channel(mrf: GridMRF, noisy, flip: float) -> GridMRF:
  """The posterior MRF p(x | y) of a binary prior `mrf` and a picture y whose pixels were each
  flipped with probability `flip`: unary + log p(y_i | x_i)."""
  if not 0.0 < flip < 0.5:
    raise ModelError(f'the flip probability must be in (0, 0.5) (got {flip})')
  y = jnp.asarray(noisy, jnp.int32)
  like = jnp.where(jax.nn.one_hot(y, 2) > 0, jnp.log1p(-flip), jnp.log(flip))
  return dataclasses.replace(mrf, unary=mrf.unary + like)


def neighbour_terms(mrf: GridMRF, x) -> jax.Array:
  """[H, W, K]: for each pixel and state k, the log-potentials of the 4 edges to its
  neighbours' current values in x [H, W] (the pixel's Markov blanket)."""
  out = jnp.zeros(mrf.unary.shape, mrf.unary.dtype)
  # left neighbour (r, c-1) in state x: horizontal[r, c-1, x, k]
  left = jnp.take_along_axis(mrf.horizontal, x[:, :-1, None, None], axis=2)[:, :, 0, :]
  right = jnp.take_along_axis(mrf.horizontal, x[:, 1:, None, None], axis=3)[:, :, :, 0]
  up = jnp.take_along_axis(mrf.vertical, x[:-1, :, None, None], axis=2)[:, :, 0, :]
  down = jnp.take_along_axis(mrf.vertical, x[1:, :, None, None], axis=3)[:, :, :, 0]
  return out.at[:, 1:].add(left).at[:, :-1].add(right).at[1:, :].add(up).at[:-1, :].add(down)


def conditionals(mrf: GridMRF, x) -> jax.Array:
  """log p(x_i = k | x_neighbours) for every pixel [H, W, K]."""
  return jax.nn.log_softmax(mrf.unary + neighbour_terms(mrf, x), axis=-1)


def log_score(mrf: GridMRF, x) -> jax.Array:
  """log of the unnormalized probability of x [H, W] (sum of its log-potentials)."""
  u = jnp.take_along_axis(mrf.unary, x[..., None], axis=-1)[..., 0].sum()
  h = mrf.horizontal[jnp.arange(x.shape[0])[:, None], jnp.arange(x.shape[1] - 1)[None, :],
                     x[:, :-1], x[:, 1:]].sum()
  v = mrf.vertical[jnp.arange(x.shape[0] - 1)[:, None], jnp.arange(x.shape[1])[None, :],
                   x[:-1, :], x[1:, :]].sum()
  return u + h + v


def _colours(shape):
  r, c = jnp.meshgrid(jnp.arange(shape[0]), jnp.arange(shape[1]), indexing='ij')
  return (r + c) % 2


@functools.partial(jax.jit, static_argnames=('num_sweeps',))
def icm(mrf: GridMRF, init, num_sweeps: int = 20) -> tuple[jax.Array, jax.Array]:
  """Iterated conditional modes from `init` [H, W]: `num_sweeps` sweeps of two checkerboard
  half-sweeps, each pixel set to the argmax of its conditional. Returns (x, number of pixels
  changed in the last sweep) — 0 means a local maximum: no single pixel change raises the
  score."""
  colour = _colours(mrf.shape)

  def sweep(x, _):
    before = x
    for c in (0, 1):
      best = jnp.argmax(mrf.unary + neighbour_terms(mrf, x), axis=-1).astype(x.dtype)
      x = jnp.where(colour == c, best, x)
    return x, jnp.sum(x != before)

  x, changed = jax.lax.scan(sweep, jnp.asarray(init, jnp.int32), None, length=num_sweeps)
  return x, changed[-1]


def gibbs_sweep(mrf: GridMRF, x, key):
  """One checkerboard sweep: every pixel of colour 0 redrawn from its conditional given the
  others (they are independent given colour 1), then every pixel of colour 1."""
  colour = _colours(mrf.shape)
  for c in (0, 1):
    draw = jax.random.categorical(jax.random.fold_in(key, c),
                                  mrf.unary + neighbour_terms(mrf, x)).astype(x.dtype)
    x = jnp.where(colour == c, draw, x)
  return x


@functools.partial(jax.jit, static_argnames=('num_sweeps', 'burn_in'))
def gibbs(mrf: GridMRF, rng, num_sweeps: int = 200, burn_in: int = 50, init=None):
  """Checkerboard Gibbs sampling: returns (marginals [H, W, K] averaged over the sweeps after
  `burn_in`, the final sample [H, W])."""
  k = mrf.unary.shape[-1]
  x0 = (jax.random.categorical(jax.random.fold_in(rng, 1 << 30), mrf.unary) if init is None
        else jnp.asarray(init, jnp.int32))

  def sweep(carry, t):
    x, counts = carry
    x = gibbs_sweep(mrf, x, jax.random.fold_in(rng, t))
    counts = counts + (t >= burn_in) * jax.nn.one_hot(x, k, dtype=counts.dtype)
    return (x, counts), None

  counts0 = jnp.zeros(mrf.unary.shape, mrf.unary.dtype)
  (x, counts), _ = jax.lax.scan(sweep, (x0.astype(jnp.int32), counts0), jnp.arange(num_sweeps))
  return counts / (num_sweeps - burn_in), x


def _aggregate(t, axis, maximize):
  return jnp.max(t, axis=axis) if maximize else jax.nn.logsumexp(t, axis=axis)


@functools.partial(jax.jit, static_argnames=('maximize', 'max_iters'))
def loopy_bp(mrf: GridMRF, maximize: bool = False, max_iters: int = 100, damping: float = 0.5,
             tol: float = 1e-5):
  """Belief propagation with parallel (flooding) updates on the grid. Messages into each pixel
  from its left, right, upper and lower neighbours, each normalized in log space, damped as
  (1 - d) m_new + d m_old. Returns (log beliefs [H, W, K] normalized per pixel — marginals for
  sum-product, max-marginals for max-product —, iterations run, converged)."""
  u, hz, vt = mrf.unary, mrf.horizontal, mrf.vertical
  uniform = jnp.full_like(u, -jnp.log(u.shape[-1]))   # also the messages from beyond the border

  def norm(m):
    return m - jax.nn.logsumexp(m, axis=-1, keepdims=True)

  def update(msgs):
    left, right, up, down = msgs       # messages into pixel (r, c) from that side
    # to the right neighbour: everything at (r, c) but what came from the right
    send_r = (u + left + up + down)[:, :-1]
    new_left = uniform.at[:, 1:].set(norm(_aggregate(send_r[..., :, None] + hz, -2, maximize)))
    send_l = (u + right + up + down)[:, 1:]
    new_right = uniform.at[:, :-1].set(norm(_aggregate(send_l[..., None, :] + hz, -1, maximize)))
    send_d = (u + left + right + up)[:-1, :]
    new_up = uniform.at[1:, :].set(norm(_aggregate(send_d[..., :, None] + vt, -2, maximize)))
    send_u = (u + left + right + down)[1:, :]
    new_down = uniform.at[:-1, :].set(norm(_aggregate(send_u[..., None, :] + vt, -1, maximize)))
    return new_left, new_right, new_up, new_down

  def damp(new, old):
    mixed = jnp.logaddexp(jnp.log1p(-damping) + new, jnp.log(damping) + old)
    mixed = jnp.where(damping > 0, mixed - jax.nn.logsumexp(mixed, -1, keepdims=True), new)
    return jnp.where(jnp.isnan(mixed), new, mixed)

  def body(state):
    msgs, it, _ = state
    new = tuple(damp(n, o) for n, o in zip(update(msgs), msgs))
    delta = jnp.max(jnp.stack([jnp.max(jnp.abs(jnp.exp(n) - jnp.exp(o)))
                               for n, o in zip(new, msgs)]))
    return new, it + 1, delta

  def cond(state):
    _, it, delta = state
    return (it < max_iters) & (delta >= tol)

  init = (uniform,) * 4
  msgs, iters, delta = jax.lax.while_loop(cond, body, (init, 0, jnp.asarray(jnp.inf, u.dtype)))
  beliefs = norm(u + sum(msgs))
  return beliefs, iters, delta < tol


def to_factor_graph(mrf: GridMRF) -> F.FactorGraph:
  """The same model as a generic factor graph, variables named 'r,c' (for small grids)."""
  mrf.check()
  hh, ww, k = mrf.unary.shape
  name = lambda r, c: f'{r},{c}'  # pylint: disable=unnecessary-lambda-assignment
  fs = [F.log_factor((name(r, c),), mrf.unary[r, c]) for r in range(hh) for c in range(ww)]
  fs += [F.log_factor((name(r, c), name(r, c + 1)), mrf.horizontal[r, c])
         for r in range(hh) for c in range(ww - 1)]
  fs += [F.log_factor((name(r, c), name(r + 1, c)), mrf.vertical[r, c])
         for r in range(hh - 1) for c in range(ww)]
  return F.FactorGraph({name(r, c): k for r in range(hh) for c in range(ww)}, fs)


# ----------------------------------------------------------------- learning (binary images)

def pseudo_log_likelihood(params: dict, images) -> jax.Array:
  """Mean over images [N, H, W] in {0, 1} of sum_i log p(x_i | x_neighbours) under the Ising
  model of params {'bias' [H, W], 'h' [H, W-1], 'v' [H-1, W]}."""
  mrf = ising(params['bias'], params['h'], params['v'])
  x = jnp.asarray(images, jnp.int32)

  def one(img):
    logp = conditionals(mrf, img)
    return jnp.take_along_axis(logp, img[..., None], axis=-1).sum()

  return jnp.mean(jax.vmap(one)(x))


def ising_pseudo_log_likelihood(params: dict, images) -> jax.Array:
  """pseudo_log_likelihood of the Ising model in closed form: with spins s = 2x - 1,
  p(s_i | rest) = sigmoid(2 s_i (bias_i + sum_j w_ij s_j)), so the sum over pixels needs only
  shifted products (no gathers); equal to the generic one, and much faster to differentiate."""
  s = 2.0 * jnp.asarray(images, jnp.float32) - 1.0              # [N, H, W]
  field = jnp.broadcast_to(params['bias'], s.shape)
  wh, wv = params['h'], params['v']
  field = field.at[:, :, 1:].add(wh * s[:, :, :-1]).at[:, :, :-1].add(wh * s[:, :, 1:])
  field = field.at[:, 1:, :].add(wv * s[:, :-1, :]).at[:, :-1, :].add(wv * s[:, 1:, :])
  return jnp.mean(jnp.sum(jax.nn.log_sigmoid(2.0 * s * field), axis=(1, 2)))


def fit_pseudolikelihood(images, l2: float = 1e-3, max_iters: int = 1000) -> tuple[GridMRF, dict]:
  """Per-pixel biases and per-edge couplings of an Ising model maximizing the pseudo-likelihood
  of binary images [N, H, W], per pixel, minus l2 * |params|^2 / 2 (a concave objective), by
  L-BFGS (scipy.optimize, with the jit-compiled gradient of ising_pseudo_log_likelihood).
  Returns (the GridMRF, {'bias', 'h', 'v', 'objective', 'iterations', 'converged'})."""
  import scipy.optimize  # pylint: disable=g-import-not-at-top
  from jax.flatten_util import ravel_pytree  # pylint: disable=g-import-not-at-top
  raw = np.asarray(images)
  if raw.ndim != 3 or not np.all((raw == 0) | (raw == 1)):
    raise ModelError(f'fit_pseudolikelihood needs binary images [N, H, W] of 0/1 (got shape '
                     f'{raw.shape}, values {np.unique(raw)[:4]}...)')
  x = jnp.asarray(raw, jnp.int32)
  _, hh, ww = x.shape
  p = jnp.clip(x.mean(0), 0.01, 0.99)
  params = {'bias': 0.5 * jnp.log(p / (1 - p)), 'h': jnp.zeros((hh, ww - 1)),
            'v': jnp.zeros((hh - 1, ww))}
  flat, unravel = ravel_pytree(params)

  @jax.jit
  def loss(theta):
    return (-ising_pseudo_log_likelihood(unravel(theta), x) / (hh * ww)
            + 0.5 * l2 * jnp.sum(theta ** 2))

  value_and_grad = jax.jit(jax.value_and_grad(loss))

  def fun(theta):
    v, g = value_and_grad(jnp.asarray(theta, jnp.float32))
    return float(v), np.asarray(g, np.float64)

  result = scipy.optimize.minimize(fun, np.asarray(flat, np.float64), jac=True,
                                   method='L-BFGS-B',
                                   options={'maxiter': max_iters, 'gtol': 1e-8, 'ftol': 1e-12})
  q = unravel(jnp.asarray(result.x, jnp.float32))
  info = {**q, 'objective': -float(result.fun), 'iterations': int(result.nit),
          'converged': bool(result.success)}
  return ising(q['bias'], q['h'], q['v']), info


def _ising_statistics(spins):
  """Mean spin [H, W] and mean products of horizontal [H, W-1] and vertical [H-1, W] neighbours
  of spins [N, H, W]: the sufficient statistics of the Ising model."""
  return {'bias': spins.mean(0), 'h': (spins[:, :, :-1] * spins[:, :, 1:]).mean(0),
          'v': (spins[:, :-1, :] * spins[:, 1:, :]).mean(0)}


def fit_maximum_likelihood(images, init: dict | None = None, num_steps: int = 1000,
                           num_chains: int = 500, learning_rate: float = 0.05,
                           l2: float = 1e-4, seed: int = 0) -> tuple[GridMRF, dict]:
  """Maximum likelihood of the Ising model by persistent contrastive divergence (Tieleman
  2008): the gradient of the mean log-likelihood is E_data[T(s)] - E_model[T(s)] for the
  sufficient statistics T (spins and neighbour products), the model's expectation taken over
  `num_chains` persistent Gibbs chains advanced one checkerboard sweep per step; gradient ascent
  with a linearly decaying step. Starts from `init` ({'bias', 'h', 'v'}, e.g. the
  pseudo-likelihood fit) or zeros. Unlike pseudo-likelihood it matches the model's statistics to
  the data's, so the model's samples have the data's ink and stroke statistics. Returns (the
  GridMRF, params with 'gap': max |E_data - E_model| at the end, 'ink': the chains' ink)."""
  raw = np.asarray(images)
  if raw.ndim != 3 or not np.all((raw == 0) | (raw == 1)):
    raise ModelError(f'fit_maximum_likelihood needs binary images [N, H, W] of 0/1 (got shape '
                     f'{raw.shape})')
  x = jnp.asarray(raw, jnp.int32)
  data = _ising_statistics(2.0 * x - 1.0)
  params = (jax.tree.map(jnp.asarray, {k: init[k] for k in ('bias', 'h', 'v')}) if init
            else jax.tree.map(jnp.zeros_like, data))
  key = jax.random.key(seed)
  chains = x[jax.random.choice(jax.random.fold_in(key, -1 % (1 << 31)), len(x),
                               (num_chains,), replace=num_chains > len(x))]

  @jax.jit
  def run(params, chains):
    def step(carry, t):
      q, xs = carry
      mrf = ising(q['bias'], q['h'], q['v'])
      keys = jax.random.split(jax.random.fold_in(key, t), xs.shape[0])
      xs = jax.vmap(lambda xx, kk: gibbs_sweep(mrf, xx, kk))(xs, keys)
      model = _ising_statistics(2.0 * xs - 1.0)
      lr = learning_rate * (1.0 - t / num_steps)
      q = jax.tree.map(lambda p, d, m: p + lr * (d - m - l2 * p), q, data, model)
      gap = jnp.max(jnp.stack([jnp.max(jnp.abs(d - m)) for d, m in
                               zip(jax.tree.leaves(data), jax.tree.leaves(model))]))
      return (q, xs), gap

    (q, xs), gaps = jax.lax.scan(step, (params, chains), jnp.arange(num_steps))
    return q, xs, gaps

  q, xs, gaps = run(params, chains)
  info = {**q, 'gap': float(jnp.mean(gaps[-50:])), 'ink': float(jnp.mean(xs))}
  return ising(q['bias'], q['h'], q['v']), info
