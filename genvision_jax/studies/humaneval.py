"""Human evaluation: blinded two-alternative choices stored in SQLite, and their analysis.

A session database (one file) holds the image pool (PNG bytes under random ids: the pages never
see a path or a model name), the raters, and every trial with its answer, committed as it
arrives (WAL journal, synchronous=FULL: a killed server loses no answer).

Trials, in the two modes of `genvision humaneval serve`:
  pair       two models' samples: "Which image looks more like a real handwritten digit?"
  real       a real test image vs a model's sample: "Which one was made by a model?" — choosing
             the real image is being fooled
  attention  a real image vs pure noise, every `attention_every`-th trial, asked the mode's
             question: its answer is known (the real image looks real; the noise was made)

The analysis excludes raters whose attention-check accuracy is below `min_attention` (or who
answered none) and reports: per model pair the preference rate with its Wilson interval and
the exact binomial test of 0.5 (scipy.stats.binomtest); per model the fooling rate, likewise;
Bradley–Terry log-strengths fitted by maximum likelihood (scikit-learn's unpenalized logistic
regression on the aggregated comparisons) with percentile bootstrap intervals over trials.
"""

import io
import itertools
import json
import os
import secrets
import sqlite3
import time

import numpy as np
from scipy import stats

MODES = ('pair', 'real')
QUESTIONS = {'pair': 'Which image looks more like a real handwritten digit?',
             'real': 'Which one was made by a model?'}
REAL, NOISE = 'real', 'noise'
RATER_MAX = 64
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS images (id TEXT PRIMARY KEY, source TEXT NOT NULL, png BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS raters (id TEXT PRIMARY KEY, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
  id TEXT PRIMARY KEY, rater TEXT NOT NULL REFERENCES raters(id), idx INTEGER NOT NULL,
  kind TEXT NOT NULL, left_image TEXT NOT NULL, right_image TEXT NOT NULL,
  left_source TEXT NOT NULL, right_source TEXT NOT NULL, created REAL NOT NULL,
  answer TEXT, answered REAL, UNIQUE (rater, idx));
"""


class HumanEvalError(ValueError):
  """A database or session that cannot be used (one line naming the fix)."""


def connect(path: str, create: bool = False) -> sqlite3.Connection:
  if not create and not os.path.isfile(path):
    raise HumanEvalError(f'{path} does not exist: start a session with `genvision humaneval '
                         f'serve --runs RUN ... --db={path}`')
  try:
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute('PRAGMA journal_mode=WAL')
    db.execute('PRAGMA synchronous=FULL')
    db.executescript(SCHEMA)
  except sqlite3.DatabaseError as e:
    raise HumanEvalError(f'{path} is not a human-evaluation database ({e}): pass another '
                         '--db') from None
  return db


def read_meta(db) -> dict:
  return {k: json.loads(v) for k, v in db.execute('SELECT key, value FROM meta')}


def png_bytes(image: np.ndarray) -> bytes:
  """An image in [-1, 1], HWC (C = 1 or 3), as PNG bytes (Pillow)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  x = np.clip(np.round((np.asarray(image, np.float64) + 1) * 127.5), 0, 255).astype(np.uint8)
  x = x[..., 0] if x.shape[-1] == 1 else x
  buf = io.BytesIO()
  Image.fromarray(x).save(buf, format='PNG')
  return buf.getvalue()


def create_session(db, models: dict[str, np.ndarray], real: np.ndarray, mode: str,
                   trials_per_rater: int, attention_every: int, seed: int,
                   runs: dict[str, str]) -> None:
  """Stores the image pool (model samples, real images, noise) and the session's settings."""
  if mode not in MODES:
    raise HumanEvalError(f'mode must be one of {MODES} (got {mode!r})')
  if mode == 'pair' and len(models) < 2:
    raise HumanEvalError('comparing models needs at least two runs (or --real to rate one '
                         'model against real images)')
  rng = np.random.default_rng(seed)
  noise = rng.uniform(-1, 1, real.shape).astype(np.float32)
  db.execute('BEGIN')
  for source, images in [*models.items(), (REAL, real), (NOISE, noise)]:
    for x in images:
      db.execute('INSERT INTO images VALUES (?, ?, ?)',
                 (secrets.token_hex(8), source, png_bytes(x)))
  meta = {'mode': mode, 'models': sorted(models), 'runs': runs, 'question': QUESTIONS[mode],
          'trials_per_rater': trials_per_rater, 'attention_every': attention_every,
          'created': time.time()}
  for k, v in meta.items():
    db.execute('INSERT INTO meta VALUES (?, ?)', (k, json.dumps(v)))
  db.execute('COMMIT')


def _pick(db, source: str, rnd) -> str:
  ids = [r[0] for r in db.execute('SELECT id FROM images WHERE source = ? ORDER BY id',
                                  (source,))]
  return ids[rnd.randrange(len(ids))]


def next_trial(db, rater: str, meta: dict, rnd) -> dict | None:
  """The rater's first unanswered trial (created, randomized and stored on first request);
  None when the rater has answered all of theirs."""
  row = db.execute('SELECT id, idx, kind, left_image, right_image FROM trials WHERE rater = ? '
                   'AND answer IS NULL ORDER BY idx LIMIT 1', (rater,)).fetchone()
  if row is None:
    done = db.execute('SELECT COUNT(*) FROM trials WHERE rater = ?', (rater,)).fetchone()[0]
    if done >= meta['trials_per_rater']:
      return None
    idx = done
    every = meta['attention_every']
    if every and idx % every == every - 1:
      kind, sources = 'attention', [REAL, NOISE]
    elif meta['mode'] == 'pair':
      kind, sources = 'pair', rnd.sample(meta['models'], 2)
    else:
      kind, sources = 'real', [REAL, meta['models'][rnd.randrange(len(meta['models']))]]
    rnd.shuffle(sources)  # which side is which: random
    images = [_pick(db, s, rnd) for s in sources]
    trial = secrets.token_hex(8)
    db.execute('INSERT INTO trials (id, rater, idx, kind, left_image, right_image, left_source, '
               'right_source, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
               (trial, rater, idx, kind, *images, *sources, time.time()))
    row = (trial, idx, kind, *images)
  trial, idx, _, left, right = row
  return {'trial': trial, 'index': idx, 'total': meta['trials_per_rater'],
          'question': meta['question'], 'left': f'/image/{left}', 'right': f'/image/{right}'}


# -- analysis -----------------------------------------------------------------------------------

def wilson(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
  """The Wilson score interval of a proportion (scipy.stats.binomtest(...).proportion_ci)."""
  ci = stats.binomtest(int(successes), int(n)).proportion_ci(confidence, method='wilson')
  return float(ci.low), float(ci.high)


def binomial_p(successes: int, n: int, p: float = 0.5) -> float:
  """Two-sided exact binomial test of `p` (scipy.stats.binomtest)."""
  return float(stats.binomtest(int(successes), int(n), p).pvalue)


def bradley_terry(models: list[str], wins: dict[tuple[str, str], float]) -> np.ndarray:
  """Maximum-likelihood Bradley–Terry log-strengths s (P(i beats j) = sigmoid(s_i - s_j)),
  s[0] = 0, from aggregated (possibly fractional) win counts wins[(i, j)] = times i beat j:
  an unpenalized logistic regression without intercept on the rows e_i - e_j (scikit-learn),
  each outcome weighted by its count."""
  from sklearn.linear_model import LogisticRegression  # pylint: disable=g-import-not-at-top
  index = {m: k for k, m in enumerate(models)}
  x, y, w = [], [], []
  for (a, b), count in wins.items():
    if count <= 0:
      continue
    row = np.zeros(len(models))
    row[index[a]], row[index[b]] = 1.0, -1.0
    x += [row, -row]
    y += [1, 0]
    w += [count, count]  # the same outcome seen from both sides: a symmetric design
  x = np.asarray(x)[:, 1:]  # s_0 = 0 fixes the scale's origin
  if not len(x) or len(set(y)) < 2:
    return np.zeros(len(models))
  fit = LogisticRegression(C=np.inf, fit_intercept=False, tol=1e-10, max_iter=10_000)  # no penalty
  fit.fit(x, np.asarray(y), sample_weight=np.asarray(w, np.float64))
  return np.concatenate([[0.0], fit.coef_[0]])


def answered(db) -> list[dict]:
  rows = db.execute('SELECT rater, idx, kind, left_source, right_source, answer FROM trials '
                    'WHERE answer IS NOT NULL ORDER BY rater, idx').fetchall()
  out = []
  for rater, idx, kind, ls, rs, answer in rows:
    chosen, other = (ls, rs) if answer == 'left' else (rs, ls)
    out.append({'rater': rater, 'idx': idx, 'kind': kind, 'chosen': chosen, 'other': other})
  return out


def analyze_trials(trials: list[dict], mode: str, models: list[str],
                   min_attention: float = 1.0, bootstrap: int = 1000, seed: int = 0) -> dict:
  """The statistics of answered trials (dicts with rater, kind, chosen, other: sources)."""
  correct_choice = REAL if mode == 'pair' else NOISE  # the known answer of an attention check
  by_rater = {}
  for t in trials:
    by_rater.setdefault(t['rater'], []).append(t)
  excluded, accuracy = [], {}
  for rater, ts in sorted(by_rater.items()):
    checks = [t for t in ts if t['kind'] == 'attention']
    accuracy[rater] = (sum(t['chosen'] == correct_choice for t in checks) / len(checks)
                       if checks else None)
    if accuracy[rater] is None or accuracy[rater] < min_attention:
      excluded.append(rater)
  used = [t for t in trials if t['rater'] not in excluded and t['kind'] != 'attention']
  result = {'mode': mode, 'models': models,
            'raters': {'total': len(by_rater), 'excluded': excluded,
                       'attention_accuracy': accuracy, 'min_attention': min_attention},
            'trials_used': len(used), 'pairs': [], 'fooling': [], 'bradley_terry': None}
  pair_trials = [t for t in used if t['kind'] == 'pair']
  wins = {}
  for t in pair_trials:
    wins[(t['chosen'], t['other'])] = wins.get((t['chosen'], t['other']), 0) + 1
  for a, b in itertools.combinations(sorted(models), 2):
    n = wins.get((a, b), 0) + wins.get((b, a), 0)
    if n:
      k = wins.get((a, b), 0)
      low, high = wilson(k, n)
      result['pairs'].append({'a': a, 'b': b, 'n': n, 'wins_a': k, 'rate': k / n, 'low': low,
                              'high': high, 'p_value': binomial_p(k, n)})
  for m in sorted(models):
    ts = [t for t in used if t['kind'] == 'real' and m in (t['chosen'], t['other'])]
    if ts:
      fooled = sum(t['chosen'] == REAL for t in ts)  # the real image was taken for the model's
      low, high = wilson(fooled, len(ts))
      result['fooling'].append({'model': m, 'n': len(ts), 'fooled': fooled,
                                'rate': fooled / len(ts), 'low': low, 'high': high,
                                'p_value': binomial_p(fooled, len(ts))})
  if len(models) >= 2 and pair_trials:
    order = sorted(models)
    scores = bradley_terry(order, wins)
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(bootstrap):
      sample = [pair_trials[i] for i in rng.integers(len(pair_trials), size=len(pair_trials))]
      w = {}
      for t in sample:
        w[(t['chosen'], t['other'])] = w.get((t['chosen'], t['other']), 0) + 1
      boot.append(bradley_terry(order, w))
    boot = np.asarray(boot) if boot else np.zeros((0, len(order)))
    result['bradley_terry'] = {'scores': [
        {'model': m, 'score': float(scores[k]),
         'low': float(np.percentile(boot[:, k], 2.5)) if len(boot) else None,
         'high': float(np.percentile(boot[:, k], 97.5)) if len(boot) else None}
        for k, m in enumerate(order)], 'bootstrap': bootstrap,
        'note': 'log-strengths; P(a preferred to b) = sigmoid(score_a - score_b); '
                f'{order[0]} fixed at 0'}
  return result


def analyze(path: str, min_attention: float = 1.0, bootstrap: int = 1000,
            seed: int = 0) -> dict:
  """The analysis of the session database at `path`."""
  db = connect(path)
  try:
    meta = read_meta(db)
    if 'mode' not in meta:
      raise HumanEvalError(f'{path} holds no session: start one with `genvision humaneval serve`')
    out = analyze_trials(answered(db), meta['mode'], meta['models'], min_attention, bootstrap,
                         seed)
    out['database'] = os.path.abspath(path)
    out['runs'] = meta['runs']
    return out
  finally:
    db.close()


def figure(result: dict, path: str | None = None):
  """Preference and fooling rates with Wilson intervals (and Bradley–Terry scores); None if
  there is nothing to plot."""
  from matplotlib.backends.backend_agg import FigureCanvasAgg  # pylint: disable=g-import-not-at-top
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  bars = ([(f'{q["a"]} over {q["b"]}', q) for q in result['pairs']] +
          [(f'{q["model"]} fools', q) for q in result['fooling']])
  bt = result['bradley_terry']
  if not bars:
    return None
  panels = 2 if bt else 1
  fig = Figure(figsize=(5 * panels, 0.5 * len(bars) + 1.8))
  FigureCanvasAgg(fig)
  ax = fig.add_subplot(1, panels, 1)
  ys = np.arange(len(bars))
  rates = np.array([q['rate'] for _, q in bars])
  err = np.array([[q['rate'] - q['low'] for _, q in bars], [q['high'] - q['rate'] for _, q in bars]])
  ax.barh(ys, rates, xerr=err, color='C0', alpha=0.7, capsize=3)
  ax.axvline(0.5, color='k', linestyle='--', linewidth=1)
  ax.set_yticks(ys, [label for label, _ in bars], fontsize=8)
  ax.set_xlim(0, 1)
  ax.set_xlabel('rate (Wilson 95 %)')
  if bt:
    ax2 = fig.add_subplot(1, panels, 2)
    s = bt['scores']
    ax2.errorbar([q['score'] for q in s], np.arange(len(s)),
                 xerr=[[q['score'] - q['low'] for q in s], [q['high'] - q['score'] for q in s]],
                 fmt='o', capsize=3)
    ax2.set_yticks(np.arange(len(s)), [q['model'] for q in s], fontsize=8)
    ax2.set_xlabel('Bradley–Terry score')
  fig.tight_layout()
  if path:
    fig.savefig(path, dpi=100)
  return fig


def model_names(runs: list[str]) -> dict[str, str]:
  """name -> run dir: the runs' base names (parent/base where two share a base name)."""
  names = {}
  for r in runs:
    r = os.path.normpath(r)
    name = os.path.basename(r)
    if name in names or name in (REAL, NOISE):
      name = os.path.join(os.path.basename(os.path.dirname(r)), name)
    if name in names:
      raise HumanEvalError(f'two runs are both named {name!r}: pass distinct run directories')
    names[name] = r
  return names


def build_pool(runs: list[str], num: int, seed: int = 0, say=print):
  """(model name -> num samples, num real test images) for a session of `runs` (each a trained
  run of the same dataset and image shape)."""
  from genvision_jax import data as data_lib  # pylint: disable=g-import-not-at-top
  from genvision_jax import training  # pylint: disable=g-import-not-at-top
  import inspect  # pylint: disable=g-import-not-at-top
  models, dataset = {}, None
  for name, run in model_names(runs).items():
    config, method, state = training.load_run(run)
    kwargs = ({'use_ema': True} if 'use_ema' in inspect.signature(method.generate).parameters
              else {})
    if hasattr(method, 'translate'):
      raise HumanEvalError(f'{run} is an image-to-image run: rate generative models')
    d = config.data
    key = (d.name, d.image_size)
    if dataset is not None and key != dataset[0]:
      raise HumanEvalError(f'{run} was trained on {key}, the other runs on {dataset[0]}: '
                           'rate runs of one dataset')
    dataset = (key, d)
    tic = time.time()
    models[name] = training.generate_images(method, state, num, seed=seed, **kwargs)
    say(f'{name}: {num} samples in {time.time() - tic:.1f}s')
  d = dataset[1]
  test = data_lib.load_split(d.name, 'test', d.image_size, d.data_dir or None, d.resize_method)
  images = test.arrays()['image'][:num]
  real = np.asarray(data_lib.to_model_range(images), np.float32)
  return models, real
