"""One likelihood table: every likelihood model of the package on the same protocol
(`genvision likelihoods RUN...`).

Protocol (recorded in each RUN/eval/likelihood.json):
- Test split of the run's dataset (the first `num` images when given), one seed.
- Binary models (product and mixture of Bernoullis, the VAE with `data.binarize` dynamic or
  static) see the test digits binarized ONCE, each pixel on with probability (x + 1) / 2, the
  draw keyed by (seed, the image's content) (`methods.vae.binarize_static(images, seed)`): one
  fixed binarization shared by every binary model evaluated with the same seed. Their number
  is -log p(x) in nats per image; bits/dim = nats / (D ln 2).
- 8-bit models (the GMM, the VAE with the discretized Gaussian, diffusion) give the
  probability of the 8-bit digits, 256 levels per pixel: bits/dim = -log2 P(x) / D, and nats
  per image = bits/dim * D ln 2. Discretized likelihoods (the diagonal GMM, the VAE's decoder,
  diffusion's L_0) integrate a Gaussian over each pixel's bin of width w = 2/255 in [-1, 1]
  (edge bins to +-inf). A density without a closed-form discretization (the full-covariance
  GMM, and the diagonal one for comparison) is evaluated by uniform dequantization:
  -log P(x) <= -E_u log p(x + w u) - D log w, u ~ U(-1/2, 1/2)^D (one draw per test image,
  keyed by the seed), so bits/dim <= -log p(x + w u) / (D ln 2) + log2(255 / 2)
  (log2(255/2) = 6.994: the "+ 8" of data scaled to [0, 1] with bins of 1/256, here for
  bins of 2/255).
- Bounds: the VAE's importance-weighted bound log mean_i w_i with k = 1 (the ELBO), 50 and
  `iwae_samples` (5,000) from ONE set of `iwae_samples` log-weights per image: the k = 1 and
  k = 50 values are the means over the disjoint groups of k, unbiased estimates of those
  bounds; diffusion's variational bound from `genvision bpd` (all T terms, the first
  `bpd_examples` test images), reused when it ran on the same checkpoint and seed.
Exact likelihoods (Bernoulli models, the discretized diagonal GMM) are exact; the rest are
bounds (the NLL is at most the number shown).
"""

import math
import os
import time

import jax
import numpy as np
from jax.scipy.special import logsumexp

RESULT_FILE = os.path.join('eval', 'likelihood.json')
LN2 = math.log(2.0)


def nats_to_bits_per_dim(nats_per_image, num_dims: int):
  """-log2 P / D from -log P in nats per image."""
  return np.asarray(nats_per_image, np.float64) / (num_dims * LN2)


def bits_per_dim_to_nats(bits_per_dim, num_dims: int):
  """-log P in nats per image from bits/dim."""
  return np.asarray(bits_per_dim, np.float64) * num_dims * LN2


def iwae_from_log_weights(log_w, k: int) -> np.ndarray:
  """[N] estimates of the k-sample bound from log-weights [N, K] (k divides K): the mean over
  the K / k disjoint groups of log mean_{i in group} w_i (k = 1: the ELBO estimate)."""
  log_w = np.asarray(log_w, np.float64)
  n, total = log_w.shape
  if total % k:
    raise ValueError(f'k={k} does not divide the {total} log-weights per image')
  groups = log_w.reshape(n, total // k, k)
  return np.mean(np.asarray(logsumexp(groups, axis=-1)) - math.log(k), axis=-1)


def vae_log_weights(method, state, x, num_samples: int, seed: int,
                    max_per_call: int = 6400) -> np.ndarray:
  """[N, num_samples] IWAE log-weights (float64) of images x, in chunks of <= max_per_call
  image-samples per call (one image at a time when num_samples alone exceeds it), image i's
  chunk keyed by fold(seed + its first index)."""
  fn = jax.jit(lambda s, xb, r: method.log_importance_weights(s, xb, r, num_samples))
  chunk = max(1, min(100, max_per_call // num_samples))
  return np.concatenate([
      np.asarray(fn(state, x[i:i + chunk], jax.random.key(seed + i)), np.float64)
      for i in range(0, len(x), chunk)])


def _row(model: str, bound: str, data: str, log_p, num_dims: int) -> dict:
  """One table row from per-image log-probabilities (nats): the mean NLL per image and per
  dimension with its standard error over images."""
  nll = -np.asarray(log_p, np.float64)
  se = float(nll.std(ddof=1) / math.sqrt(len(nll))) if len(nll) > 1 else 0.0
  return {'model': model, 'bound': bound, 'data': data, 'examples': int(len(nll)),
          'nats': float(nll.mean()), 'nats_stderr': se,
          'bits_per_dim': float(nats_to_bits_per_dim(nll.mean(), num_dims)),
          'bits_per_dim_stderr': float(nats_to_bits_per_dim(se, num_dims))}


def _describe(config) -> str:
  m = config.model
  if config.method == 'simple':
    if m.family == 'bernoulli':
      return f'product of Bernoullis (alpha={m.alpha})'
    if m.family == 'bernoulli_mixture':
      return f'mixture of {m.components} Bernoulli products (EM)'
    return f'GMM, {m.components} components, {m.covariance} covariance (EM)'
  if config.method == 'vae':
    return f'VAE ({m.architecture}, latent {m.latent_dim}, {m.likelihood})'
  return f'{config.method} ({config.model.get("base", "")})'.replace(' ()', '')


def check_run(workdir: str) -> None:
  """Refuses (before loading anything) a run whose model has no likelihood of discrete data:
  a method other than simple, vae and diffusion, or a VAE with a density likelihood."""
  from genvision_jax.evaluation import runner  # pylint: disable=g-import-not-at-top
  from genvision_jax.methods import vae  # pylint: disable=g-import-not-at-top
  from genvision_jax.training import rundir  # pylint: disable=g-import-not-at-top
  config = rundir.read_config(workdir)
  if config.method not in ('simple', 'vae', 'diffusion'):
    raise runner.EvaluationError(f'{workdir} holds a {config.method!r} run, which has no '
                                 'likelihood; the table takes simple, vae and diffusion runs')
  if config.method == 'vae' and not vae.LIKELIHOODS[config.model.likelihood][1]:
    raise runner.EvaluationError(
        f"{workdir}: the VAE's likelihood {config.model.likelihood!r} is not a probability of "
        'discrete data, so it has no place in a likelihood table; train with '
        '--config.data.binarize=dynamic (Bernoulli) or '
        '--config.model.likelihood=discretized_gaussian (8-bit)')


def evaluate_run(workdir: str, seed: int = 0, iwae_samples: int = 5000, num: int | None = None,
                 step: int | None = None, use_ema: bool = True, bpd_examples: int = 100,
                 say=print) -> dict:
  """The likelihood rows of one run; writes WORKDIR/eval/likelihood.json and returns it."""
  from genvision_jax import data as data_lib  # pylint: disable=g-import-not-at-top
  from genvision_jax.evaluation import runner  # pylint: disable=g-import-not-at-top
  from genvision_jax.training import load_run, rundir  # pylint: disable=g-import-not-at-top
  if num is not None and num < 1:
    raise runner.EvaluationError(f'--num must be >= 1 (got {num})')
  tic = time.time()
  check_run(workdir)
  config, method, state = load_run(workdir, step)
  name, d = _describe(config), config.data
  num_dims = int(np.prod(method.image_shape))
  rows, protocol = [], {'seed': seed, 'split': 'test', 'dataset': d.name, 'num_dims': num_dims,
                        'checkpoint_step': int(jax.device_get(state.step)), 'method': config.method}

  def test_images():
    test = data_lib.load_split(d.name, 'test', d.image_size, d.data_dir or None,
                               d.resize_method).arrays()['image']
    return data_lib.to_model_range(test if num is None else test[:num])

  if config.method == 'simple':
    x, p = method.likelihood_data(test_images(), seed)
    protocol.update(p)
    values = jax.device_get(jax.jit(method.test_log_likelihoods)(state, x, jax.random.key(seed)))
    bounds = {'exact': 'exact', 'discretized': 'exact (discretized Gaussians)',
              'dequantized': 'bound (uniform dequantization)'}
    for key in ('exact', 'discretized', 'dequantized'):
      if key in values:
        rows.append(_row(name, bounds[key], p['data'], values[key], num_dims))
  elif config.method == 'vae':
    x, p = method.likelihood_data(test_images(), seed)
    protocol.update(p, iwae_samples=iwae_samples)
    data = 'binarized' if p['binarize'] != 'none' else '8-bit'
    log_w = vae_log_weights(method, state, np.asarray(x), iwae_samples, seed)
    for k in sorted({1, 50, iwae_samples}):
      if k <= iwae_samples and iwae_samples % k == 0:
        bound = 'ELBO (k = 1)' if k == 1 else f'IWAE k = {k}'
        rows.append(_row(name, bound, data, iwae_from_log_weights(log_w, k), num_dims))
  elif config.method == 'diffusion':
    step_now = int(jax.device_get(state.step))
    bpd = runner._diffusion_bits_per_dim(workdir, step_now, use_ema, seed, bpd_examples, say)  # pylint: disable=protected-access
    rows.append(_row(name, f'variational bound (all T terms, first {len(bpd)} test images)',
                     '8-bit', -bits_per_dim_to_nats(bpd, num_dims), num_dims))
    protocol.update(weights='ema' if use_ema else 'raw', bpd_examples=len(bpd))
  protocol['seconds'] = round(time.time() - tic, 1)
  record = {'workdir': os.path.abspath(workdir), 'rows': rows, 'protocol': protocol}
  os.makedirs(os.path.join(workdir, 'eval'), exist_ok=True)
  rundir.write_json(os.path.join(workdir, RESULT_FILE), record, indent=1)
  say(f'{workdir}: {len(rows)} row(s) in {protocol["seconds"]}s')
  return record


def format_table(records) -> str:
  """A markdown table of every row of `records`: binarized rows first, then 8-bit rows, each
  sorted by NLL."""
  rows = [dict(r, run=os.path.basename(rec['workdir'].rstrip('/')))
          for rec in records for r in rec['rows']]
  rows.sort(key=lambda r: (r['data'] != 'binarized', r['nats']))
  lines = ['| data | model (run) | likelihood | NLL (nats/image) | bits/dim | test images |',
           '| --- | --- | --- | --- | --- | --- |']
  for r in rows:
    lines.append(f"| {r['data']} | {r['model']} ({r['run']}) | {r['bound']} | "
                 f"{r['nats']:.2f} ± {r['nats_stderr']:.2f} | {r['bits_per_dim']:.4f} | "
                 f"{r['examples']} |")
  return '\n'.join(lines)

