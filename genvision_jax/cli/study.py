"""`genvision study`: a grid of runs (configs x overrides x seeds, optionally a random search
or an equal wall-clock budget) trained, evaluated with one protocol and reported
(genvision_jax/studies/)."""

import os

from absl import flags
from ml_collections import config_flags

from genvision_jax.cli import common

SYNOPSIS = """\
  genvision study --config=experiments/studies/NAME.py[:variant] --workdir=DIR
      [--config.seeds=(0,1,2) ...]   (resumes: finished runs are skipped)"""

FLAGS = flags.FlagValues()
_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Study config file, e.g. experiments/studies/gan_losses_mnist.py[:smoke]; '
    '--config.a.b=value overrides a field.', flag_values=FLAGS, lock_config=True)
_WORKDIR = common.define_workdir(
    FLAGS, 'Study directory: runs/GROUP/seed_S, study.json, distribution.png, report.html; an '
    'existing one resumes.')


def _spec(argv: list[str]) -> str | None:
  for i, arg in enumerate(argv):
    if arg.startswith('--config='):
      return arg[len('--config='):]
    if arg == '--config' and i + 1 < len(argv):
      return argv[i + 1]
  return None


_SPEC = []


def precheck(argv: list[str]) -> None:
  """A missing study file is one line (not the flag parser's traceback)."""
  from genvision_jax.studies import spec as spec_lib  # pylint: disable=g-import-not-at-top
  _SPEC[:] = [_spec(argv)]
  if _SPEC[0] is not None:
    path = _SPEC[0].partition(':')[0]
    if not os.path.isfile(path):
      raise spec_lib.StudyError(f'study config {path} does not exist')


def main(positional: list[str]) -> None:
  del positional
  if _CONFIG.value is None or not _WORKDIR.value:
    raise common.UsageError('study needs --config=experiments/studies/NAME.py and --workdir=DIR')
  from genvision_jax.studies import runner, spec as spec_lib  # pylint: disable=g-import-not-at-top
  config = _CONFIG.value
  spec_lib.validate(config)
  spec_text = _SPEC[0] if _SPEC else ''
  folder = os.path.dirname(os.path.abspath(spec_text.partition(':')[0]))
  runner.run_study(config, folder, _WORKDIR.value, spec_text=spec_text)
