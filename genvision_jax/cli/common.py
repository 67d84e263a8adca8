"""What every command shares: the common flags, the error boundary and the exit codes.

Exit codes: 0 done; 2 bad usage or config (nothing was touched); 1 an expected failure at run
time (missing dataset, unreadable checkpoint, non-finite loss, missing file); 130 interrupted
(SIGTERM/SIGINT, after saving a checkpoint). Every expected failure is one line
`genvision COMMAND: error: ...` naming the cause and the fix, without a traceback.
"""

import inspect
import logging as py_logging
import os
import sys

from absl import flags
from absl import logging

PROG = 'genvision'


class UsageError(Exception):
  """A bad command line or an argument that does not fit the run (exit code 2)."""


def define_workdir(fv: flags.FlagValues, help_text: str = 'Run directory of a trained run.'):
  return flags.DEFINE_string('workdir', None, help_text, flag_values=fv)


def define_seed(fv: flags.FlagValues, help_text: str = 'Random seed.'):
  return flags.DEFINE_integer('seed', 0, help_text, flag_values=fv)


def define_step(fv: flags.FlagValues):
  return flags.DEFINE_integer('step', None, 'Checkpoint step (default: the latest).',
                              flag_values=fv)


def define_ema(fv: flags.FlagValues):
  return flags.DEFINE_boolean(
      'ema', True, 'Use the EMA weights (GAN generator, diffusion denoiser); --noema: the '
      'raw weights.', flag_values=fv)


def require_workdir(workdir_flag, command: str, what: str = 'a trained run') -> str:
  if not workdir_flag.value:
    raise UsageError(f'{command} needs --workdir=DIR of {what}')
  return workdir_flag.value


def ema_kwargs(method, use_ema: bool) -> dict:
  """{'use_ema': ...} for methods whose generate/decode choose EMA or raw weights."""
  return ({'use_ema': use_ema} if 'use_ema' in inspect.signature(method.generate).parameters
          else {})


def quiet_libraries() -> None:
  logging.set_verbosity(logging.ERROR)
  py_logging.getLogger('absl').setLevel(py_logging.ERROR)
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')


def command_help(command: str, module) -> str:
  """`genvision COMMAND --help`: the command's synopsis and its own flags only."""
  fv = module.FLAGS
  lines = [module.SYNOPSIS.rstrip(), '', f'flags of genvision {command}:']
  for name in sorted(fv):
    flag = fv[name]
    if name in ('flagfile', 'undefok') or flag.name != name:
      continue
    boolean = isinstance(flag, flags.BooleanFlag)
    text = f'--{"[no]" if boolean else ""}{name}: {flag.help}'
    if flag.default is not None:
      text += f' (default: {flag.default_as_str})'
    lines.append(flags.text_wrap(text, indent='      ', firstline_indent='  '))
  return '\n'.join(lines)


def parse(command: str, module, args: list[str]) -> list[str]:
  """Parses `args` with the command's own flags (from their defaults: a second in-process
  run does not inherit the first one's values); returns the positional arguments."""
  fv = module.FLAGS
  for name in [n for n in fv if '.' in n]:  # --config.KEY overrides of an earlier parse
    delattr(fv, name)
  fv.unparse_flags()
  precheck = getattr(module, 'precheck', None)
  if precheck is not None:
    precheck(args)
  argv = [f'{PROG} {command}', *args]
  saved, sys.argv = sys.argv, argv  # config_flags reads --config.KEY overrides from sys.argv
  try:
    positional = fv(argv)[1:]
  finally:
    sys.argv = saved
  if positional and not getattr(module, 'POSITIONAL', False):
    raise flags.Error(f'unexpected arguments {positional}')
  return positional


def run_command(command: str, module, args: list[str]) -> int:
  """Runs one command behind the shared error boundary; returns the exit code."""
  if any(a in ('-h', '--help', '-help', '--helpfull') for a in args):
    print(command_help(command, module))
    return 0
  quiet_libraries()
  from genvision_jax.training import host_memory  # pylint: disable=g-import-not-at-top
  host_memory.keep_freed_host_memory()  # before JAX starts its CPU threads; see there
  from genvision_jax import configs, data, training  # pylint: disable=g-import-not-at-top
  from genvision_jax.evaluation.runner import EvaluationError  # pylint: disable=g-import-not-at-top
  prog = f'{PROG} {command}'
  try:
    positional = parse(command, module, args)
  except (flags.Error, configs.ConfigError) as e:
    print(f'{prog}: error: {e}', file=sys.stderr)
    return 2
  try:
    module.main(positional)
  except (UsageError, configs.ConfigError, EvaluationError) as e:
    print(f'{prog}: error: {e}', file=sys.stderr)
    return 2
  except training.Interrupted as e:
    print(f'{prog}: interrupted: {e}', file=sys.stderr)
    return 130
  except (data.DatasetError, training.CheckpointError, training.NonFiniteError,
          FileNotFoundError) as e:
    print(f'{prog}: error: {e}', file=sys.stderr)
    return 1
  return 0
