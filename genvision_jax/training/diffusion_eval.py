"""Bits/dim of a diffusion run on a held-out split, from the variational bound.

`evaluate_bits_per_dim(workdir)` restores a run (EMA weights by default) and estimates the bound
on the test split in fixed-size batches: by default (`estimator='mc'`) the unbiased Monte-Carlo
estimate of `genvision_jax.diffusion.likelihood` -- the discrete bound with `num_t` strata of t
and antithetic pairs for the ddpm process, the continuous-time VDM bound for vp / flow / edm --
or (`estimator='exact'`, ddpm process only) every one of the T terms, one x_t per term and
example, or (`estimator='ode'`) the probability-flow ODE likelihood of dequantized data with
Hutchinson's divergence (`ode_steps` Heun steps). It writes DIR/eval/bits_per_dim.json with
the protocol (checkpoint step, weights, split, examples, estimator, seed) and the bound of
each example to DIR/eval/bits_per_dim.npy (for paired tests in `genvision compare`). Kept
apart from `genvision evaluate` (sample-based metrics) so that command can call it for
diffusion runs.
"""

import functools
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from genvision_jax import data as data_lib
from genvision_jax.diffusion import likelihood
from genvision_jax.training.loop import load_run

RESULT_FILE = os.path.join('eval', 'bits_per_dim.json')
PER_EXAMPLE_FILE = os.path.join('eval', 'bits_per_dim.npy')  # [num] bound per test example


ESTIMATORS = ('mc', 'exact', 'ode')
DEFAULT_T_SAMPLES = 32
DEFAULT_ODE_STEPS = 50


def evaluate_bits_per_dim(workdir: str, num: int | None = None, step: int | None = None,
                          use_ema: bool = True, seed: int = 0, batch_size: int = 100,
                          split: str = 'test', log=None, estimator: str = 'mc',
                          num_t: int | None = None, ode_steps: int | None = None,
                          dequantization: str = 'uniform') -> dict:
  """Estimates the bound on the first `num` examples of `split` (all when None) and writes
  WORKDIR/eval/bits_per_dim.json; returns the record. `log(message)` reports progress.
  num_t: strata of the Monte-Carlo estimate (default DEFAULT_T_SAMPLES, at most T - 1 for the
  ddpm process); ode_steps: Heun steps of the ODE (default DEFAULT_ODE_STEPS);
  dequantization: the ODE estimator's q within each 8-bit level ('normal' | 'uniform',
  `likelihood.ode_bpd`)."""
  if estimator not in ESTIMATORS:
    raise ValueError(f'--estimator must be one of {ESTIMATORS} (got {estimator!r})')
  config, method, state = load_run(workdir, step)
  if config.method != 'diffusion':
    raise ValueError(f'{workdir} holds a {config.method!r} run; bits/dim from the variational '
                     'bound is defined for diffusion runs')
  process = method.process.name
  if estimator == 'exact' and process != 'ddpm':
    raise ValueError(f'--estimator=exact sums the T terms of the discrete ddpm process; '
                     f'{workdir} uses the {process!r} process: use --estimator=mc')
  t_default = num_t is None
  if estimator != 'mc' and num_t is not None:
    raise ValueError(f'--t_samples sets the strata of the Monte-Carlo estimator, not of '
                     f'--estimator={estimator}' + ' (use --ode_steps)' * (estimator == 'ode'))
  if estimator != 'ode' and (ode_steps is not None or dequantization != 'uniform'):
    raise ValueError(f'--ode_steps and --dequantization set the ODE estimator; add '
                     f'--estimator=ode (got --estimator={estimator})')
  if estimator == 'ode':
    ode_steps = DEFAULT_ODE_STEPS if ode_steps is None else int(ode_steps)
    if ode_steps < 1:
      raise ValueError(f'--ode_steps must be >= 1 (got {ode_steps})')
    if dequantization not in likelihood.DEQUANTIZATIONS:
      raise ValueError(f'--dequantization must be one of {likelihood.DEQUANTIZATIONS} (got '
                       f'{dequantization!r})')
  if estimator == 'mc':
    limit = method.num_timesteps - 1 if process == 'ddpm' else None
    if t_default:
      num_t = min(DEFAULT_T_SAMPLES, limit or DEFAULT_T_SAMPLES)
    if num_t < 1 or (limit is not None and num_t > limit):
      raise ValueError(f'--t_samples must be in [1, {limit or "inf"}] (got {num_t})')
  d = config.data
  data = data_lib.load_split(d.name, split, d.image_size, d.data_dir or None, d.resize_method)
  arrays = data.arrays()
  n = data.num_examples if num is None else min(int(num), data.num_examples)
  if n < 1:
    raise ValueError(f'--num must be >= 1 (got {num})')
  batch_size = min(batch_size, n)
  if estimator == 'exact':
    fn = jax.jit(functools.partial(method.bits_per_dim, use_ema=use_ema))
  elif estimator == 'ode':
    fn = jax.jit(functools.partial(method.bits_per_dim_ode, steps=ode_steps, use_ema=use_ema,
                                   dequantization=dequantization))
  else:
    fn = jax.jit(functools.partial(method.bits_per_dim_mc, num_t=num_t, use_ema=use_ema))
  base_rng = jax.random.key(seed)
  parts = {}
  tic = time.perf_counter()
  for i, start in enumerate(range(0, n, batch_size)):
    idx = np.arange(start, start + batch_size) % n  # the last batch wraps (one compilation)
    keep = min(batch_size, n - start)
    batch = {'image': jnp.asarray(data_lib.to_model_range(arrays['image'][idx])),
             'label': jnp.asarray(arrays['label'][idx])}
    out = jax.device_get(fn(state, batch, jax.random.fold_in(base_rng, i)))
    for key, value in out.items():
      parts.setdefault(key, []).append(np.asarray(value)[:keep])
    if log:
      done = start + keep
      log(f'bits/dim: {done}/{n} examples, running mean '
          f"{np.mean(np.concatenate(parts['total'])):.4f} ({time.perf_counter() - tic:.0f}s)")
  seconds = time.perf_counter() - tic
  values = {k: np.concatenate(v).astype(np.float64) for k, v in parts.items()}
  total = values['total']
  record = {
      'bits_per_dim': float(total.mean()),
      'stderr': float(total.std(ddof=1) / np.sqrt(n)) if n > 1 else None,
  }
  if estimator != 'ode':
    record['prior_bpd'] = float(values['prior'].mean())
    record['decoder_bpd'] = float(values['decoder'].mean())
  if estimator == 'ode':
    record['dequantization_bpd'] = float(values['dequantization'].mean())
    q = ('uniform' if dequantization == 'uniform' else
         "N(0, u0^2) truncated to the level's bin, u0 the ODE's smoothing at its data end")
    how = (f'probability-flow ODE likelihood: Heun, {ode_steps} steps on the rho = 7 spacing '
           'of sigma / (alpha + sigma) from sigma/alpha = 0.002 (ddpm: its first index) to the '
           "noise end, Hutchinson's divergence (one Rademacher probe per image, a vjp per "
           f'call), variational dequantization within each 8-bit level with q {q} (an upper '
           "bound on the model's discrete bits/dim up to the ODE's discretization error); "
           'x0_hat unclipped')
    calls = 2 * ode_steps
  elif estimator == 'exact':
    terms = values['terms']
    record['kl_terms_bpd'] = float(terms[:, 1:].sum(axis=1).mean())     # sum of L_{t-1}, t > 1
    record['terms_bpd_by_quarter'] = [float(q.sum(axis=1).mean())
                                      for q in np.array_split(terms, 4, axis=1)]
    how = 'all T terms, one x_t per term and example'
    calls = method.num_timesteps
  elif process == 'ddpm':
    record['kl_terms_bpd'] = float(values['diffusion'].mean())
    how = (f'unbiased Monte-Carlo: {num_t} strata of t in 1..T-1, one t per stratum, '
           'antithetic noise pairs; L_0 and L_T every time')
    calls = 2 * num_t + 2
  else:
    record['diffusion_bpd'] = float(values['diffusion'].mean())
    how = (f'continuous-time VDM bound, unbiased Monte-Carlo: {num_t} strata uniform in log SNR '
           'with antithetic noise pairs, discretized Gaussian decoder at sigma/alpha = 0.002')
    calls = 2 * num_t
  record['protocol'] = {
      'checkpoint_step': int(jax.device_get(state.step)),
      'weights': 'ema' if use_ema else 'raw',
      'dataset': d.name, 'split': split, 'num_examples': n,
      'process': process, 'num_timesteps': method.num_timesteps, 'variance': method.variance,
      'conditional': bool(method.num_classes), 'seed': seed,
      'estimator': estimator, 't_samples': num_t if estimator == 'mc' else None,
      't_samples_default': t_default,
      'network_calls_per_example': calls,
      'ode_steps': ode_steps if estimator == 'ode' else None,
      'dequantization': dequantization if estimator == 'ode' else None,
      'how': how + '; x0_hat clipped to [-1, 1]' * (bool(method.clip) and estimator != 'ode'),
      'stderr': 'over examples (it includes the Monte-Carlo noise of each estimate)',
  }
  record['seconds'] = seconds
  record['seconds_per_example'] = seconds / n
  if jax.process_index() == 0:
    path = os.path.join(workdir, RESULT_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
      json.dump(record, f, indent=2)
    np.save(os.path.join(workdir, PER_EXAMPLE_FILE), total)
  return record
