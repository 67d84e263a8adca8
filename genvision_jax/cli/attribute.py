"""`genvision attribute`: which of N runs made an image? A CNN trained on each run's samples
(model attribution: across families, losses, or seeds of one config), its confusion matrix on
fresh samples, Frank et al.'s DCT baseline, and the attribution of given image files
(genvision_jax/provenance/forensics.py)."""

import os

from absl import flags

from genvision_jax.cli import common

SYNOPSIS = """\
  genvision attribute --runs=RUN,RUN,... --out=DIR [--num=1000] [--test_num=500]
      [--train_steps=2000] [--sizes=10,30,100,300,1000] [IMAGE...]"""

POSITIONAL = True  # image files to attribute

FLAGS = flags.FlagValues()
_RUNS = flags.DEFINE_list('runs', None, 'The candidate generator runs (at least two).',
                          flag_values=FLAGS)
_OUT = flags.DEFINE_string('out', None, 'Output directory (the classifier is kept there and '
                           'reused for the same runs).', flag_values=FLAGS)
_NUM = flags.DEFINE_integer('num', 1000, 'Training samples per run.', flag_values=FLAGS)
_TEST_NUM = flags.DEFINE_integer('test_num', 500, 'Fresh test samples per run.',
                                 flag_values=FLAGS)
_STEPS = flags.DEFINE_integer('train_steps', 2000, 'Adam steps of batch 64.', flag_values=FLAGS)
_SIZES = flags.DEFINE_list('sizes', [], 'Accuracy against training samples per run (one '
                           'classifier per size).', flag_values=FLAGS)
_SEED = common.define_seed(FLAGS, 'Seed of the samples and of training.')


def main(positional: list[str]) -> None:
  if not _RUNS.value or len(_RUNS.value) < 2:
    raise common.UsageError('attribute needs --runs=RUN,RUN,... (at least two runs)')
  if not _OUT.value:
    raise common.UsageError('attribute needs --out=DIR')
  if os.path.isfile(_OUT.value):
    raise common.UsageError(f'--out={_OUT.value} is a file; give a directory')
  for r in _RUNS.value:
    if not os.path.isdir(r):
      raise common.UsageError(f'--runs: {r} is not a run directory')
  try:
    sizes = [int(s) for s in _SIZES.value]
  except ValueError:
    raise common.UsageError(f'--sizes must be integers (got {_SIZES.value})') from None
  if any(s < 1 for s in sizes) or _NUM.value < 2 or _TEST_NUM.value < 1:
    raise common.UsageError('--sizes, --num and --test_num must be positive (--num >= 2)')
  from genvision_jax.provenance import ProvenanceError, forensics  # pylint: disable=g-import-not-at-top
  images = files = None
  try:
    if positional:
      from genvision_jax.cli import watermark  # pylint: disable=g-import-not-at-top
      first = forensics.sample_bank(_RUNS.value[0], 1, 0)
      files, images = watermark.read_images(positional, first.shape[1], first.shape[-1])
    result = forensics.attribute(_OUT.value, _RUNS.value, _NUM.value, _TEST_NUM.value,
                                 _STEPS.value, sizes, _SEED.value, images, files)
  except ProvenanceError as e:
    raise common.UsageError(str(e)) from None
  for r in result.get('images', []):
    print(f'{r["image"]}: {r["run"]} (p = {r["probabilities"][r["run"]]:.3f})')
  print(f'wrote {os.path.join(_OUT.value, "attribute.json")} and confusion.png')
