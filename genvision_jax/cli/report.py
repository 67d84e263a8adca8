"""`genvision report`: one self-contained HTML report of studies and runs
(genvision_jax/studies/report.py)."""

from absl import flags

from genvision_jax.cli import common

SYNOPSIS = """\
  genvision report RUN_OR_STUDY ... [--out=report.html] [--humaneval=DB]
      (runs and seed-group directories are compared together; each study gets its section)"""

POSITIONAL = True  # the run, group or study directories

FLAGS = flags.FlagValues()
_OUT = flags.DEFINE_string('out', 'report.html', 'Output HTML file.', flag_values=FLAGS)
_HUMANEVAL = flags.DEFINE_string('humaneval', None, 'A `genvision humaneval` session database '
                                 'to add as a section.', flag_values=FLAGS)


def main(positional: list[str]) -> None:
  from genvision_jax.studies import humaneval, report  # pylint: disable=g-import-not-at-top
  if not positional and not _HUMANEVAL.value:
    raise common.UsageError('report needs study or run directories: genvision report DIR ... '
                            '--out=report.html')
  if not _OUT.value.endswith(('.html', '.htm')):
    raise common.UsageError(f'--out={_OUT.value}: name an .html file')
  try:
    out = report.write_report(positional, _OUT.value, _HUMANEVAL.value)
  except (report.ReportError, humaneval.HumanEvalError) as e:
    raise common.UsageError(str(e)) from None
  print(f'wrote {out}')
