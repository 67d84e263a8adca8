"""The `genvision` command line: a thin layer over the library.

  genvision train --config=experiments/NAME.py[:variant] --workdir=DIR [--config.a.b=value ...]
      [--coordinator_address=HOST:PORT --num_processes=N --process_id=I | --distributed]
  genvision sample --workdir=DIR --num=N --out=FILE.png [--seed=S] [--step=K] [--noema]
      [--label=C | --class_grid] [--sampler=ddpm|ddim --steps=S --eta=E --guidance=W]
  genvision interpolate --workdir=DIR [--rows=4] [--steps=8] [--mode=slerp|lerp]
      [--arithmetic] [--out=FILE.png] [--seed=S] [--label=C]
  genvision evaluate --workdir=DIR [--num_samples=1000] [--metrics=fd,kid,...]
      [--features=digits_cnn|inception --inception_weights=FILE] [--step=K] [--noema]
  genvision compare DIR_A DIR_B ... [--out=FILE.png] [--metrics=...]
      (each DIR an evaluated run, or a directory of evaluated seed runs)
  genvision bpd --workdir=DIR [--num=N] [--step=K] [--noema] [--seed=S]
  genvision prepare --dataset=NAME [--data_dir=DIR]

`genvision train ... --seeds=N` trains N runs DIR/seed_0 .. DIR/seed_{N-1} (train.seed + i).

Every expected failure (bad config, missing dataset, corrupt checkpoint, non-finite loss,
interruption) ends with one line naming the cause and the fix, and no traceback.

--steps means images per strip for `interpolate` and, for a diffusion run, the number of DDIM
sampling steps for `sample` (default: the run's diffusion.sample_steps; the DDPM sampler always
runs all T steps). `bpd` writes the variational bound of a diffusion run on the test split to
DIR/eval/bits_per_dim.json.
"""

import logging as py_logging
import os
import sys

from absl import flags
from absl import logging
from ml_collections import config_flags

USAGE = __doc__.split('\n\n')[1]
COMMANDS = ('train', 'sample', 'interpolate', 'evaluate', 'compare', 'bpd', 'prepare')

FLAGS = flags.FLAGS
_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Experiment config file, e.g. experiments/dcgan_mnist.py[:smoke].',
    lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Run directory (checkpoints, metrics, samples).')
_NUM = flags.DEFINE_integer(
    'num', 64, 'sample: number of images; bpd: test examples (default: the whole split).')
_OUT = flags.DEFINE_string('out', None, 'sample: output PNG (default WORKDIR/sample.png).')
_SEED = flags.DEFINE_integer('seed', 0, 'sample: random seed of the latents.')
_STEP = flags.DEFINE_integer('step', None, 'sample: checkpoint step (default: latest).')
_EMA = flags.DEFINE_boolean(
    'ema', True, 'sample, bpd: use the EMA weights (GAN generator, diffusion denoiser).')
_LABEL = flags.DEFINE_integer('label', None, 'sample: class of every image (conditional models).')
_CLASS_GRID = flags.DEFINE_boolean(
    'class_grid', False, 'sample: one row per class, --num images per row (conditional models).')
_ROWS = flags.DEFINE_integer('rows', 4, 'interpolate: number of strips.')
_STEPS = flags.DEFINE_integer(
    'steps', 8, 'interpolate: images per strip; sample (diffusion): DDIM sampling steps '
    '(default diffusion.sample_steps of the run).')
_SAMPLER = flags.DEFINE_enum('sampler', None, ['ddpm', 'ddim'],
                             'sample (diffusion): ddpm (ancestral, all T steps) or ddim.')
_ETA = flags.DEFINE_float('eta', None, 'sample (diffusion): DDIM stochasticity (0: deterministic).')
_GUIDANCE = flags.DEFINE_float(
    'guidance', None, 'sample (conditional diffusion): classifier-free guidance w in '
    '(1 + w) eps(x, c) - w eps(x, null); 0 = no guidance.')
_MODE = flags.DEFINE_enum('mode', 'slerp', ['slerp', 'lerp'], 'interpolate: path.')
_ARITHMETIC = flags.DEFINE_boolean(
    'arithmetic', False, 'interpolate: strips G(a), G(b), G(c), G(a - b + c) instead.')
_SEEDS = flags.DEFINE_integer(
    'seeds', None, 'train: train N runs WORKDIR/seed_i with train.seed + i, one after another.')
_NUM_SAMPLES = flags.DEFINE_integer('num_samples', 1000, 'evaluate: generated samples.')
_METRICS = flags.DEFINE_list(
    'metrics', None, 'evaluate: metric groups (fd, kid, manifold, c2st, score, modes, '
    'likelihood, identity (SD-GAN); default all); compare: metric names to tabulate (default all shared).')
_FEATURES = flags.DEFINE_list(
    'features', None, 'evaluate: feature networks (digits_cnn, inception); default digits_cnn '
    'for grey images, inception otherwise.')
_INCEPTION = flags.DEFINE_string(
    'inception_weights', None, "evaluate: pytorch-fid's pt_inception-2015-12-05-6726825d.pth "
    '(or its .npz conversion); default $GENVISION_INCEPTION_WEIGHTS.')
_REFERENCE = flags.DEFINE_string('reference_split', 'train', 'evaluate: reference data split.')
_BOOTSTRAP = flags.DEFINE_integer(
    'bootstrap', 200, 'evaluate: bootstrap resamples of the generated set for intervals.')
_IWAE = flags.DEFINE_integer('iwae_samples', 64, 'evaluate: importance samples (VAE bound).')
_BPD_EXAMPLES = flags.DEFINE_integer(
    'bpd_examples', 100, 'evaluate: test examples of the diffusion bound in bits/dim (all T '
    'terms per example: ~9 s each on a 2-core CPU; `genvision bpd` results are reused).')
_DATASET = flags.DEFINE_string('dataset', None, 'prepare: TFDS dataset name.')
_DATA_DIR = flags.DEFINE_string('data_dir', None, 'prepare: TFDS data directory.')
_COORDINATOR = flags.DEFINE_string(
    'coordinator_address', None, 'train: multi-process run; host:port of process 0.')
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', None, 'train: number of processes.')
_PROCESS_ID = flags.DEFINE_integer('process_id', None, 'train: index of this process.')
_DISTRIBUTED = flags.DEFINE_boolean(
    'distributed', False, 'train: join a multi-process run detected from the environment '
    '(TPU VM pod slice, SLURM, Open MPI).')


class UsageError(Exception):
  pass


def _quiet_libraries():
  logging.set_verbosity(logging.ERROR)
  py_logging.getLogger('absl').setLevel(py_logging.ERROR)
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')


def _flag_value(argv: list[str], name: str) -> str | None:
  for i, arg in enumerate(argv):
    if arg.startswith(f'--{name}='):
      return arg.split('=', 1)[1]
    if arg == f'--{name}' and i + 1 < len(argv):
      return argv[i + 1]
  return None


def _leaf_keys(config, prefix=''):
  for key, value in config.items():
    path = f'{prefix}{key}'
    if hasattr(value, 'items'):
      yield from _leaf_keys(value, path + '.')
    else:
      yield path


def precheck_config_args(argv: list[str]) -> None:
  """Loads --config and checks every --config.KEY override names a field, so that a typo is
  one readable ConfigError (with suggestions) instead of a traceback from the flag parser."""
  import difflib  # pylint: disable=g-import-not-at-top
  from genvision_jax import configs  # pylint: disable=g-import-not-at-top
  spec = _flag_value(argv, 'config')
  if spec is None:
    return
  try:
    config = configs.load(spec)
  except configs.ConfigError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    last = [line for line in str(e).splitlines() if line.strip()][-1:] or [repr(e)]
    raise configs.ConfigError(f'cannot load config {spec}: {e.__class__.__name__}: '
                              f'{last[0].strip()}') from None
  keys = list(_leaf_keys(config))
  for arg in argv:
    if arg.startswith('--config.'):
      key = arg[len('--config.'):].split('=', 1)[0]
      if key not in keys and not any(k.startswith(key + '.') for k in keys):
        close = difflib.get_close_matches(key, keys, n=3)
        hint = f'; did you mean {" or ".join(close)}?' if close else ''
        raise configs.ConfigError(f"unknown config key '{key}' in {spec}{hint}")


def train(config, workdir: str, seeds: int | None = None) -> None:
  from genvision_jax import configs  # pylint: disable=g-import-not-at-top
  from genvision_jax.training import train_and_evaluate  # pylint: disable=g-import-not-at-top
  configs.validate(config)
  if seeds is None:
    train_and_evaluate(config, workdir)
    return
  if seeds < 1:
    raise UsageError(f'--seeds must be >= 1 (got {seeds})')
  base = config.train.seed
  for i in range(seeds):  # one run directory per seed; each resumes if it exists
    run = config.copy_and_resolve_references()
    run.train.seed = base + i
    run.lock()
    print(f'seed {i + 1}/{seeds}: train.seed={base + i} -> {workdir}/seed_{i}', flush=True)
    train_and_evaluate(run, os.path.join(workdir, f'seed_{i}'))


def evaluate(workdir: str) -> str:
  from genvision_jax.evaluation import runner  # pylint: disable=g-import-not-at-top
  result = runner.evaluate_run(
      workdir, num_samples=_NUM_SAMPLES.value, metrics=_METRICS.value, features=_FEATURES.value,
      seed=_SEED.value, use_ema=_EMA.value, step=_STEP.value,
      reference_split=_REFERENCE.value, inception_weights=_INCEPTION.value,
      iwae_samples=_IWAE.value, bootstrap=_BOOTSTRAP.value,
      bpd_examples=_BPD_EXAMPLES.value)
  intervals = result['intervals']
  for name, value in result['metrics'].items():
    ci = (f'  [{intervals[name][0]:.4g}, {intervals[name][1]:.4g}]' if name in intervals
          else '')
    print(f'{name:32s} {value:.5g}{ci}')
  return os.path.join(workdir, runner.EVAL_DIR, 'metrics.json')


def compare(paths: list[str]) -> str:
  from genvision_jax.evaluation import runner  # pylint: disable=g-import-not-at-top
  out = _OUT.value or 'compare.png'
  result = runner.compare(paths, metric_names=_METRICS.value, out=out)
  print(result['table'])
  return out


def _ema_kwargs(method, use_ema: bool) -> dict:
  """{'use_ema': ...} for methods whose generate/decode choose EMA or raw weights."""
  import inspect  # pylint: disable=g-import-not-at-top
  return ({'use_ema': use_ema} if 'use_ema' in inspect.signature(method.generate).parameters
          else {})


def sample(workdir: str, num: int, out: str | None, seed: int, step: int | None,
           use_ema: bool, label: int | None = None, class_grid: bool = False,
           sampler: str | None = None, steps: int | None = None, eta: float | None = None,
           guidance: float | None = None) -> str:
  from genvision_jax import viz  # pylint: disable=g-import-not-at-top
  from genvision_jax.training import generate_images, load_run  # pylint: disable=g-import-not-at-top
  from genvision_jax.training.loop import class_grid_labels  # pylint: disable=g-import-not-at-top
  if num < 1:
    raise UsageError(f'--num must be >= 1 (got {num})')
  config, method, state = load_run(workdir, step)
  kwargs = _ema_kwargs(method, use_ema)
  diffusion_kwargs = {k: v for k, v in dict(sampler=sampler, steps=steps, eta=eta,
                                            guidance=guidance).items() if v is not None}
  if diffusion_kwargs:
    if config.method != 'diffusion':
      raise UsageError(f'--{", --".join(diffusion_kwargs)} apply to diffusion runs; {workdir} '
                       f'holds a {config.method!r} run')
    try:
      method.sample_settings(**diffusion_kwargs)
    except ValueError as e:
      raise UsageError(str(e)) from None
    kwargs.update(diffusion_kwargs)
  classes = getattr(method, 'num_classes', 0)
  if (label is not None or class_grid) and not classes:
    raise UsageError(f'{workdir} holds an unconditional model: --label and --class_grid need '
                     'one trained with --config.model.conditional=True')
  if label is not None and not 0 <= label < classes:
    raise UsageError(f'--label must be in [0, {classes}) (got {label})')
  ncol = None
  if class_grid:
    num *= classes
    grid_kwargs, ncol = class_grid_labels(method, num)
    kwargs.update(grid_kwargs)
  elif label is not None:
    kwargs['label'] = label
  images = generate_images(method, state, num, seed, **kwargs)
  out = out or os.path.join(workdir, 'sample.png')
  viz.save_image_grid(images, out, ncol=ncol)
  return out


def interpolate(workdir: str, rows: int, steps: int, mode: str, arithmetic: bool,
                out: str | None, seed: int, label: int | None, use_ema: bool) -> str:
  import jax  # pylint: disable=g-import-not-at-top
  from genvision_jax import latent, viz  # pylint: disable=g-import-not-at-top
  from genvision_jax.training import load_run  # pylint: disable=g-import-not-at-top
  if rows < 1 or steps < 2:
    raise UsageError(f'--rows must be >= 1 and --steps >= 2 (got {rows}, {steps})')
  config, method, state = load_run(workdir)
  kwargs = _ema_kwargs(method, use_ema)
  classes = getattr(method, 'num_classes', 0)
  cols = 4 if arithmetic else steps
  if classes:
    if label is not None and not 0 <= label < classes:
      raise UsageError(f'--label must be in [0, {classes}) (got {label})')
    kwargs['labels'] = jax.numpy.full((rows * cols,), 0 if label is None else label)
  elif label is not None:
    raise UsageError(f'{workdir} holds an unconditional model: it takes no --label')
  rng = jax.random.PRNGKey(seed)
  if arithmetic:
    images = jax.jit(lambda s, r: latent.arithmetic_images(method, s, r, rows, **kwargs))(
        state, rng)
  else:
    images = jax.jit(lambda s, r: latent.interpolation_images(method, s, r, rows, steps, mode,
                                                              **kwargs))(state, rng)
  out = out or os.path.join(workdir, 'arithmetic.png' if arithmetic else f'{mode}.png')
  viz.save_image_grid(jax.device_get(images), out, ncol=cols)
  return out


def _dispatch(command: str, positional: list[str]) -> None:
  from genvision_jax import configs, data  # pylint: disable=g-import-not-at-top
  if command == 'train':
    if _CONFIG.value is None or not _WORKDIR.value:
      raise UsageError('train needs --config=experiments/NAME.py and --workdir=DIR')
    from genvision_jax.training import distributed  # pylint: disable=g-import-not-at-top
    try:
      distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value,
                             auto=_DISTRIBUTED.value)
    except ValueError as e:
      raise UsageError(str(e)) from None
    train(_CONFIG.value, _WORKDIR.value, _SEEDS.value)
  elif command == 'evaluate':
    if not _WORKDIR.value:
      raise UsageError('evaluate needs --workdir=DIR of a trained run')
    print(f'wrote {evaluate(_WORKDIR.value)}')
  elif command == 'compare':
    if not positional:
      raise UsageError('compare needs run or group directories: genvision compare DIR_A '
                       'DIR_B ...')
    print(f'wrote {compare(positional)}')
  elif command == 'sample':
    if not _WORKDIR.value:
      raise UsageError('sample needs --workdir=DIR of a trained run')
    out = sample(_WORKDIR.value, _NUM.value, _OUT.value, _SEED.value, _STEP.value, _EMA.value,
                 _LABEL.value, _CLASS_GRID.value, _SAMPLER.value,
                 _STEPS.value if FLAGS['steps'].present else None, _ETA.value, _GUIDANCE.value)
    print(f'wrote samples to {out}')
  elif command == 'bpd':
    if not _WORKDIR.value:
      raise UsageError('bpd needs --workdir=DIR of a trained diffusion run')
    from genvision_jax.training import diffusion_eval  # pylint: disable=g-import-not-at-top
    try:
      record = diffusion_eval.evaluate_bits_per_dim(
          _WORKDIR.value, _NUM.value if FLAGS['num'].present else None, _STEP.value,
          _EMA.value, _SEED.value, log=print)
    except ValueError as e:
      raise UsageError(str(e)) from None
    p = record['protocol']
    print(f"bits/dim {record['bits_per_dim']:.4f} +- {record['stderr'] or 0:.4f} on "
          f"{p['num_examples']} {p['split']} examples (step {p['checkpoint_step']}, "
          f"{p['weights']} weights); wrote "
          f'{os.path.join(_WORKDIR.value, diffusion_eval.RESULT_FILE)}')
  elif command == 'interpolate':
    if not _WORKDIR.value:
      raise UsageError('interpolate needs --workdir=DIR of a trained run')
    out = interpolate(_WORKDIR.value, _ROWS.value, _STEPS.value, _MODE.value, _ARITHMETIC.value,
                      _OUT.value, _SEED.value, _LABEL.value, _EMA.value)
    print(f'wrote {out}')
  elif command == 'prepare':
    if not _DATASET.value:
      raise UsageError('prepare needs --dataset=NAME (e.g. mnist, cifar10, '
                       f'{data.DEFAULT_DATASET})')
    print(data.prepare(_DATASET.value, _DATA_DIR.value))
  del configs


def run(argv=None) -> int:
  """Entry point of the `genvision` console script; returns the exit code."""
  argv = list(sys.argv if argv is None else argv)
  prog = 'genvision'
  if len(argv) < 2 or argv[1] in ('-h', '--help', 'help'):
    print(USAGE)
    return 0 if len(argv) >= 2 else 2
  command = argv[1]
  if command not in COMMANDS:
    print(f'{prog}: error: unknown command {command!r}; use one of {", ".join(COMMANDS)}\n'
          f'{USAGE}', file=sys.stderr)
    return 2
  _quiet_libraries()
  from genvision_jax.training import host_memory  # pylint: disable=g-import-not-at-top
  host_memory.keep_freed_host_memory()  # before JAX starts its CPU threads; see there
  from genvision_jax import configs, data, training  # pylint: disable=g-import-not-at-top
  from genvision_jax.evaluation.runner import EvaluationError  # pylint: disable=g-import-not-at-top
  try:
    precheck_config_args(argv[2:])
    positional = FLAGS(argv[:1] + argv[2:])[1:]
    if positional and command != 'compare':
      raise flags.Error(f'unexpected arguments {positional}')
  except (flags.Error, configs.ConfigError) as e:
    print(f'{prog} {command}: error: {e}', file=sys.stderr)
    return 2

  try:
    _dispatch(command, positional)
  except (UsageError, configs.ConfigError, EvaluationError) as e:
    print(f'{prog} {command}: error: {e}', file=sys.stderr)
    return 2
  except training.Interrupted as e:
    print(f'{prog} {command}: interrupted: {e}', file=sys.stderr)
    return 130
  except (data.DatasetError, training.CheckpointError, training.NonFiniteError,
          FileNotFoundError) as e:
    print(f'{prog} {command}: error: {e}', file=sys.stderr)
    return 1
  return 0


def main():
  sys.exit(run())


if __name__ == '__main__':
  main()
