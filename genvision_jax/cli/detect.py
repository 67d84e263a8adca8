"""`genvision detect`: is an image generated? A CNN trained on real digits against the samples
of generator runs, with the spectral baselines of Durall et al. and Frank et al.
(genvision_jax/provenance/detection.py)."""

import os

from absl import flags

from genvision_jax.cli import common

SYNOPSIS = """\
  genvision detect train --runs=RUN,... --out=DETECTOR [--num=2000] [--train_steps=2000] [--noise=jpeg,blur,...]
  genvision detect evaluate --model=DETECTOR --out=DIR [--unseen=RUN,...] [--num=500] [--attacks=jpeg,noise,...]
  genvision detect --model=DETECTOR --out=DIR IMAGE...   (P(generated) per image)"""

POSITIONAL = True  # train | evaluate | image files

FLAGS = flags.FlagValues()
_RUNS = flags.DEFINE_list('runs', None, 'train: the generator runs whose samples are "fake".',
                          flag_values=FLAGS)
_MODEL = flags.DEFINE_string('model', None, 'A detector directory written by `detect train`.',
                             flag_values=FLAGS)
_OUT = flags.DEFINE_string('out', None, 'Output directory.', flag_values=FLAGS)
_NUM = flags.DEFINE_integer('num', None, 'train: samples per run (default 2000); evaluate: '
                            'held-out samples per run and real test digits (default 500).',
                            flag_values=FLAGS)
_STEPS = flags.DEFINE_integer('train_steps', 2000, 'train: Adam steps of batch 64.',
                              flag_values=FLAGS)
_NOISE = flags.DEFINE_list('noise', [], 'train: noise layers, one per batch (attacks.py).',
                           flag_values=FLAGS)
_UNSEEN = flags.DEFINE_list('unseen', [], 'evaluate: generator runs the detector never saw.',
                            flag_values=FLAGS)
_ATTACKS = flags.DEFINE_list('attacks', [], 'evaluate: attacks to sweep (default strengths).',
                             flag_values=FLAGS)
_SEED = common.define_seed(FLAGS, 'Seed of the samples and of training.')


def _runs(names, flag):
  for r in names:
    if not os.path.isdir(r):
      raise common.UsageError(f'{flag}: {r} is not a run directory')
  return list(names)


def main(positional: list[str]) -> None:
  if not _OUT.value:
    raise common.UsageError('detect needs --out=DIR')
  if os.path.isfile(_OUT.value):
    raise common.UsageError(f'--out={_OUT.value} is a file; give a directory')
  from genvision_jax import attacks  # pylint: disable=g-import-not-at-top
  from genvision_jax.provenance import ProvenanceError, forensics  # pylint: disable=g-import-not-at-top
  sub = positional[0] if positional and positional[0] in ('train', 'evaluate') else None
  try:
    if sub == 'train':
      if not _RUNS.value:
        raise common.UsageError('detect train needs --runs=RUN,... (the generators)')
      unknown = [n for n in _NOISE.value if n not in attacks.NOISE_LAYERS]
      if unknown:
        raise common.UsageError(f'unknown noise layers {unknown}; use some of '
                                f'{", ".join(attacks.NOISE_LAYERS)}')
      forensics.detect_train(_OUT.value, _runs(_RUNS.value, '--runs'), _NUM.value or 2000,
                             _STEPS.value, tuple(_NOISE.value), _SEED.value)
      print(f'wrote {os.path.join(_OUT.value, forensics.DETECTOR_FILE)} and detector.json')
      return
    if not _MODEL.value:
      raise common.UsageError('detect needs --model=DETECTOR (written by `detect train`)')
    if sub == 'evaluate':
      unknown = [a for a in _ATTACKS.value if a not in attacks.STRENGTHS or a == 'regen']
      if unknown:
        raise common.UsageError(f'unknown attacks {unknown}; use some of '
                                f'{", ".join(a for a in attacks.ATTACKS[1:] if a != "regen")}')
      result = forensics.detect_evaluate(
          _MODEL.value, _OUT.value, _runs(_UNSEEN.value, '--unseen'), _NUM.value or 500,
          {a: attacks.STRENGTHS[a] for a in _ATTACKS.value}, seed=_SEED.value + 1)
      print(f'wrote {os.path.join(_OUT.value, "detect_eval.json")} and detect_eval.png '
            f'({len(result["auc"])} test sets)')
      return
    if not positional:
      raise common.UsageError('detect needs a subcommand (train | evaluate) or image files')
    from genvision_jax.cli import watermark  # pylint: disable=g-import-not-at-top
    from genvision_jax.provenance import detection  # pylint: disable=g-import-not-at-top
    from genvision_jax.training import rundir  # pylint: disable=g-import-not-at-top
    clf = detection.SourceClassifier.load(os.path.join(_MODEL.value, forensics.DETECTOR_FILE))
    files, images = watermark.read_images(positional, clf.image_shape[0], clf.image_shape[-1])
    p = clf.proba(images)[:, 1]
    os.makedirs(_OUT.value, exist_ok=True)
    rows = [{'image': f, 'p_generated': float(q)} for f, q in zip(files, p)]
    rundir.write_json(os.path.join(_OUT.value, 'detect.json'),
                      {'model': os.path.abspath(_MODEL.value), 'images': rows}, indent=1)
    forensics.probability_figure(files, p, os.path.join(_OUT.value, 'detect.png'))
    for r in rows:
      print(f'{r["image"]}: P(generated) = {r["p_generated"]:.3f}')
  except ProvenanceError as e:
    raise common.UsageError(str(e)) from None
