"""`genvision watermark`: watermarks that say which images a model made
(genvision_jax/provenance/).

Tree-Ring (`--scheme=treering`, diffusion runs, no training): `embed` generates images whose
DDIM noise x_T carries the key in its Fourier transform; `detect` inverts PNG files with the
same run and tests the key (p-value of the observed pattern under "not watermarked");
`evaluate` measures the key against every attack (TPR at a fixed FPR on keyed samples,
realized FPR on unkeyed samples and real test digits, quality cost)."""

import glob
import os

from absl import flags

from genvision_jax.cli import common

SYNOPSIS = """\
  genvision watermark embed --scheme=treering --workdir=DIFFUSION_RUN --out=DIR [--num=16]
      [--key_seed=K --radius=4 --pattern=rand|ring|zeros] [--seed=S]
  genvision watermark detect --scheme=treering --workdir=DIFFUSION_RUN --out=DIR IMAGE...
      [--key_seed=K --radius=4 --pattern=rand] [--fpr=1e-3]
  genvision watermark evaluate --scheme=treering --workdir=DIFFUSION_RUN --out=DIR [--num=200]
      [--attacks=jpeg,noise,blur,resize,crop,brightness,regen --regen_run=DIFFUSION_RUN]"""

POSITIONAL = True  # embed | detect IMAGE... | evaluate

SCHEMES = ('treering',)
SUBCOMMANDS = ('embed', 'detect', 'evaluate')

FLAGS = flags.FlagValues()
_WORKDIR = common.define_workdir(FLAGS, 'The run that generates (and, for Tree-Ring, inverts).')
_OUT = flags.DEFINE_string('out', None, 'Output directory (images, JSON, figures).',
                           flag_values=FLAGS)
_SCHEME = flags.DEFINE_enum('scheme', 'treering', SCHEMES, 'The watermark.', flag_values=FLAGS)
_SEED = common.define_seed(FLAGS, 'Seed of the samples (and of the attacks).')
_NUM = flags.DEFINE_integer('num', None, 'embed: images (default 16); evaluate: keyed, '
                            'unkeyed and real images each (default 200).', flag_values=FLAGS)
_KEY_SEED = flags.DEFINE_integer('key_seed', 0, 'Tree-Ring: seed of the key pattern (the '
                                 'secret).', flag_values=FLAGS)
_RADIUS = flags.DEFINE_integer('radius', 4, 'Tree-Ring: radius of the keyed disc of '
                               'frequencies about DC.', flag_values=FLAGS)
_PATTERN = flags.DEFINE_enum('pattern', 'rand', ['rand', 'ring', 'zeros'],
                             'Tree-Ring: the key pattern.', flag_values=FLAGS)
_STEPS = flags.DEFINE_integer('steps', None, 'Tree-Ring: DDIM steps of generation and '
                              "inversion (default: the run's diffusion.sample_steps).",
                              flag_values=FLAGS)
_FPR = flags.DEFINE_float('fpr', 1e-3, 'detect, evaluate: false-positive rate of the test.',
                          flag_values=FLAGS)
_ATTACKS = flags.DEFINE_list('attacks', None, 'evaluate: attacks to sweep (default all; '
                             'regen only with --regen_run).', flag_values=FLAGS)
_REGEN = flags.DEFINE_string('regen_run', None, 'evaluate: the diffusion run of the '
                             'regeneration attack.', flag_values=FLAGS)


def read_images(paths: list[str], size: int, channels: int):
  """(files, images [N, size, size, channels]) of image files and directories of them."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  files = []
  for p in paths:
    if os.path.isdir(p):
      files += sorted(f for f in glob.glob(os.path.join(p, '*'))
                      if f.lower().endswith(common.IMAGE_EXTENSIONS))
    else:
      files.append(p)
  if not files:
    raise common.UsageError('no image files among the arguments: name PNG/JPEG files or '
                            'directories of them')
  return files, np.concatenate([common.read_image(f, size, channels, 'image') for f in files])


def main(positional: list[str]) -> None:
  if not positional or positional[0] not in SUBCOMMANDS:
    raise common.UsageError(f'watermark needs a subcommand, {" | ".join(SUBCOMMANDS)} (got '
                            f'{" ".join(positional) or "none"})')
  sub, rest = positional[0], positional[1:]
  if rest and sub != 'detect':
    raise common.UsageError(f'watermark {sub} takes no positional arguments (got {rest})')
  workdir = common.require_workdir(_WORKDIR, f'watermark {sub}', 'a diffusion run')
  if not _OUT.value:
    raise common.UsageError(f'watermark {sub} needs --out=DIR')
  if os.path.isfile(_OUT.value):
    raise common.UsageError(f'--out={_OUT.value} is a file; give a directory')
  if not 0 < _FPR.value < 1:
    raise common.UsageError(f'--fpr must be in (0, 1) (got {_FPR.value})')
  if _NUM.value is not None and _NUM.value < 1:
    raise common.UsageError(f'--num must be >= 1 (got {_NUM.value})')
  from genvision_jax import attacks as attacks_lib  # pylint: disable=g-import-not-at-top
  from genvision_jax.provenance import runner  # pylint: disable=g-import-not-at-top
  from genvision_jax.provenance import ProvenanceError  # pylint: disable=g-import-not-at-top
  try:
    if sub == 'evaluate':
      chosen = None
      if _ATTACKS.value:
        unknown = [a for a in _ATTACKS.value if a not in attacks_lib.STRENGTHS]
        if unknown:
          raise common.UsageError(f'unknown attacks {unknown}; use some of '
                                  f'{", ".join(attacks_lib.ATTACKS[1:])}')
        chosen = {'none': attacks_lib.STRENGTHS['none']}
        chosen.update({a: attacks_lib.STRENGTHS[a] for a in _ATTACKS.value})
      result = runner.treering_evaluate(
          workdir, _OUT.value, num=_NUM.value or 200, key_seed=_KEY_SEED.value,
          radius=_RADIUS.value, pattern=_PATTERN.value, steps=_STEPS.value, fpr=_FPR.value,
          attacks=chosen, seed=_SEED.value, regen_run=_REGEN.value)
      clean = result['attacks']['none'][0]
      print(f'no attack: TPR {clean["tpr_p"]["rate"]:.3f} at p < {_FPR.value:g}; wrote '
            f'{os.path.join(_OUT.value, "treering.json")} and treering.png')
    elif sub == 'embed':
      written = runner.treering_embed(workdir, _OUT.value, _NUM.value or 16, _KEY_SEED.value,
                                      _RADIUS.value, _PATTERN.value, _STEPS.value, _SEED.value)
      print(f'wrote {written} watermarked images and watermark.json to {_OUT.value}')
    else:
      _, method, _ = runner.load_diffusion_run(workdir)
      size, channels = method.image_shape[0], method.image_shape[-1]
      files, images = read_images(rest, size, channels)
      rows = runner.treering_detect(workdir, images, _KEY_SEED.value, _RADIUS.value,
                                    _PATTERN.value, _STEPS.value, _FPR.value, files=files,
                                    out=_OUT.value)
      flagged = sum(r['watermarked'] for r in rows)
      print(f'{flagged} of {len(rows)} images carry the key (p < {_FPR.value:g}); wrote '
            f'{os.path.join(_OUT.value, "detect.json")} and detect.png')
  except ProvenanceError as e:
    raise common.UsageError(str(e)) from None
