"""Bits/dim of a diffusion run on a held-out split, from the variational bound.

`evaluate_bits_per_dim(workdir)` restores a run (EMA weights by default), evaluates the full
bound -- L_T + all T - 1 KL terms + the discretized decoder term L_0, one x_t per term and
example -- on the test split in fixed-size batches, and writes DIR/eval/bits_per_dim.json with
the protocol (checkpoint step, weights, split, examples, T, variance, seed) and the bound of
each example to DIR/eval/bits_per_dim.npy (for paired tests in `genvision compare`). Kept apart from
`genvision evaluate` (sample-based metrics) so that command can call it for diffusion runs.
"""

import functools
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from genvision_jax import data as data_lib
from genvision_jax.training.loop import load_run

RESULT_FILE = os.path.join('eval', 'bits_per_dim.json')
PER_EXAMPLE_FILE = os.path.join('eval', 'bits_per_dim.npy')  # [num] bound per test example


def evaluate_bits_per_dim(workdir: str, num: int | None = None, step: int | None = None,
                          use_ema: bool = True, seed: int = 0, batch_size: int = 100,
                          split: str = 'test', log=None) -> dict:
  """Evaluates the bound on the first `num` examples of `split` (all when None) and writes
  WORKDIR/eval/bits_per_dim.json; returns the record. `log(message)` reports progress."""
  config, method, state = load_run(workdir, step)
  if config.method != 'diffusion':
    raise ValueError(f'{workdir} holds a {config.method!r} run; bits/dim from the variational '
                     'bound is defined for diffusion runs')
  d = config.data
  data = data_lib.load_split(d.name, split, d.image_size, d.data_dir or None, d.resize_method)
  arrays = data.arrays()
  n = data.num_examples if num is None else min(int(num), data.num_examples)
  if n < 1:
    raise ValueError(f'--num must be >= 1 (got {num})')
  batch_size = min(batch_size, n)
  fn = jax.jit(functools.partial(method.bits_per_dim, use_ema=use_ema))
  base_rng = jax.random.key(seed)
  totals, priors, decoders, terms = [], [], [], []
  tic = time.perf_counter()
  for i, start in enumerate(range(0, n, batch_size)):
    idx = np.arange(start, start + batch_size) % n  # the last batch wraps (one compilation)
    keep = min(batch_size, n - start)
    batch = {'image': jnp.asarray(data_lib.to_model_range(arrays['image'][idx])),
             'label': jnp.asarray(arrays['label'][idx])}
    out = jax.device_get(fn(state, batch, jax.random.fold_in(base_rng, i)))
    totals.append(out['total'][:keep])
    priors.append(out['prior'][:keep])
    decoders.append(out['decoder'][:keep])
    terms.append(out['terms'][:keep])
    if log:
      done = start + keep
      log(f'bits/dim: {done}/{n} examples, running mean '
          f'{np.mean(np.concatenate(totals)):.4f} ({time.perf_counter() - tic:.0f}s)')
  total = np.concatenate(totals).astype(np.float64)
  terms = np.concatenate(terms).astype(np.float64)
  record = {
      'bits_per_dim': float(total.mean()),
      'stderr': float(total.std(ddof=1) / np.sqrt(n)) if n > 1 else None,
      'prior_bpd': float(np.concatenate(priors).mean()),          # L_T
      'decoder_bpd': float(np.concatenate(decoders).mean()),      # L_0
      'kl_terms_bpd': float(terms[:, 1:].sum(axis=1).mean()),     # sum of L_{t-1}, t > 1
      'terms_bpd_by_quarter': [float(q.sum(axis=1).mean())
                               for q in np.array_split(terms, 4, axis=1)],
      'protocol': {
          'checkpoint_step': int(jax.device_get(state.step)),
          'weights': 'ema' if use_ema else 'raw',
          'dataset': d.name, 'split': split, 'num_examples': n,
          'num_timesteps': method.num_timesteps, 'variance': method.variance,
          'conditional': bool(method.num_classes), 'seed': seed,
          'estimator': 'all T terms, one x_t per term and example; x0_hat clipped to [-1, 1]',
      },
      'seconds': time.perf_counter() - tic,
  }
  if jax.process_index() == 0:
    path = os.path.join(workdir, RESULT_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
      json.dump(record, f, indent=2)
    np.save(os.path.join(workdir, PER_EXAMPLE_FILE), total)
  return record
