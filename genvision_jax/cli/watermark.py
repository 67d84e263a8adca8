"""`genvision watermark`: watermarks that say which images a model made
(genvision_jax/provenance/).

Tree-Ring (`--scheme=treering`, diffusion runs, no training): `embed` generates images whose
DDIM noise x_T carries the key in its Fourier transform; `detect` inverts image files with the
same run and tests the key. HiDDeN (`--scheme=hidden`): `train` trains the encoder/decoder
(`genvision train` on experiments/provenance/hidden_mnist.py by default); `embed` writes an
n-bit key into the samples of any generator run (`--run`) or into image files; `detect` reads
the bits of image files and tests them against the key (binomial). Stable Signature
(`--scheme=signature`): `train` fine-tunes a generator run so that all it makes carries a key
read by a HiDDeN extractor run (experiments/provenance/signature_mnist.py); `embed` samples the
tuned generator, `detect` reads image files with the run's extractor and key. `evaluate`
measures a key against every attack (TPR at a fixed FPR on watermarked samples, realized FPR on unwatermarked
samples and real test digits, quality cost)."""

import glob
import os

from absl import flags

from genvision_jax.cli import common

SYNOPSIS = """\
  genvision watermark train --scheme=hidden|signature --workdir=DIR [--config=experiments/provenance/hidden_mnist.py] [--config.a.b=v ...]
  genvision watermark embed --scheme=treering --workdir=DIFFUSION_RUN --out=DIR [--num=16] [--key_seed=K]
      [--radius=4 --pattern=rand|ring|zeros]
  genvision watermark embed --scheme=hidden --workdir=HIDDEN_RUN --out=DIR (--run=GENERATOR_RUN [--num=16] | IMAGE...)
      [--key_seed=K | --key=0110...]
  genvision watermark embed --scheme=signature --workdir=SIGNATURE_RUN --out=DIR [--num=16]
  genvision watermark detect --scheme=treering|hidden|signature --workdir=RUN --out=DIR IMAGE... [--key_seed=K] [--fpr=1e-3]
  genvision watermark evaluate --scheme=treering|hidden|signature --workdir=RUN --out=DIR [--run=GENERATOR_RUN]
      [--num=200] [--attacks=jpeg,noise,blur,resize,crop,brightness,regen --regen_run=DIFFUSION_RUN]"""

POSITIONAL = True  # train (delegated) | embed [IMAGE...] | detect IMAGE... | evaluate

SCHEMES = ('treering', 'hidden', 'signature')
SUBCOMMANDS = ('train', 'embed', 'detect', 'evaluate')
TRAIN_CONFIGS = {'hidden': os.path.join('experiments', 'provenance', 'hidden_mnist.py'),
                 'signature': os.path.join('experiments', 'provenance', 'signature_mnist.py')}

FLAGS = flags.FlagValues()
_WORKDIR = common.define_workdir(FLAGS, 'Tree-Ring: the diffusion run that generates and '
                                 'inverts; HiDDeN: the trained watermark run.')
_OUT = flags.DEFINE_string('out', None, 'Output directory (images, JSON, figures).',
                           flag_values=FLAGS)
_SCHEME = flags.DEFINE_enum('scheme', 'treering', SCHEMES, 'The watermark.', flag_values=FLAGS)
_SEED = common.define_seed(FLAGS, 'Seed of the samples (and of the attacks).')
_NUM = flags.DEFINE_integer('num', None, 'embed: images (default 16); evaluate: watermarked, '
                            'unwatermarked and real images each (default 200).',
                            flag_values=FLAGS)
_KEY_SEED = flags.DEFINE_integer('key_seed', 0, 'Seed of the key (the secret): Tree-Ring '
                                 'pattern or HiDDeN bits.', flag_values=FLAGS)
_KEY = flags.DEFINE_string('key', None, 'HiDDeN: the key as a string of 0/1, one per bit '
                           '(instead of --key_seed).', flag_values=FLAGS)
_RUN = flags.DEFINE_string('run', None, 'HiDDeN embed/evaluate: the generator run whose samples '
                           'are watermarked.', flag_values=FLAGS)
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


def delegate(args: list[str]) -> int | None:
  """`watermark train ...` is `genvision train` on the scheme's config (hidden_mnist.py or
  signature_mnist.py unless --config is given; its flags are train's); returns its exit code,
  or None for the other subcommands."""
  positional = [a for a in args if not a.startswith('-')]
  if not positional or positional[0] != 'train':
    return None
  rest = [a for a in args if a != 'train']
  schemes = [a.split('=', 1)[1] for a in rest if a.startswith('--scheme=')]
  scheme = schemes[-1] if schemes else 'hidden'
  if scheme not in TRAIN_CONFIGS:
    import sys  # pylint: disable=g-import-not-at-top
    print(f'{common.PROG} watermark: error: --scheme={scheme} is not trained; train '
          f'{" or ".join(TRAIN_CONFIGS)} (Tree-Ring needs no training)', file=sys.stderr)
    return 2
  rest = [a for a in rest if not a.startswith('--scheme')]
  if not any(a.startswith('--config=') or a == '--config' for a in rest):
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    rest.append(f'--config={os.path.join(repo, TRAIN_CONFIGS[scheme])}')
  from genvision_jax.cli import train  # pylint: disable=g-import-not-at-top
  return common.run_command('train', train, rest)


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


def _attacks():
  from genvision_jax import attacks as attacks_lib  # pylint: disable=g-import-not-at-top
  if not _ATTACKS.value:
    return None
  unknown = [a for a in _ATTACKS.value if a not in attacks_lib.STRENGTHS]
  if unknown:
    raise common.UsageError(f'unknown attacks {unknown}; use some of '
                            f'{", ".join(attacks_lib.ATTACKS[1:])}')
  chosen = {'none': attacks_lib.STRENGTHS['none']}
  chosen.update({a: attacks_lib.STRENGTHS[a] for a in _ATTACKS.value})
  return chosen


def _treering(sub: str, workdir: str, rest: list[str]) -> None:
  from genvision_jax.provenance import runner  # pylint: disable=g-import-not-at-top
  if sub == 'evaluate':
    result = runner.treering_evaluate(
        workdir, _OUT.value, num=_NUM.value or 200, key_seed=_KEY_SEED.value,
        radius=_RADIUS.value, pattern=_PATTERN.value, steps=_STEPS.value, fpr=_FPR.value,
        attacks=_attacks(), seed=_SEED.value, regen_run=_REGEN.value)
    clean = result['attacks']['none'][0]
    print(f'no attack: TPR {clean["tpr_p"]["rate"]:.3f} at p <= {_FPR.value:g}; wrote '
          f'{os.path.join(_OUT.value, "treering.json")} and treering.png')
  elif sub == 'embed':
    if rest:
      raise common.UsageError('Tree-Ring watermarks images as they are generated: embed takes '
                              'no image files (use --scheme=hidden for existing images)')
    written = runner.treering_embed(workdir, _OUT.value, _NUM.value or 16, _KEY_SEED.value,
                                    _RADIUS.value, _PATTERN.value, _STEPS.value, _SEED.value)
    print(f'wrote {written} watermarked images and watermark.json to {_OUT.value}')
  else:
    _, method, _ = runner.load_diffusion_run(workdir)
    files, images = read_images(rest, method.image_shape[0], method.image_shape[-1])
    rows = runner.treering_detect(workdir, images, _KEY_SEED.value, _RADIUS.value,
                                  _PATTERN.value, _STEPS.value, _FPR.value, files=files,
                                  out=_OUT.value)
    _report(rows)


def _hidden(sub: str, workdir: str, rest: list[str]) -> None:
  from genvision_jax.provenance import bits, runner  # pylint: disable=g-import-not-at-top
  _, wm = runner.load_hidden_run(workdir)
  key = bits.key_bits(wm.num_bits, _KEY_SEED.value, _KEY.value)
  size, channels = wm.image_shape[0], wm.image_shape[-1]
  if sub == 'evaluate':
    if not _RUN.value or _KEY.value:
      raise common.UsageError('watermark evaluate --scheme=hidden needs --run=GENERATOR_RUN '
                              '(and draws its key from --key_seed)')
    result = runner.hidden_evaluate(workdir, _OUT.value, _RUN.value, num=_NUM.value or 200,
                                    key_seed=_KEY_SEED.value, fpr=_FPR.value, attacks=_attacks(),
                                    seed=_SEED.value, regen_run=_REGEN.value)
    clean = result['attacks']['none'][0]
    print(f'no attack: TPR {clean["tpr_p"]["rate"]:.3f}, bit accuracy '
          f'{clean["bit_accuracy"]:.3f}; wrote {os.path.join(_OUT.value, "hidden.json")} and '
          'hidden.png')
  elif sub == 'embed':
    if bool(rest) == bool(_RUN.value):
      raise common.UsageError('watermark embed --scheme=hidden takes --run=GENERATOR_RUN or '
                              'image files (one of them)')
    files, images = read_images(rest, size, channels) if rest else (None, None)
    written = runner.hidden_embed(workdir, _OUT.value, key, _RUN.value, images,
                                  _NUM.value or 16, _SEED.value, files)
    print(f'wrote {written} watermarked images and watermark.json (key '
          f'{bits.key_string(key)}) to {_OUT.value}')
  else:
    files, images = read_images(rest, size, channels)
    _report(runner.hidden_detect(workdir, images, key, _FPR.value, files, _OUT.value))


def _signature(sub: str, workdir: str, rest: list[str]) -> None:
  from genvision_jax.provenance import runner  # pylint: disable=g-import-not-at-top
  if sub == 'evaluate':
    result = runner.signature_evaluate(workdir, _OUT.value, num=_NUM.value or 200,
                                       fpr=_FPR.value, attacks=_attacks(), seed=_SEED.value,
                                       regen_run=_REGEN.value)
    clean = result['attacks']['none'][0]
    print(f'no attack: TPR {clean["tpr_p"]["rate"]:.3f}, bit accuracy '
          f'{clean["bit_accuracy"]:.3f}; wrote {os.path.join(_OUT.value, "signature.json")} '
          'and signature.png')
  elif sub == 'embed':
    if rest:
      raise common.UsageError('a Stable Signature run watermarks what it generates: embed takes '
                              'no image files (use --scheme=hidden for existing images)')
    written = runner.signature_embed(workdir, _OUT.value, _NUM.value or 16, _SEED.value)
    print(f'wrote {written} watermarked samples and watermark.json to {_OUT.value}')
  else:
    _, _, _, wm, _ = runner.load_signature_run(workdir)
    files, images = read_images(rest, wm.image_shape[0], wm.image_shape[-1])
    _report(runner.signature_detect(workdir, images, _FPR.value, files, _OUT.value))


def _report(rows) -> None:
  flagged = sum(r['watermarked'] for r in rows)
  print(f'{flagged} of {len(rows)} images carry the key (p <= {_FPR.value:g}); wrote '
        f'{os.path.join(_OUT.value, "detect.json")} and detect.png')


def main(positional: list[str]) -> None:
  if not positional or positional[0] not in SUBCOMMANDS:
    raise common.UsageError(f'watermark needs a subcommand, {" | ".join(SUBCOMMANDS)} (got '
                            f'{" ".join(positional) or "none"})')
  sub, rest = positional[0], positional[1:]
  if rest and sub not in ('detect', 'embed'):
    raise common.UsageError(f'watermark {sub} takes no positional arguments (got {rest})')
  if sub == 'detect' and not rest:
    raise common.UsageError('watermark detect needs image files (or directories of them)')
  workdir = common.require_workdir(_WORKDIR, f'watermark {sub}', 'a watermark run')
  if not _OUT.value:
    raise common.UsageError(f'watermark {sub} needs --out=DIR')
  if os.path.isfile(_OUT.value):
    raise common.UsageError(f'--out={_OUT.value} is a file; give a directory')
  if not 0 < _FPR.value < 1:
    raise common.UsageError(f'--fpr must be in (0, 1) (got {_FPR.value})')
  if _NUM.value is not None and _NUM.value < 1:
    raise common.UsageError(f'--num must be >= 1 (got {_NUM.value})')
  if _SCHEME.value != 'hidden' and (_RUN.value or _KEY.value):
    raise common.UsageError(f'--run and --key belong to --scheme=hidden; {_SCHEME.value} '
                            'generates with the run --workdir and its own key')
  from genvision_jax.provenance import ProvenanceError  # pylint: disable=g-import-not-at-top
  try:
    {'treering': _treering, 'hidden': _hidden, 'signature': _signature}[_SCHEME.value](
        sub, workdir, rest)
  except ProvenanceError as e:
    raise common.UsageError(str(e)) from None
