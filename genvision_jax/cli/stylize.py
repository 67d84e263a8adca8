"""`genvision stylize`: neural style transfer — Gatys et al. by optimization in the features of
a registered network (genvision_jax/style.py), or one forward pass of a trained fast
style-transfer network (`--workdir`).

Writes OUT (the stylized image) and OUT's name with .json: settings, the loss history (every
`--log_every` steps), wall time."""

import json
import os
import time

from absl import flags

from genvision_jax.cli import common

SYNOPSIS = """\
  genvision stylize --content=C.png --style=S.png --out=O.png [--features=random|vgg19|vgg16
      --weights=FILE] [--steps=300 --optimizer=adam|lbfgs --content_weight --style_weight
      --tv_weight --size=256 --init=content|noise --preserve_color]
  genvision stylize --workdir=FAST_RUN --content=C.png --out=O.png [--size=256]"""

FLAGS = flags.FlagValues()
_WORKDIR = flags.DEFINE_string('workdir', None, 'A fast style-transfer run (method fast_style): '
                               'stylize with its trained network instead of optimizing.',
                               flag_values=FLAGS)
_CONTENT = flags.DEFINE_string('content', None, 'The content image (any format Pillow reads).',
                               flag_values=FLAGS)
_STYLE = flags.DEFINE_string('style', None, 'The style image.', flag_values=FLAGS)
_OUT = flags.DEFINE_string('out', None, 'Output image (.png, .jpg).', flag_values=FLAGS)
_FEATURES = flags.DEFINE_string('features', 'random', 'Feature network (random needs no '
                                'weights; vgg19/vgg16 need torchvision\'s weight file).',
                                flag_values=FLAGS)
_WEIGHTS = flags.DEFINE_string('weights', None, 'Weight file of --features (default: its '
                               'environment variable, e.g. $GENVISION_VGG19_WEIGHTS).',
                               flag_values=FLAGS)
_SIZE = flags.DEFINE_integer('size', 256, 'Longer side of the content (and style) image in '
                             'pixels; the aspect ratio is kept.', flag_values=FLAGS)
_STEPS = flags.DEFINE_integer('steps', 300, 'Optimizer iterations.', flag_values=FLAGS)
_OPTIMIZER = flags.DEFINE_enum('optimizer', 'lbfgs', ['adam', 'lbfgs'], 'optax optimizer.',
                               flag_values=FLAGS)
_LR = flags.DEFINE_float('learning_rate', 0.02, 'Adam step size (pixels in [-1, 1]).',
                         flag_values=FLAGS)
_CONTENT_W = flags.DEFINE_float('content_weight', 1.0, 'Weight of the content loss.',
                                flag_values=FLAGS)
_STYLE_W = flags.DEFINE_float('style_weight', None, 'Weight of the style loss (default: the '
                              "network's, see README).", flag_values=FLAGS)
_TV_W = flags.DEFINE_float('tv_weight', 1e-2, 'Weight of the total variation.',
                           flag_values=FLAGS)
_INIT = flags.DEFINE_enum('init', 'content', ['content', 'noise'], 'Start image.',
                          flag_values=FLAGS)
_CONTENT_LAYER = flags.DEFINE_string('content_layer', None, "Content layer (default the "
                                     "network's: relu4_2 for VGG, scale1 for random).",
                                     flag_values=FLAGS)
_STYLE_LAYERS = flags.DEFINE_list('style_layers', None, "Style layers (default the network's).",
                                  flag_values=FLAGS)
_PRESERVE = flags.DEFINE_boolean('preserve_color', False, 'Luminance-only transfer: keep the '
                                 "content's colours.", flag_values=FLAGS)
_LOG_EVERY = flags.DEFINE_integer('log_every', 50, 'Print the losses every N steps (the '
                                  'compiled chunk of iterations).', flag_values=FLAGS)
_SEED = common.define_seed(FLAGS, 'Seed of the noise start image.')

def read_photo(path: str, size: int, flag: str):
  """The image at `path` as [H, W, 3] in [-1, 1], its longer side `size` (aspect kept); any
  mode Pillow reads (data/image_files.py). Problems are usage errors naming the flag."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from genvision_jax.data import DatasetError, image_files  # pylint: disable=g-import-not-at-top
  if not path:
    raise common.UsageError(f'stylize needs {flag}=FILE')
  try:
    x = image_files.read_rgb(path, size, what=f'{flag} image')
  except DatasetError as e:
    raise common.UsageError(str(e)) from None
  return x.astype(np.float32) / 127.5 - 1.0


def save_image(x, out: str) -> None:
  import numpy as np  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from genvision_jax.training import rundir  # pylint: disable=g-import-not-at-top
  img = Image.fromarray(np.round((np.clip(x, -1, 1) + 1) * 127.5).astype(np.uint8))
  parent = os.path.dirname(os.path.abspath(out))
  os.makedirs(parent, exist_ok=True)
  fmt = Image.registered_extensions()[os.path.splitext(out)[1].lower()]
  with rundir.atomic_open(out, 'wb') as f:
    img.save(f, format=fmt)


def _write_json(out: str, record: dict) -> str:
  from genvision_jax.training import rundir  # pylint: disable=g-import-not-at-top
  path = os.path.splitext(out)[0] + '.json'
  with rundir.atomic_open(path, 'w') as f:
    json.dump(record, f, indent=1)
  return path


def main(positional: list[str]) -> None:
  del positional
  if not _OUT.value:
    raise common.UsageError('stylize needs --out=O.png')
  common.check_out_path(_OUT.value, '--out')
  from genvision_jax.data import image_files  # pylint: disable=g-import-not-at-top
  if _SIZE.value < image_files.MIN_SIDE or _SIZE.value > 4096:
    raise common.UsageError(f'--size={_SIZE.value}: use {image_files.MIN_SIDE}..4096 pixels')
  if _WORKDIR.value:
    return _fast(_WORKDIR.value)
  if not _STYLE.value:
    raise common.UsageError('stylize needs --style=S.png (or --workdir=FAST_RUN for a trained '
                            'fast style-transfer network)')
  from genvision_jax import features, style  # pylint: disable=g-import-not-at-top
  content = read_photo(_CONTENT.value, _SIZE.value, '--content')
  style_image = read_photo(_STYLE.value, _SIZE.value, '--style')
  try:
    spec = features.spec(_FEATURES.value)
    if not spec.layers:
      with_maps = [n for n in features.names() if features.spec(n).layers]
      raise features.FeatureError(f'feature network {spec.name!r} exposes no feature maps; use '
                                  f'one of {", ".join(with_maps)}')
    settings = style.Settings(
        steps=_STEPS.value, content_weight=_CONTENT_W.value,
        style_weight=(_STYLE_W.value if _STYLE_W.value is not None
                      else style.default_style_weight(spec.name)),
        tv_weight=_TV_W.value, optimizer=_OPTIMIZER.value, learning_rate=_LR.value,
        init=_INIT.value, content_layer=_CONTENT_LAYER.value or '',
        style_layers=tuple(_STYLE_LAYERS.value or ()), preserve_color=_PRESERVE.value,
        seed=_SEED.value, log_every=_LOG_EVERY.value).check()
    net = features.load(spec.name, _WEIGHTS.value)
    tic = time.time()

    def progress(step, terms):
      print(f'step {step}/{settings.steps}: ' + ', '.join(
          f'{k} {v:.4g}' for k, v in terms.items()) + f' ({time.time() - tic:.0f}s)',
          flush=True)
    image, history = style.stylize(net, content, style_image, settings, progress)
  except (features.FeatureError, style.StyleError) as e:
    raise common.UsageError(str(e)) from None
  seconds = time.time() - tic
  save_image(image, _OUT.value)
  import dataclasses  # pylint: disable=g-import-not-at-top
  record = {'content': os.path.abspath(_CONTENT.value), 'style': os.path.abspath(_STYLE.value),
            'features': spec.name, 'size': list(image.shape[:2]),
            'settings': dataclasses.asdict(settings), 'seconds': round(seconds, 1),
            'losses': {k: v[::settings.log_every] + v[-1:] for k, v in history.items()}}
  path = _write_json(_OUT.value, record)
  print(f'wrote {_OUT.value} ({image.shape[1]}x{image.shape[0]}) and {path} in {seconds:.0f}s')


def _fast(workdir: str) -> None:
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from genvision_jax.training import load_run  # pylint: disable=g-import-not-at-top
  config, method, state = load_run(workdir, None)
  if not hasattr(method, 'stylize'):
    raise common.UsageError(f'{workdir} holds a {config.method!r} run; --workdir needs a fast '
                            'style-transfer run (method fast_style)')
  if _STYLE.value:
    raise common.UsageError('--style is fixed by the trained network of --workdir; drop --style')
  content = read_photo(_CONTENT.value, _SIZE.value, '--content')
  tic = time.time()
  image = np.clip(np.asarray(jax.jit(method.stylize)(state, content[None]))[0], -1.0, 1.0)
  seconds = time.time() - tic
  save_image(image, _OUT.value)
  path = _write_json(_OUT.value, {'content': os.path.abspath(_CONTENT.value),
                                  'workdir': os.path.abspath(workdir),
                                  'size': list(image.shape[:2]), 'seconds': round(seconds, 2)})
  print(f'wrote {_OUT.value} and {path} in {seconds:.2f}s')
