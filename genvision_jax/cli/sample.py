"""`genvision sample`: an image grid from a trained run (the run directory only, no data)."""

import inspect
import os

from absl import flags

from genvision_jax.cli import common

SYNOPSIS = """\
  genvision sample --workdir=DIR --num=N --out=FILE.png [--seed=S] [--step=K] [--noema]
      [--label=C | --class_grid] [--sampler=ddim|ddpm|euler|heun|euler_maruyama|dpmpp_2m
      --steps=S --eta=E --guidance=W]                  (diffusion runs of every process)
      [--prompt="a thick 3 to the left of a small 7"]   (text-to-image runs)
      [--temperature=T --top_k=K]                     (autoregressive text-to-image runs)"""

FLAGS = flags.FlagValues()
_WORKDIR = common.define_workdir(FLAGS)
_NUM = flags.DEFINE_integer('num', 64, 'Number of images (per class with --class_grid).',
                            flag_values=FLAGS)
_OUT = flags.DEFINE_string('out', None, 'Output PNG (default WORKDIR/sample.png).',
                           flag_values=FLAGS)
_SEED = common.define_seed(FLAGS, 'Random seed of the latents.')
_STEP = common.define_step(FLAGS)
_EMA = common.define_ema(FLAGS)
_LABEL = flags.DEFINE_integer('label', None, 'Class of every image (conditional models).',
                              flag_values=FLAGS)
_CLASS_GRID = flags.DEFINE_boolean(
    'class_grid', False, 'One row per class, --num images per row (conditional models).',
    flag_values=FLAGS)
_SAMPLER = flags.DEFINE_enum(
    'sampler', None, ['ddim', 'ddpm', 'euler', 'heun', 'euler_maruyama', 'dpmpp_2m'],
    'Diffusion: ddim, ddpm (ancestral, all T steps; ddpm process), euler or heun (probability-'
    'flow ODE), euler_maruyama (reverse SDE; not flow matching) or dpmpp_2m (DPM-Solver++ 2M).',
    flag_values=FLAGS)
_STEPS = flags.DEFINE_integer(
    'steps', None, 'Diffusion: sampler steps (default: the run\'s diffusion.sample_steps; '
    'heun makes 2 steps - 1 network calls; ddpm always runs all T steps).', flag_values=FLAGS)
_ETA = flags.DEFINE_float('eta', None, 'Diffusion: DDIM stochasticity (0: deterministic).',
                          flag_values=FLAGS)
_PROMPT = flags.DEFINE_string(
    'prompt', None, 'Text-to-image runs: the caption every image is sampled from (words of the '
    "run's vocabulary, data_info.json).", flag_values=FLAGS)
_GUIDANCE = flags.DEFINE_float(
    'guidance', None, 'Conditional diffusion and text-to-image: classifier-free guidance w in '
    '(1 + w) out(x, c) - w out(x, null) (on the logits for Parti); 0 = no guidance.',
    flag_values=FLAGS)
_TEMPERATURE = flags.DEFINE_float(
    'temperature', None, 'Autoregressive text-to-image: softmax temperature (0: greedy).',
    flag_values=FLAGS)
_TOP_K = flags.DEFINE_integer(
    'top_k', None, 'Autoregressive text-to-image: sample among the K likeliest codes (0: all).',
    flag_values=FLAGS)


def sample(workdir: str, num: int, out: str | None, seed: int, step: int | None,
           use_ema: bool, label: int | None = None, class_grid: bool = False,
           sampler: str | None = None, steps: int | None = None, eta: float | None = None,
           guidance: float | None = None, prompt: str | None = None,
           temperature: float | None = None, top_k: int | None = None) -> str:
  """Writes a grid of `num` samples of the run in `workdir` to `out`; returns its path."""
  from genvision_jax import viz  # pylint: disable=g-import-not-at-top
  from genvision_jax.training import generate_images, load_run  # pylint: disable=g-import-not-at-top
  from genvision_jax.training.loop import class_grid_labels  # pylint: disable=g-import-not-at-top
  if num < 1:
    raise common.UsageError(f'--num must be >= 1 (got {num})')
  from genvision_jax.training import read_config  # pylint: disable=g-import-not-at-top
  stored = read_config(workdir)  # a bad prompt is refused before anything is compiled
  text_model = 'text' in stored
  if text_model != (prompt is not None):
    raise common.UsageError(
        f'{workdir} holds a text-to-image run: pass --prompt="..."' if text_model else
        f'--prompt applies to text-to-image runs; {workdir} holds a {stored.method!r} run')
  tokens = (prompt_tokens(workdir, prompt, int(stored.text.max_tokens))
            if prompt is not None else None)
  config, method, state = load_run(workdir, step)
  kwargs = common.ema_kwargs(method, use_ema)
  if tokens is not None:
    kwargs['label'] = tokens
  sampling_kwargs = {k: v for k, v in dict(
      sampler=sampler, steps=steps, eta=eta, guidance=guidance, temperature=temperature,
      top_k=top_k).items() if v is not None}
  if sampling_kwargs:
    settings = getattr(method, 'sample_settings', None)
    known = set(inspect.signature(settings).parameters) if settings else set()
    unknown = [k for k in sampling_kwargs if k not in known]
    if settings is None or (unknown and 'unknown' not in known):
      raise common.UsageError(
          f'--{", --".join(unknown or sampling_kwargs)} do not apply to {workdir}, a '
          f'{config.method!r} run' + (f' (its sampling settings: --{", --".join(sorted(known))})'
                                      if known else ''))
    try:
      method.sample_settings(**sampling_kwargs)
    except ValueError as e:
      raise common.UsageError(str(e)) from None
    kwargs.update(sampling_kwargs)
  classes = getattr(method, 'num_classes', 0)
  if (label is not None or class_grid) and not classes:
    raise common.UsageError(f'{workdir} holds an unconditional model: --label and --class_grid '
                            'need one trained with --config.model.conditional=True')
  if label is not None and not 0 <= label < classes:
    raise common.UsageError(f'--label must be in [0, {classes}) (got {label})')
  ncol = None
  if class_grid:
    num *= classes
    grid_kwargs, ncol = class_grid_labels(method, num)
    kwargs.update(grid_kwargs)
  elif label is not None:
    kwargs['label'] = label
  images = generate_images(method, state, num, seed, **kwargs)
  out = out or os.path.join(workdir, 'sample.png')
  viz.save_image_grid(images, out, ncol=ncol)
  return out


def prompt_tokens(workdir: str, prompt: str, max_tokens: int):
  """The word ids of `prompt` in the run's vocabulary (UsageError naming an unknown word and
  the vocabulary)."""
  from genvision_jax.data import digit_scenes  # pylint: disable=g-import-not-at-top
  from genvision_jax.training import rundir  # pylint: disable=g-import-not-at-top
  info = rundir.read_data_info(workdir) or {}
  vocabulary = info.get('vocabulary')
  if not vocabulary:
    raise common.UsageError(f'{workdir}/data_info.json holds no vocabulary: retrain the run')
  try:
    return digit_scenes.tokenize(prompt, tuple(vocabulary), max_tokens)
  except digit_scenes.CaptionError as e:
    raise common.UsageError(str(e)) from None


def main(positional: list[str]) -> None:
  del positional
  common.check_out_path(_OUT.value)
  workdir = common.require_workdir(_WORKDIR, 'sample')
  out = sample(workdir, _NUM.value, _OUT.value, _SEED.value, _STEP.value, _EMA.value,
               _LABEL.value, _CLASS_GRID.value, _SAMPLER.value, _STEPS.value, _ETA.value,
               _GUIDANCE.value, _PROMPT.value, _TEMPERATURE.value, _TOP_K.value)
  print(f'wrote samples to {out}')
