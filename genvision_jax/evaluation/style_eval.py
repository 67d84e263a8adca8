"""`genvision evaluate` of a fast style-transfer run: its perceptual losses on the test split.

Every test image of the run's dataset (photo_patches: patches of two photos never seen in
training) is stylized in one forward pass and scored with the losses the network was trained
on, in the same feature network: content loss (to the test image), style loss (to the run's
style image, RUN/frozen/style.png), total variation and their weighted total. These are
per-example values, so `genvision compare` tests two runs with the paired bootstrap (e.g.
style weights, network widths, feature networks with the same scoring network). Beside them:
the same terms for the unchanged test image (`details['identity/*']`: how much style the input
already has, content loss 0) and the stylization speed.

Writes RUN/eval/metrics.json, per_example.npz and samples.png (rows test image | stylized).
"""

import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from genvision_jax.evaluation import significance as S

TERMS = ('total', 'content', 'style', 'tv')
CHUNK = 32


def evaluate_fast_style(workdir: str, config, state, bootstrap: int = 200, seed: int = 0,
                        say=print) -> dict:
  from genvision_jax import data as data_lib  # pylint: disable=g-import-not-at-top
  from genvision_jax import methods, viz  # pylint: disable=g-import-not-at-top
  from genvision_jax.training import loop, rundir  # pylint: disable=g-import-not-at-top
  tic = time.time()
  d = config.data
  test = data_lib.load_split(d.name, 'test', d.image_size, d.data_dir or None, d.resize_method)
  images = data_lib.to_model_range(test.arrays()['image'])
  # The method with its feature network (a loaded run has none: only training needs it).
  frozen = loop.load_frozen_runs(config, workdir, training=True)
  method = methods.create(config, test.image_shape, 0, frozen)
  scores = jax.jit(method.loss_terms)
  stylize = jax.jit(method.stylize)
  identity_terms = jax.jit(lambda x: method.output_terms(x, x))
  per_example = {k: [] for k in TERMS}
  identity = {k: [] for k in TERMS}
  for start in range(0, len(images), CHUNK):
    x = jnp.asarray(images[start:start + CHUNK])
    total, terms = scores(state.params, x)
    for k, v in {'total': total, **terms}.items():
      per_example[k].append(np.asarray(v, np.float64))
    total, terms = identity_terms(x)
    for k, v in {'total': total, **terms}.items():
      identity[k].append(np.asarray(v, np.float64))
  per_example = {k: np.concatenate(v) for k, v in per_example.items()}
  identity = {k: float(np.concatenate(v).mean()) for k, v in identity.items()}
  # Speed: one forward pass over a chunk, after compiling (best of 3).
  x = jnp.asarray(images[:CHUNK])
  jax.block_until_ready(stylize(state, x))
  times = []
  for _ in range(3):
    t0 = time.time()
    jax.block_until_ready(stylize(state, x))
    times.append(time.time() - t0)
  per_image = min(times) / len(x)

  values = {f'style_transfer/{k}': float(v.mean()) for k, v in per_example.items()}
  intervals = {}
  if bootstrap:
    for k, v in per_example.items():
      b = S.bootstrap_interval(np.mean, v, num_resamples=bootstrap, rng=seed)
      intervals[f'style_transfer/{k}'] = [float(b.low), float(b.high)]
  out_dir = os.path.join(workdir, 'eval')
  os.makedirs(out_dir, exist_ok=True)
  shown = jnp.asarray(images[:8])
  rows = jnp.stack([shown, jnp.clip(stylize(state, shown), -1, 1)], 1)
  viz.save_image_grid(np.asarray(rows.reshape(-1, *rows.shape[2:])),
                      os.path.join(out_dir, 'samples.png'), ncol=2)
  result = {
      'protocol': {
          'workdir': os.path.abspath(workdir), 'method': config.method,
          'checkpoint_step': int(jax.device_get(state.step)), 'dataset': d.name,
          'reference_split': 'test', 'reference_examples': int(len(images)),
          'feature_networks': [config.style.features],
          'weights': {k: float(getattr(method, f'{k}_weight')) for k in ('content', 'style', 'tv')},
          'bootstrap_resamples': bootstrap, 'seed': seed,
          'seconds': round(time.time() - tic, 1),
          'num_samples': int(len(images)),  # compare's protocol key, as for generative runs
      },
      'metrics': values,
      'intervals': intervals,
      'details': {**{f'identity/{k}': v for k, v in identity.items()},
                  'seconds_per_image': per_image, 'image_size': list(test.image_shape)},
  }
  rundir.write_json(os.path.join(out_dir, 'metrics.json'), result, indent=1)
  np.savez(os.path.join(out_dir, 'per_example.npz'),
           **{f'style_transfer/{k}': v for k, v in per_example.items()})
  say(f'stylized and scored {len(images)} test images in {time.time() - tic:.1f}s '
      f'({1000 * per_image:.1f} ms per {test.image_shape[0]} px image)')
  return result

