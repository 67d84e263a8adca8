"""Gaussian diffusion processes (Ho et al. 2020; Nichol & Dhariwal 2021; Song et al. 2021):
noise schedules, the forward process q, the posterior, the parameterizations of the reverse
process p, one step of the DDPM and DDIM samplers, and the variational bound in bits/dim.
No models and no optimizers: every function takes arrays (or a denoiser function).

Time indices. Arrays are indexed by t = 0 .. T-1, where index t is the paper's time t + 1
(the convention of Ho et al.'s and improved-diffusion's code): x_t at index t has
q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I) with abar_t = prod_{s <= t} (1 - beta_s), and
"x_{t-1}" at index t = 0 is the data x_0 itself.

Data lives in [-1, 1]: 8-bit images k / 127.5 - 1, k = 0 .. 255, i.e. 256 bins of width 2/255.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np

from genvision_jax import losses

SCHEDULES = ('linear', 'cosine')
PREDICTIONS = ('eps', 'v')
VARIANCES = ('small', 'large')


def linear_betas(num_timesteps: int, max_beta: float = 0.999) -> np.ndarray:
  """Ho et al.'s linear schedule beta_t from 1e-4 to 0.02 over T = 1000 steps, float64.

  For other T both ends are scaled by 1000 / T (improved-diffusion), so that
  prod(1 - beta_t) -- how much signal survives at t = T -- stays about the same; capped at
  0.999 (reached for T < 21).
  """
  scale = 1000.0 / num_timesteps
  return np.minimum(np.linspace(scale * 1e-4, scale * 0.02, num_timesteps, dtype=np.float64),
                    max_beta)


def cosine_alpha_bar(u, s: float = 0.008):
  """Nichol & Dhariwal's abar(u) = f(u) / f(0), f(u) = cos^2((u + s) / (1 + s) * pi / 2),
  u = t / T in [0, 1]."""
  f = lambda v: np.cos((v + s) / (1.0 + s) * np.pi / 2)**2
  return f(np.asarray(u, np.float64)) / f(0.0)


def cosine_betas(num_timesteps: int, max_beta: float = 0.999) -> np.ndarray:
  """beta_t = min(1 - abar((t + 1) / T) / abar(t / T), 0.999): the cosine schedule, whose
  abar falls linearly in the middle instead of collapsing early as the linear schedule's."""
  u = np.arange(num_timesteps + 1, dtype=np.float64) / num_timesteps
  abar = cosine_alpha_bar(u)
  return np.minimum(1.0 - abar[1:] / abar[:-1], max_beta)


def make_betas(schedule: str, num_timesteps: int) -> np.ndarray:
  if schedule == 'linear':
    return linear_betas(num_timesteps)
  if schedule == 'cosine':
    return cosine_betas(num_timesteps)
  raise ValueError(f"unknown beta schedule '{schedule}'; use one of {SCHEDULES}")


def _at(a, t, ndim: int):
  """a[t] for a batch of indices t [B], shaped [B, 1, ..., 1] to broadcast over an x of
  rank ndim."""
  return a[t].reshape(t.shape + (1,) * (ndim - t.ndim))


class GaussianDiffusion:
  """The processes of one schedule. Coefficients are computed in float64 with numpy and
  stored as float32 arrays (constants under jit).

  Attributes (all [T]): betas, alphas_cumprod (abar_t), alphas_cumprod_prev (abar_{t-1},
  1 at t = 0), posterior_variance (beta~_t), posterior_log_variance_clipped,
  posterior_mean_coef1 / 2, and the square roots used below.
  """

  def __init__(self, betas: np.ndarray):
    betas = np.asarray(betas, np.float64)
    if betas.ndim != 1 or not np.all((betas > 0) & (betas < 1)):
      raise ValueError('betas must be a 1-D array in (0, 1)')
    self.num_timesteps = int(betas.shape[0])
    alphas = 1.0 - betas
    abar = np.cumprod(alphas)
    abar_prev = np.append(1.0, abar[:-1])
    # beta~_t = (1 - abar_{t-1}) / (1 - abar_t) beta_t: the variance of q(x_{t-1} | x_t, x_0).
    posterior_variance = betas * (1.0 - abar_prev) / (1.0 - abar)
    f32 = lambda a: jnp.asarray(a, jnp.float32)
    self.betas_f64, self.alphas_cumprod_f64 = betas, abar
    self.betas = f32(betas)
    self.alphas_cumprod = f32(abar)
    self.alphas_cumprod_prev = f32(abar_prev)
    self.sqrt_alphas_cumprod = f32(np.sqrt(abar))
    self.one_minus_alphas_cumprod = f32(1.0 - abar)  # from float64: no cancellation at t = 0
    self.log_alphas_cumprod = f32(np.log(abar))
    self.sqrt_one_minus_alphas_cumprod = f32(np.sqrt(1.0 - abar))
    self.log_one_minus_alphas_cumprod = f32(np.log(1.0 - abar))
    self.sqrt_recip_alphas_cumprod = f32(np.sqrt(1.0 / abar))
    self.sqrt_recipm1_alphas_cumprod = f32(np.sqrt(1.0 / abar - 1.0))
    self.posterior_variance = f32(posterior_variance)
    # beta~_0 = 0: its log is clipped to beta~_1 (the value never enters the bound, where
    # index 0 is the decoder term).
    self.posterior_log_variance_clipped = f32(
        np.log(np.append(posterior_variance[1], posterior_variance[1:])))
    self.posterior_mean_coef1 = f32(betas * np.sqrt(abar_prev) / (1.0 - abar))
    self.posterior_mean_coef2 = f32((1.0 - abar_prev) * np.sqrt(alphas) / (1.0 - abar))
    # sigma_t^2 = beta_t ("large"; beta~_1 at t = 0, as in Ho et al.'s code, so that the
    # decoder's variance is not beta_0 alone) or beta~_t ("small").
    self.large_log_variance = f32(np.log(np.append(posterior_variance[1], betas[1:])))

  @classmethod
  def from_schedule(cls, schedule: str, num_timesteps: int) -> 'GaussianDiffusion':
    return cls(make_betas(schedule, num_timesteps))

  # -- forward process ----------------------------------------------------------------------

  def q_mean_variance(self, x0, t):
    """q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I): (mean, variance, log variance)."""
    mean = _at(self.sqrt_alphas_cumprod, t, x0.ndim) * x0
    var = _at(self.one_minus_alphas_cumprod, t, x0.ndim)
    return mean, var, _at(self.log_one_minus_alphas_cumprod, t, x0.ndim)

  def q_sample(self, x0, t, noise):
    """x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, eps = noise ~ N(0, I)."""
    return (_at(self.sqrt_alphas_cumprod, t, x0.ndim) * x0
            + _at(self.sqrt_one_minus_alphas_cumprod, t, x0.ndim) * noise)

  def q_posterior_mean_variance(self, x0, xt, t):
    """q(x_{t-1} | x_t, x_0) = N(mu~_t, beta~_t I) with
    mu~_t = sqrt(abar_{t-1}) beta_t / (1 - abar_t) x_0 + sqrt(alpha_t) (1 - abar_{t-1}) /
    (1 - abar_t) x_t and beta~_t = (1 - abar_{t-1}) / (1 - abar_t) beta_t (Ho et al. eq. 6-7).
    Returns (mean, variance, clipped log variance)."""
    n = xt.ndim
    mean = _at(self.posterior_mean_coef1, t, n) * x0 + _at(self.posterior_mean_coef2, t, n) * xt
    return (mean, _at(self.posterior_variance, t, n),
            _at(self.posterior_log_variance_clipped, t, n))

  # -- parameterizations --------------------------------------------------------------------

  def x0_from_eps(self, xt, t, eps):
    """x_0 = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)."""
    n = xt.ndim
    return (_at(self.sqrt_recip_alphas_cumprod, t, n) * xt
            - _at(self.sqrt_recipm1_alphas_cumprod, t, n) * eps)

  def eps_from_x0(self, xt, t, x0):
    """eps = (x_t - sqrt(abar_t) x_0) / sqrt(1 - abar_t)."""
    n = xt.ndim
    return ((_at(self.sqrt_recip_alphas_cumprod, t, n) * xt - x0)
            / _at(self.sqrt_recipm1_alphas_cumprod, t, n))

  def v_target(self, x0, t, noise):
    """v = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0 (Salimans & Ho 2022)."""
    n = x0.ndim
    return (_at(self.sqrt_alphas_cumprod, t, n) * noise
            - _at(self.sqrt_one_minus_alphas_cumprod, t, n) * x0)

  def training_target(self, prediction: str, x0, t, noise):
    """What the network regresses: eps, or v."""
    if prediction == 'eps':
      return noise
    if prediction == 'v':
      return self.v_target(x0, t, noise)
    raise ValueError(f"unknown prediction '{prediction}'; use one of {PREDICTIONS}")

  def to_x0_eps(self, prediction: str, output, xt, t, clip: bool = True):
    """(x0_hat, eps_hat) from a network output (eps or v) at x_t.

    eps: x0 = (x_t - sqrt(1 - abar) eps) / sqrt(abar). v: x0 = sqrt(abar) x_t - sqrt(1 - abar) v
    and eps = sqrt(1 - abar) x_t + sqrt(abar) v. With clip, x0_hat is clipped to [-1, 1] and
    eps_hat recomputed from the clipped x0_hat, so the two stay consistent with x_t.
    """
    n = xt.ndim
    if prediction == 'eps':
      x0 = self.x0_from_eps(xt, t, output)
      eps = output
    elif prediction == 'v':
      a, s = _at(self.sqrt_alphas_cumprod, t, n), _at(self.sqrt_one_minus_alphas_cumprod, t, n)
      x0 = a * xt - s * output
      eps = s * xt + a * output
    else:
      raise ValueError(f"unknown prediction '{prediction}'; use one of {PREDICTIONS}")
    if clip:
      x0 = jnp.clip(x0, -1.0, 1.0)
      eps = self.eps_from_x0(xt, t, x0)
    return x0, eps

  # -- reverse process ----------------------------------------------------------------------

  def p_log_variance(self, t, ndim: int, variance: str = 'small'):
    """log sigma_t^2 of p(x_{t-1} | x_t): beta~_t ('small') or beta_t ('large')."""
    if variance == 'small':
      return _at(self.posterior_log_variance_clipped, t, ndim)
    if variance == 'large':
      return _at(self.large_log_variance, t, ndim)
    raise ValueError(f"unknown variance '{variance}'; use one of {VARIANCES}")

  def p_mean_variance(self, x0_hat, xt, t, variance: str = 'small'):
    """p(x_{t-1} | x_t) = N(mu~_t(x_t, x0_hat), sigma_t^2 I): the posterior mean at the
    predicted x_0 and a fixed variance. Returns (mean, log variance)."""
    mean, _, _ = self.q_posterior_mean_variance(x0_hat, xt, t)
    return mean, self.p_log_variance(t, xt.ndim, variance)

  def ddim_mean_std(self, x0_hat, eps_hat, t, t_prev, eta: float):
    """One DDIM step (Song et al. 2021, eq. 12) from index t to t_prev < t (-1 = the data):
    x_prev = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev - sigma^2) eps_hat + sigma z with
    sigma = eta sqrt((1 - abar_prev) / (1 - abar_t)) sqrt(1 - abar_t / abar_prev).
    eta = 0 is deterministic; eta = 1 with t_prev = t - 1 is the DDPM posterior with
    sigma^2 = beta~_t. Returns (mean, sigma)."""
    n = x0_hat.ndim
    first = t_prev < 0
    prev = jnp.maximum(t_prev, 0)
    shape = (-1,) + (1,) * (n - 1)
    abar_prev = jnp.where(first, 1.0, self.alphas_cumprod[prev]).reshape(shape)
    one_minus_prev = jnp.where(first, 0.0, self.one_minus_alphas_cumprod[prev]).reshape(shape)
    log_ratio = (self.log_alphas_cumprod[t]
                 - jnp.where(first, 0.0, self.log_alphas_cumprod[prev])).reshape(shape)
    # 1 - abar_t / abar_prev as -expm1(log abar_t - log abar_prev): no float32 cancellation.
    sigma = eta * jnp.sqrt(one_minus_prev / _at(self.one_minus_alphas_cumprod, t, n)
                           * -jnp.expm1(log_ratio))
    mean = (jnp.sqrt(abar_prev) * x0_hat
            + jnp.sqrt(jnp.maximum(one_minus_prev - sigma**2, 0.0)) * eps_hat)
    return mean, sigma

  def ddim_invert_step(self, x, x0_hat, eps_hat, t_from, t_to):
    """One deterministic DDIM step *up* the chain, from index t_from to t_to > t_from
    (t_from = -1: x is the data): x_to = sqrt(abar_to) x0_hat + sqrt(1 - abar_to) eps_hat, with
    x0_hat = x at the data. For a given eps_hat it is the exact inverse of the eta = 0 step
    t_to -> t_from of `ddim_mean_std` (DDIM inversion, Song et al. 2021 sec. 4.3; guided-
    diffusion's `ddim_reverse_sample`)."""
    shape = (-1,) + (1,) * (x.ndim - 1)
    x0 = jnp.where((t_from < 0).reshape(shape), x, x0_hat)
    return (self.sqrt_alphas_cumprod[t_to].reshape(shape) * x0
            + self.sqrt_one_minus_alphas_cumprod[t_to].reshape(shape) * eps_hat)

  # -- the variational bound ----------------------------------------------------------------

  def prior_bpd(self, x0):
    """L_T = KL(q(x_T | x_0) || N(0, I)) per example, in bits/dim (no parameters)."""
    t = jnp.full((x0.shape[0],), self.num_timesteps - 1, jnp.int32)
    mean, _, log_var = self.q_mean_variance(x0, t)
    kl = losses.gaussian_kl(mean, jnp.broadcast_to(log_var, x0.shape), 0.0, 0.0)
    return kl / (_dims(x0) * math.log(2.0))

  def vb_term_bpd(self, x0_hat, x0, xt, t, variance: str = 'small'):
    """The term of the bound at index t, per example, in bits/dim:
    L_{t-1} = KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t)) for t > 0, and
    L_0 = -log p(x_0 | x_1) under the discretized Gaussian decoder for t = 0."""
    true_mean, _, true_log_var = self.q_posterior_mean_variance(x0, xt, t)
    mean, log_var = self.p_mean_variance(x0_hat, xt, t, variance)
    log_var = jnp.broadcast_to(log_var, x0.shape)
    kl = losses.gaussian_kl(true_mean, jnp.broadcast_to(true_log_var, x0.shape), mean, log_var)
    nll = -losses.discretized_gaussian_log_likelihood(x0, mean, 0.5 * log_var)
    return jnp.where(t == 0, nll, kl) / (_dims(x0) * math.log(2.0))

  def bits_per_dim(self, denoise, x0, rng, variance: str = 'small'):
    """The variational bound -log p(x_0) <= L_T + sum_{t>1} L_{t-1} + L_0, per example, in
    bits/dim, with every one of the T terms evaluated (one x_t per term and example).

    denoise(xt, t) -> x0_hat (clipped to [-1, 1]). The T terms run in a `lax.scan`, so memory
    is that of one batch whatever T. Returns {'total', 'prior', 'decoder' (L_0),
    'terms' [B, T]}.
    """
    b = x0.shape[0]

    def term(_, t):
      noise = jax.random.normal(jax.random.fold_in(rng, t), x0.shape, x0.dtype)
      ts = jnp.full((b,), t, jnp.int32)
      xt = self.q_sample(x0, ts, noise)
      return None, self.vb_term_bpd(denoise(xt, ts), x0, xt, ts, variance)

    _, terms = jax.lax.scan(term, None, jnp.arange(self.num_timesteps))
    terms = terms.T  # [B, T]
    prior = self.prior_bpd(x0)
    return {'total': prior + jnp.sum(terms, axis=1), 'prior': prior, 'decoder': terms[:, 0],
            'terms': terms}


def _dims(x):
  return float(np.prod(x.shape[1:]))


def sampling_timesteps(num_timesteps: int, steps: int) -> np.ndarray:
  """`steps` indices from T - 1 down to 0, evenly spaced (rounded; the last step is always
  from index 0 to the data). steps = T gives every index."""
  if not 1 <= steps <= num_timesteps:
    raise ValueError(f'sampling steps must be in [1, {num_timesteps}] (got {steps})')
  if steps == 1:
    return np.asarray([num_timesteps - 1])
  ts = np.round(np.linspace(num_timesteps - 1, 0, steps)).astype(np.int32)
  return np.unique(ts)[::-1].copy()


def guided_output(cond, uncond, guidance: float):
  """Classifier-free guidance (Ho & Salimans 2022): (1 + w) out(x_t, c) - w out(x_t, null)
  with w = guidance; w = 0 is the plain conditional model. Applied to the network output:
  for v-prediction this equals guiding eps, since eps = sqrt(1 - abar) x_t + sqrt(abar) v is
  affine in v with weights summing to one."""
  return (1.0 + guidance) * cond - guidance * uncond
