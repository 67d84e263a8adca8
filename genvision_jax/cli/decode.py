"""`genvision decode`: images decoded from given latent codes (an .npz of `genvision encode`,
or any .npy / .npz array [N, latent_dim]) by a run's decoder or generator."""

import os

from absl import flags

from genvision_jax.cli import common

SYNOPSIS = """\
  genvision decode --workdir=DIR --codes=FILE.npz|FILE.npy [--key=mean] [--out=FILE.png]
      [--ncol=C] [--step=K] [--noema]"""

FLAGS = flags.FlagValues()
_WORKDIR = common.define_workdir(FLAGS)
_CODES = flags.DEFINE_string('codes', None, 'Codes [N, latent_dim]: .npy, or .npz (array '
                             '--key).', flag_values=FLAGS)
_KEY = flags.DEFINE_string('key', 'mean', 'Array of an .npz --codes file.', flag_values=FLAGS)
_OUT = flags.DEFINE_string('out', None, 'Output PNG (default WORKDIR/decoded.png).',
                           flag_values=FLAGS)
_NCOL = flags.DEFINE_integer('ncol', None, 'Images per row of the grid (default: square).',
                             flag_values=FLAGS)
_STEP = common.define_step(FLAGS)
_EMA = common.define_ema(FLAGS)


def read_codes(path: str, key: str):
  """The codes array of an .npy or .npz file (a UsageError naming the problem otherwise)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  if not path or not os.path.isfile(path):
    raise common.UsageError(f'--codes={path} is not a file; give the .npz of genvision encode '
                            'or an .npy array [N, latent_dim]')
  try:
    loaded = np.load(path, allow_pickle=False)
  except (ValueError, OSError) as e:
    raise common.UsageError(f'--codes={path} is not an .npy/.npz array file ({e})') from None
  if isinstance(loaded, np.ndarray):
    return loaded
  with loaded:
    if key not in loaded.files:
      raise common.UsageError(f'--codes={path} has no array {key!r} (it has '
                              f'{", ".join(loaded.files)}); choose one with --key')
    return loaded[key]


def decode(workdir: str, codes_path: str, key: str = 'mean', out: str | None = None,
           ncol: int | None = None, step: int | None = None, use_ema: bool = True) -> str:
  """Writes the images decoded from the codes in `codes_path` to `out`; returns its path."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from genvision_jax import viz  # pylint: disable=g-import-not-at-top
  from genvision_jax.training import load_run  # pylint: disable=g-import-not-at-top
  codes = read_codes(codes_path, key)
  if ncol is not None and ncol < 1:
    raise common.UsageError(f'--ncol must be >= 1 (got {ncol})')
  _, method, state = load_run(workdir, step)
  if codes.ndim != 2 or codes.shape[1] != method.latent_dim or not len(codes):
    raise common.UsageError(f'--codes={codes_path} holds an array of shape {codes.shape}; '
                            f'{workdir} decodes codes [N, {method.latent_dim}]')
  kwargs = common.ema_kwargs(method, use_ema)
  if getattr(method, 'num_classes', 0):
    kwargs['labels'] = jnp.zeros((len(codes),), jnp.int32)
  images = jax.jit(lambda s, z: method.decode(s, z, **kwargs))(state, jnp.asarray(codes,
                                                                                  jnp.float32))
  out = out or os.path.join(workdir, 'decoded.png')
  viz.save_image_grid(jax.device_get(images), out, ncol=ncol)
  return out


def main(positional: list[str]) -> None:
  del positional
  common.check_out_path(_OUT.value)
  workdir = common.require_workdir(_WORKDIR, 'decode')
  out = decode(workdir, _CODES.value, _KEY.value, _OUT.value, _NCOL.value, _STEP.value,
               _EMA.value)
  print(f'wrote the decoded images to {out}')
