"""`genvision prepare`: builds a TFDS dataset into a data directory (once, online for all but
the offline default)."""

from absl import flags

from genvision_jax.cli import common

SYNOPSIS = """\
  genvision prepare --dataset=NAME [--data_dir=DIR]"""

FLAGS = flags.FlagValues()
_DATASET = flags.DEFINE_string('dataset', None, 'TFDS dataset name.', flag_values=FLAGS)
_DATA_DIR = flags.DEFINE_string('data_dir', None, 'TFDS data directory (default '
                                '$TFDS_DATA_DIR or ~/tensorflow_datasets).', flag_values=FLAGS)


def main(positional: list[str]) -> None:
  del positional
  from genvision_jax import data  # pylint: disable=g-import-not-at-top
  if not _DATASET.value:
    raise common.UsageError('prepare needs --dataset=NAME (e.g. mnist, cifar10, '
                            f'{data.DEFAULT_DATASET})')
  print(data.prepare(_DATASET.value, _DATA_DIR.value))
