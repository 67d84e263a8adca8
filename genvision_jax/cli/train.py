"""`genvision train`: trains an experiment config in a run directory (resuming it)."""

import difflib
import os
import shlex

from absl import flags
from ml_collections import config_flags

from genvision_jax.cli import common

SYNOPSIS = """\
  genvision train --config=experiments/NAME.py[:variant] --workdir=DIR [--config.a.b=value ...]
      [--seeds=N] [--allow_config_change] [--coordinator_address=HOST:PORT --num_processes=N --process_id=I | --distributed]
      (--seeds=N trains N runs DIR/seed_0 .. DIR/seed_{N-1} with train.seed + i)"""

FLAGS = flags.FlagValues()
_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Experiment config file, e.g. experiments/dcgan_mnist.py[:smoke]; '
    '--config.a.b=value overrides a field.', flag_values=FLAGS, lock_config=True)
_WORKDIR = common.define_workdir(
    FLAGS, 'Run directory (config, checkpoints, metrics, samples); an existing one resumes.')
_SEEDS = flags.DEFINE_integer(
    'seeds', None, 'Train N runs WORKDIR/seed_i with train.seed + i, one after another.',
    flag_values=FLAGS)
_ALLOW_CHANGE = flags.DEFINE_boolean(
    'allow_config_change', False, 'Resume an existing run although the config differs from '
    'its config.json in fields other than the schedule (e.g. the learning rate); without it '
    'such a run is refused and nothing is written.', flag_values=FLAGS)
_COORDINATOR = flags.DEFINE_string(
    'coordinator_address', None, 'Multi-process run: host:port of process 0.',
    flag_values=FLAGS)
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', None, 'Number of processes.',
                                      flag_values=FLAGS)
_PROCESS_ID = flags.DEFINE_integer('process_id', None, 'Index of this process.',
                                   flag_values=FLAGS)
_DISTRIBUTED = flags.DEFINE_boolean(
    'distributed', False, 'Join a multi-process run detected from the environment (TPU VM pod '
    'slice, SLURM, Open MPI).', flag_values=FLAGS)


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


_ARGV: list[str] = []  # this invocation's arguments, recorded as the run's command.txt


def command_line(argv: list[str], workdir: str | None = None, seed: int | None = None) -> str:
  """`genvision train ARGV` (for one run of --seeds: its own --workdir and train.seed)."""
  args = list(argv)
  if workdir is not None:
    skip = ('--workdir', '--seeds', '--config.train.seed')
    kept, i = [], 0
    while i < len(args):
      a = args[i]
      if a in skip and i + 1 < len(args):
        i += 2
        continue
      if not any(a.startswith(s + '=') for s in skip):
        kept.append(a)
      i += 1
    args = kept + [f'--workdir={workdir}', f'--config.train.seed={seed}']
  return 'genvision train ' + shlex.join(args)


def precheck(argv: list[str]) -> None:
  """Loads --config and checks every --config.KEY override names a field, so that a typo is
  one readable ConfigError (with suggestions) instead of a traceback from the flag parser."""
  from genvision_jax import configs  # pylint: disable=g-import-not-at-top
  _ARGV[:] = argv
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


def train(config, workdir: str, seeds: int | None = None,
          allow_config_change: bool = False) -> None:
  """Validates `config` and trains it in `workdir` (or `seeds` runs WORKDIR/seed_i)."""
  from genvision_jax import configs  # pylint: disable=g-import-not-at-top
  from genvision_jax.training import train_and_evaluate  # pylint: disable=g-import-not-at-top
  configs.validate(config)
  if seeds is None:
    train_and_evaluate(config, workdir, allow_config_change=allow_config_change,
                       command=command_line(_ARGV) if _ARGV else None)
    return
  if seeds < 1:
    raise common.UsageError(f'--seeds must be >= 1 (got {seeds})')
  base = config.train.seed
  for i in range(seeds):  # one run directory per seed; each resumes if it exists
    run = config.copy_and_resolve_references()
    run.train.seed = base + i
    run.lock()
    print(f'seed {i + 1}/{seeds}: train.seed={base + i} -> {workdir}/seed_{i}', flush=True)
    run_dir = os.path.join(workdir, f'seed_{i}')
    train_and_evaluate(run, run_dir, allow_config_change=allow_config_change,
                       command=command_line(_ARGV, run_dir, base + i) if _ARGV else None)


def main(positional: list[str]) -> None:
  del positional
  if _CONFIG.value is None or not _WORKDIR.value:
    raise common.UsageError('train needs --config=experiments/NAME.py and --workdir=DIR')
  from genvision_jax.training import distributed  # pylint: disable=g-import-not-at-top
  try:
    distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value,
                           auto=_DISTRIBUTED.value)
  except ValueError as e:
    raise common.UsageError(str(e)) from None
  train(_CONFIG.value, _WORKDIR.value, _SEEDS.value, _ALLOW_CHANGE.value)
