"""`genvision interpolate`: latent interpolation strips, latent arithmetic, the 2-D manifold and
latent traversals of a run; between random latents, or (models with an encoder: VAEs) between
the codes of real images."""

import functools
import os

from absl import flags

from genvision_jax.cli import common

SYNOPSIS = """\
  genvision interpolate --workdir=DIR [--rows=4] [--steps=8] [--mode=slerp|lerp]
      [--arithmetic] [--out=FILE.png] [--seed=S] [--label=C] [--step=K] [--noema]
      [--from_images=A.png,B.png,... | --from_split=test [--pairs=N]] [--terms=3,thin,thick]
      [--manifold | --traversal]"""

FLAGS = flags.FlagValues()
_WORKDIR = common.define_workdir(FLAGS)
_ROWS = flags.DEFINE_integer('rows', 4, 'Number of strips (alias --pairs: image pairs of '
                             '--from_split; --arithmetic --from_split: 1 row of class means '
                             'and rows - 1 of single images).', flag_values=FLAGS)
flags.DEFINE_alias('pairs', 'rows', flag_values=FLAGS)
_STEPS = flags.DEFINE_integer('steps', 8, 'Images per strip (>= 2); --manifold: the grid\'s '
                              'side.', flag_values=FLAGS)
_MODE = flags.DEFINE_enum(
    'mode', 'slerp', ['slerp', 'lerp'], 'Path between two latents. slerp keeps the norm '
    'between the endpoints\'; lerp\'s midpoint falls inside the shell near sqrt(latent_dim) '
    'where N(0, I) latents, and the codes of real digits, lie.', flag_values=FLAGS)
_ARITHMETIC = flags.DEFINE_boolean(
    'arithmetic', False, 'Strips G(a), G(b), G(c), G(a - b + c) instead: random latents; '
    'with --from_images the codes of images 1-3, 4-6, ...; with --from_split the mean codes of '
    '--terms.', flag_values=FLAGS)
_OUT = flags.DEFINE_string('out', None, 'Output PNG (default WORKDIR/MODE.png, '
                           'encoded_MODE.png, arithmetic.png, manifold.png or traversal.png).',
                           flag_values=FLAGS)
_SEED = common.define_seed(FLAGS, 'Random seed of the latents (of the pairs of --from_split).')
_LABEL = flags.DEFINE_integer('label', None, 'Class of every image (conditional models; '
                              'default 0).', flag_values=FLAGS)
_STEP = common.define_step(FLAGS)
_EMA = common.define_ema(FLAGS)
_FROM_IMAGES = flags.DEFINE_list(
    'from_images', None, 'Image files to encode (models with an encoder): consecutive pairs are '
    'interpolated; triples a,b,c with --arithmetic. Converted to the run\'s channels and '
    'resized to its image size.', flag_values=FLAGS)
_FROM_SPLIT = flags.DEFINE_string(
    'from_split', None, 'Encode images of this split of the run\'s dataset (e.g. test): '
    '--pairs random pairs of different classes, the mean codes of --terms, or the base of '
    '--traversal.', flag_values=FLAGS)
_TERMS = flags.DEFINE_list(
    'terms', ['3', 'thin', 'thick'], '--arithmetic --from_split: a,b,c of a - b + c, each a '
    'class label or thin/thick (stroke thickness) or small/large (ink area): the mean code of '
    'the class, or of the lowest/highest third of each class.', flag_values=FLAGS)
_MANIFOLD = flags.DEFINE_boolean(
    'manifold', False, 'The decoded 2-D latent space (latent_dim = 2): a --steps x --steps '
    'grid at Gaussian quantiles 0.05 .. 0.95 of z_1 (right) and z_2 (up).', flag_values=FLAGS)
_TRAVERSAL = flags.DEFINE_boolean(
    'traversal', False, 'One row per latent dimension: z_d over -3 .. 3, the others at 0 '
    '(with --from_split/--from_images: at the first image\'s code; --from_split orders rows '
    'by the split\'s KL per dimension, largest first).', flag_values=FLAGS)


def split_arrays(config, split: str):
  """(images [N, H, W, C] float32 in [-1, 1], labels [N]) of `split` of the run's dataset."""
  from genvision_jax import data as data_lib  # pylint: disable=g-import-not-at-top
  d = config.data
  arrays = data_lib.load_split(d.name, split, d.image_size, d.data_dir or None,
                               d.resize_method).arrays()
  return data_lib.to_model_range(arrays['image']), arrays['label']


def read_images(paths, image_shape, flag: str):
  import numpy as np  # pylint: disable=g-import-not-at-top
  return np.concatenate([common.read_image(p, image_shape[0], image_shape[-1], flag)
                         for p in paths])


def different_class_pairs(labels, pairs: int, seed: int):
  """Indices (a, b) [pairs] of random examples, b of another class than a where one exists."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  labels = np.asarray(labels)
  a = rng.choice(len(labels), size=pairs, replace=len(labels) < pairs)
  b = []
  for i in a:
    others = np.flatnonzero(labels != labels[i])
    b.append(rng.choice(others if len(others) else np.arange(len(labels))))
  return a, np.asarray(b)


def _check_flags(rows, steps, arithmetic, from_images, from_split, manifold, traversal):
  if rows < 1 or steps < 2:
    raise common.UsageError(f'--rows must be >= 1 and --steps >= 2 (got {rows}, {steps})')
  if manifold + traversal + arithmetic > 1:
    raise common.UsageError('--arithmetic, --manifold and --traversal are separate figures; '
                            'give one of them')
  if from_images and from_split:
    raise common.UsageError('give --from_images or --from_split, not both')
  if manifold and (from_images or from_split):
    raise common.UsageError('--manifold decodes a grid of the prior\'s quantiles; it encodes '
                            'no image (drop --from_images/--from_split; `genvision encode '
                            '--scatter` draws the codes of a split)')
  group = 3 if arithmetic else 2
  if from_images and not traversal and len(from_images) % group:
    raise common.UsageError(
        f'--from_images takes {"triples a,b,c for --arithmetic" if arithmetic else "pairs"}: '
        f'a multiple of {group} files (got {len(from_images)})')


def interpolate(workdir: str, rows: int, steps: int, mode: str, arithmetic: bool,
                out: str | None, seed: int, label: int | None, use_ema: bool,
                step: int | None = None, *, from_images=None, from_split: str | None = None,
                terms=('3', 'thin', 'thick'), manifold: bool = False,
                traversal: bool = False, log=print) -> str:
  """Writes the figure of the run in `workdir` to `out`; returns its path."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from genvision_jax import latent, viz  # pylint: disable=g-import-not-at-top
  from genvision_jax.training import load_run  # pylint: disable=g-import-not-at-top
  _check_flags(rows, steps, arithmetic, from_images, from_split, manifold, traversal)
  config, method, state = load_run(workdir, step)
  encoded = bool(from_images or from_split)
  if encoded:
    try:
      latent.require_encoder(method, config.method,
                             '--from_images' if from_images else '--from_split')
    except ValueError as e:
      raise common.UsageError(str(e)) from None
  kwargs = common.ema_kwargs(method, use_ema)
  classes = getattr(method, 'num_classes', 0)
  if label is not None and not classes:
    raise common.UsageError(f'{workdir} holds an unconditional model: it takes no --label')
  if classes and label is not None and not 0 <= label < classes:
    raise common.UsageError(f'--label must be in [0, {classes}) (got {label})')
  images, labels = None, None
  if from_images:
    images = read_images(from_images, method.image_shape, '--from_images')
  elif from_split:
    images, labels = split_arrays(config, from_split)
  encode = functools.partial(latent.posterior_in_batches, method)

  def decode(z):
    extra = dict(kwargs)
    if classes:
      extra['labels'] = jnp.full((z.shape[0],), label or 0)
    return jax.jit(lambda s, z: method.decode(s, z, **extra))(state, z)

  if manifold:
    if method.latent_dim != 2:
      raise common.UsageError(
          f'--manifold draws a 2-D latent space, but {workdir} has latent_dim '
          f'{method.latent_dim}; train experiments/vae_2d_mnist.py (or use --traversal, one '
          'row per dimension)')
    figure, cols, name = decode(jnp.asarray(latent.quantile_grid(steps))), steps, 'manifold'
  elif traversal:
    base, dims = jnp.zeros((method.latent_dim,)), None
    if encoded:
      mean, logvar = encode(state, images)
      base = mean[0]
      if from_split and logvar is not None:  # None: an autoencoder's deterministic codes
        kl = np.asarray(latent.kl_per_dimension(mean, logvar))
        dims = [int(d) for d in np.argsort(-kl)]
        log('rows: ' + ', '.join(f'z_{d} (KL {kl[d]:.2f} nats)' for d in dims) +
            f' - mean KL per dimension over the {len(mean)} {from_split} images')
    figure = decode(latent.traversal_codes(base, steps, dims=dims))
    cols, name = steps, 'traversal'
  elif arithmetic and from_images:
    codes = encode(state, images)[0].reshape(-1, 3, method.latent_dim)
    figure = decode(latent.arithmetic_rows(codes[:, 0], codes[:, 1], codes[:, 2]))
    cols, name = 4, 'arithmetic'
  elif arithmetic and from_split:
    try:
      terms = latent.parse_terms(terms, classes or int(labels.max()) + 1)
      codes = np.asarray(encode(state, images)[0])
      z, members = latent.term_arithmetic(codes, labels, np.asarray(images), terms, rows)
    except ValueError as e:
      raise common.UsageError(str(e)) from None
    figure = decode(z)
    log(f'rows: mean({terms[0]}) then single {terms[0]} images; columns a, mean({terms[1]}), '
        f'mean({terms[2]}), a - mean({terms[1]}) + mean({terms[2]}); means over '
        + ', '.join(f'{int(m.sum())} {t}' for m, t in zip(members, terms))
        + f' of the {len(codes)} {from_split} images')
    cols, name = 4, 'arithmetic'
  elif encoded:
    if from_split:
      a, b = different_class_pairs(labels, rows, seed)
      x0, x1 = images[a], images[b]
    else:
      x0, x1 = images[0::2], images[1::2]
    figure = jax.jit(lambda s, x0, x1: latent.image_interpolation(method, s, x0, x1, steps,
                                                                  mode))(state, x0, x1)
    cols, name = steps + 2, f'encoded_{mode}'
  else:
    cols = 4 if arithmetic else steps
    if classes:
      kwargs['labels'] = jnp.full((rows * cols,), 0 if label is None else label)
    rng = jax.random.key(seed)
    if arithmetic:
      figure = jax.jit(lambda s, r: latent.arithmetic_images(method, s, r, rows, **kwargs))(
          state, rng)
    else:
      figure = jax.jit(lambda s, r: latent.interpolation_images(method, s, r, rows, steps, mode,
                                                                **kwargs))(state, rng)
    name = 'arithmetic' if arithmetic else mode
  out = out or os.path.join(workdir, f'{name}.png')
  viz.save_image_grid(jax.device_get(figure), out, ncol=cols)
  return out


def main(positional: list[str]) -> None:
  del positional
  common.check_out_path(_OUT.value)
  workdir = common.require_workdir(_WORKDIR, 'interpolate')
  out = interpolate(workdir, _ROWS.value, _STEPS.value, _MODE.value, _ARITHMETIC.value,
                    _OUT.value, _SEED.value, _LABEL.value, _EMA.value, _STEP.value,
                    from_images=_FROM_IMAGES.value, from_split=_FROM_SPLIT.value,
                    terms=_TERMS.value, manifold=_MANIFOLD.value, traversal=_TRAVERSAL.value)
  print(f'wrote {out}')
