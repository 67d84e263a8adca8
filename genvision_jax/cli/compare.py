"""`genvision compare`: a table of evaluated runs (or groups of seed runs) with intervals and
paired tests, and a figure."""

from absl import flags

from genvision_jax.cli import common

SYNOPSIS = """\
  genvision compare DIR_A DIR_B ... [--out=FILE.png] [--metrics=...]
      (each DIR an evaluated run, or a directory of evaluated seed runs)"""

POSITIONAL = True  # the run or group directories

FLAGS = flags.FlagValues()
_OUT = flags.DEFINE_string('out', 'compare.png', 'Output figure (PNG).', flag_values=FLAGS)
_METRICS = flags.DEFINE_list('metrics', None, 'Metric names to tabulate (default all shared).',
                             flag_values=FLAGS)


def compare(paths: list[str]) -> str:
  """Prints the comparison table of `paths`; returns the figure's path."""
  from genvision_jax.evaluation import runner  # pylint: disable=g-import-not-at-top
  out = _OUT.value or 'compare.png'
  result = runner.compare(paths, metric_names=_METRICS.value, out=out)
  print(result['table'])
  return out


def main(positional: list[str]) -> None:
  if not positional:
    raise common.UsageError('compare needs run or group directories: genvision compare DIR_A '
                            'DIR_B ...')
  print(f'wrote {compare(positional)}')
