"""Samplers as solvers of a process's reverse-time ODE/SDE, each a whole chain in one `lax.scan`.

`sample(process, denoise, x_T, grid, sampler, rng, eta)` walks the descending time grid
(`process.grid(steps)`, ending at the data t = 0) from x_T. `denoise(x, t [B]) -> (x0_hat,
eps_hat)` is the network (with its guidance and clipping); the samplers use only it and the
process's alpha(t), sigma(t) and their derivatives, so they work with every process:

  ddim            Song et al. (2021) in alpha/sigma form: x' = alpha' x0_hat +
                  sqrt(sigma'^2 - c^2) eps_hat + c z, c = eta sigma'/sigma sqrt(sigma^2 -
                  (alpha/alpha')^2 sigma'^2); eta = 0 is the first-order exponential integrator
                  of the probability-flow ODE.
  euler           Euler on the probability-flow ODE. Where alpha > 0 on the whole grid (ddpm,
                  vp, edm) in Karras et al.'s variables y = x/alpha, s = sigma/alpha, where it
                  reads dy/ds = eps_hat (so one Euler step is one DDIM step); for flow, whose
                  alpha(1) = 0, in its own time: dx/dt = alpha' x0_hat + sigma' eps_hat = the
                  predicted velocity (the rectified-flow sampler).
  heun            Heun's second-order method on the same ODE in the same variables, Euler on
                  the last step to the data (Karras et al. 2022, Algorithm 1): 2 N - 1 network
                  calls for N steps.
  euler_maruyama  the reverse SDE dx = [f x - g^2 grad log p] dt + g dW with f = alpha'/alpha,
                  g^2 = d sigma^2/dt - 2 f sigma^2 and grad log p = -eps_hat / sigma; the last
                  step returns x0_hat (Song et al. 2021). Processes with a forward SDE only.
  dpmpp_2m        DPM-Solver++(2M) (Lu et al. 2022): data prediction, multistep second order in
                  lambda = log(alpha / sigma); first order on the first and the last step.

(The discrete ancestral DDPM sampler lives with the discrete process: `DiffusionMethod`.)
Network calls: `nfe(sampler, steps)`.
"""

import jax
import jax.numpy as jnp
import numpy as np

SAMPLERS = ('ddpm', 'ddim', 'euler', 'heun', 'euler_maruyama', 'dpmpp_2m')
STOCHASTIC = ('ddpm', 'euler_maruyama')  # always draw noise (ddim: when eta > 0)


def nfe(sampler: str, steps: int) -> int:
  """Network evaluations of `steps` steps (Heun: two per step but the last)."""
  return 2 * steps - 1 if sampler == 'heun' else steps


def steps_for_nfe(sampler: str, budget: int) -> int:
  """The most steps whose network evaluations fit in `budget` (at least 1)."""
  return max(1, (budget + 1) // 2) if sampler == 'heun' else max(1, budget)


def check(process, sampler: str) -> None:
  """ValueError if `sampler` cannot run `process`."""
  if sampler not in SAMPLERS:
    raise ValueError(f"unknown sampler '{sampler}'; use one of {SAMPLERS}")
  if sampler == 'ddpm' and process.name != 'ddpm':
    raise ValueError(f"the ancestral 'ddpm' sampler needs the discrete ddpm process (this model "
                     f"uses '{process.name}'); use ddim (eta=1 is ancestral on any grid), "
                     'euler_maruyama, euler, heun or dpmpp_2m')
  if sampler == 'euler_maruyama' and not process.has_sde:
    raise ValueError(f"the '{process.name}' process defines an ODE, not a forward SDE, so "
                     "'euler_maruyama' cannot sample it; use euler, heun, ddim or dpmpp_2m")


def sample(process, denoise, x_T, grid, sampler: str, rng=None, eta: float = 0.0):
  """x_0 from x_T over `grid` (static, descending, last entry 0). rng None: no noise (ddim with
  eta = 0, euler, heun, dpmpp_2m)."""
  check(process, sampler)
  if sampler == 'ddpm':
    raise ValueError("the ancestral 'ddpm' sampler is `DiffusionMethod.reverse_chain`")
  grid = np.asarray(grid, np.float64)
  if grid.ndim != 1 or len(grid) < 2 or grid[-1] != 0 or np.any(np.diff(grid) >= 0):
    raise ValueError('the grid must descend strictly to 0 (the data)')
  b = x_T.shape[0]
  full = lambda t: jnp.full((b,), t, jnp.float32)
  steps = len(grid) - 1
  noisy = sampler == 'euler_maruyama' or (sampler == 'ddim' and eta > 0)
  if noisy and rng is None:
    raise ValueError(f'the {sampler} sampler with these settings draws noise: pass rng')
  keys = (jax.random.split(rng, steps) if rng is not None
          else jnp.zeros((steps, 2), jnp.uint32))
  t_cur = jnp.asarray(grid[:-1], jnp.float32)
  t_next = jnp.asarray(grid[1:], jnp.float32)

  # Euler/Heun: integrate y = x/alpha in s = sigma/alpha (dy/ds = eps_hat) unless alpha vanishes
  # at the noise end (flow), then x in t (dx/dt = alpha' x0_hat + sigma' eps_hat).
  with jax.ensure_compile_time_eval():
    scaled = float(process.alpha_sigma(jnp.float32(grid[0]))[0]) > 0

  def velocity(x, t):
    """(dy/ds or dx/dt at (x, t), y or x): the ODE's slope in the integration variables."""
    x0, eps = denoise(x, full(t))
    if scaled:
      return eps, x / process.alpha_sigma(t)[0]
    _, _, da, ds = process.rates(t)
    return da * x0 + ds * eps, x

  def advance(y, t, tn, slope):
    """The state at tn from y at t moving along `slope`: x = alpha(tn) (y + ds slope)."""
    if scaled:
      a, s = process.alpha_sigma(t)
      an, sn = process.alpha_sigma(tn)
      return an * (y + (sn / an - s / a) * slope)
    return y + (tn - t) * slope

  if sampler == 'ddim':
    def step(x, inputs):
      t, tn, key = inputs
      x0, eps = denoise(x, full(t))
      a, s = process.alpha_sigma(t)
      an, sn = process.alpha_sigma(tn)
      c = eta * sn / s * jnp.sqrt(jnp.maximum(s**2 - (a / an)**2 * sn**2, 0.0))
      x = an * x0 + jnp.sqrt(jnp.maximum(sn**2 - c**2, 0.0)) * eps
      if noisy:
        x = x + c * jax.random.normal(key, x.shape, x.dtype)
      return x, None
    x, _ = jax.lax.scan(step, x_T, (t_cur, t_next, keys))
    return x

  if sampler == 'euler':
    def step(x, inputs):
      t, tn, _ = inputs
      v, y = velocity(x, t)
      return advance(y, t, tn, v), None
    x, _ = jax.lax.scan(step, x_T, (t_cur, t_next, keys))
    return x

  if sampler == 'heun':
    def step(x, inputs):
      t, tn, _ = inputs
      v, y = velocity(x, t)
      v2, _ = velocity(advance(y, t, tn, v), tn)
      return advance(y, t, tn, 0.5 * (v + v2)), None
    x, _ = jax.lax.scan(step, x_T, (t_cur[:-1], t_next[:-1], keys[:-1]))
    v, y = velocity(x, t_cur[-1])  # the last step, to the data: Euler
    return advance(y, t_cur[-1], t_next[-1], v)

  if sampler == 'euler_maruyama':
    def step(x, inputs):
      t, tn, key = inputs
      x0, eps = denoise(x, full(t))
      a, s, da, ds = process.rates(t)
      f = da / a
      g2 = 2.0 * s * ds - 2.0 * f * s**2
      dt = t - tn
      x = x - dt * (f * x + g2 * eps / s)
      return x + jnp.sqrt(jnp.maximum(g2 * dt, 0.0)) * jax.random.normal(key, x.shape), None
    x, _ = jax.lax.scan(step, x_T, (t_cur[:-1], t_next[:-1], keys[:-1]))
    return denoise(x, full(t_cur[-1]))[0]  # the last step returns the denoised mean

  if sampler == 'dpmpp_2m':
    lam = lambda a, s: jnp.log(a) - jnp.log(s)  # -inf at alpha = 0, +inf at sigma = 0

    def step(carry, inputs):
      x, x0_prev, h_prev = carry
      t, tn, first = inputs
      x0, _ = denoise(x, full(t))
      a, s = process.alpha_sigma(t)
      an, sn = process.alpha_sigma(tn)
      h = lam(an, sn) - lam(a, s)
      half_inv_r = h / (2.0 * h_prev)
      order_one = first | (tn == 0) | ~jnp.isfinite(h) | ~jnp.isfinite(h_prev)
      d = jnp.where(order_one, x0, (1.0 + half_inv_r) * x0 - half_inv_r * x0_prev)
      x = (sn / s) * x - an * jnp.expm1(-h) * d
      return (x, x0, h), None

    firsts = jnp.arange(steps) == 0
    (x, _, _), _ = jax.lax.scan(step, (x_T, jnp.zeros_like(x_T), jnp.asarray(jnp.inf)),
                                (t_cur, t_next, firsts))
    return x

  raise ValueError(f"unknown sampler '{sampler}'")
