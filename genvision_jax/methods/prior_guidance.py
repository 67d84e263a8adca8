"""Training-free image-to-image translation with an UNCONDITIONAL diffusion prior: the reverse
chain of a trained DDPM (`DiffusionMethod`, eps- or v-prediction) guided by the task's known
measurement y = A x of the clean image x, so that "trained for the task" (pix2pix, palette) can
be compared with "prior + measurement" on the same test pairs (`genvision evaluate --prior`).

What is implemented, exactly:

* The chain is DDIM (Song et al. 2021, eq. 12) on `steps` evenly spaced timesteps of the
  prior's T (`diffusion.sampling_timesteps`), stochasticity `eta` (eta = 1 on all T steps is
  the DDPM posterior with sigma^2 = beta~_t). The whole chain, resampling jumps included, is
  one `lax.scan` over transitions (t_from -> t_to) inside jit.

* guidance='replace' (masks: inpainting, uncropping): RePaint (Lugmayr et al. 2022) data
  consistency. After every transition to timestep t the known pixels of x_t are replaced by a
  fresh forward-noised measurement, x_t <- m * q_sample(y, t, z) + (1 - m) * x_t (m = 1 on
  known pixels), and after the last step (t = -1, the data) by y itself, so the output keeps
  the known pixels exactly. This is RePaint without resampling when `resamples` = 1.

* guidance='ddnm' (any task with a noise-free linear A: super-resolution, masks,
  colorization): the range/null-space decomposition of DDNM (Wang et al. 2023, eq. 13):
  at every denoising step the network's x0_hat (clipped to [-1, 1]) is replaced by
  x0_hat - A^+(A x0_hat - y) before the DDIM update, whose eps_hat stays the network's. The
  last step returns that x0_hat, so A(output) = y up to float rounding: the output is NOT
  clipped to [-1, 1] here (callers clip for display and metrics, which perturbs A x only
  where the correction left the range). A and A^+ (Moore-Penrose) per task:
    super_resolution, area     A = block mean of f x f; A^+ = nearest upsampling (A A^+ = I).
    super_resolution, bicubic  A = the task's anti-aliased bicubic `jax.image.resize`, which is
                               separable: A X = R X R^T per channel with R [h, H] the 1-D
                               operator (read off by resizing the unit vectors); A^+ Y =
                               R^+ Y R^+T with R^+ = pinv(R) (numpy, float64): the exact
                               Moore-Penrose inverse of the 2-D operator (pinv of a Kronecker
                               product is the Kronecker product of the pinvs).
    inpainting, uncropping     A = multiplication by the mask; A^+ = A (y on known pixels).
    colorization               A = Rec. 601 luma w . rgb; A^+ y = y w / |w|^2.
  Denoising (a noisy measurement) is refused: the projection assumes y = A x exactly.

* Resampling (RePaint's "jump length / resamples"), both guidance modes: on the grid of the
  `steps` DDIM timesteps, indexed k = steps - 1 (noisiest) .. 0, -1 (data), the chain walks
  down one index at a time; on reaching an index j that is a multiple of `jump_length` with
  j < steps - jump_length, it jumps back up `jump_length` indices by the forward process
  (x_{t'} = sqrt(abar_t' / abar_t) x_t + sqrt(1 - abar_t' / abar_t) z, one grid index per
  transition) and walks down again, `resamples` - 1 times per such j (`repaint_schedule`; the
  RePaint paper's setting is 250 steps, jump 10, 10 resamples). resamples = 1 is no
  resampling. Network evaluations: the downward transitions of the schedule.
"""

import jax
import jax.numpy as jnp
import numpy as np

from genvision_jax import tasks

GUIDANCE = ('auto', 'replace', 'ddnm')
MASK_TASKS = ('inpainting', 'uncropping')
SUPPORTED = ('super_resolution', 'inpainting', 'uncropping', 'colorization')


def repaint_schedule(steps: int, jump_length: int = 10, resamples: int = 1) -> list[int]:
  """Grid indices visited by the chain: from steps - 1 down to -1 (the data), with the jumps
  back up described in the module docstring (Lugmayr et al. 2022, Algorithm 1 / Fig. 3)."""
  if steps < 1 or jump_length < 1 or resamples < 1:
    raise ValueError(f'steps, jump_length and resamples must be >= 1 (got {steps}, '
                     f'{jump_length}, {resamples})')
  left = {j: resamples - 1 for j in range(0, steps - jump_length, jump_length)}
  k = steps - 1
  visited = [k]
  while k >= 0:
    k -= 1
    visited.append(k)
    if left.get(k, 0) > 0:
      left[k] -= 1
      for _ in range(jump_length):
        k += 1
        visited.append(k)
  return visited


def transitions(num_timesteps: int, steps: int, jump_length: int = 10, resamples: int = 1):
  """(t_from, t_to) int32 arrays of the chain's transitions in the prior's timesteps (-1 = the
  data): the DDIM grid `diffusion.sampling_timesteps(T, steps)` walked by `repaint_schedule`."""
  from genvision_jax import diffusion as diffusion_lib  # pylint: disable=g-import-not-at-top
  grid = diffusion_lib.sampling_timesteps(num_timesteps, steps)[::-1]  # ascending: index k
  level = np.append(grid, -1)  # level[-1] = -1: the data
  visited = np.asarray(repaint_schedule(len(grid), jump_length, resamples))
  t = level[visited]
  return t[:-1].astype(np.int32), t[1:].astype(np.int32)


def _resize_matrix(size: int, factor: int, method: str) -> np.ndarray:
  """R [size / factor, size]: the task's 1-D downsampling operator (`tasks.downsample`)."""
  small = size // factor
  if method == 'area':
    return np.kron(np.eye(small), np.full((1, factor), 1.0 / factor))
  eye = jnp.eye(size, dtype=jnp.float32)
  cols = jax.vmap(lambda e: jax.image.resize(e, (small,), 'bicubic', antialias=True))(eye)
  return np.asarray(cols, np.float64).T


class Measurement:
  """The linear operator A of a task on [B, H, W, C] images, its Moore-Penrose inverse A^+
  (see the module docstring) and the measurement y of an evaluation pair."""

  def __init__(self, task, image_shape):
    self.task, self.image_shape = task, tuple(image_shape)
    if task.name not in SUPPORTED:
      raise ValueError(f'task.name={task.name!r}: a diffusion prior guides only noise-free '
                       f'linear measurements ({", ".join(SUPPORTED)}); denoising observes '
                       'y = x + noise, which the projection would copy into the output')
    tasks.check_channels(task, self.image_shape[-1])
    if task.name == 'super_resolution':
      r = _resize_matrix(self.image_shape[0], task.factor, task.downsample)
      self.r = jnp.asarray(r, jnp.float32)
      self.r_pinv = jnp.asarray(np.linalg.pinv(r), jnp.float32)

  def measure(self, pair):
    """y of a pair (from `tasks.degrade`): the low-resolution image, the image on its known
    pixels (0 elsewhere) or the luminance."""
    c = self.image_shape[-1]
    if self.task.name == 'super_resolution':
      return pair['low'] if 'low' in pair else pair['input']
    if self.task.name in MASK_TASKS:
      return pair['input'][..., :c]
    return pair['input']

  def known(self, pair):
    """The known-pixel mask [B, H, W, 1] of an inpainting/uncropping pair."""
    return pair['input'][..., self.image_shape[-1]:]

  def apply(self, x, known=None):
    """A x."""
    if self.task.name == 'super_resolution':
      return jnp.einsum('ih,bhwc,jw->bijc', self.r, x, self.r)
    if self.task.name in MASK_TASKS:
      return known * x
    return tasks.luminance(x)

  def pinv(self, y, known=None):
    """A^+ y."""
    if self.task.name == 'super_resolution':
      return jnp.einsum('hi,bijc,wj->bhwc', self.r_pinv, y, self.r_pinv)
    if self.task.name in MASK_TASKS:
      return known * y
    w = jnp.asarray(tasks.LUMA_601, y.dtype)
    return y * w / jnp.sum(w * w)

  def project(self, x, y, known=None):
    """x - A^+(A x - y): the closest image to x (in L2) with A x = y."""
    return x - self.pinv(self.apply(x, known) - y, known)


def resolve_guidance(task, guidance: str) -> str:
  """'auto' -> 'replace' for masks, 'ddnm' otherwise; 'replace' needs a mask task."""
  if guidance not in GUIDANCE:
    raise ValueError(f'prior guidance {guidance!r}: use one of {GUIDANCE}')
  if guidance == 'auto':
    return 'replace' if task.name in MASK_TASKS else 'ddnm'
  if guidance == 'replace' and task.name not in MASK_TASKS:
    raise ValueError(f"prior guidance 'replace' puts known pixels back and needs a mask task "
                     f"(inpainting, uncropping), not {task.name!r}; use 'ddnm'")
  return guidance


def check_prior(prior_method, prior_config, image_shape) -> None:
  """Refuses a prior that is not an unconditional diffusion run of images of `image_shape`."""
  from genvision_jax.methods.diffusion import DiffusionMethod  # pylint: disable=g-import-not-at-top
  if (not isinstance(prior_method, DiffusionMethod) or hasattr(prior_method, 'translate')
      or prior_config.method != 'diffusion'):
    raise ValueError(f'the prior must be an unconditional diffusion run (method diffusion); '
                     f'this one is {prior_config.method!r}: train one, e.g. '
                     'experiments/ddpm_mnist.py:pad32 for the 32 px digit tasks')
  if prior_method.process.name != 'ddpm' or not hasattr(prior_method.process, 'q_sample'):
    raise ValueError(f'the prior must use the discrete ddpm process (its measurement guidance '
                     f'steps the DDPM posterior); this one uses {prior_method.process.name!r}'
                     f'{" in a latent space" if prior_config.method != "diffusion" else ""}: '
                     'train experiments/ddpm_mnist.py:pad32')
  if prior_method.num_classes:
    raise ValueError('the prior is a class-conditional diffusion run; the measurement '
                     'guidance needs an unconditional one (--config.model.conditional=False)')
  if tuple(prior_method.image_shape) != tuple(image_shape):
    raise ValueError(f'the prior models {tuple(prior_method.image_shape)} images (H, W, C) but '
                     f'the task has {tuple(image_shape)}: train the prior at the task\'s size '
                     'and channels (e.g. experiments/ddpm_mnist.py:pad32 for 32 px digits)')


class PriorGuided:
  """An unconditional `DiffusionMethod` (`prior`) turned into a translator for `task`.

  translate(state, pair, rng) -> outputs [B, H, W, C] (not clipped; see the module docstring)
  for a pair dict of `tasks.degrade` (input, target, known / low); the target is not read.
  """

  def __init__(self, prior, task, steps: int | None = None, eta: float = 1.0,
               guidance: str = 'auto', jump_length: int = 10, resamples: int = 1):
    self.prior, self.task = prior, task
    self.measurement = Measurement(task, prior.image_shape)
    self.guidance = resolve_guidance(task, guidance)
    self.steps = prior.sample_steps if steps is None else int(steps)
    if not 1 <= self.steps <= prior.num_timesteps:
      raise ValueError(f'prior steps must be in [1, {prior.num_timesteps}] (got {self.steps})')
    if eta < 0:
      raise ValueError(f'prior eta must be >= 0 (got {eta})')
    self.eta, self.jump_length, self.resamples = float(eta), int(jump_length), int(resamples)
    self.t_from, self.t_to = transitions(prior.num_timesteps, self.steps, self.jump_length,
                                         self.resamples)

  @property
  def network_evaluations(self) -> int:
    """Denoiser calls per image (the downward transitions)."""
    return int(np.sum(self.t_to < self.t_from))

  def settings(self) -> dict:
    return {'sampler': 'ddim', 'steps': self.steps, 'eta': self.eta,
            'guidance': self.guidance, 'jump_length': self.jump_length,
            'resamples': self.resamples, 'network_evaluations': self.network_evaluations}

  def translate(self, state, pair, rng, use_ema: bool = True):
    prior, process, meas = self.prior, self.prior.process, self.measurement
    y = meas.measure(pair).astype(jnp.float32)
    known = meas.known(pair) if self.task.name in MASK_TASKS else None
    params = state.ema_params if use_ema else state.params
    b = y.shape[0]
    x_rng, chain_rng, data_rng = jax.random.split(rng, 3)
    x = jax.random.normal(x_rng, (b, *prior.image_shape), jnp.float32)
    keys = jax.random.split(chain_rng, len(self.t_from))
    replace = self.guidance == 'replace'

    def consistent(x_t, t, key):  # RePaint: known pixels <- q_sample(y, t) (y itself at t = -1)
      noised = process.q_sample(y, jnp.full((b,), jnp.maximum(t, 0)),
                                jax.random.normal(key, x_t.shape, x_t.dtype))
      return known * jnp.where(t < 0, y, noised) + (1.0 - known) * x_t

    def down(x_t, t, t_to, key):
      x0_hat, eps_hat = prior.denoise(params, x_t, jnp.full((b,), t))
      if not replace:
        x0_hat = meas.project(x0_hat, y, known)
      mean, std = process.ddim_mean_std(x0_hat, eps_hat, jnp.full((b,), t),
                                        jnp.full((b,), t_to), self.eta)
      return mean + std * jax.random.normal(key, x_t.shape, x_t.dtype)

    def up(x_t, t, t_to, key):  # q(x_{t_to} | x_t), t_to > t >= 0
      log_ratio = process.log_alphas_cumprod[t_to] - process.log_alphas_cumprod[t]
      return (jnp.exp(0.5 * log_ratio) * x_t
              + jnp.sqrt(-jnp.expm1(log_ratio)) * jax.random.normal(key, x_t.shape, x_t.dtype))

    def step(x_t, inputs):
      t, t_to, key = inputs
      step_key, data_key = jax.random.split(key)
      x_next = jax.lax.cond(t_to < t, down, up, x_t, t, t_to, step_key)
      if replace:
        x_next = consistent(x_next, t_to, data_key)
      return x_next, None

    if replace:
      x = consistent(x, jnp.int32(self.t_from[0]), data_rng)
    x, _ = jax.lax.scan(step, x, (jnp.asarray(self.t_from), jnp.asarray(self.t_to), keys))
    return x
