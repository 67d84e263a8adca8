"""The drivers of `genvision detect` and `genvision attribute` (reading run directories, writing
JSON and figures): fake-image detection and model attribution without a watermark.

Samples of each generator run are drawn once per (run, checkpoint, number, seed) and kept in
OUT/banks/ so that a rerun, a larger evaluation or the baselines reuse them.
"""

from __future__ import annotations

import hashlib
import os
import time

import numpy as np

from genvision_jax import attacks as attacks_lib
from genvision_jax.provenance import ProvenanceError, detection, statistics

DETECTOR_FILE = 'detector.npz'
ATTRIBUTOR_FILE = 'attributor.npz'


def _say(verbose):
  return print if verbose else (lambda *a, **k: None)


def sample_bank(run: str, num: int, seed: int, cache: str | None = None) -> np.ndarray:
  """num samples of a generator run (EMA weights where it has them), cached in `cache`."""
  from genvision_jax.evaluation import runner as ev_runner  # pylint: disable=g-import-not-at-top
  from genvision_jax.training import load_run  # pylint: disable=g-import-not-at-top
  ckpt = os.path.join(run, 'checkpoints')
  steps = [int(d) for d in os.listdir(ckpt) if d.isdigit()] if os.path.isdir(ckpt) else []
  if not steps:
    raise ProvenanceError(f'{run} holds no trained run (no checkpoints): train it first')
  step = max(steps)
  name = hashlib.sha1(f'{os.path.abspath(run)}|{step}|{num}|{seed}'.encode()).hexdigest()[:12]
  path = os.path.join(cache, f'{os.path.basename(os.path.normpath(run))}_{name}.npz') if cache \
      else None
  if path and os.path.isfile(path):
    with np.load(path) as f:
      return f['images']
  _, method, state = load_run(run)
  try:
    images = np.asarray(ev_runner._generate(method, state, num, seed, True),  # pylint: disable=protected-access
                        np.float32)
  except ValueError as e:
    raise ProvenanceError(f'{run} cannot generate images ({e})') from None
  if path:
    os.makedirs(cache, exist_ok=True)
    np.savez_compressed(path + '.tmp.npz', images=images)
    os.replace(path + '.tmp.npz', path)
  return images


def _real(run: str, split: str, num: int | None = None) -> np.ndarray:
  from genvision_jax import data as data_lib  # pylint: disable=g-import-not-at-top
  from genvision_jax.training import read_config  # pylint: disable=g-import-not-at-top
  d = read_config(run).data
  x = data_lib.load_split(d.name, split, d.image_size, d.data_dir or None,
                          d.resize_method).arrays()['image']
  x = x[:num] if num else x
  return np.asarray(data_lib.to_model_range(x), np.float32)


def _check_shapes(named: dict[str, np.ndarray]) -> tuple:
  shapes = {k: v.shape[1:] for k, v in named.items()}
  if len(set(shapes.values())) != 1:
    raise ProvenanceError(f'the runs make images of different shapes {shapes}: detection and '
                          'attribution compare runs of one image size')
  return next(iter(shapes.values()))


def _name(run: str) -> str:
  return os.path.basename(os.path.normpath(run))


# -- fake-image detection -----------------------------------------------------------------------


def detect_train(out: str, runs, num: int = 2000, steps: int = 2000, noise=(), seed: int = 0,
                 verbose: bool = True) -> dict:
  """A real-vs-generated CNN on the training digits (label 0) and num samples of each run
  (label 1); writes OUT/detector.npz and OUT/detector.json."""
  from genvision_jax.training import rundir  # pylint: disable=g-import-not-at-top
  say = _say(verbose)
  banks = {_name(r): sample_bank(r, num, seed, os.path.join(out, 'banks')) for r in runs}
  real = _real(runs[0], 'train')
  shape = _check_shapes({'real': real, **banks})
  x = np.concatenate([real, *banks.values()])
  y = np.concatenate([np.zeros(len(real), np.int32), np.ones(len(x) - len(real), np.int32)])
  clf = detection.SourceClassifier(['real', 'generated'], shape)
  history = clf.fit(x, y, steps=steps, noise=noise, seed=seed)
  clf.info.update({'runs': [os.path.abspath(r) for r in runs], 'num_per_run': num,
                   'real_examples': int(len(real))})
  os.makedirs(out, exist_ok=True)
  clf.save(os.path.join(out, DETECTOR_FILE))
  record = {'runs': clf.info['runs'], 'num_per_run': num, 'seed': seed, 'steps': steps,
            'noise': list(noise), 'history': history,
            'train_seconds': clf.info['train_seconds']}
  rundir.write_json(os.path.join(out, 'detector.json'), record, indent=1)
  say(f'trained the detector on {len(real)} real and {len(x) - len(real)} generated images in '
      f'{clf.info["train_seconds"]:.0f}s (final loss {history[-1]["loss"]:.4f})')
  return record


def detect_images(model: str, images) -> np.ndarray:
  """P(generated) of each image under the detector in directory `model`."""
  return detection.SourceClassifier.load(os.path.join(model, DETECTOR_FILE)).proba(images)[:, 1]


def detect_evaluate(model: str, out: str, unseen=(), num: int = 500, attacks=None,
                    seed: int = 1, num_resamples: int = 200, verbose: bool = True) -> dict:
  """AUC (bootstrap intervals) of the detector and of the spectral baselines, fitted on the
  detector's own training images, on held-out samples of the runs it saw (in-family, a new
  seed) and of `unseen` runs (out-of-family), each against num real test digits; the CNN and
  Durall's baseline also under every attack. Writes OUT/detect_eval.json and detect_eval.png."""
  from genvision_jax.training import rundir  # pylint: disable=g-import-not-at-top
  say = _say(verbose)
  clf = detection.SourceClassifier.load(os.path.join(model, DETECTOR_FILE))
  seen = clf.info['runs']
  train_seed = clf.info.get('seed', 0)
  tic = time.time()
  banks = os.path.join(model, 'banks')
  real_test = _real(seen[0], 'test', num)
  test_sets = {f'seen/{_name(r)}': sample_bank(r, num, seed, banks) for r in seen}
  test_sets.update({f'unseen/{_name(r)}': sample_bank(r, num, seed, banks) for r in unseen})
  _check_shapes({'real': real_test, **test_sets})
  # the baselines see the detector's training images
  train_real = _real(seen[0], 'train')
  train_fake = np.concatenate([sample_bank(r, clf.info['num_per_run'], train_seed, banks)
                               for r in seen])
  x_train = np.concatenate([train_real, train_fake])
  y_train = np.r_[np.zeros(len(train_real)), np.ones(len(train_fake))].astype(int)
  baselines = {name: detection.fit_spectral(name, x_train, y_train)
               for name in detection.SPECTRAL}

  def scores(images):
    out_ = {'cnn': clf.proba(images)[:, 1]}
    out_.update({name: detection.spectral_proba(name, m, images)[:, 1]
                 for name, m in baselines.items()})
    return out_

  real_scores = scores(real_test)
  table = {}
  for name, images in test_sets.items():
    s = scores(images)
    table[name] = {k: statistics.roc_auc(s[k], real_scores[k], num_resamples)
                   for k in s}
    say(f'{name}: AUC CNN {table[name]["cnn"]["auc"]:.3f}, Durall '
        f'{table[name]["durall"]["auc"]:.3f}, Frank {table[name]["frank"]["auc"]:.3f}')
  pooled_seen = np.concatenate([v for k, v in test_sets.items() if k.startswith('seen/')])
  robustness = {}
  for attack, strengths in (attacks or {}).items():
    for strength in strengths:
      a_real = attacks_lib.apply(attack, real_test, strength, seed)
      a_fake = attacks_lib.apply(attack, pooled_seen, strength, seed)
      s_real, s_fake = scores(a_real), scores(a_fake)
      robustness.setdefault(attack, []).append(
          {'strength': float(strength),
           **{k: statistics.roc_auc(s_fake[k], s_real[k], num_resamples) for k in ('cnn',
                                                                                   'durall')}})
  result = {'detector': os.path.abspath(model), 'seen_runs': seen,
            'unseen_runs': [os.path.abspath(r) for r in unseen], 'num': num, 'seed': seed,
            'auc': table, 'robustness': robustness, 'seconds': time.time() - tic}
  os.makedirs(out, exist_ok=True)
  rundir.write_json(os.path.join(out, 'detect_eval.json'), result, indent=1)
  _auc_figure(table, os.path.join(out, 'detect_eval.png'))
  return result


def _auc_figure(table: dict, path: str) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  names = list(table)
  methods = list(next(iter(table.values())))
  fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(names) + 2), 3.2))
  width = 0.8 / len(methods)
  for j, m in enumerate(methods):
    xs = np.arange(len(names)) + j * width
    auc = [table[n][m]['auc'] for n in names]
    err = [[a - table[n][m]['low'] for a, n in zip(auc, names)],
           [table[n][m]['high'] - a for a, n in zip(auc, names)]]
    ax.bar(xs, auc, width, yerr=err, label=m, capsize=2)
  ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2)
  ax.set_xticklabels(names, rotation=20, fontsize=7)
  ax.set_ylim(0.4, 1.02)
  ax.axhline(0.5, color='k', lw=0.6, ls=':')
  ax.set_ylabel('ROC AUC vs real test digits')
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


# -- model attribution -----------------------------------------------------------------------


def attribute(out: str, runs, num: int = 1000, test_num: int = 500, steps: int = 2000,
              sizes=(), seed: int = 0, images=None, files=None, verbose: bool = True) -> dict:
  """Which of `runs` made an image: a K-way CNN on num samples of each run (reused from
  OUT/attributor.npz when it was trained on the same runs and settings), its confusion matrix
  and accuracy (Clopper-Pearson) on test_num fresh samples of each run, Frank's DCT baseline
  beside it, accuracy against training samples per run (`sizes`), and the attribution of the
  given images. Writes OUT/attribute.json, confusion.png (and accuracy_vs_samples.png)."""
  from genvision_jax.training import rundir  # pylint: disable=g-import-not-at-top
  say = _say(verbose)
  if len(runs) < 2:
    raise ProvenanceError('attribution needs at least two runs (--runs=A,B,...)')
  names = [_name(r) for r in runs]
  if len(set(names)) != len(names):
    names = [f'{i}:{n}' for i, n in enumerate(names)]
  banks = os.path.join(out, 'banks')
  train = [sample_bank(r, num, seed, banks) for r in runs]
  test = [sample_bank(r, test_num, seed + 1, banks) for r in runs]
  shape = _check_shapes(dict(zip(names, train)))
  x = np.concatenate(train)
  y = np.concatenate([np.full(len(t), i, np.int32) for i, t in enumerate(train)])
  xt = np.concatenate(test)
  yt = np.concatenate([np.full(len(t), i, np.int32) for i, t in enumerate(test)])
  path = os.path.join(out, ATTRIBUTOR_FILE)
  settings = {'runs': [os.path.abspath(r) for r in runs], 'num_per_run': num, 'steps': steps,
              'seed': seed}
  clf = None
  if os.path.isfile(path):
    old = detection.SourceClassifier.load(path)
    if all(old.info.get(k) == v for k, v in settings.items()):
      clf = old
      say(f'reusing {path}')
  if clf is None:
    clf = detection.SourceClassifier(names, shape)
    clf.fit(x, y, steps=steps, seed=seed)
    clf.info.update(settings)
    os.makedirs(out, exist_ok=True)
    clf.save(path)
  pred = np.argmax(clf.logits(xt), axis=-1)
  conf = detection.confusion_matrix(yt, pred, len(runs))
  acc = statistics.rate_interval(int(np.sum(pred == yt)), len(yt))._asdict()
  frank = detection.fit_spectral('frank', x, y)
  f_pred = np.argmax(detection.spectral_proba('frank', frank, xt), axis=-1)
  result = {**settings, 'sources': names, 'test_per_run': test_num,
            'accuracy': acc, 'chance': 1.0 / len(runs), 'confusion': conf.tolist(),
            'frank_accuracy': statistics.rate_interval(int(np.sum(f_pred == yt)),
                                                       len(yt))._asdict(),
            'train_seconds': clf.info.get('train_seconds')}
  say(f'attribution accuracy {acc["rate"]:.3f} [{acc["low"]:.3f}, {acc["high"]:.3f}] over '
      f'{len(runs)} runs (chance {1 / len(runs):.3f}); Frank DCT baseline '
      f'{result["frank_accuracy"]["rate"]:.3f}')
  if sizes:
    curve = []
    for size in sizes:
      idx = np.concatenate([np.arange(i * num, i * num + min(size, num))
                            for i in range(len(runs))])
      small = detection.SourceClassifier(names, shape)
      small.fit(x[idx], y[idx], steps=steps, seed=seed)
      p = np.argmax(small.logits(xt), axis=-1)
      curve.append({'per_run': int(min(size, num)),
                    **statistics.rate_interval(int(np.sum(p == yt)), len(yt))._asdict()})
      say(f'{size} samples per run: accuracy {curve[-1]["rate"]:.3f}')
    result['accuracy_vs_samples'] = curve
  if images is not None:
    proba = clf.proba(images)
    files = files or [f'image {i}' for i in range(len(images))]
    result['images'] = [{'image': f, 'run': names[int(np.argmax(p))],
                         'probabilities': dict(zip(names, map(float, p)))}
                        for f, p in zip(files, proba)]
  os.makedirs(out, exist_ok=True)
  rundir.write_json(os.path.join(out, 'attribute.json'), result, indent=1)
  _confusion_figure(conf, names, os.path.join(out, 'confusion.png'))
  if sizes:
    _curve_figure(result['accuracy_vs_samples'], 1.0 / len(runs),
                  os.path.join(out, 'accuracy_vs_samples.png'))
  return result


def _confusion_figure(conf, names, path: str) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  k = len(names)
  fig, ax = plt.subplots(figsize=(1.0 * k + 2, 1.0 * k + 1.5))
  rates = conf / np.maximum(conf.sum(axis=1, keepdims=True), 1)
  ax.imshow(rates, cmap='Blues', vmin=0, vmax=1)
  for i in range(k):
    for j in range(k):
      ax.text(j, i, str(conf[i, j]), ha='center', va='center', fontsize=8,
              color='white' if rates[i, j] > 0.5 else 'black')
  ax.set_xticks(range(k))
  ax.set_xticklabels(names, rotation=30, ha='right', fontsize=7)
  ax.set_yticks(range(k))
  ax.set_yticklabels(names, fontsize=7)
  ax.set_xlabel('predicted run')
  ax.set_ylabel('true run')
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def _curve_figure(curve, chance: float, path: str) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(4, 3))
  xs = [c['per_run'] for c in curve]
  ax.plot(xs, [c['rate'] for c in curve], 'o-')
  ax.fill_between(xs, [c['low'] for c in curve], [c['high'] for c in curve], alpha=0.2)
  ax.axhline(chance, color='k', ls=':', lw=0.8, label='chance')
  ax.set_xscale('log')
  ax.set_xlabel('training samples per run')
  ax.set_ylabel('attribution accuracy')
  ax.set_ylim(0, 1.02)
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def probability_figure(files, p, path: str) -> None:
  """P(generated) per image as bars with the 0.5 line."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(max(4, 0.3 * len(files) + 2), 3))
  ax.bar(range(len(files)), p, color=['C3' if q > 0.5 else 'C0' for q in p])
  ax.axhline(0.5, color='k', ls='--', lw=0.8)
  ax.set_ylim(0, 1)
  ax.set_xlabel('image')
  ax.set_ylabel('P(generated)')
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
