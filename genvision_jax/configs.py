"""Experiment configs: shared defaults, loading `experiments/*.py`, and validation.

An experiment file defines `get_config(arg=None)` returning a `ConfigDict` built on
`base_config()`; `arg` is the text after ':' in `--config=experiments/x.py:smoke`.
`validate(config)` rejects invalid values with one message before any compute starts.
"""

import importlib.util
import os
from typing import Any

import ml_collections

from genvision_jax import data as data_lib
from genvision_jax import losses
from genvision_jax.methods import common
from genvision_jax.models import layers, vae as vae_models


COMPUTE_DTYPES = ('float32', 'bfloat16')
PLACEMENTS = ('auto', 'device', 'host')


class ConfigError(ValueError):
  """An invalid config; the message names each bad field and what is allowed."""


def optimizer(name='adam', learning_rate=1e-3, b1=0.9, b2=0.999) -> ml_collections.ConfigDict:
  """An optimizer block (see methods.common.make_optimizer)."""
  return ml_collections.ConfigDict(dict(
      name=name, learning_rate=learning_rate, b1=b1, b2=b2, weight_decay=0.0, grad_clip=0.0,
      warmup_steps=0))


def base_config() -> ml_collections.ConfigDict:
  """Fields shared by every experiment."""
  c = ml_collections.ConfigDict()
  c.method = ''
  c.data = ml_collections.ConfigDict(dict(
      name=data_lib.DEFAULT_DATASET,  # any TFDS image dataset prepared in data_dir
      data_dir='',                    # '' = $TFDS_DATA_DIR or ~/tensorflow_datasets
      split='train',
      image_size=28,
      resize_method='resize',         # 'resize' (bilinear) or 'pad' (centred pad / crop)
      placement='auto',               # 'device': split lives on the devices, batches gathered
                                      # there; 'host': batches sent per step; 'auto': device
                                      # on GPU/TPU when the split fits (<= 1 GiB as uint8)
  ))
  c.train = ml_collections.ConfigDict(dict(
      num_steps=2000,
      batch_size=64,         # global batch, split over all devices and processes
      seed=0,
      log_every=100,
      sample_every=500,
      checkpoint_every=500,
      keep_checkpoints=3,
      num_samples=64,        # images in each sample grid
      d_steps=1,             # discriminator updates per generator update (GANs)
      ema_decay=0.999,       # EMA of generator (GANs) / denoiser (diffusion) weights
      ema_start=0,           # step from which the EMA averages (before: copies)
      compute_dtype='float32',  # 'bfloat16': bf16 activations, float32 params/optimizer/losses
      steps_per_dispatch=0,  # training steps per compiled call (lax.scan); 0 = by backend
      profile_steps=0,       # > 0: a JAX profiler trace of that many steps in DIR/profile
  ))
  return c


def smoke_schedule(config) -> None:
  """The schedule of every `:smoke` variant: a few small steps that still log, checkpoint
  and sample (used by the tests)."""
  config.train.update(dict(num_steps=6, batch_size=16, log_every=2, sample_every=3,
                           checkpoint_every=3, num_samples=16))


def import_experiment(name: str, next_to: str):
  """Imports the experiment NAME.py relative to the folder of `next_to` (variants build on
  others; NAME may be a relative path such as '../dcgan_mnist')."""
  path = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(next_to)), f'{name}.py'))
  module_name = '_genvision_experiment_' + ''.join(c if c.isalnum() else '_' for c in name)
  module_spec = importlib.util.spec_from_file_location(module_name, path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module


def load(spec: str, overrides: dict[str, Any] | None = None) -> ml_collections.ConfigDict:
  """Loads 'path/to/experiment.py[:arg]' and applies dotted overrides, locked.

  Example: load('experiments/vae_mnist.py:smoke', {'train.num_steps': 10}).
  """
  path, _, arg = spec.partition(':')
  if not os.path.isfile(path):
    raise ConfigError(f'config file {path} does not exist')
  module = import_experiment(os.path.basename(path)[:-len('.py')], path)
  config = module.get_config(arg) if arg else module.get_config()
  config.lock()
  for key, value in (overrides or {}).items():
    set_field(config, key, value)
  return config


def set_field(config, dotted: str, value):
  """config.a.b = value for 'a.b', raising ConfigError for unknown keys."""
  *parents, leaf = dotted.split('.')
  node = config
  for p in parents:
    if p not in node:
      raise ConfigError(f"unknown config key '{dotted}'")
    node = node[p]
  if leaf not in node:
    raise ConfigError(f"unknown config key '{dotted}'")
  node[leaf] = value


# Fields added after the first release, with the values that reproduce older runs: a run
# directory written before a field existed still loads (`from_dict`).
_LATER_DEFAULTS = {
    'gan': dict(penalty='none', penalty_weight=10.0, clip_value=0.0, began_gamma=0.5,
                began_lambda_k=0.001, began_lr_decay_steps=0, began_lr_decay_factor=0.5),
    'model@gan': dict(g_norm='batch', conditional=False, g_conditioning='embedding',
                      d_conditioning='projection', d_spectral_norm=False, d_layers=2,
                      began_arch='dcgan', began_hidden=64, began_g_output='tanh'),
}


GAN_METHODS = ('gan', 'sdgan', 'progan')


def from_dict(d: dict) -> ml_collections.ConfigDict:
  """A locked ConfigDict from the config.json of a run directory, with fields added since
  that run was written filled in with their defaults."""
  config = ml_collections.ConfigDict(d)
  base = base_config()
  for section in ('data', 'train'):
    for key, value in base[section].items():
      if key not in config[section]:
        config[section][key] = value
  if config.get('method') in GAN_METHODS:
    for section, defaults in (('gan', _LATER_DEFAULTS['gan']),
                              ('model', _LATER_DEFAULTS['model@gan'])):
      for key, value in defaults.items():
        if key not in config[section]:
          config[section][key] = value
  config.lock()
  return config


def validate(config, device_count: int | None = None, process_count: int | None = None):
  """Raises ConfigError listing every invalid field; returns the config otherwise."""
  import jax  # pylint: disable=g-import-not-at-top
  from genvision_jax import methods, models  # pylint: disable=g-import-not-at-top

  errors = []

  def need(cond, msg):
    if not cond:
      errors.append(msg)

  def positive_int(path, value):
    need(isinstance(value, int) and not isinstance(value, bool) and value > 0,
         f'{path} must be a positive integer (got {value!r})')

  need(config.get('method') in methods.METHODS,
       f"method must be one of {sorted(methods.METHODS)} (got {config.get('method')!r})")

  d, t = config.data, config.train
  positive_int('data.image_size', d.image_size)
  if isinstance(d.image_size, int) and d.image_size > 0:
    try:
      layers.upsampling_plan(d.image_size)
    except ValueError:
      errors.append(f'data.image_size={d.image_size} is not supported: the models halve it '
                    'at least once to a base of 4 or more (use e.g. 28, 32 or 64)')
  need(d.placement in PLACEMENTS,
       f'data.placement must be one of {PLACEMENTS} (got {d.placement!r})')
  need(d.resize_method in data_lib.RESIZE_METHODS,
       f'data.resize_method must be one of {data_lib.RESIZE_METHODS} (got {d.resize_method!r})')
  need(bool(d.name) and data_lib.known_dataset(d.name, d.data_dir),
       f"data.name={d.name!r} is not a TFDS dataset nor prepared in "
       f"{data_lib.resolve_data_dir(d.data_dir)}; use e.g. mnist, cifar10 or the offline "
       f'default {data_lib.DEFAULT_DATASET}')

  for key in ('num_steps', 'batch_size', 'log_every', 'sample_every', 'checkpoint_every',
              'keep_checkpoints', 'num_samples', 'd_steps'):
    positive_int(f'train.{key}', t[key])
  need(isinstance(t.seed, int) and t.seed >= 0, f'train.seed must be >= 0 (got {t.seed!r})')
  need(0.0 <= t.ema_decay < 1.0, f'train.ema_decay must be in [0, 1) (got {t.ema_decay!r})')
  need(t.compute_dtype in COMPUTE_DTYPES, f'train.compute_dtype must be one of '
       f'{COMPUTE_DTYPES} (got {t.compute_dtype!r})')
  need(isinstance(t.steps_per_dispatch, int) and t.steps_per_dispatch >= 0,
       f'train.steps_per_dispatch must be >= 0 (0 = by backend; got {t.steps_per_dispatch!r})')
  need(isinstance(t.profile_steps, int) and t.profile_steps >= 0,
       f'train.profile_steps must be >= 0 (got {t.profile_steps!r})')
  need(t.ema_start >= 0, f'train.ema_start must be >= 0 (got {t.ema_start!r})')
  if isinstance(t.batch_size, int) and t.batch_size > 0:
    device_count = device_count or jax.device_count()
    process_count = process_count or jax.process_count()
    need(t.batch_size % device_count == 0,
         f'train.batch_size={t.batch_size} must be divisible by the {device_count} devices '
         f'(e.g. --config.train.batch_size={max(1, t.batch_size // device_count) * device_count})')
    need(t.batch_size % process_count == 0,
         f'train.batch_size={t.batch_size} must be divisible by the {process_count} processes')

  def check_optimizer(path, o):
    need(o.name in common.OPTIMIZERS, f'{path}.name must be one of {common.OPTIMIZERS} '
         f'(got {o.name!r})')
    need(o.learning_rate > 0, f'{path}.learning_rate must be > 0 (got {o.learning_rate!r})')
    need(0.0 <= o.b1 < 1.0, f'{path}.b1 must be in [0, 1) (got {o.b1!r})')
    need(0.0 <= o.b2 < 1.0, f'{path}.b2 must be in [0, 1) (got {o.b2!r})')
    need(o.grad_clip >= 0, f'{path}.grad_clip must be >= 0 (got {o.grad_clip!r})')
    need(o.warmup_steps >= 0, f'{path}.warmup_steps must be >= 0 (got {o.warmup_steps!r})')

  m = config.get('model')
  if config.get('method') == 'vae':
    positive_int('model.latent_dim', m.latent_dim)
    positive_int('model.width', m.width)
    positive_int('model.hidden', m.hidden)
    need(m.architecture in ('conv', 'mlp'),
         f"model.architecture must be 'conv' or 'mlp' (got {m.architecture!r})")
    need(m.likelihood in vae_models.LIKELIHOODS,
         f'model.likelihood must be one of {vae_models.LIKELIHOODS} (got {m.likelihood!r})')
    need(config.vae.beta >= 0, f'vae.beta must be >= 0 (got {config.vae.beta!r})')
    check_optimizer('optim', config.optim)
  elif config.get('method') in GAN_METHODS:
    if config.method == 'progan':
      p = config.progan
      positive_int('progan.stable_steps', p.stable_steps)
      positive_int('progan.fade_steps', p.fade_steps)
      need(m.generator == 'progan' and m.discriminator == 'progan',
           "method='progan' grows model.generator='progan' and model.discriminator='progan' "
           f'(got {m.generator!r}, {m.discriminator!r})')
      need(m.d_norm == 'none' and not m.d_spectral_norm, "the progressive discriminator has "
           "no normalization layers: use model.d_norm='none', model.d_spectral_norm=False")
      need(not m.get('conditional', False), 'progressive growing is unconditional: drop '
           'model.conditional')
    if config.method == 'sdgan':
      positive_int('sdgan.identity_dim', config.sdgan.identity_dim)
      need(config.sdgan.identity_dim < m.latent_dim, 'sdgan.identity_dim must be smaller than '
           f'model.latent_dim={m.latent_dim} (the rest is the observation part)')
      need(not m.get('conditional', False), 'SD-GAN is not class-conditional: drop '
           'model.conditional (labels only pair the real images)')
    positive_int('model.latent_dim', m.latent_dim)
    positive_int('model.g_width', m.g_width)
    positive_int('model.d_width', m.d_width)
    need(m.generator in models.GENERATORS,
         f'model.generator must be one of {sorted(models.GENERATORS)} (got {m.generator!r})')
    need(m.discriminator in models.DISCRIMINATORS, 'model.discriminator must be one of '
         f'{sorted(models.DISCRIMINATORS)} (got {m.discriminator!r})')
    need(m.d_norm in layers.NORMS, f'model.d_norm must be one of {layers.NORMS} '
         f'(got {m.d_norm!r})')
    g_norm = m.get('g_norm', 'batch')
    need(g_norm in ('batch', 'none'), f"model.g_norm must be 'batch' or 'none' (got {g_norm!r})")
    need(g_norm == 'batch' or m.generator == 'dcgan', 'model.g_norm applies to the DCGAN '
         f"generator only (model.generator={m.generator!r} has its own normalization)")
    need(not (g_norm == 'none' and m.get('conditional', False) and m.g_conditioning == 'cbn'),
         "model.g_conditioning='cbn' is conditional BatchNorm: it needs model.g_norm='batch' "
         "(or use --config.model.g_conditioning=embedding)")
    positive_int('model.d_layers', m.d_layers)
    need(m.discriminator != 'patchgan' or not m.get('conditional', False),
         'model.discriminator=patchgan is unconditional; drop model.conditional')
    if m.discriminator == 'patchgan' and isinstance(m.d_layers, int) and m.d_layers > 0:
      need(d.image_size % 2**m.d_layers == 0, f'model.d_layers={m.d_layers} halves '
           f'data.image_size={d.image_size} too often; use fewer layers')
    if m.get('conditional', False):
      need(m.g_conditioning in models.dcgan.G_CONDITIONING, 'model.g_conditioning must be one '
           f'of {models.dcgan.G_CONDITIONING} (got {m.g_conditioning!r})')
      need(m.d_conditioning in models.dcgan.D_CONDITIONING, 'model.d_conditioning must be one '
           f'of {models.dcgan.D_CONDITIONING} (got {m.d_conditioning!r})')
    g = config.gan
    need(g.loss in losses.GAN_OBJECTIVES, 'gan.loss must be one of '
         f'{sorted(losses.GAN_OBJECTIVES)} (got {g.loss!r})')
    need(g.penalty in losses.GAN_PENALTIES, 'gan.penalty must be one of '
         f'{sorted(losses.GAN_PENALTIES)} (got {g.penalty!r})')
    need(g.penalty_weight >= 0, f'gan.penalty_weight must be >= 0 (got {g.penalty_weight!r})')
    need(g.clip_value >= 0, f'gan.clip_value must be >= 0 (0 = no clipping; got '
         f'{g.clip_value!r})')
    need((g.loss == 'began') == (m.discriminator == 'began'),
         "gan.loss='began' and model.discriminator='began' (an autoencoder) go together "
         f'(got gan.loss={g.loss!r}, model.discriminator={m.discriminator!r})')
    need(0 < g.began_gamma <= 1, f'gan.began_gamma must be in (0, 1] (got {g.began_gamma!r})')
    need(g.began_lambda_k >= 0, f'gan.began_lambda_k must be >= 0 (got {g.began_lambda_k!r})')
    if g.loss == 'began':
      arch, decay = m.get('began_arch', 'dcgan'), g.get('began_lr_decay_steps', 0)
      need(arch in models.BEGAN_AUTOENCODERS, 'model.began_arch must be one of '
           f'{sorted(models.BEGAN_AUTOENCODERS)} (got {arch!r})')
      positive_int('model.began_hidden', m.get('began_hidden', 64))
      need(m.get('began_g_output', 'tanh') in ('linear', 'tanh'), "model.began_g_output must be "
           f"'linear' or 'tanh' (got {m.get('began_g_output')!r})")
      need(isinstance(decay, int) and decay >= 0, 'gan.began_lr_decay_steps must be an integer '
           f'>= 0 (0 = no decay; got {decay!r})')
      need(0 < g.get('began_lr_decay_factor', 0.5) <= 1, 'gan.began_lr_decay_factor must be in '
           f"(0, 1] (got {g.get('began_lr_decay_factor')!r})")
      need(arch != 'paper' or not m.d_spectral_norm, "model.began_arch='paper' has no spectral "
           'normalization; drop model.d_spectral_norm')
    need(g.penalty == 'none' or m.d_norm != 'batch',
         f"gan.penalty='{g.penalty}' with model.d_norm='batch': a gradient penalty is per "
         'example, but BatchNorm makes each output depend on the whole batch; use '
         '--config.model.d_norm=layer (or none)')
    check_optimizer('optim.g', config.optim.g)
    check_optimizer('optim.d', config.optim.d)

  elif config.get('method') == 'diffusion':
    _check_diffusion(config, need, positive_int)
    check_optimizer('optim', config.optim)

  if errors:
    raise ConfigError('invalid config:\n  - ' + '\n  - '.join(errors))
  return config


def _check_diffusion(config, need, positive_int) -> None:
  """The `model` (U-Net) and `diffusion` fields of method 'diffusion'."""
  from genvision_jax import diffusion, models  # pylint: disable=g-import-not-at-top
  from genvision_jax.methods import diffusion as method  # pylint: disable=g-import-not-at-top
  m, p, size = config.model, config.diffusion, config.data.image_size
  need(m.architecture in models.DENOISERS, 'model.architecture must be one of '
       f'{sorted(models.DENOISERS)} (got {m.architecture!r})')
  for key in ('base', 'num_res_blocks', 'num_heads'):
    positive_int(f'model.{key}', m[key])
  mults = tuple(m.channel_mults)
  is_int = lambda v: isinstance(v, int) and not isinstance(v, bool)
  need(len(mults) >= 1 and all(is_int(v) and v > 0 for v in mults),
       f'model.channel_mults must be positive integers, one per level (got {mults!r})')
  if mults and isinstance(size, int) and size > 0:
    halvings = len(mults) - 1
    need(size % 2**halvings == 0, f'model.channel_mults={mults} halves data.image_size={size} '
         f'{halvings} times, which does not divide it; use fewer levels (e.g. (1, 2, 2) for '
         '28 px: 28 -> 14 -> 7)')
    sizes = [size // 2**i for i in range(len(mults))]
    bad = [r for r in m.attention_resolutions if r not in sizes]
    need(not bad or size % 2**halvings, 'model.attention_resolutions='
         f'{tuple(m.attention_resolutions)} names sizes the U-Net does not have: its levels '
         f'are {tuple(sizes)} px')
  if is_int(m.num_heads) and is_int(m.base) and all(is_int(v) for v in mults):
    need(all(m.base * v % m.num_heads == 0 for v in mults),
         f'model.num_heads={m.num_heads} must divide every level width base * mult '
         f'({[m.base * v for v in mults]})')
  need(0.0 <= m.dropout < 1.0, f'model.dropout must be in [0, 1) (got {m.dropout!r})')
  need(p.schedule in diffusion.SCHEDULES,
       f'diffusion.schedule must be one of {diffusion.SCHEDULES} (got {p.schedule!r})')
  need(is_int(p.num_timesteps) and p.num_timesteps >= 2,
       f'diffusion.num_timesteps must be an integer >= 2 (got {p.num_timesteps!r})')
  need(p.prediction in diffusion.PREDICTIONS, 'diffusion.prediction must be one of '
       f'{diffusion.PREDICTIONS} (got {p.prediction!r})')
  need(p.loss in losses.DIFFUSION_LOSSES, 'diffusion.loss must be one of '
       f'{sorted(losses.DIFFUSION_LOSSES)} (got {p.loss!r})')
  need(p.variance in diffusion.VARIANCES, 'diffusion.variance must be one of '
       f'{diffusion.VARIANCES} (got {p.variance!r})')
  need(p.sampler in method.SAMPLERS,
       f'diffusion.sampler must be one of {method.SAMPLERS} (got {p.sampler!r})')
  if is_int(p.num_timesteps):
    need(is_int(p.sample_steps) and 1 <= p.sample_steps <= p.num_timesteps,
         f'diffusion.sample_steps must be in [1, num_timesteps={p.num_timesteps}] '
         f'(got {p.sample_steps!r})')
  need(p.eta >= 0, f'diffusion.eta must be >= 0 (got {p.eta!r})')
  need(0.0 <= p.p_uncond < 1.0, f'diffusion.p_uncond must be in [0, 1) (got {p.p_uncond!r})')
  need(p.guidance >= 0, f'diffusion.guidance must be >= 0 (0 = no guidance; got '
       f'{p.guidance!r})')
  if p.guidance > 0:
    need(m.conditional, f'diffusion.guidance={p.guidance} is classifier-free guidance and '
         'needs a class-conditional model (--config.model.conditional=True)')
    need(p.p_uncond > 0, f'diffusion.guidance={p.guidance} needs diffusion.p_uncond > 0: '
         'without label dropout the null class is never trained')
