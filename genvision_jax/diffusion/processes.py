"""Diffusion and flow processes as Gaussian paths x_t = alpha(t) x_0 + sigma(t) eps, separated
from the networks (as score_sde, VDM and EDM separate them).

A process says how to draw t for training, how to corrupt x_0 into x_t, what the network is
given (its input scaling and time input) and what it regresses (with which loss weight), how
to turn the network's output back into (x0_hat, eps_hat), and the time grid a sampler walks.
Samplers (`samplers.py`) see only `alpha_sigma` / `rates` and a denoiser, so every sampler
works with every process it applies to.

Time runs from the data (t = 0, alpha = 1, sigma = 0) to the noise end `t_max`; the unit is
the process's own:

  ddpm  the discrete process of Ho et al. (`discrete.GaussianDiffusion`), t = k + 1 for the
        network's index k = 0 .. T-1 (t = 0 is the data); between integers log abar is
        interpolated linearly, so ODE/SDE samplers can use it. Training is exactly as before.
  vp    the continuous VP SDE of Song et al. (2021): beta(t) = beta_min + t (beta_max -
        beta_min) on t in [0, 1], alpha = exp(-t^2 (beta_max - beta_min) / 4 - t beta_min / 2),
        sigma = sqrt(1 - alpha^2); eps or v prediction.
  flow  flow matching / rectified flow (Lipman et al. 2023; Liu et al. 2023): straight paths
        alpha = 1 - t, sigma = t on [0, 1], the network regresses the velocity eps - x_0;
        t uniform or logit-normal (Esser et al. 2024).
  edm   Karras et al. (2022): x = x_0 + sigma eps with t = sigma, the network F wrapped as
        D(x) = c_skip x + c_out F(c_in x, c_noise), sigma log-normal in training, loss
        weight 1/c_out^2 on ||D - x_0||^2 (= 1 on F's own target).

Network time inputs are scaled to the range the U-Net's sinusoidal embedding was built for
(DDPM's 0 .. 1000): k for ddpm, 1000 t for vp and flow, 250 ln sigma for edm (EDM's
c_noise = ln(sigma) / 4, times 1000).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np

from genvision_jax.diffusion import discrete

PROCESSES = ('ddpm', 'vp', 'flow', 'edm')
# The network's output for each process ('edm': F of the preconditioned denoiser).
PROCESS_PREDICTIONS = {'ddpm': ('eps', 'v'), 'vp': ('eps', 'v'), 'flow': ('velocity',),
                       'edm': ('edm',)}
T_SAMPLINGS = ('uniform', 'logit_normal')


def _b(a, ndim: int):
  """a [B] (or a scalar) shaped to broadcast over an x of rank ndim."""
  a = jnp.asarray(a)
  return a.reshape(a.shape + (1,) * (ndim - a.ndim))


class Process:
  """The interface (see the module docstring). Subclasses define `alpha_sigma`, `sample_t`,
  `time_input`, `grid` and set `t_max`, `prediction`; the rest has generic defaults."""

  name = ''
  prediction = 'eps'
  t_max = 1.0
  t_min = 0.0           # the smallest time the network is trained at (ddpm: index 0, t = 1)
  prior_std = 1.0       # p(x_{t_max}) = N(0, prior_std^2 I)
  has_sde = True        # a forward SDE dx = f x dt + g dW exists on the whole grid

  def alpha_sigma(self, t):
    """(alpha(t), sigma(t)), float32, shaped as t."""
    raise NotImplementedError

  def rates(self, t):
    """(alpha, sigma, d alpha / dt, d sigma / dt) at t."""
    t = jnp.asarray(t, jnp.float32)
    (a, s), (da, ds) = jax.jvp(self.alpha_sigma, (t,), (jnp.ones_like(t),))
    return a, s, da, ds

  def sample_t(self, rng, n: int):
    """n training times."""
    raise NotImplementedError

  def corrupt(self, x0, t, noise):
    """x_t = alpha(t) x_0 + sigma(t) eps."""
    a, s = self.alpha_sigma(jnp.asarray(t, jnp.float32))
    return _b(a, x0.ndim) * x0 + _b(s, x0.ndim) * noise

  def time_input(self, t):
    """The network's time input at t [B]."""
    raise NotImplementedError

  def net_inputs(self, xt, t):
    """(network image input, network time input) at x_t, t [B]."""
    return xt, self.time_input(t)

  def target(self, x0, noise, t):
    """What the network regresses at (x_0, eps, t)."""
    a, s = self.alpha_sigma(jnp.asarray(t, jnp.float32))
    a, s = _b(a, x0.ndim), _b(s, x0.ndim)
    if self.prediction == 'eps':
      return noise
    if self.prediction == 'v':
      return a * noise - s * x0
    raise NotImplementedError(self.prediction)

  def loss_weight(self, t):
    """Per-example weight of the regression loss at t [B]."""
    return jnp.ones(jnp.shape(t), jnp.float32)

  def level(self, t):
    """Where t lies between the data (0) and the noise end (1), for loss-by-t metrics."""
    return jnp.asarray(t, jnp.float32) / self.t_max

  def denoised(self, out, xt, t, clip: bool = False):
    """(x0_hat, eps_hat) from the network's output at (x_t, t [B]). With clip, x0_hat is
    clipped to [-1, 1] and eps_hat recomputed from it, so the two stay consistent with x_t."""
    n = xt.ndim
    a, s, da, ds = (_b(v, n) for v in self.rates(jnp.asarray(t, jnp.float32)))
    if self.prediction == 'eps':
      eps = out
      x0 = (xt - s * eps) / a
    elif self.prediction == 'v':  # alpha^2 + sigma^2 = 1
      x0 = a * xt - s * out
      eps = s * xt + a * out
    elif self.prediction == 'velocity':  # out = da x0 + ds eps, with xt = a x0 + s eps
      det = a * ds - s * da
      x0 = (ds * xt - s * out) / det
      eps = (a * out - da * xt) / det
    else:
      raise NotImplementedError(self.prediction)
    if clip:
      x0 = jnp.clip(x0, -1.0, 1.0)
      eps = (xt - a * x0) / s
    return x0, eps

  def grid(self, steps: int, sampler: str | None = None) -> np.ndarray:
    """steps + 1 times from t_max down to 0 (the data), float64: a sampler's steps (the
    sampler may choose among a process's grids: `DDPMProcess.grid`)."""
    raise NotImplementedError

  # -- log-SNR, for the continuous-time bound ------------------------------------------------

  def log_snr(self, t):
    a, s = self.alpha_sigma(jnp.asarray(t, jnp.float32))
    return 2.0 * (jnp.log(a) - jnp.log(s))

  def t_from_log_snr(self, gamma):
    """The t with log(alpha^2 / sigma^2) = gamma."""
    raise NotImplementedError


class DDPMProcess(discrete.GaussianDiffusion, Process):
  """Ho et al.'s discrete process (module docstring): a `GaussianDiffusion` (so everything
  that used it keeps working) that is also a `Process` in t = index + 1."""

  name = 'ddpm'
  t_min = 1.0

  def __init__(self, betas, prediction: str = 'eps'):
    super().__init__(betas)
    if prediction not in PROCESS_PREDICTIONS['ddpm']:
      raise ValueError(f"prediction must be one of {PROCESS_PREDICTIONS['ddpm']} for the ddpm "
                       f'process (got {prediction!r})')
    self.prediction = prediction
    self.t_max = float(self.num_timesteps)
    self._log_abar_f64 = np.append(0.0, np.log(self.alphas_cumprod_f64))
    self._log_abar = jnp.asarray(self._log_abar_f64, jnp.float32)
    self._nodes = jnp.arange(self.num_timesteps + 1, dtype=jnp.float32)

  def _log_abar_at(self, t):
    return jnp.interp(jnp.asarray(t, jnp.float32), self._nodes, self._log_abar)

  def alpha_sigma(self, t):
    la = self._log_abar_at(t)
    return jnp.exp(0.5 * la), jnp.sqrt(-jnp.expm1(la))

  def rates(self, t):
    """Central differences over half an index (log abar is piecewise linear)."""
    t = jnp.asarray(t, jnp.float32)
    lo, hi = jnp.maximum(t - 0.5, 0.0), jnp.minimum(t + 0.5, self.t_max)
    (a_lo, s_lo), (a_hi, s_hi) = self.alpha_sigma(lo), self.alpha_sigma(hi)
    a, s = self.alpha_sigma(t)
    return a, s, (a_hi - a_lo) / (hi - lo), (s_hi - s_lo) / (hi - lo)

  def sample_t(self, rng, n: int):
    return jax.random.randint(rng, (n,), 0, self.num_timesteps) + 1  # int32 index + 1

  def corrupt(self, x0, t, noise):
    if jnp.issubdtype(jnp.asarray(t).dtype, jnp.integer):  # training: the tables, as before
      return self.q_sample(x0, t - 1, noise)
    return Process.corrupt(self, x0, t, noise)

  def time_input(self, t):
    return t - 1

  def target(self, x0, noise, t):
    if jnp.issubdtype(jnp.asarray(t).dtype, jnp.integer):
      return self.training_target(self.prediction, x0, t - 1, noise)
    return Process.target(self, x0, noise, t)

  def level(self, t):
    return (jnp.asarray(t, jnp.float32) - 1.0) / self.num_timesteps

  def grid(self, steps: int, sampler: str | None = None) -> np.ndarray:
    """The indices of `discrete.sampling_timesteps` (+ 1) for DDIM and DPM-Solver++, whose
    steps are exact in alpha and sigma whatever the spacing; for Euler and Heun, which
    integrate x/alpha in sigma/alpha (`samplers`), Karras et al.'s rho = 7 spacing of
    sigma/alpha between the last and the first index, which puts the steps where the ODE
    bends (5 steps of the index grid: sigma/alpha 157, 17, 3.4, 0.96, 0.01; Karras's: 157,
    37, 5.9, 0.49, 0.01 — Heun on the index grid had FD in the thousands on MNIST)."""
    if sampler in ('euler', 'heun'):
      snr_sigma = lambda t: math.sqrt(-math.expm1(self._log_abar_f64[t])
                                      / math.exp(self._log_abar_f64[t]))
      sig = karras_sigmas(snr_sigma(1), snr_sigma(self.num_timesteps), steps)
      t = np.asarray(self.t_from_log_snr(-2.0 * np.log(sig)), np.float64)
      t[0], t[-1] = self.t_max, 1.0  # exactly the last and the first index
      return np.append(t, 0.0)
    idx = discrete.sampling_timesteps(self.num_timesteps, steps)
    return np.append(idx.astype(np.float64) + 1.0, 0.0)

  def t_from_log_snr(self, gamma):
    """The t with log(abar / (1 - abar)) = gamma, log abar interpolated as in `alpha_sigma`
    (float64 numpy in, numpy out: for grids)."""
    # log abar is linear between the nodes t = 0 .. T (log SNR is not): invert through it.
    target_la = -np.log1p(np.exp(-np.asarray(gamma, np.float64)))  # log sigmoid(gamma)
    return np.interp(-target_la, -self._log_abar_f64,
                     np.arange(self.num_timesteps + 1, dtype=np.float64))


class VPProcess(Process):
  """Song et al.'s continuous VP SDE with the linear beta(t) (module docstring)."""

  name = 'vp'
  T_TRAIN_MIN = 1e-5   # Song et al.: t ~ U(1e-5, 1) in training
  T_SAMPLE_MIN = 1e-3  # and the last grid point before the data in sampling

  def __init__(self, prediction: str = 'eps', beta_min: float = 0.1, beta_max: float = 20.0):
    if prediction not in PROCESS_PREDICTIONS['vp']:
      raise ValueError(f"prediction must be one of {PROCESS_PREDICTIONS['vp']} for the vp "
                       f'process (got {prediction!r})')
    if not 0 < beta_min < beta_max:
      raise ValueError(f'need 0 < beta_min < beta_max (got {beta_min}, {beta_max})')
    self.prediction = prediction
    self.beta_min, self.beta_max = float(beta_min), float(beta_max)

  def _log_alpha(self, t):
    return -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

  def alpha_sigma(self, t):
    la = self._log_alpha(jnp.asarray(t, jnp.float32))
    return jnp.exp(la), jnp.sqrt(-jnp.expm1(2.0 * la))

  def sample_t(self, rng, n: int):
    return jax.random.uniform(rng, (n,), jnp.float32, self.T_TRAIN_MIN, 1.0)

  def time_input(self, t):
    return 1000.0 * t

  def grid(self, steps: int, sampler: str | None = None) -> np.ndarray:
    """Karras et al.'s rho = 7 spacing of sigma/alpha between t = 1 and t = 1e-3 (the grid
    they found best for VP as well), then 0."""
    snr_sigma = lambda t: float(np.sqrt(np.expm1(-2.0 * float(self._log_alpha(t)))))
    sig = karras_sigmas(snr_sigma(self.T_SAMPLE_MIN), snr_sigma(1.0), steps)
    t = np.asarray(self.t_from_log_snr(jnp.asarray(-2.0 * np.log(sig), jnp.float32)),
                   np.float64)
    t[0] = 1.0
    return np.append(t, 0.0)

  def t_from_log_snr(self, gamma):
    # alpha^2 = sigmoid(gamma): -2 log alpha = softplus(-gamma) = t^2 (bmax - bmin) / 2 + t bmin
    c = jax.nn.softplus(-gamma)
    k = 0.5 * (self.beta_max - self.beta_min)
    return (-self.beta_min + jnp.sqrt(self.beta_min**2 + 4.0 * k * c)) / (2.0 * k)


class FlowProcess(Process):
  """Flow matching on straight paths (module docstring)."""

  name = 'flow'
  prediction = 'velocity'
  has_sde = False  # f = alpha'/alpha diverges at t = 1: the ODE samplers only

  def __init__(self, t_sampling: str = 'uniform', logit_mean: float = 0.0,
               logit_std: float = 1.0):
    if t_sampling not in T_SAMPLINGS:
      raise ValueError(f't_sampling must be one of {T_SAMPLINGS} (got {t_sampling!r})')
    self.t_sampling, self.logit_mean, self.logit_std = t_sampling, logit_mean, logit_std

  def alpha_sigma(self, t):
    t = jnp.asarray(t, jnp.float32)
    return 1.0 - t, t

  def sample_t(self, rng, n: int):
    if self.t_sampling == 'uniform':
      return jax.random.uniform(rng, (n,), jnp.float32)
    return jax.nn.sigmoid(self.logit_mean + self.logit_std * jax.random.normal(rng, (n,)))

  def target(self, x0, noise, t):
    return noise - x0

  def time_input(self, t):
    return 1000.0 * t

  def grid(self, steps: int, sampler: str | None = None) -> np.ndarray:
    return np.linspace(1.0, 0.0, steps + 1)

  def t_from_log_snr(self, gamma):
    return jax.nn.sigmoid(-0.5 * gamma)  # (1 - t) / t = exp(gamma / 2)


class EDMProcess(Process):
  """Karras et al.'s preconditioned VE process, t = sigma (module docstring)."""

  name = 'edm'
  prediction = 'edm'

  def __init__(self, sigma_min: float = 0.002, sigma_max: float = 80.0,
               sigma_data: float = 0.5, p_mean: float = -1.2, p_std: float = 1.2,
               rho: float = 7.0):
    if not 0 < sigma_min < sigma_max:
      raise ValueError(f'need 0 < sigma_min < sigma_max (got {sigma_min}, {sigma_max})')
    self.sigma_min, self.sigma_max, self.sigma_data = sigma_min, sigma_max, sigma_data
    self.p_mean, self.p_std, self.rho = p_mean, p_std, rho
    self.t_max = self.prior_std = float(sigma_max)

  def alpha_sigma(self, t):
    t = jnp.asarray(t, jnp.float32)
    return jnp.ones_like(t), t

  def sample_t(self, rng, n: int):
    return jnp.exp(self.p_mean + self.p_std * jax.random.normal(rng, (n,), jnp.float32))

  def preconditioning(self, sigma):
    """(c_skip, c_out, c_in) of EDM's Table 1."""
    sd2, s2 = self.sigma_data**2, sigma**2
    return sd2 / (s2 + sd2), sigma * self.sigma_data / jnp.sqrt(s2 + sd2), 1.0 / jnp.sqrt(s2 + sd2)

  def time_input(self, t):
    return 250.0 * jnp.log(t)

  def net_inputs(self, xt, t):
    _, _, c_in = self.preconditioning(jnp.asarray(t, jnp.float32))
    return _b(c_in, xt.ndim) * xt, self.time_input(t)

  def target(self, x0, noise, t):
    """F's target (x_0 - c_skip x_t) / c_out, so that ||F - target||^2 = ||D - x_0||^2 / c_out^2
    (EDM's weighting lambda = 1 / c_out^2 becomes 1)."""
    c_skip, c_out, _ = (_b(c, x0.ndim) for c in self.preconditioning(jnp.asarray(t, jnp.float32)))
    xt = x0 + _b(t, x0.ndim) * noise
    return (x0 - c_skip * xt) / c_out

  def denoised(self, out, xt, t, clip: bool = False):
    sigma = _b(jnp.asarray(t, jnp.float32), xt.ndim)
    c_skip, c_out, _ = self.preconditioning(sigma)
    x0 = c_skip * xt + c_out * out
    if clip:
      x0 = jnp.clip(x0, -1.0, 1.0)
    return x0, (xt - x0) / sigma

  def level(self, t):
    lo, hi = math.log(self.sigma_min), math.log(self.sigma_max)
    return (jnp.log(jnp.asarray(t, jnp.float32)) - lo) / (hi - lo)

  def grid(self, steps: int, sampler: str | None = None) -> np.ndarray:
    return np.append(karras_sigmas(self.sigma_min, self.sigma_max, steps, self.rho), 0.0)

  def t_from_log_snr(self, gamma):
    return jnp.exp(-0.5 * gamma)


def karras_sigmas(sigma_min: float, sigma_max: float, steps: int, rho: float = 7.0):
  """Karras et al.'s eq. 5: sigma_i = (smax^(1/rho) + i / (N - 1) (smin^(1/rho) -
  smax^(1/rho)))^rho, i = 0 .. N - 1 (N = steps; one step: smax alone), float64."""
  inv = 1.0 / rho
  ramp = np.linspace(0.0, 1.0, steps) if steps > 1 else np.zeros(1)
  return (sigma_max**inv + ramp * (sigma_min**inv - sigma_max**inv))**rho


def make(d, prediction: str | None = None) -> Process:
  """The process of a `config.diffusion` section."""
  name = d.get('process', 'ddpm')
  prediction = prediction or d.prediction
  if name == 'ddpm':
    return DDPMProcess(discrete.make_betas(d.schedule, d.num_timesteps), prediction)
  if name not in PROCESSES:
    raise ValueError(f"unknown process '{name}'; use one of {PROCESSES}")
  if prediction not in PROCESS_PREDICTIONS[name]:
    raise ValueError(f'diffusion.prediction={prediction!r} does not apply to the {name} '
                     f'process: use {PROCESS_PREDICTIONS[name]}')
  if name == 'vp':
    return VPProcess(prediction)
  if name == 'flow':
    return FlowProcess(d.get('t_sampling', 'uniform'))
  return EDMProcess()
