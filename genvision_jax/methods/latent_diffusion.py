"""Latent diffusion (Rombach et al. 2022) in the code space of one of the package's own
autoencoders or VAEs.

The autoencoder is another run, named by its workdir (`latent.autoencoder`); the training
layer loads it (`frozen_runs`) and its parameters ride in the state, never updated, so a
checkpoint samples on its own. The codes of the training images (a VAE's posterior mean) are
computed once when training starts (`derived_fields`). As in Rombach et al.'s code, the codes
are multiplied by 1 / (their standard deviation in the first batch), measured at step 0 and
kept in the state (`latent_scale`), so the process sees unit-variance data whatever the
autoencoder. Any process and sampler of `DiffusionMethod` runs on the scaled codes; the
denoiser is the residual MLP (`model.architecture = 'mlp'`: the codes are vectors).
`generate` samples codes, unscales them and decodes them with the autoencoder's decoder.
"""

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from genvision_jax.data.pipeline import to_model_range
from genvision_jax.methods import common
from genvision_jax.methods.diffusion import DiffusionMethod

AUTOENCODER_METHODS = ('autoencoder', 'vae')


@flax.struct.dataclass
class LatentDiffusionState:
  step: jax.Array
  params: dict
  opt_state: optax.OptState
  ema_params: dict
  rng: jax.Array
  autoencoder: object      # the autoencoder run's state without its optimizer (frozen)
  latent_scale: jax.Array  # 1 / std of the codes of the first batch (set at step 0)


class LatentDiffusionMethod(DiffusionMethod):
  """See the module docstring; config sections of `DiffusionMethod` and `latent`."""

  def __init__(self, config, image_shape, num_classes=0, frozen=None):
    if not frozen or 'autoencoder' not in frozen:
      raise ValueError('latent diffusion needs its autoencoder run (latent.autoencoder), which '
                       'the training layer loads (training.load_frozen_runs)')
    ae = frozen['autoencoder']
    if ae.config.method not in AUTOENCODER_METHODS:
      raise ValueError(f'latent.autoencoder={config.latent.autoencoder} holds a '
                       f'{ae.config.method!r} run; name an autoencoder or vae run '
                       '(experiments/ae/ae_mnist.py, experiments/vae_mnist.py)')
    if tuple(ae.method.image_shape) != tuple(image_shape):
      raise ValueError(f'the autoencoder run {config.latent.autoencoder} was trained on images '
                       f'of shape {tuple(ae.method.image_shape)}, the data has '
                       f'{tuple(image_shape)}; train it on the same dataset')
    self.autoencoder = ae.method
    self._autoencoder_state = ae.state.replace(opt_state=())
    super().__init__(config, image_shape, num_classes)

  def diffusion_shape(self, config, image_shape) -> tuple:
    del config, image_shape
    return (int(self.autoencoder.latent_dim),)

  @staticmethod
  def frozen_runs(config) -> dict:
    return {'autoencoder': config.latent.autoencoder}

  def create_state(self, rng, example_batch=None) -> LatentDiffusionState:
    base = super().create_state(rng, example_batch)
    return LatentDiffusionState(
        step=base.step, params=base.params, opt_state=base.opt_state,
        ema_params=base.ema_params, rng=base.rng,
        autoencoder=jax.tree.map(jnp.asarray, self._autoencoder_state),
        latent_scale=jnp.ones((), jnp.float32))

  def codes(self, state: LatentDiffusionState, images):
    """The autoencoder's codes [N, D] of images in [-1, 1] (a VAE's posterior mean)."""
    return self.autoencoder.encode(state.autoencoder, images.astype(jnp.float32))[0]

  ENCODE_CHUNK = 500  # images per compiled call of derived_fields

  def derived_fields(self, state: LatentDiffusionState, arrays: dict) -> dict:
    """{'latent': float32 [N, D]}: the codes of every training image (arrays['image'] uint8),
    computed once; train_step reads them from the batch."""
    codes = common.map_images_in_chunks(self.codes, state, arrays['image'], self.ENCODE_CHUNK,
                                        to_model_range)
    return {'latent': codes.astype(np.float32)}

  def train_step(self, state: LatentDiffusionState, batch):
    if 'latent' in batch:  # derived_fields: computed once by the same autoencoder
      z = batch['latent'].astype(jnp.float32)
    else:
      z = jax.lax.stop_gradient(self.codes(state, batch['image']))
    scale = jnp.where(state.step == 0, 1.0 / jnp.maximum(jnp.std(z), 1e-6), state.latent_scale)
    inner = {'image': z * scale}
    if 'label' in batch:
      inner['label'] = batch['label']
    state, metrics = super().train_step(state, inner)
    metrics['latent_scale'] = scale
    return state.replace(latent_scale=scale), metrics

  def legacy_chain(self, sampler: str) -> bool:
    del sampler
    return False  # the index chains clip to [-1, 1]: codes go through diffusion.samplers

  def sample_settings(self, sampler=None, steps=None, eta=None, guidance=None):
    if (sampler or self.sampler) == 'ddpm':
      raise ValueError("latent diffusion samples with the solvers of diffusion.samplers; for "
                       "ancestral sampling use --sampler=ddim --eta=1")
    return super().sample_settings(sampler, steps, eta, guidance)

  def to_images(self, state: LatentDiffusionState, z):
    """Images in [-1, 1] of scaled codes z [N, D]: unscaled and decoded."""
    images = self.autoencoder.decode(state.autoencoder, z / state.latent_scale)
    return jnp.clip(images, -1.0, 1.0)

  def generate(self, state: LatentDiffusionState, rng, num: int, label=None,
               use_ema: bool = True, sampler: str | None = None, steps: int | None = None,
               eta: float | None = None, guidance: float | None = None):
    """num images: codes by the reverse process (see `DiffusionMethod.generate`), decoded."""
    z = super().generate(state, rng, num, label, use_ema, sampler, steps, eta, guidance)
    return self.to_images(state, z)

  def decode(self, state: LatentDiffusionState, z, labels=None, use_ema: bool = True,
             steps: int | None = None, guidance: float | None = None):
    """The deterministic DDIM map from x_T [N, D] to codes, decoded to images."""
    return self.to_images(state, super().decode(state, z, labels, use_ema, steps, guidance))

  def invert(self, *args, **kwargs):
    raise ValueError('DDIM inversion of a latent diffusion run is not built (it would invert to '
                     'codes, not images)')

  def bits_per_dim(self, *args, **kwargs):
    raise ValueError('a latent diffusion run bounds the likelihood of codes, not of images: '
                     'bits/dim is not defined for it')

  bits_per_dim_mc = bits_per_dim_ode = bits_per_dim

  @staticmethod
  def default_sections() -> dict:
    """DiffusionMethod's sections with the residual MLP denoiser, no clipping (codes are not
    in [-1, 1]) and the `latent` section."""
    sections = DiffusionMethod.default_sections()
    sections['model'].update(dict(architecture='mlp', base=256, num_res_blocks=4,
                                  channel_mults=(1,), attention_resolutions=()))
    sections['diffusion'].clip_denoised = False
    sections['latent'] = ml_collections.ConfigDict(dict(
        autoencoder='runs/ae32',  # workdir of a trained autoencoder or vae run, same dataset
    ))
    return sections

  RESUMABLE_FIELDS = DiffusionMethod.RESUMABLE_FIELDS
  LATER_DEFAULTS = {}

  @staticmethod
  def validate_config(config, check, conditioned=None) -> None:
    DiffusionMethod.validate_config(config, check, conditioned)
    check.need(isinstance(config.latent.autoencoder, str) and bool(config.latent.autoencoder),
               'latent.autoencoder must name the workdir of a trained autoencoder or vae run, '
               'e.g. --config.latent.autoencoder=runs/ae32 (genvision train '
               '--config=experiments/ae/ae_mnist.py --workdir=runs/ae32)')
    check.need(not config.diffusion.clip_denoised, 'diffusion.clip_denoised must be False for '
               'latent diffusion: codes are not images in [-1, 1]')
