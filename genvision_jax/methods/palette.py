"""Conditional diffusion for image-to-image tasks (SR3, Saharia et al. 2021; Palette, Saharia
et al. 2022): DDPM whose U-Net sees the task's input concatenated to x_t on the channel axis.

Training is the simple loss of `DiffusionMethod` on (input, target) pairs made from each
minibatch by the configured task (`genvision_jax.tasks`, keyed by (seed, step)): x_0 is the
target, the input is the condition. Inpainting and uncropping follow Palette: the known pixels
of x_t are the clean target's (x_t = known * x_0 + (1 - known) * q_sample(x_0, t)) and the loss
is averaged over the hidden pixels only; sampling puts the known pixels back after every step,
so the output keeps them exactly. Colorization with `task.keep_luma` diffuses only the chroma
(2 channels; `tasks.chroma`) and composes the output with the input's luma. Sampling is the package's DDPM / DDIM chain
(`diffusion.sampler`, `diffusion.sample_steps`, `diffusion.eta`) in one `lax.scan`; there is
no classifier-free guidance (`diffusion.guidance` must be 0).
"""

import math

import jax
import jax.numpy as jnp

from genvision_jax import tasks
from genvision_jax.methods import i2i
from genvision_jax.methods.diffusion import DiffusionMethod, DiffusionState


class PaletteMethod(i2i.ImageToImage, DiffusionMethod):
  """DiffusionMethod conditioned on the task's input image (`config.task`)."""

  def __init__(self, config, image_shape, num_classes=0):
    del num_classes  # the input image is the condition
    # The U-Net denoises what the network produces (the image or its chroma: set_task).
    h, w, c = image_shape
    super().__init__(config, (h, w, tasks.output_channels(config.task, c)), 0)
    self.set_task(config, image_shape)  # self.image_shape: the images; self.output_shape: x_t
    self.latent_dim = math.prod(self.output_shape)
    self.has_known_pixels = self.task.name in ('inpainting', 'uncropping')

  def create_state(self, rng, example_batch=None) -> DiffusionState:
    del example_batch
    init_rng, state_rng = jax.random.split(rng)
    x = jnp.zeros((1, *self.output_shape[:2], self.output_shape[-1] + self.input_shape[-1]))
    params = self.model.init(init_rng, x, jnp.zeros((1,), jnp.int32))['params']
    return DiffusionState(step=jnp.zeros((), jnp.int32), params=params,
                          opt_state=self.tx.init(params),
                          ema_params=jax.tree.map(jnp.copy, params), rng=state_rng)

  def _apply(self, params, xt, t, cond, **kwargs):
    return self.model.apply({'params': params}, jnp.concatenate([xt, cond], axis=-1), t, None,
                            **kwargs)

  def network_output(self, params, xt, t, labels, guidance: float):
    """The denoiser's output at x_t given the input image (`labels` carries it here)."""
    del guidance  # validated 0
    return self._apply(params, xt, t, labels)

  def _known(self, cond):
    """(known-pixel values, known mask) of an inpainting/uncropping input."""
    c = self.image_shape[-1]
    return cond[..., :c], cond[..., c:c + 1]

  def batch_loss(self, params, batch, rng):
    """(per-example simple loss, t) on the task's pairs of this minibatch; with known pixels,
    x_t holds them clean and the loss averages over the hidden pixels only."""
    task_rng, t_rng, n_rng, drop_rng = jax.random.split(rng, 4)
    pair = self.pairs(batch['image'].astype(jnp.float32), task_rng)
    x0, cond = self.network_target(pair['target']), pair['input']
    t = jax.random.randint(t_rng, (x0.shape[0],), 0, self.num_timesteps)
    noise = jax.random.normal(n_rng, x0.shape, jnp.float32)
    xt = self.process.q_sample(x0, t, noise)
    weight = jnp.ones_like(x0[..., :1])
    if self.has_known_pixels:
      known = pair['known']
      xt = known * x0 + (1.0 - known) * xt
      weight = 1.0 - known
    out = self._apply(params, xt, t, cond, train=True, rngs={'dropout': drop_rng})
    target = self.process.training_target(self.prediction, x0, t, noise)
    err = jnp.abs(out - target) if self.config.diffusion.loss == 'l1' else (out - target) ** 2
    weight = jnp.broadcast_to(weight, err.shape)
    per_example = jnp.sum(err * weight, axis=(1, 2, 3)) / jnp.maximum(
        jnp.sum(weight, axis=(1, 2, 3)), 1.0)
    return per_example, t + 1  # the ddpm process's time (index + 1), as DiffusionMethod's

  def translate(self, state: DiffusionState, inputs, rng, use_ema: bool = True,
                sampler: str | None = None, steps: int | None = None, eta: float | None = None):
    """Outputs in [-1, 1] for task inputs [N, H, W, C_in] by the reverse chain from noise
    (sampler settings default to `config.diffusion`); known pixels are kept exactly."""
    sampler, timesteps, eta, _ = self.sample_settings(sampler, steps, eta, 0.0)
    x_rng, chain_rng = jax.random.split(rng)
    x_T = jax.random.normal(x_rng, (inputs.shape[0], *self.output_shape), jnp.float32)
    project = None
    if self.has_known_pixels:
      values, known = self._known(inputs)
      project = lambda x: known * values + (1.0 - known) * x
    params = state.ema_params if use_ema else state.params
    deterministic = sampler == 'ddim' and eta == 0
    x0 = self.reverse_chain(params, x_T, None if deterministic else chain_rng, inputs,
                            sampler, timesteps, eta, 0.0, project=project)
    return jnp.clip(self.network_to_image(x0, inputs), -1.0, 1.0)

  def decode(self, state, z, labels=None, **kwargs):
    del state, z, labels, kwargs
    raise ValueError('palette translates images: it has no latent space to decode')

  def bits_per_dim(self, state, batch, rng, use_ema: bool = True):
    del state, batch, rng, use_ema
    raise ValueError('palette: the bits/dim bound is for unconditional or class-conditional '
                     'diffusion runs')

  # -- config (owned by the method) ----------------------------------------------------------

  # task fields added after runs were written, at the values that reproduce them
  LATER_DEFAULTS = {**DiffusionMethod.LATER_DEFAULTS,
                    'task': {'keep_luma': False, 'noise': 'gaussian', 'mask_prob': 0.25}}

  @staticmethod
  def default_sections() -> dict:
    """DiffusionMethod's sections (the 28 px U-Net: 28 -> 14 -> 7, attention at 7) and the
    `task` section (super-resolution x4)."""
    s = DiffusionMethod.default_sections()
    s['task'] = tasks.default_config()
    return s

  @staticmethod
  def validate_config(config, check) -> None:
    """DiffusionMethod's checks, the task's, and what conditioning on an image excludes."""
    DiffusionMethod.validate_config(config, check)
    tasks.validate(config, check)
    check.need(config.diffusion.process == 'ddpm', f'palette is built on the discrete ddpm '
               f'process (got diffusion.process={config.diffusion.process!r}); use '
               '--config.diffusion.process=ddpm')
    need = check.need
    need(not config.model.conditional, 'palette is conditioned on the input image, not on '
         'classes: use --config.model.conditional=False')
    need(config.diffusion.guidance == 0, 'palette has no classifier-free guidance: use '
         '--config.diffusion.guidance=0')
    if config.task.name == 'super_resolution':
      need(config.task.upsample_input, 'palette conditions on an input of the output size: use '
           '--config.task.upsample_input=True for super-resolution')
