"""Denoising diffusion (DDPM, Ho et al. 2020) with DDIM sampling (Song et al. 2021) and
classifier-free guidance (Ho & Salimans 2022).

Training (Algorithm 1 of Ho et al.): x_0 from the data, t ~ U{0 .. T-1}, eps ~ N(0, I),
x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, and a gradient step on the simple loss
||target - net(x_t, t, c)||^2 with target eps ('eps') or v = sqrt(abar_t) eps - sqrt(1 - abar_t)
x_0 ('v'). A class-conditional model replaces each label by the null class with probability
`diffusion.p_uncond`, so one network learns both p(x | c) and p(x). The state keeps an EMA of
the weights (Ho et al. sample from it); sampling and the bound use the EMA by default.

Sampling runs the whole reverse chain in one `lax.scan` inside jit: ancestral DDPM over all T
steps (Algorithm 2: x_{t-1} = mu~(x_t, x0_hat) + sigma_t z, sigma_t^2 = beta~_t or beta_t), or
DDIM over `sample_steps` evenly spaced steps with stochasticity eta (0: deterministic).
Guidance scale w: out = (1 + w) net(x_t, c) - w net(x_t, null) (w = 0: conditional sampling).

The process is `diffusion.process` (`genvision_jax.diffusion.processes`): 'ddpm' (the discrete
process above, the default and what every run written before it existed uses), 'vp'
(continuous VP SDE), 'flow' (flow matching) or 'edm' (Karras et al.'s preconditioning); the
samplers of `genvision_jax.diffusion.samplers` (ddim, euler, heun, euler_maruyama, dpmpp_2m)
run every process they apply to, with guidance. For the ddpm process the ancestral and DDIM
samplers are the index-based chains below, unchanged.
"""

import functools

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from genvision_jax import diffusion as diffusion_lib
from genvision_jax import losses
from genvision_jax import models
from genvision_jax.methods import common

SAMPLERS = diffusion_lib.samplers.SAMPLERS
PROCESSES = diffusion_lib.processes.PROCESSES


@flax.struct.dataclass
class DiffusionState:
  step: jax.Array
  params: dict
  opt_state: optax.OptState
  ema_params: dict
  rng: jax.Array


class DiffusionMethod:
  """create_state / train_step / generate / decode / bits_per_dim for diffusion models,
  configured by `config.model` (the denoiser), `config.diffusion` and `config.optim`."""

  minibatches_per_step = None  # one [B, H, W, C] minibatch per step

  def __init__(self, config, image_shape, num_classes=0):
    m, d = config.model, config.diffusion
    self.num_classes = int(num_classes) if m.get('conditional', False) else 0
    if m.get('conditional', False) and self.num_classes < 1:
      raise ValueError('model.conditional needs a labelled dataset (num_classes > 0)')
    self.config = config
    self.image_shape = tuple(image_shape)
    self.x_shape = self.diffusion_shape(config, self.image_shape)  # what the process corrupts
    self.latent_dim = int(np.prod(self.x_shape))  # x_T, flattened (see `decode`)
    # A `processes.Process`; for 'ddpm' also the `GaussianDiffusion` of its schedule.
    self.process = diffusion_lib.processes.make(d)
    self.num_timesteps = int(d.num_timesteps)  # T of the ddpm process
    self.clip = bool(d.get('clip_denoised', True))
    self.prediction = d.prediction
    self.loss_fn = losses.DIFFUSION_LOSSES[d.loss]
    self.p_uncond = float(d.p_uncond)
    self.variance = d.variance
    self.sampler, self.sample_steps = d.sampler, int(d.sample_steps)
    self.eta, self.guidance = float(d.eta), float(d.guidance)
    self.ema_decay = float(config.train.ema_decay)
    self.ema_start = int(config.train.ema_start)
    self.model = models.DENOISERS[m.architecture](
        channels=self.x_shape[-1], base=m.base, channel_mults=tuple(m.channel_mults),
        num_res_blocks=m.num_res_blocks, attention_resolutions=tuple(m.attention_resolutions),
        dropout=m.dropout, num_heads=m.num_heads, num_classes=self.num_classes,
        dtype=jnp.dtype(config.train.compute_dtype))
    self.tx = common.make_optimizer(config.optim)

  def diffusion_shape(self, config, image_shape) -> tuple:
    """The shape of one x_0 of the process: the image (latent diffusion: the code)."""
    del config
    return tuple(image_shape)

  @property
  def conditioned(self) -> bool:
    """Whether the network takes a condition (class labels here) that guidance can drop."""
    return bool(self.num_classes)

  @property
  def null_label(self) -> int:
    """The class index meaning "no class" (classifier-free guidance)."""
    return self.num_classes

  def create_state(self, rng, example_batch=None) -> DiffusionState:
    del example_batch
    init_rng, state_rng = jax.random.split(rng)
    x = jnp.zeros((1, *self.x_shape), jnp.float32)
    t = jnp.zeros((1,), jnp.int32)
    labels = jnp.zeros((1,), jnp.int32) if self.num_classes else None
    params = self.model.init(init_rng, x, t, labels)['params']
    return DiffusionState(step=jnp.zeros((), jnp.int32), params=params,
                          opt_state=self.tx.init(params),
                          ema_params=jax.tree.map(jnp.copy, params),  # own buffers (donation)
                          rng=state_rng)

  # -- training ------------------------------------------------------------------------------

  def train_labels(self, batch, rng):
    """The batch's labels with each replaced by the null class with probability p_uncond;
    None for an unconditional model."""
    if not self.num_classes:
      return None
    labels = batch['label'].astype(jnp.int32)
    drop = jax.random.bernoulli(rng, self.p_uncond, labels.shape)
    return jnp.where(drop, self.null_label, labels)

  def loss_terms(self, params, x0, labels, rng, train: bool = True):
    """Per-example loss at random t and noise (the process's target and weight), and the t
    drawn (the process's time: index + 1 for ddpm)."""
    t_rng, n_rng, drop_rng = jax.random.split(rng, 3)
    t = self.process.sample_t(t_rng, x0.shape[0])
    noise = jax.random.normal(n_rng, x0.shape, jnp.float32)
    xt = self.process.corrupt(x0, t, noise)
    x_in, time_in = self.process.net_inputs(xt, t)
    out = self.model.apply({'params': params}, x_in, time_in, labels, train=train,
                           rngs={'dropout': drop_rng})
    target = self.process.target(x0, noise, t)
    return self.process.loss_weight(t) * self.loss_fn(out, target), t

  def batch_loss(self, params, batch, rng):
    """(per-example loss, t) of one minibatch: the simple loss of its images at random t."""
    label_rng, loss_rng = jax.random.split(rng)
    x0 = batch['image'].astype(jnp.float32)
    return self.loss_terms(params, x0, self.train_labels(batch, label_rng), loss_rng)

  def train_step(self, state: DiffusionState, batch):
    rng = jax.random.fold_in(state.rng, state.step)

    def loss_fn(params):
      per_example, t = self.batch_loss(params, batch, rng)
      return jnp.mean(per_example), (per_example, t)

    (loss, (per_example, t)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = self.tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    ema = common.ema_update(state.ema_params, params, state.step, self.ema_decay, self.ema_start)
    # The loss at small and large t (first and last quarter of the chain), batch means.
    level = self.process.level(t)  # 0 at the data, 1 at the noise end
    early, late = level < 0.25, level >= 0.75
    masked_mean = lambda m: jnp.sum(jnp.where(m, per_example, 0.0)) / jnp.maximum(m.sum(), 1)
    metrics = {
        'loss': loss,
        'loss_t_first_quarter': masked_mean(early),
        'loss_t_last_quarter': masked_mean(late),
        'grad_norm': common.global_norm(grads),
        'param_norm': common.global_norm(params),
    }
    state = state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                          ema_params=ema)
    return state, metrics

  # -- the reverse process -------------------------------------------------------------------

  def network_output(self, params, xt, t, labels, guidance: float):
    """The denoiser's output at x_t; with guidance w != 0, (1 + w) out(c) - w out(null) from
    one pass over the concatenated conditional and unconditional batches."""
    if labels is None or guidance == 0:
      return self.model.apply({'params': params}, xt, t, labels)
    null = jnp.full_like(labels, self.null_label)
    out = self.model.apply({'params': params}, jnp.concatenate([xt, xt]),
                           jnp.concatenate([t, t]), jnp.concatenate([labels, null]))
    cond, uncond = jnp.split(out, 2)
    return diffusion_lib.guided_output(cond, uncond, guidance)

  def denoise(self, params, xt, t, labels=None, guidance: float = 0.0):
    """(x0_hat clipped to [-1, 1], eps_hat consistent with it) at x_t, t [B]: for the ddpm
    process t is the index 0 .. T-1 (the chains below, DDIM inversion, the bound); for the
    others the process's time (`denoise_at`)."""
    if self.process.name != 'ddpm':
      return self.denoise_at(params, xt, t, labels, guidance)
    out = self.network_output(params, xt, t, labels, guidance)
    return self.process.to_x0_eps(self.prediction, out, xt, t, clip=True)

  def denoise_at(self, params, x, t, labels=None, guidance: float = 0.0,
                 clip: bool | None = None):
    """(x0_hat, eps_hat) at x, time t [B] of the process (index + 1 for ddpm): what the
    samplers of `diffusion.samplers` call. x0_hat is clipped to [-1, 1] when `clip` (default:
    diffusion.clip_denoised)."""
    x_in, time_in = self.process.net_inputs(x, t)
    out = self.network_output(params, x_in, time_in, labels, guidance)
    return self.process.denoised(out, x, t, clip=self.clip if clip is None else clip)

  def _labels(self, label, num: int, rng):
    """[num] int32 labels for a conditional model (uniform when label is None); None for an
    unconditional one (a label is then an error)."""
    if not self.num_classes:
      if label is not None:
        raise ValueError('this diffusion model is unconditional: it takes no label '
                         '(train with --config.model.conditional=True)')
      return None
    if label is None:
      return jax.random.randint(rng, (num,), 0, self.num_classes)
    return jnp.broadcast_to(jnp.asarray(label, jnp.int32), (num,))

  def sample_settings(self, sampler=None, steps=None, eta=None, guidance=None):
    """(sampler, timesteps, eta, guidance), config defaults filled in. For the ddpm process
    with the ddpm/ddim samplers, timesteps are the indices from T-1 down to 0 (DDPM runs all T);
    otherwise the process's time grid ([steps + 1], descending to 0). ValueError for a sampler
    the process cannot use."""
    sampler = sampler or self.sampler
    diffusion_lib.samplers.check(self.process, sampler)
    if sampler == 'ddpm':
      if steps is not None and steps != self.num_timesteps:
        raise ValueError(f'the DDPM sampler runs all T={self.num_timesteps} steps (got steps='
                         f'{steps}); for fewer steps use the DDIM sampler (eta=1 is ancestral '
                         'sampling on the subsequence)')
      steps = self.num_timesteps
    else:
      steps = self.sample_steps if steps is None else int(steps)
    if steps < 1:
      raise ValueError(f'sampling steps must be >= 1 (got {steps})')
    eta = self.eta if eta is None else float(eta)
    guidance = self.guidance if guidance is None else float(guidance)
    if guidance and not self.conditioned:
      raise ValueError(f'guidance={guidance} needs a class-conditional model (classifier-free '
                       'guidance); use guidance=0')
    if self.legacy_chain(sampler):
      return sampler, diffusion_lib.sampling_timesteps(self.num_timesteps, steps), eta, guidance
    return sampler, self.process.grid(steps, sampler), eta, guidance

  def legacy_chain(self, sampler: str) -> bool:
    """Whether `sampler` runs as the index-based chain of the ddpm process (`reverse_chain`)."""
    return self.process.name == 'ddpm' and sampler in ('ddpm', 'ddim')

  def nfe(self, sampler=None, steps=None) -> int:
    """Network evaluations of one sample (guidance doubles the batch, not the calls)."""
    sampler, timesteps, _, _ = self.sample_settings(sampler, steps)
    steps = len(timesteps) if self.legacy_chain(sampler) else len(timesteps) - 1
    return diffusion_lib.samplers.nfe(sampler, steps)

  def reverse_chain(self, params, x_T, rng, labels, sampler: str, timesteps, eta: float,
                    guidance: float, project=None):
    """Runs the reverse chain from x_T over `timesteps` (descending, static) in one lax.scan;
    returns x_0 clipped to [-1, 1]. rng None: no noise is drawn (deterministic DDIM).
    project: applied to x_T and to every new x_{t-1} (e.g. known pixels put back)."""
    project = project or (lambda x: x)
    x_T = project(x_T)
    b = x_T.shape[0]
    ts = jnp.asarray(timesteps, jnp.int32)
    t_prevs = jnp.concatenate([ts[1:], jnp.full((1,), -1, jnp.int32)])
    keys = (jax.random.split(rng, len(timesteps)) if rng is not None
            else jnp.zeros((len(timesteps), 2), jnp.uint32))

    def step(x, inputs):
      t, t_prev, key = inputs
      tb, t_prev_b = jnp.full((b,), t), jnp.full((b,), t_prev)
      x0_hat, eps_hat = self.denoise(params, x, tb, labels, guidance)
      if sampler == 'ddpm':
        mean, log_var = self.process.p_mean_variance(x0_hat, x, tb, self.variance)
        std = jnp.where(t > 0, jnp.exp(0.5 * log_var), 0.0)
      else:
        mean, std = self.process.ddim_mean_std(x0_hat, eps_hat, tb, t_prev_b, eta)
      if rng is None:
        return project(mean), None
      return project(mean + std * jax.random.normal(key, x.shape, x.dtype)), None

    x, _ = jax.lax.scan(step, x_T, (ts, t_prevs, keys))
    return jnp.clip(x, -1.0, 1.0)

  def generate(self, state: DiffusionState, rng, num: int, label=None, use_ema: bool = True,
               sampler: str | None = None, steps: int | None = None, eta: float | None = None,
               guidance: float | None = None):
    """num images in [-1, 1] by the reverse chain from x_T ~ N(0, I).

    label: for a conditional model, one class for all images or an array of num labels
      (None draws them uniformly). sampler ('ddpm' | 'ddim'), steps (DDIM), eta (DDIM) and
      guidance (w, conditional models) default to `config.diffusion`. Keyword arguments other
      than label are static: jit with them bound (functools.partial).
    """
    sampler, timesteps, eta, guidance = self.sample_settings(sampler, steps, eta, guidance)
    x_rng, label_rng, chain_rng = jax.random.split(rng, 3)
    labels = self._labels(label, num, label_rng)
    x_T = jax.random.normal(x_rng, (num, *self.x_shape), jnp.float32)
    params = state.ema_params if use_ema else state.params
    if self.legacy_chain(sampler):
      deterministic = sampler == 'ddim' and eta == 0
      return self.reverse_chain(params, x_T, None if deterministic else chain_rng, labels,
                                sampler, timesteps, eta, guidance)
    return self.solve(params, self.process.prior_std * x_T, chain_rng, labels, sampler,
                      timesteps, eta, guidance)

  def solve(self, params, x_T, rng, labels, sampler: str, grid, eta: float, guidance: float):
    """x_0 from x_T by a sampler of `diffusion.samplers` over the process's `grid`."""
    denoise = lambda x, t: self.denoise_at(params, x, t, labels, guidance)
    noisy = sampler in diffusion_lib.samplers.STOCHASTIC or (sampler == 'ddim' and eta > 0)
    x = diffusion_lib.samplers.sample(self.process, denoise, x_T, grid, sampler,
                                      rng if noisy else None, eta)
    return jnp.clip(x, -1.0, 1.0) if self.clip else x

  def decode(self, state: DiffusionState, z, labels=None, use_ema: bool = True,
             steps: int | None = None, guidance: float | None = None):
    """The deterministic DDIM map (eta = 0) from latents x_T, flattened [N, H*W*C], to
    images in [-1, 1]: the latent space the interpolation tools walk (Song et al. show that
    slerp between x_T's interpolates images). steps defaults to diffusion.sample_steps."""
    _, timesteps, _, guidance = self.sample_settings('ddim', steps, 0.0, guidance)
    if self.num_classes and labels is None:
      raise ValueError('a class-conditional model decodes with labels [N]')
    if not self.num_classes and labels is not None:
      raise ValueError('this diffusion model is unconditional: it takes no labels')
    x_T = z.reshape(z.shape[0], *self.x_shape).astype(jnp.float32)
    params = state.ema_params if use_ema else state.params
    labels = None if labels is None else jnp.asarray(labels, jnp.int32)
    if not self.legacy_chain('ddim'):
      return self.solve(params, self.process.prior_std * x_T, None, labels, 'ddim', timesteps,
                        0.0, guidance)
    return self.reverse_chain(params, x_T, None, labels, 'ddim', timesteps, 0.0, guidance)

  def invert(self, state: DiffusionState, images, labels=None, use_ema: bool = True,
             steps: int | None = None):
    """DDIM inversion: the x_T [N, H, W, C] that deterministic DDIM (`decode`) would map to
    these images, by running the eta = 0 step up the chain over the sampler's S steps
    (data -> index 0 -> ... -> T - 1), eps_hat evaluated at the current x and level. Exact for a
    denoiser whose eps_hat does not change within a step; otherwise the usual approximation
    (Tree-Ring watermark detection reads the key from it). A conditional model inverts with
    the given labels, or with the null class (needs label dropout in training)."""
    if self.process.name != 'ddpm':
      raise ValueError(f'DDIM inversion is built for the ddpm process (this run uses '
                       f'{self.process.name!r})')
    _, timesteps, _, _ = self.sample_settings('ddim', steps, 0.0, 0.0)
    if labels is None and self.num_classes:
      if not self.conditioned or self.p_uncond <= 0:
        raise ValueError('this class-conditional model was trained without label dropout, so it '
                         'has no unconditional denoiser to invert with: pass labels')
      labels = jnp.full((images.shape[0],), self.null_label, jnp.int32)
    elif labels is not None and not self.num_classes:
      raise ValueError('this diffusion model is unconditional: it takes no labels')
    params = state.ema_params if use_ema else state.params
    ascending = jnp.asarray(np.asarray(timesteps)[::-1].copy(), jnp.int32)
    t_froms = jnp.concatenate([jnp.full((1,), -1, jnp.int32), ascending[:-1]])
    b = images.shape[0]

    def step(x, inputs):
      t_from, t_to = inputs
      from_b, to_b = jnp.full((b,), t_from), jnp.full((b,), t_to)
      x0_hat, eps_hat = self.denoise(params, x, jnp.maximum(from_b, 0), labels)
      return self.process.ddim_invert_step(x, x0_hat, eps_hat, from_b, to_b), None

    x, _ = jax.lax.scan(step, jnp.asarray(images, jnp.float32), (t_froms, ascending))
    return x

  # -- evaluation ----------------------------------------------------------------------------

  def bits_per_dim(self, state: DiffusionState, batch, rng, use_ema: bool = True):
    """The variational bound on -log2 p(x_0) / D for each example of `batch` (data on 256
    levels in [-1, 1]): L_T + sum of all T - 1 KL terms + the discretized decoder term L_0,
    one x_t per term (an unbiased single-sample estimate of the bound), with the configured
    fixed variance (`diffusion.variance`) and the network's x0_hat clipped to [-1, 1]. A
    conditional model is evaluated given the true labels (guidance 0): the bound on
    -log p(x | c). Returns per-example {'total', 'prior', 'decoder', 'terms' [B, T]}."""
    if self.process.name != 'ddpm':
      raise ValueError(f'the all-T bound is the discrete ddpm process\'s; this run uses the '
                       f'{self.process.name!r} process: use the Monte-Carlo estimate')
    params = state.ema_params if use_ema else state.params
    x0 = batch['image'].astype(jnp.float32)
    labels = (jnp.asarray(batch['label'], jnp.int32) if self.num_classes else None)
    denoise = lambda xt, t: self.denoise(params, xt, t, labels)[0]
    return self.process.bits_per_dim(denoise, x0, rng, self.variance)

  def bits_per_dim_mc(self, state: DiffusionState, batch, rng, num_t: int = 32,
                      use_ema: bool = True):
    """An unbiased Monte-Carlo estimate of the bound per example (`diffusion.likelihood`):
    the discrete bound with num_t strata of t and antithetic pairs for the ddpm process, the
    continuous-time VDM bound with num_t strata of log SNR for the others. Conditional
    models: the bound on -log p(x | c). Returns per-example {'total', 'prior', 'decoder',
    'diffusion'}."""
    params = state.ema_params if use_ema else state.params
    x0 = batch['image'].astype(jnp.float32)
    labels = (jnp.asarray(batch['label'], jnp.int32) if self.num_classes else None)
    if self.process.name == 'ddpm':
      denoise = lambda xt, t: self.denoise(params, xt, t, labels)[0]
      return diffusion_lib.likelihood.discrete_bpd(self.process, denoise, x0, rng, num_t,
                                                   self.variance)
    denoise = lambda xt, t: self.denoise_at(params, xt, t, labels)[0]
    return diffusion_lib.likelihood.continuous_bpd(self.process, denoise, x0, rng, num_t)

  def bits_per_dim_ode(self, state: DiffusionState, batch, rng, steps: int = 50,
                       use_ema: bool = True, dequantization: str = 'uniform'):
    """Bits/dim of each example by the probability-flow ODE (`diffusion.likelihood.ode_bpd`:
    Heun with `steps` steps, Hutchinson's divergence, `dequantization` within each 8-bit
    level), the network's x0_hat unclipped. Conditional models: -log p(x | c). Returns
    per-example {'total', 'dequantization'}."""
    params = state.ema_params if use_ema else state.params
    x0 = batch['image'].astype(jnp.float32)
    labels = (jnp.asarray(batch['label'], jnp.int32) if self.num_classes else None)
    denoise = lambda x, t: self.denoise_at(params, x, t, labels, clip=False)
    return diffusion_lib.likelihood.ode_bpd(self.process, denoise, x0, rng, steps,
                                            dequantization=dequantization)

  # -- config (owned by the method: `configs.method_config` / `validate` / `from_dict` call
  # -- these) --------------------------------------------------------------------------------

  @staticmethod
  def default_sections() -> dict:
    """The sections this method owns, at their defaults (DDPM, Ho et al. 2020, sized for
    28 px digits; Adam 1e-3 clipped at 1 with a warm-up)."""
    optim = common.optimizer_config('adam', learning_rate=1e-3)
    optim.grad_clip = 1.0    # Ho et al. clip at 1 and warm up
    optim.warmup_steps = 200
    return {
        'model': ml_collections.ConfigDict(dict(
            architecture='unet',
            base=16,                     # channels of the first level
            channel_mults=(1, 2, 4),     # widths per level: 28 -> 14 -> 7 px
            num_res_blocks=1,            # residual blocks per level (the decoder has one more)
            attention_resolutions=(7,),  # self-attention after the blocks at these sizes
            num_heads=4,
            dropout=0.0,                 # Ho et al.: 0.1 on CIFAR-10; short runs underfit anyway
            conditional=False,           # class embedding (+ null class for guidance)
        )),
        'diffusion': ml_collections.ConfigDict(dict(
            schedule='linear',    # 'linear' (1e-4 .. 0.02 at T = 1000) or 'cosine'
            num_timesteps=1000,   # T
            prediction='eps',     # network output: 'eps' or 'v'
            loss='mse',           # 'mse' (L_simple) or 'l1'
            process='ddpm',       # 'ddpm' (discrete, Ho et al.), 'vp', 'flow' or 'edm'
            t_sampling='uniform',  # flow matching: t 'uniform' or 'logit_normal' (SD3)
            clip_denoised=True,   # clip x0_hat to [-1, 1] while sampling (pixel data)
            variance='large',     # sigma_t^2 of p(x_{t-1}|x_t): 'large' = beta_t, 'small' = beta~_t
            p_uncond=0.1,         # conditional models: label dropout to the null class
            sampler='ddim',       # ddim, ddpm (all T, ddpm process), euler, heun,
                                  # euler_maruyama, dpmpp_2m (diffusion.samplers)
            sample_steps=50,      # sampler steps (heun: 2 steps - 1 network calls)
            eta=0.0,              # DDIM stochasticity: 0 deterministic, 1 ancestral-like
            guidance=0.0,         # classifier-free guidance w (conditional models)
        )),
        'optim': optim,
    }


  # Fields besides configs.RESUMABLE_FIELDS a resumed run may change: how the sample grids
  # are drawn, not what is trained.
  RESUMABLE_FIELDS = ('diffusion.sampler', 'diffusion.sample_steps', 'diffusion.eta',
                      'diffusion.guidance')
  # section -> {field: value reproducing runs written before it existed}
  LATER_DEFAULTS = {'diffusion': {'process': 'ddpm', 't_sampling': 'uniform',
                                  'clip_denoised': True}}

  @staticmethod
  def validate_config(config, check, conditioned: bool | None = None) -> None:
    """The `model` (U-Net), `diffusion` and `optim` fields (check: common.ConfigChecks).
    conditioned: whether the model is conditioned (default: model.conditional; text-to-image
    models are, on their captions)."""
    m, p, size = config.model, config.diffusion, config.data.image_size
    conditioned = m.conditional if conditioned is None else conditioned
    need, positive_int = check.need, check.positive_int
    need(m.architecture in models.DENOISERS, 'model.architecture must be one of '
         f'{sorted(models.DENOISERS)} (got {m.architecture!r})')
    for key in ('base', 'num_res_blocks', 'num_heads'):
      positive_int(f'model.{key}', m[key])
    mults = tuple(m.channel_mults)
    is_int = lambda v: isinstance(v, int) and not isinstance(v, bool)
    unet = m.architecture == 'unet'  # the checks of levels and heads are the U-Net's
    need(len(mults) >= 1 and all(is_int(v) and v > 0 for v in mults),
         f'model.channel_mults must be positive integers, one per level (got {mults!r})')
    if unet and mults and isinstance(size, int) and size > 0:
      halvings = len(mults) - 1
      need(size % 2**halvings == 0, f'model.channel_mults={mults} halves data.image_size='
           f'{size} {halvings} times, which does not divide it; use fewer levels (e.g. '
           '(1, 2, 2) for 28 px: 28 -> 14 -> 7)')
      sizes = [size // 2**i for i in range(len(mults))]
      bad = [r for r in m.attention_resolutions if r not in sizes]
      need(not bad or size % 2**halvings, 'model.attention_resolutions='
           f'{tuple(m.attention_resolutions)} names sizes the U-Net does not have: its levels '
           f'are {tuple(sizes)} px')
    if unet and is_int(m.num_heads) and is_int(m.base) and all(is_int(v) for v in mults):
      need(all(m.base * v % m.num_heads == 0 for v in mults),
           f'model.num_heads={m.num_heads} must divide every level width base * mult '
           f'({[m.base * v for v in mults]})')
    need(0.0 <= m.dropout < 1.0, f'model.dropout must be in [0, 1) (got {m.dropout!r})')
    need(p.schedule in diffusion_lib.SCHEDULES,
         f'diffusion.schedule must be one of {diffusion_lib.SCHEDULES} (got {p.schedule!r})')
    need(is_int(p.num_timesteps) and p.num_timesteps >= 2,
         f'diffusion.num_timesteps must be an integer >= 2 (got {p.num_timesteps!r})')
    need(p.process in PROCESSES,
         f'diffusion.process must be one of {PROCESSES} (got {p.process!r})')
    allowed = diffusion_lib.processes.PROCESS_PREDICTIONS.get(p.process, ())
    need(p.process not in PROCESSES or p.prediction in allowed,
         f'diffusion.prediction={p.prediction!r} does not apply to the {p.process!r} process: '
         f'use {" or ".join(allowed)} (--config.diffusion.prediction={allowed[0] if allowed else ""})')
    need(p.t_sampling in diffusion_lib.processes.T_SAMPLINGS, 'diffusion.t_sampling must be one '
         f'of {diffusion_lib.processes.T_SAMPLINGS} (got {p.t_sampling!r})')
    need(isinstance(p.clip_denoised, bool),
         f'diffusion.clip_denoised must be True or False (got {p.clip_denoised!r})')
    need(p.clip_denoised or p.process != 'ddpm' or config.method == 'latent_diffusion',
         'diffusion.clip_denoised=False needs a process other than ddpm (the ddpm chains and '
         'bounds clip x0_hat to [-1, 1], as every ddpm run was trained and sampled)')
    need(p.loss in losses.DIFFUSION_LOSSES, 'diffusion.loss must be one of '
         f'{sorted(losses.DIFFUSION_LOSSES)} (got {p.loss!r})')
    need(p.variance in diffusion_lib.VARIANCES, 'diffusion.variance must be one of '
         f'{diffusion_lib.VARIANCES} (got {p.variance!r})')
    need(p.sampler in SAMPLERS,
         f'diffusion.sampler must be one of {SAMPLERS} (got {p.sampler!r})')
    if p.sampler in SAMPLERS and p.process in PROCESSES:
      try:
        process = diffusion_lib.processes.make(p, prediction=allowed[0])
      except (ValueError, TypeError):
        process = None  # an invalid field, reported by its own check
      if process is not None:
        try:
          diffusion_lib.samplers.check(process, p.sampler)
        except ValueError as e:
          need(False, f'diffusion.sampler={p.sampler!r}: {e}')
    if p.process != 'ddpm':
      need(is_int(p.sample_steps) and p.sample_steps >= 1,
           f'diffusion.sample_steps must be an integer >= 1 (got {p.sample_steps!r})')
    elif is_int(p.num_timesteps):
      need(is_int(p.sample_steps) and 1 <= p.sample_steps <= p.num_timesteps,
           f'diffusion.sample_steps must be in [1, num_timesteps={p.num_timesteps}] '
           f'(got {p.sample_steps!r})')
    need(p.eta >= 0, f'diffusion.eta must be >= 0 (got {p.eta!r})')
    need(0.0 <= p.p_uncond < 1.0, f'diffusion.p_uncond must be in [0, 1) (got {p.p_uncond!r})')
    need(p.guidance >= 0, f'diffusion.guidance must be >= 0 (0 = no guidance; got '
         f'{p.guidance!r})')
    if p.guidance > 0:
      need(conditioned, f'diffusion.guidance={p.guidance} is classifier-free guidance and '
           'needs a class-conditional model (--config.model.conditional=True)')
      need(p.p_uncond > 0, f'diffusion.guidance={p.guidance} needs diffusion.p_uncond > 0: '
           'without label dropout the null class is never trained')
    check.optimizer('optim', config.optim)


def bits_per_dim_fn(method: DiffusionMethod, use_ema: bool = True):
  """A jitted fn(state, batch, rng) -> per-example bound terms (see bits_per_dim)."""
  return jax.jit(functools.partial(method.bits_per_dim, use_ema=use_ema))
