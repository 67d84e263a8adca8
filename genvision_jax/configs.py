"""Experiment configs: shared defaults, loading `experiments/*.py`, and validation.

An experiment file defines `get_config(arg=None)` returning a `ConfigDict` built on
`method_config(METHOD)` (the shared sections of `base_config()` and the method's own sections
at the defaults the method documents in its `default_sections()`); `arg` is the text after ':' in `--config=experiments/x.py:smoke`.
`validate(config)` rejects invalid values with one message before any compute starts: it
checks the shared sections (data, train) and then calls the method's own
`validate_config(config, check)` (found in `methods.METHODS`); `from_dict` fills in the fields
a method added after a run directory was written from that method's `LATER_DEFAULTS`.
"""

import importlib.util
import os
from typing import Any

import ml_collections

from genvision_jax import data as data_lib
from genvision_jax.methods import common
from genvision_jax.models import layers


COMPUTE_DTYPES = ('float32', 'bfloat16')
PLACEMENTS = ('auto', 'device', 'host')

# Shared fields a resumed run may change (`genvision train` on an existing run directory): the
# schedule and bookkeeping, not the model, data or optimisation. A method adds its own as
# `RESUMABLE_FIELDS` next to its `LATER_DEFAULTS`; any other difference refuses the run
# (training/rundir.check_resume). steps_per_dispatch and data.placement give the same batches
# and steps (tests/training_test.py), data_dir only locates the same data.
RESUMABLE_FIELDS = (
    'train.num_steps', 'train.log_every', 'train.sample_every', 'train.checkpoint_every',
    'train.keep_checkpoints', 'train.profile_steps', 'train.num_samples',
    'train.steps_per_dispatch', 'data.placement', 'data.data_dir',
)


class ConfigError(ValueError):
  """An invalid config; the message names each bad field and what is allowed."""


optimizer = common.optimizer_config  # an optimizer block (see methods.common.make_optimizer)


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
      binarize='none',                # 'dynamic' | 'static' | 'none' (8-bit levels), for
                                      # methods that model binary images (the VAE)
      exclude='',                     # a .npy of example indices of `split` left out of
                                      # training (counterfactual attribution; README)
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


def method_config(method: str, config: ml_collections.ConfigDict | None = None):
  """`config` (default: `base_config()`) for `method`: config.method set, and each section the
  method owns (its `default_sections()`) added at its defaults where `config` lacks it."""
  from genvision_jax import methods  # pylint: disable=g-import-not-at-top
  if method not in methods.METHODS:
    raise ConfigError(f'method must be one of {sorted(methods.METHODS)} (got {method!r})')
  c = base_config() if config is None else config
  c.method = method
  for section, value in methods.METHODS[method].default_sections().items():
    if section not in c:
      c[section] = value
  return c


def variants(arg: str | None, allowed, experiment: str) -> list[str]:
  """The comma-separated variants of `--config=experiments/EXPERIMENT.py:ARG`, each checked
  against `allowed` (an unknown one is a ValueError naming the allowed ones)."""
  chosen = arg.split(',') if arg else []
  unknown = [v for v in chosen if v not in allowed]
  if unknown:
    raise ValueError(f"unknown variant '{','.join(unknown)}' of {experiment}; use one or more "
                     f"of {', '.join(allowed)} (comma-separated)")
  return chosen


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


def from_dict(d: dict) -> ml_collections.ConfigDict:
  """A locked ConfigDict from the config.json of a run directory, with fields added since
  that run was written filled in with their defaults: the shared ones from `base_config`,
  the method's own from its `LATER_DEFAULTS` (section -> {field: value})."""
  from genvision_jax import methods  # pylint: disable=g-import-not-at-top
  config = ml_collections.ConfigDict(d)
  method = methods.METHODS.get(config.get('method'))
  if hasattr(method, 'upgrade_config'):  # changes that are not new fields (e.g. a renamed value)
    method.upgrade_config(d, config)
  base = base_config()
  later = {section: dict(base[section]) for section in ('data', 'train')}
  for section, defaults in getattr(method, 'LATER_DEFAULTS', {}).items():
    later.setdefault(section, {}).update(defaults)
  for section, defaults in later.items():
    if section not in config:
      config[section] = ml_collections.ConfigDict()
    for key, value in defaults.items():
      if key not in config[section]:
        config[section][key] = value
  config.lock()
  return config


def _file_in_the_way(path: str) -> str | None:
  """`path` or the ancestor of it that exists as a file (a directory cannot be made there)."""
  path = os.path.abspath(path)
  while not os.path.exists(path) and os.path.dirname(path) != path:
    path = os.path.dirname(path)
  return None if os.path.isdir(path) else path


def validate(config, device_count: int | None = None, process_count: int | None = None):
  """Raises ConfigError listing every invalid field; returns the config otherwise."""
  import jax  # pylint: disable=g-import-not-at-top
  from genvision_jax import methods  # pylint: disable=g-import-not-at-top

  check = common.ConfigChecks()
  need, positive_int = check.need, check.positive_int

  need(config.get('method') in methods.METHODS,
       f"method must be one of {sorted(methods.METHODS)} (got {config.get('method')!r})")

  d, t = config.data, config.train
  positive_int('data.image_size', d.image_size)
  if isinstance(d.image_size, int) and d.image_size > 0:
    try:
      layers.upsampling_plan(d.image_size)
    except ValueError:
      need(False, f'data.image_size={d.image_size} is not supported: the models halve it '
           'at least once to a base of 4 or more (use e.g. 28, 32 or 64)')
  need(d.placement in PLACEMENTS,
       f'data.placement must be one of {PLACEMENTS} (got {d.placement!r})')
  need(d.resize_method in data_lib.RESIZE_METHODS,
       f'data.resize_method must be one of {data_lib.RESIZE_METHODS} (got {d.resize_method!r})')
  binarize, method = d.get('binarize', 'none'), methods.METHODS.get(config.get('method'))
  need(binarize in data_lib.BINARIZE_MODES, f'data.binarize must be one of '
       f'{data_lib.BINARIZE_MODES} (got {binarize!r}); e.g. --config.data.binarize=dynamic')
  need(binarize == 'none' or method is None or getattr(method, 'BINARIZES', False),
       f"data.binarize={binarize!r} is implemented for methods that model binary images "
       f"({sorted(k for k, v in methods.METHODS.items() if getattr(v, 'BINARIZES', False))}), "
       f"not method={config.get('method')!r}; use --config.data.binarize=none")
  exclude = d.get('exclude', '')
  need(isinstance(exclude, str) and (not exclude or os.path.isfile(exclude)),
       f'data.exclude={exclude!r} is not a file: give a .npy of example indices to leave out '
       "of the training split (genvision neighbours --make_subset writes one), or ''")
  blocked = _file_in_the_way(data_lib.resolve_data_dir(d.data_dir))
  need(blocked is None, f'data.data_dir={d.data_dir!r}: {blocked} is a file, not a directory; '
       'use --config.data.data_dir=DIR with DIR a directory (the datasets are prepared in it)')
  need(bool(d.name) and data_lib.known_dataset(d.name, d.data_dir),
       f"data.name={d.name!r} is not a TFDS dataset nor prepared in "
       f"{data_lib.resolve_data_dir(d.data_dir)}; use e.g. mnist, cifar10 or the offline "
       f'default {data_lib.DEFAULT_DATASET} (colour: photo_patches/32)')
  problem = data_lib.offline_config_error(d.name) if isinstance(d.name, str) else None
  need(problem is None, f'data.name={d.name!r}: {problem}')

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

  method = methods.METHODS.get(config.get('method'))
  if method is not None:
    method.validate_config(config, check)  # the method's own sections

  if check.errors:
    raise ConfigError('invalid config:\n  - ' + '\n  - '.join(check.errors))
  return config

