"""`genvision translate`: strips input | output(s) | target of an image-to-image run (pix2pix,
palette), from the test split or from an image file."""

import os

from absl import flags

from genvision_jax.cli import common

SYNOPSIS = """\
  genvision translate --workdir=DIR (--split=test --num=N | --input=IMG.png) --out=FILE.png
      [--samples=K] [--seed=S] [--step=K] [--noema]"""

FLAGS = flags.FlagValues()
_WORKDIR = common.define_workdir(FLAGS, 'Run directory of a trained image-to-image run.')
_INPUT = flags.DEFINE_string(
    'input', None, 'A clean image file: degraded by the run\'s task, then translated (resized '
    'to the run\'s image size; grey/colour converted to its channels).', flag_values=FLAGS)
_SPLIT = flags.DEFINE_string('split', 'test', 'Split of the run\'s dataset to take images from.',
                             flag_values=FLAGS)
_NUM = flags.DEFINE_integer('num', 8, 'Images from --split (rows of the strip).',
                            flag_values=FLAGS)
_SAMPLES = flags.DEFINE_integer('samples', 1, 'Outputs per input (the models are stochastic).',
                                flag_values=FLAGS)
_OUT = flags.DEFINE_string('out', None, 'Output PNG (default WORKDIR/translate.png).',
                           flag_values=FLAGS)
_SEED = common.define_seed(FLAGS, 'Random seed of the degradation and of the samples.')
_STEP = common.define_step(FLAGS)
_EMA = common.define_ema(FLAGS)


def translate(workdir: str, out: str | None, seed: int, step: int | None, use_ema: bool,
              num: int = 8, split: str = 'test', input_path: str | None = None,
              samples: int = 1) -> str:
  """Writes rows input | output x samples | target to `out`; returns its path."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from genvision_jax import data as data_lib  # pylint: disable=g-import-not-at-top
  from genvision_jax import tasks, viz  # pylint: disable=g-import-not-at-top
  from genvision_jax.training import load_run  # pylint: disable=g-import-not-at-top
  if num < 1 or samples < 1:
    raise common.UsageError(f'--num and --samples must be >= 1 (got {num}, {samples})')
  config, method, state = load_run(workdir, step)
  if not hasattr(method, 'translate'):
    raise common.UsageError(f'{workdir} holds a {config.method!r} run, which does not '
                            'translate images; use genvision sample')
  size, channels = method.image_shape[0], method.image_shape[-1]
  if input_path:
    images = common.read_image(input_path, size, channels)
  else:
    d = config.data
    data = data_lib.load_split(d.name, split, d.image_size, d.data_dir or None, d.resize_method,
                               in_memory=False)
    take = min(num, data.num_examples)
    images = data.minibatch(0, take, seed)['image']
  pair = tasks.degrade_examples(method.task, images, seed)
  fn = jax.jit(lambda s, x, r: method.translate(s, x, r, use_ema))
  outputs = [np.clip(np.asarray(fn(state, pair['input'], jax.random.key(seed * 1000 + k))),
                     -1, 1) for k in range(samples)]
  shown = np.clip(np.asarray(method.display_input(pair)), -1, 1)
  rows = np.stack([shown, *outputs, np.asarray(pair['target'])], axis=1)
  out = out or os.path.join(workdir, 'translate.png')
  viz.save_image_grid(rows.reshape(-1, *rows.shape[2:]), out, ncol=rows.shape[1])
  return out


def main(positional: list[str]) -> None:
  del positional
  common.check_out_path(_OUT.value)
  workdir = common.require_workdir(_WORKDIR, 'translate', 'a trained image-to-image run')
  out = translate(workdir, _OUT.value, _SEED.value, _STEP.value, _EMA.value, _NUM.value,
                  _SPLIT.value, _INPUT.value, _SAMPLES.value)
  print(f'wrote input | output | target strips to {out}')
