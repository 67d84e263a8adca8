"""Progressive growing of GANs (Karras et al. 2018) on the GAN method's Algorithm 1 step.

The schedule is a function of the step, `config.progan.{stable_steps, fade_steps}`:

  stage 0 (base resolution)          stable_steps steps, alpha = 1
  then for each stage s = 1 .. last: fade_steps steps with alpha rising linearly 0 -> 1,
                                     then stable_steps steps at alpha = 1
  after the schedule: the last stage.

Both networks run at the current stage's resolution; the real images are average-pooled to
it and, during a fade-in, blended with their lower-resolution version in the same way as
G's output (so D cannot tell real from fake by the blend). The critic's loss carries the
paper's drift term `progan.drift` * E[D(x)^2] (eps_drift = 0.001), logged as `d_drift`.
The stage is a function of the step alone, so a run resumes mid-phase; the training loop
compiles one step per stage (`phase`, `phase_end`, `train_step_for`: see
`training.steps.phase_at`), in which alpha is computed from the step on the device.
`generate`/`decode` use the stage of the state's step and return images at the final resolution
(nearest-neighbour upsampled), clipped to [-1, 1].
"""

import jax
import jax.numpy as jnp

from genvision_jax.methods.gan import GANMethod
from genvision_jax.models import layers
from genvision_jax.models import progan as progan_models


class ProGANMethod(GANMethod):
  """`GANMethod` with the growing schedule of `config.progan`."""

  def __init__(self, config, image_shape, num_classes=0):
    if config.model.get('conditional', False):
      raise ValueError('progressive growing is unconditional: drop model.conditional')
    super().__init__(config, image_shape, 0)
    self.num_stages = progan_models.num_stages(image_shape[0])
    self.stable_steps = int(config.progan.stable_steps)
    self.fade_steps = int(config.progan.fade_steps)
    # Karras et al.'s drift term eps_drift * E[D(x)^2] in D's loss (0.001; 0 in run
    # directories written before it existed).
    self.drift_weight = float(config.progan.drift)
    self._growth = None  # (stage, alpha) while one stage's step is being traced

  # -- schedule -------------------------------------------------------------------------------

  def schedule_length(self) -> int:
    """Steps until the last stage is stable."""
    return self.stable_steps + (self.num_stages - 1) * (self.fade_steps + self.stable_steps)

  def stage_alpha(self, step):
    """(stage, alpha) at `step` as int32 / float32 scalars (traceable).

    alpha < 1 only while a stage fades in: (i + 1) / fade_steps at its i-th step.
    """
    step = jnp.asarray(step, jnp.int32)
    period = self.fade_steps + self.stable_steps
    after = step - self.stable_steps
    grown = jnp.where(after < 0, 0, after // period + 1)
    stage = jnp.minimum(grown, self.num_stages - 1)
    into = jnp.where(after < 0, 0, after % period)
    fading = (grown >= 1) & (grown <= self.num_stages - 1) & (into < self.fade_steps)
    alpha = jnp.where(fading, (into + 1) / max(self.fade_steps, 1), 1.0)
    return stage.astype(jnp.int32), alpha.astype(jnp.float32)

  def phase(self, step: int) -> int:
    """The stage at `step` (a Python int: the training loop compiles one step per stage)."""
    if step < self.stable_steps:
      return 0
    return min((step - self.stable_steps) // (self.fade_steps + self.stable_steps) + 1,
               self.num_stages - 1)

  def phase_end(self, step: int) -> int | None:
    """The first step of the stage after `step`'s, None during the last stage."""
    stage = self.phase(step)
    if stage == self.num_stages - 1:
      return None
    return self.stable_steps + stage * (self.fade_steps + self.stable_steps)

  def resolution(self, stage: int) -> int:
    return progan_models.stage_resolution(self.image_shape[0], stage)

  def real_at_stage(self, images, stage: int, alpha):
    """Real images [..., H, W, C] at the final resolution -> stage's resolution, blended with
    their 2x lower-resolution version while the stage fades in."""
    lead = images.shape[:-3]
    x = images.reshape(-1, *images.shape[-3:])
    x = progan_models.downsample(x, 2**(self.num_stages - 1 - stage))
    if stage > 0:
      low = progan_models.upsample2x(progan_models.downsample(x))
      x = (1 - alpha) * low + alpha * x
    return x.reshape(*lead, *x.shape[1:])

  # -- networks at the traced stage -----------------------------------------------------------

  def _growth_kwargs(self):
    if self._growth is None:
      return {}
    stage, alpha = self._growth
    return {'stage': stage, 'alpha': alpha if stage > 0 else None}

  def _generate_train(self, g_params, g_batch_stats, z, labels=None):
    images = self.generator.apply({'params': g_params}, z, labels, train=True,
                                  **self._growth_kwargs())
    return images, g_batch_stats

  def _discriminate_train(self, d_params, d_batch_stats, images, labels=None):
    logits = self.discriminator.apply({'params': d_params}, images, labels, train=True,
                                      **self._growth_kwargs())
    return logits, d_batch_stats

  # -- the step -------------------------------------------------------------------------------

  def _stage_step(self, stage: int, state, batch, alpha):
    self._growth = (stage, alpha)
    try:
      batch = {**batch, 'image': self.real_at_stage(batch['image'], stage, alpha)}
      state, metrics = GANMethod.train_step(self, state, batch)
    finally:
      self._growth = None
    metrics['alpha'] = jnp.asarray(alpha, jnp.float32)
    metrics['resolution'] = jnp.asarray(self.resolution(stage), jnp.float32)
    return state, metrics

  def train_step_for(self, stage: int):
    """The training step of one stage: `fn(state, batch) -> (state, metrics)`, pure and
    jit-able, valid for the steps of that stage (alpha follows state.step)."""
    def step_fn(state, batch):
      return self._stage_step(stage, state, batch, self.stage_alpha(state.step)[1])
    return step_fn

  def train_step(self, state, batch):
    """batch['image']: [d_steps, B, H, W, C] at the final resolution; any step.

    One function for the whole schedule, the stages being branches of `lax.switch`. The
    training loop compiles `train_step_for(stage)` per stage instead: XLA:CPU ran the
    switch ~40x slower than the branch alone (measured at 16 px: 0.07 vs 2.7 it/s).
    """
    stage, alpha = self.stage_alpha(state.step)
    branches = [lambda st, b, a, s=s: self._stage_step(s, st, b, a)
                for s in range(self.num_stages)]
    with layers.loop_safe_convolutions():
      return jax.lax.switch(stage, branches, state, batch, alpha)

  def decode(self, state, z, use_ema: bool = True, labels=None):
    """G(z) at the state's stage, upsampled to the final resolution, clipped to [-1, 1]."""
    if labels is not None:
      raise ValueError('progressive growing is unconditional: it takes no label')
    params = state.ema_params if use_ema else state.g_params
    stage, alpha = self.stage_alpha(state.step)

    def at_stage(s):
      def run(params, z, alpha):
        x = self.generator.apply({'params': params}, z, None, train=False, stage=s,
                                 alpha=alpha if s > 0 else None)
        for _ in range(self.num_stages - 1 - s):
          x = progan_models.upsample2x(x)
        return x
      return run

    images = jax.lax.switch(stage, [at_stage(s) for s in range(self.num_stages)], params, z,
                            alpha)
    return jnp.clip(images, -1.0, 1.0)

  # -- config (owned by the method; GANMethod.LATER_DEFAULTS are extended) -----------------

  # Runs written before the drift term existed trained without it.
  LATER_DEFAULTS = {**GANMethod.LATER_DEFAULTS, 'progan': dict(drift=0.0)}

  @staticmethod
  def validate_config(config, check) -> None:
    """The `progan` fields and the growing models, then every GAN field."""
    m, p, need = config.model, config.progan, check.need
    check.positive_int('progan.stable_steps', p.stable_steps)
    check.positive_int('progan.fade_steps', p.fade_steps)
    need(p.drift >= 0, f'progan.drift (eps_drift) must be >= 0 (got {p.drift!r}); 0.001 is '
         "Karras et al.'s, 0 turns the drift term off")
    need(m.generator == 'progan' and m.discriminator == 'progan',
         "method='progan' grows model.generator='progan' and model.discriminator='progan' "
         f'(got {m.generator!r}, {m.discriminator!r})')
    need(m.d_norm == 'none' and not m.d_spectral_norm, "the progressive discriminator has "
         "no normalization layers: use model.d_norm='none', model.d_spectral_norm=False")
    need(not m.get('conditional', False), 'progressive growing is unconditional: drop '
         'model.conditional')
    GANMethod.validate_config(config, check)
