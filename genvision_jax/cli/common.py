"""What every command shares: the common flags, the error boundary and the exit codes.

Exit codes: 0 done; 2 bad usage or config (nothing was touched); 1 an expected failure at run
time (missing dataset, unreadable checkpoint, non-finite loss, missing file); 130 interrupted
(SIGTERM/SIGINT, after saving a checkpoint). Every expected failure is one line
`genvision COMMAND: error: ...` naming the cause and the fix, without a traceback: besides
the errors of the package, an OSError from the system (full disk, read-only file system, a
path under a file, permissions; by errno, see training/rundir.describe_os_error), found also
as the cause of another library's exception, and a malformed file of a run directory.
"""

import inspect
import logging as py_logging
import os
import sys
import warnings

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


IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.gif', '.tif', '.tiff', '.webp')


def check_out_path(out: str | None, flag: str = '--out') -> None:
  """Refuses (before any compute) an output image path PIL cannot write: an existing
  directory, a name without a known image extension, or a path under a file."""
  if out is None:
    return
  if os.path.isdir(out):
    raise UsageError(f'{flag}={out} is an existing directory; name an image file, e.g. '
                     f'{os.path.join(out, "samples.png")}')
  ext = os.path.splitext(out)[1].lower()
  if ext not in IMAGE_EXTENSIONS:
    raise UsageError(f'{flag}={out} has no known image extension ({", ".join(IMAGE_EXTENSIONS)})'
                     f'; e.g. {flag}={os.path.splitext(out)[0]}.png')
  parent = os.path.dirname(os.path.abspath(out))
  while parent and not os.path.exists(parent):
    parent = os.path.dirname(parent)
  if parent and not os.path.isdir(parent):
    raise UsageError(f'{flag}={out} lies under {parent}, which is a file, not a directory; '
                     'choose a path under a directory')


def read_image(path: str, size: int, channels: int, flag: str = '--input'):
  """The image file at `path` (given as `flag`) as [1, size, size, channels] in [-1, 1]:
  converted to grey (L) or RGB, resized (Pillow, bicubic) when its size differs; a missing or
  unreadable file is a UsageError."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from PIL import Image, UnidentifiedImageError  # pylint: disable=g-import-not-at-top
  if not os.path.isfile(path):
    raise UsageError(f'{flag}={path} does not exist; name an image file')
  try:
    with Image.open(path) as im:
      im = im.convert('L' if channels == 1 else 'RGB')
      if im.size != (size, size):
        im = im.resize((size, size), Image.Resampling.BICUBIC)
      x = np.asarray(im, np.float32)
  except (UnidentifiedImageError, OSError) as e:
    raise UsageError(f'{flag}={path} is not an image Pillow can read ({e}); use a PNG '
                     'or JPEG') from None
  x = x.reshape(1, size, size, channels)
  return x / 127.5 - 1.0


def ema_kwargs(method, use_ema: bool) -> dict:
  """{'use_ema': ...} for methods whose generate/decode choose EMA or raw weights."""
  return ({'use_ema': use_ema} if 'use_ema' in inspect.signature(method.generate).parameters
          else {})


_ORBAX = f'{os.sep}orbax{os.sep}'


def _not_from_orbax(record: py_logging.LogRecord) -> bool:
  """Orbax logs the failure of a background write (with its traceback) before raising it to
  the caller, where the error boundary reports it in one line: drop the log record."""
  return _ORBAX not in record.pathname


def quiet_libraries() -> None:
  logging.set_verbosity(logging.ERROR)
  absl_logger = py_logging.getLogger('absl')
  absl_logger.setLevel(py_logging.ERROR)
  if _not_from_orbax not in absl_logger.filters:
    absl_logger.addFilter(_not_from_orbax)
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
  # A checkpoint read or write that fails half-way (a corrupt file, a disk filling up) leaves
  # orbax's asyncio tasks with unretrieved errors, logged by asyncio when collected; its array
  # writer's threads call back into the event loop orbax has closed; the coroutines of the
  # other arrays are collected with their errors. Python reports the last two as unraisable
  # (a traceback each). The error boundary has reported the failure already: all are dropped.
  py_logging.getLogger('asyncio').setLevel(py_logging.CRITICAL)
  warnings.filterwarnings('ignore', message='coroutine .* was never awaited',
                          category=RuntimeWarning)
  if not getattr(sys.unraisablehook, 'drops_checkpoint_io_leftovers', False):
    sys.unraisablehook = _dropping_checkpoint_io_leftovers(sys.unraisablehook)


def _dropping_checkpoint_io_leftovers(hook):
  """`hook` for every unraisable exception but those left by a failed orbax read or write:
  RuntimeError('Event loop is closed') and errors of orbax's collected coroutines."""
  def unraisablehook(unraisable):
    value, code = unraisable.exc_value, getattr(unraisable.object, 'cr_code', None)
    closed_loop = isinstance(value, RuntimeError) and str(value) == 'Event loop is closed'
    if not (closed_loop or (code is not None and _ORBAX in code.co_filename)):
      hook(unraisable)

  unraisablehook.drops_checkpoint_io_leftovers = True
  return unraisablehook


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
  """Runs one command behind the shared error boundary; returns the exit code. A module's
  optional `delegate(args) -> int | None` may hand the whole call to another command (e.g.
  `watermark train` is `train`) and return its exit code."""
  delegate = getattr(module, 'delegate', None)
  if delegate is not None:
    code = delegate(args)
    if code is not None:
      return code
  if any(a in ('-h', '--help', '-help', '--helpfull') for a in args):
    print(command_help(command, module))
    return 0
  quiet_libraries()
  from genvision_jax.training import host_memory  # pylint: disable=g-import-not-at-top
  host_memory.keep_freed_host_memory()  # before JAX starts its CPU threads; see there
  from genvision_jax import configs, data, training  # pylint: disable=g-import-not-at-top
  from genvision_jax.evaluation.runner import EvaluationError  # pylint: disable=g-import-not-at-top
  from genvision_jax.features import FeatureError  # pylint: disable=g-import-not-at-top
  prog = f'{PROG} {command}'
  try:
    positional = parse(command, module, args)
  except (flags.Error, configs.ConfigError) as e:
    print(f'{prog}: error: {e}', file=sys.stderr)
    return 2
  try:
    module.main(positional)
  except (UsageError, configs.ConfigError, EvaluationError, training.ConfigChangeError,
          FeatureError) as e:
    print(f'{prog}: error: {e}', file=sys.stderr)
    return 2
  except training.Interrupted as e:
    print(f'{prog}: interrupted: {e}', file=sys.stderr)
    return 130
  except (data.DatasetError, training.CheckpointError, training.NonFiniteError,
          training.RunDirError) as e:
    print(f'{prog}: error: {e}', file=sys.stderr)
    return 1
  except Exception as e:  # pylint: disable=broad-except
    message = os_error_message(e)
    if message is None:
      raise  # a bug: its traceback is wanted
    print(f'{prog}: error: {message}', file=sys.stderr)
    return 1
  return 0


def os_error_message(e: BaseException) -> str | None:
  """One line for an OSError (or an exception caused by one): ours carry their own message,
  the system's (errno set) are described by errno with the path and the fix."""
  from genvision_jax.training import rundir  # pylint: disable=g-import-not-at-top
  if isinstance(e, OSError) and e.errno is None and str(e):
    return str(e)  # raised by genvision with a message, e.g. FileNotFoundError('not a run')
  os_error = rundir.find_os_error(e)
  return None if os_error is None else rundir.describe_os_error(os_error)
