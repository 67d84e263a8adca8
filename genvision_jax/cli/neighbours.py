"""`genvision neighbours`: the nearest training images of a run's samples (or of given image
files) in pixel, digit-classifier or Inception features, and the run's memorization statistic
(genvision_jax/provenance/memorization.py)."""

import os

from absl import flags

from genvision_jax.cli import common

SYNOPSIS = """\
  genvision neighbours --workdir=RUN --out=DIR [--num=1000] [--features=pixels,digits_cnn]
      [--k=5] [--show=8] [--inception_weights=FILE] [IMAGE...]
      [--subset=S.npy [--make_subset=cluster:K:I|random:SIZE:SEED [--avoid=S.npy]]]"""

POSITIONAL = True  # optional image files instead of the run's samples

FLAGS = flags.FlagValues()
_WORKDIR = common.define_workdir(FLAGS, 'A trained generator run (its training data is the '
                                 'reference).')
_OUT = flags.DEFINE_string('out', None, 'Output directory (JSON, figures).', flag_values=FLAGS)
_NUM = flags.DEFINE_integer('num', 1000, 'Samples to generate (without image files).',
                            flag_values=FLAGS)
_FEATURES = flags.DEFINE_list('features', ['pixels', 'digits_cnn'], 'Feature spaces: pixels, '
                              'digits_cnn, inception.', flag_values=FLAGS)
_K = flags.DEFINE_integer('k', 5, 'Nearest training images shown per query.', flag_values=FLAGS)
_SHOW = flags.DEFINE_integer('show', 8, 'Queries shown in the strips.', flag_values=FLAGS)
_SEED = common.define_seed(FLAGS, 'Seed of the samples.')
_SUBSET = flags.DEFINE_string('subset', None, 'A .npy of training-split indices: also report '
                              'the share of samples (and of test images) whose nearest training '
                              'image is in it (counterfactual attribution, README).',
                              flag_values=FLAGS)
_MAKE_SUBSET = flags.DEFINE_string('make_subset', None, 'Write --subset first: cluster:K:I '
                                   '(I-th largest of K k-means clusters) or random:SIZE:SEED.',
                                   flag_values=FLAGS)
_AVOID = flags.DEFINE_string('avoid', None, 'With --make_subset=random:...: a .npy of indices '
                             'the random subset leaves out.', flag_values=FLAGS)
_INCEPTION = flags.DEFINE_string('inception_weights', None, 'Inception weights file '
                                 '(--features=inception).', flag_values=FLAGS)


def main(positional: list[str]) -> None:
  workdir = common.require_workdir(_WORKDIR, 'neighbours')
  if not _OUT.value:
    raise common.UsageError('neighbours needs --out=DIR for its JSON and figures')
  if os.path.isfile(_OUT.value):
    raise common.UsageError(f'--out={_OUT.value} is a file; give a directory')
  for name, value, low in (('--num', _NUM.value, 10), ('--k', _K.value, 1),
                           ('--show', _SHOW.value, 1)):
    if value < low:
      raise common.UsageError(f'{name} must be >= {low} (got {value})')
  from genvision_jax.provenance import ProvenanceError, runner  # pylint: disable=g-import-not-at-top
  from genvision_jax.training import read_config  # pylint: disable=g-import-not-at-top
  images = None
  if positional:
    import numpy as np  # pylint: disable=g-import-not-at-top
    from genvision_jax.cli import watermark  # pylint: disable=g-import-not-at-top
    from genvision_jax.training import rundir  # pylint: disable=g-import-not-at-top
    config = read_config(workdir)
    info = rundir.read_data_info(workdir) or {}
    shape = info.get('image_shape') or (config.data.image_size, config.data.image_size, 1)
    _, images = watermark.read_images(positional, shape[0], shape[-1])
    images = np.asarray(images)
  try:
    result = runner.neighbours(workdir, _OUT.value, _NUM.value, tuple(_FEATURES.value), _K.value,
                               _SHOW.value, images, _SEED.value, _INCEPTION.value,
                               subset=_SUBSET.value, make_subset=_MAKE_SUBSET.value,
                               avoid=_AVOID.value)
  except ProvenanceError as e:
    raise common.UsageError(str(e)) from None
  for space, s in result['spaces'].items():
    print(f'{space}: {s["fraction_closer"]:.3f} closer than the median test image '
          f'(p = {s["p_value"]:.2g})')
  print(f'wrote {os.path.join(_OUT.value, "neighbours.json")}, memorization.png and '
        'neighbours_*.png')
