"""`genvision interpolate`: latent interpolation strips, or latent arithmetic, of a run."""

import os

from absl import flags

from genvision_jax.cli import common

SYNOPSIS = """\
  genvision interpolate --workdir=DIR [--rows=4] [--steps=8] [--mode=slerp|lerp]
      [--arithmetic] [--out=FILE.png] [--seed=S] [--label=C] [--step=K] [--noema]"""

FLAGS = flags.FlagValues()
_WORKDIR = common.define_workdir(FLAGS)
_ROWS = flags.DEFINE_integer('rows', 4, 'Number of strips.', flag_values=FLAGS)
_STEPS = flags.DEFINE_integer('steps', 8, 'Images per strip (>= 2).', flag_values=FLAGS)
_MODE = flags.DEFINE_enum('mode', 'slerp', ['slerp', 'lerp'], 'Path between two latents.',
                          flag_values=FLAGS)
_ARITHMETIC = flags.DEFINE_boolean(
    'arithmetic', False, 'Strips G(a), G(b), G(c), G(a - b + c) instead.', flag_values=FLAGS)
_OUT = flags.DEFINE_string('out', None, 'Output PNG (default WORKDIR/MODE.png or '
                           'WORKDIR/arithmetic.png).', flag_values=FLAGS)
_SEED = common.define_seed(FLAGS, 'Random seed of the latents.')
_LABEL = flags.DEFINE_integer('label', None, 'Class of every image (conditional models; '
                              'default 0).', flag_values=FLAGS)
_STEP = common.define_step(FLAGS)
_EMA = common.define_ema(FLAGS)


def interpolate(workdir: str, rows: int, steps: int, mode: str, arithmetic: bool,
                out: str | None, seed: int, label: int | None, use_ema: bool,
                step: int | None = None) -> str:
  """Writes the strips of the run in `workdir` to `out`; returns its path."""
  import jax  # pylint: disable=g-import-not-at-top
  from genvision_jax import latent, viz  # pylint: disable=g-import-not-at-top
  from genvision_jax.training import load_run  # pylint: disable=g-import-not-at-top
  if rows < 1 or steps < 2:
    raise common.UsageError(f'--rows must be >= 1 and --steps >= 2 (got {rows}, {steps})')
  _, method, state = load_run(workdir, step)
  kwargs = common.ema_kwargs(method, use_ema)
  classes = getattr(method, 'num_classes', 0)
  cols = 4 if arithmetic else steps
  if classes:
    if label is not None and not 0 <= label < classes:
      raise common.UsageError(f'--label must be in [0, {classes}) (got {label})')
    kwargs['labels'] = jax.numpy.full((rows * cols,), 0 if label is None else label)
  elif label is not None:
    raise common.UsageError(f'{workdir} holds an unconditional model: it takes no --label')
  rng = jax.random.PRNGKey(seed)
  if arithmetic:
    images = jax.jit(lambda s, r: latent.arithmetic_images(method, s, r, rows, **kwargs))(
        state, rng)
  else:
    images = jax.jit(lambda s, r: latent.interpolation_images(method, s, r, rows, steps, mode,
                                                              **kwargs))(state, rng)
  out = out or os.path.join(workdir, 'arithmetic.png' if arithmetic else f'{mode}.png')
  viz.save_image_grid(jax.device_get(images), out, ncol=cols)
  return out


def main(positional: list[str]) -> None:
  del positional
  workdir = common.require_workdir(_WORKDIR, 'interpolate')
  out = interpolate(workdir, _ROWS.value, _STEPS.value, _MODE.value, _ARITHMETIC.value,
                    _OUT.value, _SEED.value, _LABEL.value, _EMA.value, _STEP.value)
  print(f'wrote {out}')
