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
"""

import math

import jax
import jax.numpy as jnp
import numpy as np

from genvision_jax import losses

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
