"""`genvision evaluate`: metrics of a trained run against its data, written to DIR/eval/."""

import math
import os

from absl import flags

from genvision_jax.cli import common

SYNOPSIS = """\
  genvision evaluate --workdir=DIR [--num_samples=N] [--metrics=fd,kid,...]
      [--features=NAME,... --feature_weights=NAME=FILE --inception_weights=FILE]
      [--step=K] [--noema]
      [--nearest_k=5] [--kid_subset_size=M] [--resize=pytorch_fid|clean]
  genvision evaluate --workdir=I2I_RUN --prior=DDPM_RUN [--prior_steps=50] [--prior_eta=1]
      [--prior_guidance=auto|replace|ddnm] [--prior_resamples=1 --prior_jump=10]
      [--prior_step=K] [--prior_name=ddpm_prior]
  genvision evaluate --workdir=DIFFUSION_RUN [--sampler=dpmpp_2m --steps=10]
      [--nfe_sweep=5,10,20,50 [--sweep_samplers=ddim,heun,...] [--sweep_samples=500]]
  genvision evaluate --workdir=TTI_RUN [--num_samples=500] [--guidance=W]
      [--guidance_sweep=0,1,2,4,8 [--sweep_samples=N]]  (text-to-image: prompt faithfulness)"""

FLAGS = flags.FlagValues()
_WORKDIR = common.define_workdir(FLAGS)
_NUM_SAMPLES = flags.DEFINE_integer(
    'num_samples', None, 'Generated samples (default 5000; 1000 for diffusion runs, whose DDIM '
    'sampling is slow).', flag_values=FLAGS)
_NEAREST_K = flags.DEFINE_integer(
    'nearest_k', 5, 'k of the k-NN balls of precision, recall, density and coverage.',
    flag_values=FLAGS)
_KID_SUBSET_SIZE = flags.DEFINE_integer(
    'kid_subset_size', None, 'Rows per KID subset (default min(1000, num_samples/2); at most '
    'num_samples/2).', flag_values=FLAGS)
_RESIZE = flags.DEFINE_enum(
    'resize', 'pytorch_fid', ['pytorch_fid', 'clean'], "Inception input resize: pytorch-fid's "
    "bilinear, or clean-fid's PIL bicubic ('clean').", flag_values=FLAGS)
_METRICS = flags.DEFINE_list(
    'metrics', None, 'Metric groups (fd, kid, manifold, c2st, score, modes, likelihood, '
    'identity (SD-GAN); default all).', flag_values=FLAGS)
_FEATURES = flags.DEFINE_list(
    'features', None, 'Feature networks (digits_cnn, inception, vgg16, vgg19, random: '
    'genvision_jax.features); default digits_cnn for grey images, inception otherwise.',
    flag_values=FLAGS)
_FEATURE_WEIGHTS = flags.DEFINE_list(
    'feature_weights', None, 'Weight files of feature networks as NAME=PATH, e.g. '
    'vgg19=vgg19-dcbb9e9d.pth (default: each network\'s environment variable, e.g. '
    '$GENVISION_VGG19_WEIGHTS).', flag_values=FLAGS)
_INCEPTION = flags.DEFINE_string(
    'inception_weights', None, "pytorch-fid's pt_inception-2015-12-05-6726825d.pth (or its "
    '.npz conversion); default $GENVISION_INCEPTION_WEIGHTS.', flag_values=FLAGS)
_REFERENCE = flags.DEFINE_string('reference_split', 'train', 'Reference data split.',
                                 flag_values=FLAGS)
_BOOTSTRAP = flags.DEFINE_integer(
    'bootstrap', 200, 'Bootstrap resamples of the generated set for intervals.',
    flag_values=FLAGS)
_IWAE = flags.DEFINE_integer('iwae_samples', 64, 'Importance samples (VAE bound).',
                             flag_values=FLAGS)
_BPD_EXAMPLES = flags.DEFINE_integer(
    'bpd_examples', 100, 'Test examples of the diffusion bound in bits/dim (all T terms per '
    'example: ~9 s each on a 2-core CPU; `genvision bpd` results are reused).',
    flag_values=FLAGS)
_PRIOR = flags.DEFINE_string(
    'prior', None, 'Image-to-image runs: an unconditional diffusion run (same image size and '
    'channels) guided by each test pair\'s measurement, evaluated as the baseline '
    'WORKDIR/eval/baselines/PRIOR_NAME (methods/prior_guidance.py).', flag_values=FLAGS)
_PRIOR_STEPS = flags.DEFINE_integer(
    'prior_steps', None, 'DDIM steps of the prior (default its diffusion.sample_steps).',
    flag_values=FLAGS)
_PRIOR_ETA = flags.DEFINE_float('prior_eta', 1.0, 'DDIM eta of the prior (1: ancestral).',
                                flag_values=FLAGS)
_PRIOR_GUIDANCE = flags.DEFINE_enum(
    'prior_guidance', 'auto', ['auto', 'replace', 'ddnm'], "'replace': known pixels <- the "
    "noised measurement (RePaint; masks); 'ddnm': x0_hat <- x0_hat - A^+(A x0_hat - y); "
    "'auto': replace for masks, ddnm otherwise.", flag_values=FLAGS)
_PRIOR_RESAMPLES = flags.DEFINE_integer(
    'prior_resamples', 1, "RePaint's resamples r per jump (1: none).", flag_values=FLAGS)
_PRIOR_JUMP = flags.DEFINE_integer(
    'prior_jump', 10, "RePaint's jump length, in DDIM steps.", flag_values=FLAGS)
_PRIOR_STEP = flags.DEFINE_integer('prior_step', None, "The prior's checkpoint (default latest).",
                                   flag_values=FLAGS)
_PRIOR_NAME = flags.DEFINE_string('prior_name', 'ddpm_prior', 'Baseline name of the prior.',
                                  flag_values=FLAGS)
_GUIDANCE = flags.DEFINE_float(
    'guidance', None, "Text-to-image runs: classifier-free guidance w (default the run's).",
    flag_values=FLAGS)
_GUIDANCE_SWEEP = flags.DEFINE_list(
    'guidance_sweep', None, 'Text-to-image runs: also evaluate these w on the test split '
    '(eval/guidance_sweep.json and .png).', flag_values=FLAGS)
_SWEEP_SAMPLES = flags.DEFINE_integer(
    'sweep_samples', None, 'Samples per point of --nfe_sweep (default 500) or test prompts per '
    '--guidance_sweep value (text-to-image; default: --num_samples).', flag_values=FLAGS)
_SAMPLER = flags.DEFINE_enum(
    'sampler', None, ['ddim', 'ddpm', 'euler', 'heun', 'euler_maruyama', 'dpmpp_2m'],
    "Diffusion runs: the sampler of the evaluated samples (default: the run's "
    'diffusion.sampler).', flag_values=FLAGS)
_STEPS = flags.DEFINE_integer(
    'steps', None, "Diffusion runs: sampler steps (default: the run's diffusion.sample_steps).",
    flag_values=FLAGS)
_NFE_SWEEP = flags.DEFINE_list(
    'nfe_sweep', None, 'Diffusion runs: also measure FD and precision/recall of every sampler '
    'at these budgets of network evaluations (eval/nfe_sweep.json and .png).',
    flag_values=FLAGS)
_SWEEP_SAMPLERS = flags.DEFINE_list(
    'sweep_samplers', None, "Samplers of --nfe_sweep (default: all the run's process takes "
    'but ddpm).', flag_values=FLAGS)
_SEED = common.define_seed(FLAGS, 'Random seed of the generated samples.')
_STEP = common.define_step(FLAGS)
_EMA = common.define_ema(FLAGS)


def prior_settings() -> dict | None:
  """The --prior* flags as `translation.load_prior`'s dict (None without --prior)."""
  if not _PRIOR.value:
    return None
  return {'workdir': _PRIOR.value, 'steps': _PRIOR_STEPS.value, 'eta': _PRIOR_ETA.value,
          'guidance': _PRIOR_GUIDANCE.value, 'resamples': _PRIOR_RESAMPLES.value,
          'jump_length': _PRIOR_JUMP.value, 'name': _PRIOR_NAME.value,
          'step': _PRIOR_STEP.value}


def _numbers(flag, convert, example: str) -> list | None:
  """A list flag's entries as numbers (UsageError naming a bad entry); None when not given."""
  if not flag.value:
    return None
  try:
    return [convert(v) for v in flag.value]
  except ValueError:
    raise common.UsageError(f'--{flag.name} takes {convert.__name__}s, e.g. {example} (got '
                            f'{",".join(flag.value)})') from None


def guidance_sweep() -> list[float] | None:
  """--guidance_sweep as floats (UsageError naming a bad entry)."""
  values = _numbers(_GUIDANCE_SWEEP, float, '0,1,2,4,8')
  bad = [w for w in values or () if not math.isfinite(w) or w < 0]
  if bad:
    raise common.UsageError(f'--guidance_sweep values must be finite and >= 0 (got {bad})')
  return values


def nfe_sweep() -> list[int] | None:
  """--nfe_sweep as integers (UsageError naming a bad entry)."""
  return _numbers(_NFE_SWEEP, int, '5,10,20,50')


def sampling() -> dict | None:
  """--sampler / --steps as generate()'s keyword arguments (None when neither is given)."""
  out = {k: v for k, v in (('sampler', _SAMPLER.value), ('steps', _STEPS.value))
         if v is not None}
  return out or None


def feature_weights() -> dict:
  """--feature_weights as {name: path} (a malformed item or unknown name: a usage error)."""
  from genvision_jax import features  # pylint: disable=g-import-not-at-top
  try:
    return features.parse_weights(_FEATURE_WEIGHTS.value)
  except features.FeatureError as e:
    raise common.UsageError(str(e)) from None


def evaluate(workdir: str) -> str:
  """Evaluates the run in `workdir` with the parsed flags; returns the metrics.json path."""
  from genvision_jax.evaluation import runner  # pylint: disable=g-import-not-at-top
  result = runner.evaluate_run(
      workdir, num_samples=_NUM_SAMPLES.value, metrics=_METRICS.value, features=_FEATURES.value,
      seed=_SEED.value, use_ema=_EMA.value, step=_STEP.value,
      reference_split=_REFERENCE.value, inception_weights=_INCEPTION.value,
      iwae_samples=_IWAE.value, bootstrap=_BOOTSTRAP.value,
      bpd_examples=_BPD_EXAMPLES.value, nearest_k=_NEAREST_K.value,
      kid_subset_size=_KID_SUBSET_SIZE.value, resize=_RESIZE.value, prior=prior_settings(),
      guidance=_GUIDANCE.value, guidance_sweep=guidance_sweep(),
      sweep_samples=_SWEEP_SAMPLES.value, feature_weights=feature_weights(),
      sampling=sampling(), nfe_sweep=nfe_sweep(), sweep_samplers=_SWEEP_SAMPLERS.value)
  intervals = result['intervals']
  for name, value in result['metrics'].items():
    ci = (f'  [{intervals[name][0]:.4g}, {intervals[name][1]:.4g}]' if name in intervals
          else '')
    print(f'{name:32s} {value:.5g}{ci}')
  return os.path.join(workdir, runner.EVAL_DIR, 'metrics.json')


def main(positional: list[str]) -> None:
  del positional
  print(f"wrote {evaluate(common.require_workdir(_WORKDIR, 'evaluate'))}")
