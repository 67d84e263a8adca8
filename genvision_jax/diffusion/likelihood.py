"""Unbiased Monte-Carlo estimates of the variational bound, in bits/dim, that cost tens of
network calls per image instead of T.

Discrete DDPM (`discrete_bpd`): -log p(x_0) <= L_T + L_0 + sum_{t=1}^{T-1} L_t (Ho et al.).
L_T is exact, L_0 is evaluated every time, and the T - 1 KL terms are estimated by stratified
sampling: {1 .. T-1} is cut into K contiguous strata, one t drawn uniformly in each, and
n_k L_{t_k} (n_k the stratum's size) summed -- unbiased for the full sum. Each drawn term is
the mean over an antithetic pair (eps, -eps). 2 K + 2 network calls per image.

Continuous processes (`continuous_bpd`, Kingma et al. 2021, VDM): with gamma = log SNR =
log(alpha^2 / sigma^2) decreasing in t,

  -log p(x) <= KL(q(z_{gamma_min} | x) || N(0, prior_std^2)) + E[-log p(x | z_{gamma_max})]
               + 1/2 int_{gamma_min}^{gamma_max} e^gamma E ||x - x0_hat(z_gamma)||^2 d gamma,

the last term estimated by K strata uniform in gamma (the integrand is about flat in gamma for
a good denoiser) with antithetic pairs, the decoder p(x | z) the Gaussian N(z / alpha,
(sigma / alpha)^2) discretized to the 256 levels of the data. gamma_max = -2 log(0.002)
(sigma / alpha = 0.002, a quarter of a pixel level's width 2/255); gamma_min is the process's own noise end
(clamped at -15, where the prior term is ~1e-7 bits/dim).

Both return per-example dicts {'total', 'prior', 'decoder', 'diffusion'} in bits/dim.

Probability-flow ODE (`ode_log_likelihood`, `ode_bpd`; Song et al. 2021, Grathwohl et al.
2019): the deterministic sampler's ODE is a continuous normalizing flow, so

  log p_0(z_0) = log p_end(z_end) + int div f(z_u, u) du

along the ODE from the data to the noise end. It is integrated with Heun's method in the
flow-matching coordinates of every process, z = x / (alpha + sigma) against tau = sigma /
(alpha + sigma) (there x_t / (alpha + sigma) = (1 - tau) x_0 + tau eps and dz/dtau = eps_hat -
x0_hat; ~10x more accurate on Gaussian data at 50 steps than x/alpha against sigma/alpha), on
Karras et al.'s rho = 7 spacing of tau from sigma/alpha = 0.002 (the VDM decoder's level; ddpm:
its first index) to the noise end, with the divergence from Hutchinson's estimator
eps^T (df/dz) eps (one Rademacher eps per example for the whole path, a vjp per call) or exactly
(`exact_trace`, for small D). `ode_bpd` dequantizes the 8-bit data within each level's bin
(uniformly, or by a truncated normal), which makes its estimate an upper bound on the model's
discrete bits/dim in expectation; the ODE discretization adds a bias that shrinks with the
steps (checked against the closed form on Gaussian data).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np

from genvision_jax import losses
from genvision_jax.diffusion import processes as processes_lib

GAMMA_MAX = -2.0 * math.log(0.002)
GAMMA_MIN_CLAMP = -15.0


def _dims(x):
  return float(np.prod(x.shape[1:]))


def strata(num_timesteps: int, num_strata: int) -> np.ndarray:
  """Edges e_0 = 1 < ... < e_K = T of K contiguous strata of {1 .. T-1} (static)."""
  if not 1 <= num_strata <= num_timesteps - 1:
    raise ValueError(f'the number of t samples must be in [1, T-1 = {num_timesteps - 1}] '
                     f'(got {num_strata})')
  return np.round(np.linspace(1, num_timesteps, num_strata + 1)).astype(np.int32)


def discrete_bpd(process, denoise, x0, rng, num_strata: int, variance: str = 'small'):
  """The stratified, antithetic estimate of the discrete bound (module docstring).
  process: a `discrete.GaussianDiffusion`; denoise(xt, t index [B]) -> x0_hat."""
  b = x0.shape[0]
  edges = strata(process.num_timesteps, num_strata)
  starts = jnp.asarray(edges[:-1])
  sizes = jnp.asarray(np.diff(edges), jnp.float32)
  t_rng, n_rng, d_rng = jax.random.split(rng, 3)
  offsets = jnp.floor(jax.random.uniform(t_rng, (num_strata, b)) * sizes[:, None])
  ts = starts[:, None] + offsets.astype(jnp.int32)              # [K, B]

  def pair(t, key):
    noise = jax.random.normal(key, x0.shape, x0.dtype)
    terms = []
    for e in (noise, -noise):
      xt = process.q_sample(x0, t, e)
      terms.append(process.vb_term_bpd(denoise(xt, t), x0, xt, t, variance))
    return 0.5 * (terms[0] + terms[1])

  def term(_, inputs):
    t, size, key = inputs
    return None, size * pair(t, key)

  _, kl = jax.lax.scan(term, None, (ts, sizes, jax.random.split(n_rng, num_strata)))
  decoder = pair(jnp.zeros((b,), jnp.int32), d_rng)
  prior = process.prior_bpd(x0)
  diffusion = jnp.sum(kl, axis=0)
  return {'total': prior + decoder + diffusion, 'prior': prior, 'decoder': decoder,
          'diffusion': diffusion}


def gamma_range(process) -> tuple[float, float]:
  """(gamma_min, gamma_max) of the continuous bound for `process`."""
  with jax.ensure_compile_time_eval():  # constants, also when called under jit
    g_end = float(process.log_snr(jnp.float32(process.t_max)))
  return max(g_end, GAMMA_MIN_CLAMP), GAMMA_MAX


def continuous_bpd(process, denoise, x0, rng, num_strata: int):
  """The VDM bound's estimate (module docstring). denoise(xt, t [B]) -> x0_hat."""
  if num_strata < 1:
    raise ValueError(f'the number of t samples must be >= 1 (got {num_strata})')
  b, ndim, scale = x0.shape[0], x0.ndim, _dims(x0) * math.log(2.0)
  g_min, g_max = gamma_range(process)
  bc = lambda v: v.reshape(v.shape + (1,) * (ndim - v.ndim))
  u_rng, n_rng, d_rng = jax.random.split(rng, 3)

  # Prior: KL(N(alpha x, sigma^2) || N(0, prior_std^2)) at gamma_min.
  a0, s0 = process.alpha_sigma(process.t_from_log_snr(jnp.float32(g_min)))
  log_p2 = 2.0 * math.log(process.prior_std)
  prior = losses.gaussian_kl(a0 * x0, jnp.full_like(x0, 2.0 * jnp.log(s0)), 0.0, log_p2) / scale

  # Decoder: -log of the discretized N(z / alpha, (sigma / alpha)^2) at gamma_max.
  a1, s1 = process.alpha_sigma(process.t_from_log_snr(jnp.float32(g_max)))
  z = a1 * x0 + s1 * jax.random.normal(d_rng, x0.shape, x0.dtype)
  decoder = -losses.discretized_gaussian_log_likelihood(
      x0, z / a1, jnp.full_like(x0, jnp.log(s1 / a1))) / scale

  # Diffusion: K strata uniform in gamma, antithetic pairs.
  width = (g_max - g_min) / num_strata
  u = jax.random.uniform(u_rng, (num_strata, b))
  gammas = g_max - width * (jnp.arange(num_strata)[:, None] + u)   # [K, B]

  def term(_, inputs):
    gamma, key = inputs
    t = process.t_from_log_snr(gamma)
    a, s = process.alpha_sigma(t)
    noise = jax.random.normal(key, x0.shape, x0.dtype)
    sq = 0.0
    for e in (noise, -noise):
      err = x0 - denoise(bc(a) * x0 + bc(s) * e, t)
      sq = sq + 0.5 * jnp.sum(err.reshape(b, -1)**2, axis=-1)
    return None, 0.5 * jnp.exp(gamma) * sq * width

  _, parts = jax.lax.scan(term, None, (gammas, jax.random.split(n_rng, num_strata)))
  diffusion = jnp.sum(parts, axis=0) / scale
  return {'total': prior + decoder + diffusion, 'prior': prior, 'decoder': decoder,
          'diffusion': diffusion}


LEVEL_WIDTH = 2.0 / 255.0  # one of the 256 levels of [-1, 1]


def ode_grid(process, steps: int) -> tuple[np.ndarray, np.ndarray]:
  """(t [steps + 1] from the data end to the noise end, tau = sigma / (alpha + sigma) at those
  times), float64, static: Karras et al.'s rho = 7 spacing of tau. The data end is sigma/alpha
  = 0.002, or the process's smallest trained time if that is later (ddpm: t = 1,
  sigma/alpha = 0.01)."""
  if steps < 1:
    raise ValueError(f'the ODE needs >= 1 step (got {steps})')
  with jax.ensure_compile_time_eval():
    t0 = max(float(process.t_from_log_snr(jnp.float32(GAMMA_MAX))), process.t_min)
    a, s = process.alpha_sigma(jnp.asarray([t0, process.t_max], jnp.float32))
    tau = processes_lib.karras_sigmas(*np.asarray(s / (a + s), np.float64), steps + 1)[::-1]
    inner = tau[1:-1]  # log SNR = 2 log(alpha / sigma) = 2 log((1 - tau) / tau)
    t = np.concatenate([[t0], np.asarray(process.t_from_log_snr(jnp.asarray(
        2.0 * np.log((1.0 - inner) / inner), jnp.float32)), np.float64), [process.t_max]])
    a, s = (np.asarray(v, np.float64) for v in process.alpha_sigma(jnp.asarray(t, jnp.float32)))
  return t, s / (a + s)  # tau as the network's float32 times give it


def ode_smoothing(process) -> float:
  """sigma/alpha at the ODE's data end (0.002; ddpm 0.01): the ODE's density at x is that of
  the data smoothed by N(0, ode_smoothing^2)."""
  _, tau = ode_grid(process, 1)
  return float(tau[0] / (1.0 - tau[0]))


def ode_log_likelihood(process, denoise, x, rng, steps: int = 50, exact_trace: bool = False):
  """log p(x) in nats per example [B] of the model's data density smoothed to the ODE's data
  end (sigma/alpha = 0.002; ddpm 0.01), by the probability-flow ODE (module docstring).
  denoise(x_t, t [B]) -> (x0_hat, eps_hat), unclipped (clipping breaks the flow's
  invertibility)."""
  b, shape = x.shape[0], x.shape
  t_grid, tau = ode_grid(process, steps)
  full = lambda t: jnp.full((b,), t, jnp.float32)
  flat = lambda v: v.reshape(b, -1)
  d = float(np.prod(shape[1:]))

  def slope(z, t):
    """dz/dtau = eps_hat - x0_hat in z = x / (alpha + sigma) (the flow-matching velocity)."""
    a, s = process.alpha_sigma(t)
    x0, eps = denoise((a + s) * z, full(t))
    return eps - x0

  probe = jax.random.rademacher(rng, shape, jnp.float32)

  def slope_and_div(z, t):
    """(f(z, t), div f): Hutchinson's probe^T J probe, or the exact trace of J (D products).
    Reverse mode (a vjp): models with custom-gradient layers have no forward mode."""
    f, pullback = jax.vjp(lambda v: slope(v, t), z)
    if not exact_trace:
      return f, jnp.sum(flat(probe * pullback(probe)[0]), axis=-1)
    n = flat(z).shape[1]
    basis = jnp.broadcast_to(jnp.eye(n)[:, None], (n, b, n)).reshape(n, *shape)
    rows = jax.vmap(lambda e: pullback(e)[0])(basis)  # [D, B, ...]: e_i^T J
    return f, jnp.einsum('ibi->b', rows.reshape(n, b, n))

  def step(carry, inputs):
    z, div_int = carry
    t, tn, dtau = inputs
    f1, d1 = slope_and_div(z, t)
    f2, d2 = slope_and_div(z + dtau * f1, tn)
    return (z + 0.5 * dtau * (f1 + f2), div_int + 0.5 * dtau * (d1 + d2)), None

  # The data end: x itself at sigma/alpha = u0 is z0 = (1 - tau0) x (x_t / alpha = x + u0 eps),
  # so log p(x) = log p_z(z0) + D log(1 - tau0).
  z0 = (1.0 - tau[0]) * x.astype(jnp.float32)
  inputs = (jnp.asarray(t_grid[:-1], jnp.float32), jnp.asarray(t_grid[1:], jnp.float32),
            jnp.asarray(np.diff(tau), jnp.float32))
  (z_end, div_int), _ = jax.lax.scan(step, (z0, jnp.zeros((b,), jnp.float32)), inputs)
  # The noise end: x ~ N(0, prior_std^2), z = x / (alpha + sigma).
  with jax.ensure_compile_time_eval():
    std = process.prior_std / float(sum(process.alpha_sigma(jnp.float32(process.t_max))))
  log_prior = (-0.5 * jnp.sum(flat(z_end)**2, axis=-1) / std**2
               - d * (math.log(std) + 0.5 * math.log(2 * math.pi)))
  return log_prior + div_int + d * math.log(1.0 - tau[0])


DEQUANTIZATIONS = ('uniform', 'normal')


def ode_bpd(process, denoise, x0, rng, steps: int = 50, exact_trace: bool = False,
            dequantization: str = 'uniform'):
  """Bits/dim of 8-bit data x0 in [-1, 1] by the probability-flow ODE, an upper bound on the
  model's -log2 P(bin) / D in expectation (variational dequantization, Ho et al. 2019):
  -log P(bin) <= E_q[-log p(x0 + v) + log q(v)] for any q on the bin. 'uniform': q uniform on
  the bin (log q = -D log(2/255); the usual choice, tight for a density smooth on the bin's
  scale); 'normal': q = N(0, u0^2) truncated to the bin, u0 the ODE's own smoothing at its
  data end (sigma/alpha = 0.002; ddpm 0.01, nearly uniform) -- looser for a smooth density,
  tighter for one that concentrates at the 256 levels, as a model trained on 8-bit data may.
  Per-example {'total', 'dequantization'} (the E log q part, bits/dim)."""
  if dequantization not in DEQUANTIZATIONS:
    raise ValueError(f'dequantization must be one of {DEQUANTIZATIONS} (got {dequantization!r})')
  v_rng, p_rng = jax.random.split(rng)
  half, scale = 0.5 * LEVEL_WIDTH, _dims(x0) * math.log(2.0)
  b = x0.shape[0]
  if dequantization == 'uniform':
    v = (jax.random.uniform(v_rng, x0.shape, x0.dtype) - 0.5) * LEVEL_WIDTH
    log_q = jnp.full((b,), -_dims(x0) * math.log(LEVEL_WIDTH))
  else:
    u0 = ode_smoothing(process)
    c = half / u0
    e = jax.random.truncated_normal(v_rng, -c, c, x0.shape, x0.dtype)
    v = u0 * e
    log_mass = math.log(math.erf(c / math.sqrt(2.0)))  # N(0, 1) mass of [-c, c]
    log_q = jnp.sum((-0.5 * e**2).reshape(b, -1), axis=-1) - _dims(x0) * (
        math.log(u0) + 0.5 * math.log(2 * math.pi) + log_mass)
  log_p = ode_log_likelihood(process, denoise, x0 + v, p_rng, steps, exact_trace)
  return {'total': (log_q - log_p) / scale, 'dequantization': log_q / scale}
