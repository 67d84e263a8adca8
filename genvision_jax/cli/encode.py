"""`genvision encode`: the codes (posterior means) of real images under a run with an encoder
(VAEs), written as .npz; optionally a scatter plot of them coloured by class and the images
beside their reconstructions D(E(x))."""

import os

from absl import flags

from genvision_jax.cli import common

SYNOPSIS = """\
  genvision encode --workdir=DIR (--images=A.png,B.png,... | --split=test [--num=N])
      [--out=codes.npz] [--scatter=FILE.png] [--reconstruct=FILE.png] [--step=K]"""

FLAGS = flags.FlagValues()
_WORKDIR = common.define_workdir(FLAGS, 'Run directory of a trained run with an encoder (VAE).')
_IMAGES = flags.DEFINE_list('images', None, 'Image files to encode (converted to the run\'s '
                            'channels, resized to its image size).', flag_values=FLAGS)
_SPLIT = flags.DEFINE_string('split', None, 'Encode this split of the run\'s dataset (e.g. '
                             'test).', flag_values=FLAGS)
_NUM = flags.DEFINE_integer('num', None, 'The first N images of --split (default: all).',
                            flag_values=FLAGS)
_OUT = flags.DEFINE_string('out', None, 'Output .npz: mean and logvar of q(z | x) [N, D], '
                           'label [N] (-1 for files), source [N] (default WORKDIR/codes.npz).',
                           flag_values=FLAGS)
_SCATTER = flags.DEFINE_string('scatter', None, 'Also a scatter plot of the codes coloured by '
                               'class (D > 2: their first two principal components).',
                               flag_values=FLAGS)
_RECONSTRUCT = flags.DEFINE_string('reconstruct', None, 'Also rows of (up to 32) images over '
                                   'their reconstructions D(E(x)).', flag_values=FLAGS)
_STEP = common.define_step(FLAGS)


def encode(workdir: str, out: str | None, images=None, split: str | None = None,
           num: int | None = None, scatter: str | None = None,
           reconstruct: str | None = None, step: int | None = None) -> str:
  """Writes the codes of `images` (files) or of `split` to `out` (.npz); returns its path."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from genvision_jax import latent, viz  # pylint: disable=g-import-not-at-top
  from genvision_jax.cli import interpolate  # pylint: disable=g-import-not-at-top
  from genvision_jax.training import load_run, rundir  # pylint: disable=g-import-not-at-top
  if bool(images) == bool(split):
    raise common.UsageError('encode needs --images=A.png,... or --split=NAME (one of them)')
  if num is not None and (num < 1 or not split):
    raise common.UsageError(f'--num takes a positive count of --split images (got {num})')
  config, method, state = load_run(workdir, step)
  try:
    latent.require_encoder(method, config.method, 'genvision encode')
  except ValueError as e:
    raise common.UsageError(str(e)) from None
  if images:
    x = interpolate.read_images(images, method.image_shape, '--images')
    labels, sources = np.full((len(x),), -1, np.int32), list(images)
  else:
    x, labels = interpolate.split_arrays(config, split)
    x, labels = x[:num], labels[:num]
    sources = [f'{split}[{i}]' for i in range(len(x))]
  mean, logvar = latent.posterior_in_batches(method, state, x)
  out = out or os.path.join(workdir, 'codes.npz')
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  with rundir.atomic_open(out, 'wb') as f:
    np.savez(f, mean=mean, label=labels, source=np.asarray(sources),
             **({} if logvar is None else {'logvar': logvar}))  # None: deterministic codes
  if scatter:
    what = f'{len(x)} {split} images' if split else f'{len(x)} image files'
    viz.scatter_codes(mean, labels if split else None, scatter,
                      f'posterior means of {what} ({config.method}, latent_dim '
                      f'{method.latent_dim}, step {int(state.step)})')
  if reconstruct:
    shown = x[:32]
    recon = np.asarray(jax.jit(method.decode)(state, mean[:32]))
    ncol = min(8, len(shown))
    blocks = [np.concatenate([shown[i:i + ncol], recon[i:i + ncol]])
              for i in range(0, len(shown), ncol)]
    rows = [b for b in blocks if len(b) == 2 * ncol]
    tail = [b for b in blocks if len(b) != 2 * ncol]
    if tail:  # pad a short last block so inputs stay above their reconstructions
      n = len(tail[0]) // 2
      pad = np.ones((ncol - n, *x.shape[1:]), np.float32)
      rows.append(np.concatenate([tail[0][:n], pad, tail[0][n:], pad]))
    viz.save_image_grid(np.concatenate(rows), reconstruct, ncol=ncol)
  return out


def main(positional: list[str]) -> None:
  del positional
  for flag, value in (('--scatter', _SCATTER.value), ('--reconstruct', _RECONSTRUCT.value)):
    common.check_out_path(value, flag)
  if _OUT.value and not _OUT.value.endswith('.npz'):
    raise common.UsageError(f'--out={_OUT.value} names the codes file; end it in .npz')
  workdir = common.require_workdir(_WORKDIR, 'encode', 'a trained run with an encoder (VAE)')
  out = encode(workdir, _OUT.value, _IMAGES.value, _SPLIT.value, _NUM.value, _SCATTER.value,
               _RECONSTRUCT.value, _STEP.value)
  print(f'wrote the codes to {out}')
