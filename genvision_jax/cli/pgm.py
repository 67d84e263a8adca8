"""`genvision pgm`: the graphical models of genvision_jax/pgm/ on the offline binarized digits —
MRF denoising, naive Bayes vs logistic regression, and sampled pictures
(evaluation/graphical.py)."""

import os

from absl import flags

from genvision_jax.cli import common

SYNOPSIS = """\
  genvision pgm denoise --out=DIR [--flips=0.05,0.1,0.2,0.3] [--num=500] [--dae=RUN]
      [--gibbs_sweeps=100] [--train_num=N] [--prior=maximum_likelihood|pseudo_likelihood]
      [--pcd_steps=1000]   (MRF denoising vs median filter / DAE)
  genvision pgm classify --out=DIR [--sizes=10,...,4000] [--repeats=10] [--alpha=auto|1]
      [--C=1]
  genvision pgm sample --out=DIR [--num=10] [--vae=RUN] [--gibbs_sweeps=500] [--train_num=N]
      [--pcd_steps=1000]"""

POSITIONAL = True  # denoise | classify | sample

FLAGS = flags.FlagValues()
_OUT = flags.DEFINE_string('out', None, 'Output directory (JSON, figures).', flag_values=FLAGS)
_SEED = common.define_seed(FLAGS, 'Seed of the noise, the training subsets and the samplers.')
_FLIPS = flags.DEFINE_list('flips', ['0.05', '0.1', '0.2', '0.3'], 'denoise: flip '
                           'probabilities, each in (0, 0.5).', flag_values=FLAGS)
_NUM = flags.DEFINE_integer('num', None, 'denoise: test digits (default 500, all); sample: '
                            'pictures per row (default 10).', flag_values=FLAGS)
_DAE = flags.DEFINE_string('dae', None, 'denoise: a denoising-autoencoder run (ideally '
                           'experiments/ae/dae_mnist.py:flip) to compare with.',
                           flag_values=FLAGS)
_GIBBS = flags.DEFINE_integer('gibbs_sweeps', None, 'Gibbs sweeps (denoise: 100, sample: 500).',
                              flag_values=FLAGS)
_TRAIN_NUM = flags.DEFINE_integer('train_num', None, 'denoise, sample: fit the MRF prior on the '
                                  'first N training digits (default all 4,500).',
                                  flag_values=FLAGS)
_SIZES = flags.DEFINE_list('sizes', [str(s) for s in (10, 20, 50, 100, 200, 500, 1000, 2000,
                                                      4000)],
                           'classify: training-set sizes.', flag_values=FLAGS)
_REPEATS = flags.DEFINE_integer('repeats', 10, 'classify: training sets drawn per size.',
                                flag_values=FLAGS)
_ALPHA = flags.DEFINE_string('alpha', 'auto', 'classify: smoothing of naive Bayes, a number '
                             '(1 = Laplace) or auto (empirical Bayes on each training set).',
                             flag_values=FLAGS)
_C = flags.DEFINE_float('C', 1.0, 'classify: inverse L2 strength of logistic regression.',
                        flag_values=FLAGS)
_PCD = flags.DEFINE_integer('pcd_steps', 1000, 'denoise, sample: persistent-contrastive-'
                           'divergence steps of the maximum-likelihood MRF.', flag_values=FLAGS)
_PRIOR = flags.DEFINE_enum('prior', 'maximum_likelihood', ['maximum_likelihood',
                                                           'pseudo_likelihood'],
                           'denoise: how the MRF prior is fitted (maximum likelihood starts '
                           'from the pseudo-likelihood fit).', flag_values=FLAGS)
_VAE = flags.DEFINE_string('vae', None, 'sample: a VAE run whose samples to show beside.',
                           flag_values=FLAGS)

SUBCOMMANDS = ('denoise', 'classify', 'sample')


def _numbers(values, kind, flag, low, high, strict_high=False):
  out = []
  for v in values:
    try:
      x = kind(v)
    except ValueError:
      raise common.UsageError(f'{flag} takes {kind.__name__}s (got {v!r})') from None
    if not (low < x < high if strict_high else low < x <= high):
      bracket = ')' if strict_high else ']'
      raise common.UsageError(f'{flag} values must be in ({low}, {high}{bracket} (got {x})')
    out.append(x)
  if not out:
    raise common.UsageError(f'{flag} needs at least one value')
  return out


def _run_dir(path, flag, method, task=None):
  """`path` if it is a trained run of `method` (and task) on 28x28 single-channel digits."""
  if not path:
    return path
  if not os.path.isdir(os.path.join(path, 'checkpoints')):
    raise common.UsageError(f'{flag}={path} is not a trained run directory (no checkpoints/)')
  from genvision_jax.training import rundir  # pylint: disable=g-import-not-at-top
  config = rundir.read_config(path)
  got = config.method + (f' ({config.task.name})' if 'task' in config else '')
  want = method + (f' ({task})' if task else '')
  if config.method != method or (task and config.task.name != task):
    raise common.UsageError(f'{flag}={path} is a run of method {got}; {flag} takes a run of '
                            f'method {want}, e.g. trained by ' +
                            ('experiments/ae/dae_mnist.py:flip' if task else
                             'experiments/vae_mnist.py'))
  if config.data.image_size != 28:
    raise common.UsageError(f'{flag}={path} makes {config.data.image_size}x'
                            f'{config.data.image_size} images; the digits here are 28x28')
  return path


def main(positional: list[str]) -> None:
  if len(positional) != 1 or positional[0] not in SUBCOMMANDS:
    raise common.UsageError(f'pgm needs one subcommand, {" | ".join(SUBCOMMANDS)} (got '
                            f'{" ".join(positional) or "none"})')
  if not _OUT.value:
    raise common.UsageError('pgm needs --out=DIR for its JSON and figures')
  if os.path.isfile(_OUT.value):
    raise common.UsageError(f'--out={_OUT.value} is a file; give a directory')
  from genvision_jax.evaluation import graphical  # pylint: disable=g-import-not-at-top
  from genvision_jax.pgm.factors import ModelError  # pylint: disable=g-import-not-at-top
  sub = positional[0]
  if _PCD.value < 1:
    raise common.UsageError(f'--pcd_steps must be >= 1 (got {_PCD.value})')
  if _TRAIN_NUM.value is not None and _TRAIN_NUM.value < 2:
    raise common.UsageError(f'--train_num must be >= 2 (got {_TRAIN_NUM.value})')
  try:
    if sub == 'denoise':
      flips = _numbers(_FLIPS.value, float, '--flips', 0.0, 0.5, strict_high=True)
      num = _NUM.value or 500
      if num < 1:
        raise common.UsageError(f'--num must be >= 1 (got {num})')
      graphical.denoise(_OUT.value, flips, num, _SEED.value,
                        _run_dir(_DAE.value, '--dae', 'autoencoder', 'denoising'),
                        _GIBBS.value or 100, _TRAIN_NUM.value, prior_fit=_PRIOR.value,
                        pcd_steps=_PCD.value)
      print(f'wrote {os.path.join(_OUT.value, "denoise.json")}, denoise.png, '
            'denoise_examples.png and flip_P/METHOD/eval/ (genvision compare '
            f'{os.path.join(_OUT.value, "flip_0.1", "bp_map")} '
            f'{os.path.join(_OUT.value, "flip_0.1", "median")})')
    elif sub == 'classify':
      sizes = _numbers(_SIZES.value, int, '--sizes', 1, 4500)
      if _REPEATS.value < 2:
        raise common.UsageError(f'--repeats must be >= 2 for intervals (got {_REPEATS.value})')
      alpha = _ALPHA.value
      if alpha != 'auto':
        try:
          alpha = float(alpha)
        except ValueError:
          raise common.UsageError(f'--alpha takes a number >= 0 or auto (got {alpha!r})') from None
      if (alpha != 'auto' and alpha < 0) or _C.value <= 0:
        raise common.UsageError('--alpha must be >= 0 (or auto) and --C > 0')
      graphical.classify(_OUT.value, sizes, _REPEATS.value, _SEED.value, alpha, _C.value)
      print(f'wrote {os.path.join(_OUT.value, "classify.json")} and classify.png')
    else:
      num = _NUM.value or 10
      if num < 1:
        raise common.UsageError(f'--num must be >= 1 (got {num})')
      graphical.sample_pictures(_OUT.value, num, _SEED.value, _run_dir(_VAE.value, '--vae', 'vae'),
                                _GIBBS.value or 500, _TRAIN_NUM.value, pcd_steps=_PCD.value)
      print(f'wrote {os.path.join(_OUT.value, "samples.png")} and samples.json')
  except ModelError as e:
    raise common.UsageError(str(e)) from None
