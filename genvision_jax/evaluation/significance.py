"""Is model A really better than model B? Significance tests and intervals for both sources of
variance in the notes (seed 000, "Significance Testing for ML"):

1. Randomness in the test data: the same two trained models, evaluated on a finite test set,
   would rank differently on another test set. `paired_bootstrap` (per-example metrics, e.g.
   per-image log-likelihoods, reconstruction errors, classifier correctness) simulates new test
   sets; `bootstrap_interval` does the same for set-level metrics (FID, KID, precision, ...)
   by recomputing them on resampled sets.
2. Randomness in training (random restarts): one run per model says nothing about the spread
   over seeds. `seed_summary` gives mean, std and confidence intervals over seeds ("h_A 45% +/-
   5%"), `welch_test` compares two groups of seeds, `histogram_figure` draws the notes'
   "Solution: histogram".

All statistics are float64 numpy; `rng` arguments take an int seed or a np.random.Generator.
"""

import math
from typing import Callable, NamedTuple, Sequence
import warnings

import numpy as np
from scipy import stats

# Bootstrap index matrices are drawn in chunks of about this many entries (32 MiB of int64).
_CHUNK_ELEMENTS = 1 << 22


def _rng(rng) -> np.random.Generator:
  return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _vector(x, name: str) -> np.ndarray:
  x = np.asarray(x, np.float64)
  if x.ndim != 1 or len(x) == 0:
    raise ValueError(f'{name} must be a non-empty 1-D array of values, got shape {x.shape}.')
  if not np.all(np.isfinite(x)):
    raise ValueError(f'{name} contains non-finite values.')
  return x


def _percentile_interval(values, confidence: float) -> tuple[float, float]:
  if not 0 < confidence < 1:
    raise ValueError(f'confidence must be in (0, 1), got {confidence}.')
  lo, hi = np.quantile(values, [(1 - confidence) / 2, (1 + confidence) / 2])
  return float(lo), float(hi)


def _bootstrap_means(x, num_resamples: int, rng: np.random.Generator) -> np.ndarray:
  """Means of `num_resamples` resamples of x with replacement (each of size len(x))."""
  n = len(x)
  chunk = max(1, _CHUNK_ELEMENTS // n)
  means = np.empty(num_resamples)
  for start in range(0, num_resamples, chunk):
    stop = min(num_resamples, start + chunk)
    idx = rng.integers(0, n, size=(stop - start, n))
    means[start:stop] = x[idx].mean(axis=1)
  return means


# ----------------------------------------------------------------------------------------------
# 2. Randomness in the test data


class PairedBootstrapResult(NamedTuple):
  delta: float              # delta(D_test) = mean(a) - mean(b) on the test set, metric units
  p_value: float            # the notes' p-value for "a is better than b" (see paired_bootstrap)
  p_value_two_sided: float  # for "a and b differ", direction not fixed in advance
  ci_low: float             # percentile bootstrap confidence interval of delta
  ci_high: float
  better: str               # 'a', 'b' or 'tie': which model is better on the test set
  mean_a: float
  mean_b: float
  deltas: np.ndarray        # delta(S^(b)) for the B bootstrap test sets, [B]


def paired_bootstrap(metric_a, metric_b, num_resamples: int = 10_000, rng=0,
                     higher_is_better: bool = True,
                     confidence: float = 0.95) -> PairedBootstrapResult:
  """Paired bootstrap test (notes, seed 000; Berg-Kirkpatrick et al. 2012; Efron & Tibshirani
  1993) of "model a is better than model b" from per-example metric values of both models on
  the SAME test examples (metric_a[i], metric_b[i] belong to test example i, e.g. per-image
  negative log-likelihood, or 1/0 correctness of a classifier).

  delta(D) = mean_{i in D} metric_a[i] - mean_{i in D} metric_b[i], taken with the sign that
  makes a positive delta an advantage of a (`higher_is_better=False` for losses, NLL, FID-like
  metrics: then the test uses -delta; the reported delta, CI and deltas stay mean(a) - mean(b)).

    1. Draw B bootstrap test sets S^(1..B): n examples from D_test with replacement, the same
       draw for both models (paired).
    2. v = 0.
    3. For b = 1..B: if delta(S^(b)) > 2 delta(D_test): v = v + 1.
    4. p = v / B.

  Why 2 delta: H0 says a and b perform the same, so the expected delta is 0; but the
  bootstrap distribution is centred on the observed delta(D_test), not on 0 (E[delta(S^(b))] =
  delta(D_test)). Shifting it by -delta(D_test) simulates H0, and "a gains a delta(D_test)-sized
  advantage (or more) by chance" becomes delta(S^(b)) - delta(D_test) > delta(D_test), i.e.
  delta(S^(b)) > 2 delta(D_test). A small p (the notes reject H0 at p < 0.01; 0.05 is common)
  says the test set is large enough that a's advantage is unlikely to be luck of the test set.
  It says nothing about training randomness: use `seed_summary` / `welch_test` over seeds.

  The test is one-sided for a over b, fixed before looking (a = the new model, b = the
  baseline). Under H0 the p-value is (approximately) uniform on [0, 1]; if b did better on the
  test set (`better == 'b'`), p >= ~1/2: swap the arguments to test b over a. If the observed
  delta is exactly 0 there is no advantage to test and p = 1. `p_value_two_sided` =
  min(1, 2 min(p, p_swapped)) with p_swapped the same count for b over a; use it when the
  direction was not chosen in advance (e.g. "which of the two is better?").

  Also returned: the percentile bootstrap interval of delta at `confidence`, the means, the
  winner on the test set, and the B bootstrap deltas (for `histogram_figure`).

  The draws: for an int seed `rng`, bootstrap set b is the rows idx[b] of
  idx = np.random.default_rng(rng).integers(0, n, size=(B, n)) when B n <= 2^22 (larger B are
  drawn in row chunks of that many entries from the same generator).
  """
  a, b = _vector(metric_a, 'metric_a'), _vector(metric_b, 'metric_b')
  if a.shape != b.shape:
    raise ValueError(f'Paired metrics need the same test examples: {a.shape} vs {b.shape}.')
  sign = 1.0 if higher_is_better else -1.0
  diff = a - b
  delta = float(diff.mean())
  deltas = _bootstrap_means(diff, num_resamples, _rng(rng))
  advantage = sign * delta  # > 0: a is better on the test set
  if advantage == 0.0:
    p_value = p_swapped = 1.0
  else:
    p_value = float(np.mean(sign * deltas > 2.0 * advantage))
    p_swapped = float(np.mean(-sign * deltas > -2.0 * advantage))
  better = 'a' if advantage > 0 else 'b' if advantage < 0 else 'tie'
  ci_low, ci_high = _percentile_interval(deltas, confidence)
  return PairedBootstrapResult(
      delta=delta, p_value=p_value, p_value_two_sided=min(1.0, 2.0 * min(p_value, p_swapped)),
      ci_low=ci_low, ci_high=ci_high, better=better, mean_a=float(a.mean()),
      mean_b=float(b.mean()), deltas=deltas)


class BootstrapInterval(NamedTuple):
  estimate: float      # fn on the original samples
  low: float           # interval of fn (`method`: percentile or normal)
  high: float
  std: float           # bootstrap standard error (std of the resampled values, ddof=1)
  values: np.ndarray   # fn on each resample, [num_resamples]


def bootstrap_interval(fn: Callable[..., float], *samples, num_resamples: int = 200,
                       confidence: float = 0.95, rng=0,
                       resample: Sequence[bool] | None = None,
                       method: str = 'percentile') -> BootstrapInterval:
  """Bootstrap interval (Efron & Tibshirani 1993) of a set-level metric fn(*samples) -> float,
  e.g. `metrics.frechet_distance_from_features(real, fake)`.

  Each resample redraws the rows (axis 0) of every sample with replacement, independently per
  sample; `resample` (one bool per sample) keeps some fixed, e.g. (False, True) to resample only
  the generated set against fixed real features.

  method:
    'percentile': the (1 - confidence)/2 and (1 + confidence)/2 quantiles of fn over the
      resamples (E&T ch. 13.3); right for smooth statistics such as means.
    'normal': estimate -/+ z_{(1+confidence)/2} * bootstrap standard error (E&T ch. 13.2).
      Use it for plug-in distances such as FID and k-NN metrics: a resample holds only ~63%
      distinct rows, which shifts such metrics (FID upwards, by far more than their sampling
      error when the distance is small: an FD of 1.53 on 500 digits had the percentile
      interval [5.7, 12.4], all above the estimate); the spread of the resampled values still
      measures the sampling error, so the interval is centred on the estimate.
  Cost: num_resamples evaluations of fn.
  """
  if not samples:
    raise ValueError('bootstrap_interval needs at least one sample array.')
  if method not in ('percentile', 'normal'):
    raise ValueError(f"method must be 'percentile' or 'normal', got {method!r}.")
  samples = [np.asarray(s) for s in samples]
  resample = [True] * len(samples) if resample is None else list(resample)
  if len(resample) != len(samples):
    raise ValueError(f'resample has {len(resample)} flags for {len(samples)} samples.')
  gen = _rng(rng)
  values = np.empty(num_resamples)
  for i in range(num_resamples):
    drawn = [s[gen.integers(0, len(s), len(s))] if r else s for s, r in zip(samples, resample)]
    values[i] = float(fn(*drawn))
  estimate = float(fn(*samples))
  std = float(values.std(ddof=1)) if num_resamples > 1 else 0.0
  if method == 'percentile':
    low, high = _percentile_interval(values, confidence)
  else:
    _percentile_interval(values, confidence)  # validates confidence
    half = float(stats.norm.ppf((1 + confidence) / 2)) * std
    low, high = estimate - half, estimate + half
  return BootstrapInterval(estimate, low, high, std, values)


# ----------------------------------------------------------------------------------------------
# 1. Randomness in training: one value per seed (random restart)


class SeedSummary(NamedTuple):
  n: int
  mean: float
  std: float          # sample std over seeds, ddof=1 (nan for one seed)
  sem: float          # std / sqrt(n)
  t_low: float        # Student-t interval of the mean: mean +/- t_{n-1, (1+c)/2} sem
  t_high: float
  boot_low: float     # percentile bootstrap interval of the mean over seeds
  boot_high: float


def seed_summary(values, confidence: float = 0.95, num_resamples: int = 10_000,
                 rng=0) -> SeedSummary:
  """Mean, std and confidence intervals of a metric over R training seeds (the notes'
  "Solution: confidence interval": report h_A 45% +/- 5%).

  std = sqrt(1/(R-1) sum (v_r - mean)^2); the t-interval mean +/- t_{R-1,(1+c)/2} std/sqrt(R)
  (scipy.stats.t) assumes roughly normal values across seeds; the percentile bootstrap interval
  of the mean makes no such assumption but is too narrow for few seeds (R < ~10). With a single
  seed every spread is nan: one run cannot tell training luck from method.
  """
  x = _vector(values, 'values')
  n, mean = len(x), float(x.mean())
  if n < 2:
    nan = float('nan')
    return SeedSummary(n, mean, nan, nan, nan, nan, nan, nan)
  std = float(x.std(ddof=1))
  sem = std / math.sqrt(n)
  if sem > 0:
    t_low, t_high = stats.t.interval(confidence, n - 1, loc=mean, scale=sem)
  else:
    t_low = t_high = mean
  boot_low, boot_high = _percentile_interval(_bootstrap_means(x, num_resamples, _rng(rng)),
                                             confidence)
  return SeedSummary(n, mean, std, sem, float(t_low), float(t_high), boot_low, boot_high)


class GroupTestResult(NamedTuple):
  statistic: float
  p_value: float
  mean_diff: float   # mean(values_a) - mean(values_b)
  method: str


def welch_test(values_a, values_b, method: str = 'welch',
               alternative: str = 'two-sided') -> GroupTestResult:
  """Compare a metric over two groups of training seeds (independent runs of models a and b).

  method='welch': Welch's unequal-variance t-test, t = (mean_a - mean_b) / sqrt(s_a^2/n_a +
  s_b^2/n_b) with Welch-Satterthwaite degrees of freedom (scipy.stats.ttest_ind,
  equal_var=False). method='mannwhitney': the rank-based Mann-Whitney U test
  (scipy.stats.mannwhitneyu), for skewed values or outlier seeds (a diverged GAN run);
  with few seeds its smallest attainable p-value is coarse (e.g. 0.008 for 5 vs 5, two-sided).
  A metric constant over the seeds of both groups has no Welch test: statistic and p are NaN.
  `alternative`: 'two-sided', 'greater' (a > b) or 'less'.
  """
  a, b = _vector(values_a, 'values_a'), _vector(values_b, 'values_b')
  if method == 'welch':
    if min(len(a), len(b)) < 2:
      raise ValueError("Welch's t-test needs at least 2 seeds per model.")
    if np.ptp(a) == 0 and np.ptp(b) == 0:  # constant over seeds: t is undefined, say so
      return GroupTestResult(float('nan'), float('nan'), float(a.mean() - b.mean()), method)
    with warnings.catch_warnings():  # one group constant (e.g. a collapsed GAN's recall = 0)
      warnings.simplefilter('ignore', RuntimeWarning)
      res = stats.ttest_ind(a, b, equal_var=False, alternative=alternative)
  elif method == 'mannwhitney':
    res = stats.mannwhitneyu(a, b, alternative=alternative)
  else:
    raise ValueError(f"method must be 'welch' or 'mannwhitney', got {method!r}.")
  return GroupTestResult(float(res.statistic), float(res.pvalue), float(a.mean() - b.mean()),
                         method)


def mann_whitney_test(values_a, values_b, alternative: str = 'two-sided') -> GroupTestResult:
  """`welch_test(..., method='mannwhitney')`."""
  return welch_test(values_a, values_b, method='mannwhitney', alternative=alternative)


# ----------------------------------------------------------------------------------------------
# The notes' "Solution: histogram"


def histogram_figure(values_by_model: dict[str, Sequence[float]], metric_name: str, path: str,
                     bins: int = 20):
  """Overlaid histograms of a metric over seeds (or bootstrap resamples) per model, the mean of
  each marked by a dashed line and given with its std in the legend; saved to `path` (PNG, PDF,
  ... by extension) with matplotlib's Agg canvas (no display, no pyplot state). Returns the
  matplotlib Figure. Overlapping histograms are the notes' picture of "not clearly better".
  """
  from matplotlib.backends.backend_agg import FigureCanvasAgg  # pylint: disable=g-import-not-at-top
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  if not values_by_model:
    raise ValueError('values_by_model is empty.')
  data = {name: _vector(v, name) for name, v in values_by_model.items()}
  edges = np.histogram_bin_edges(np.concatenate(list(data.values())), bins=bins)
  fig = Figure(figsize=(6, 3.5))
  FigureCanvasAgg(fig)
  ax = fig.add_subplot()
  for i, (name, v) in enumerate(data.items()):
    color = f'C{i % 10}'
    spread = f' ± {v.std(ddof=1):.3g}' if len(v) > 1 else ''
    ax.hist(v, bins=edges, alpha=0.45, color=color, edgecolor=color,
            label=f'{name}: {v.mean():.4g}{spread} (n={len(v)})')
    ax.axvline(v.mean(), color=color, linestyle='--', linewidth=1.5)
  ax.set_xlabel(metric_name)
  ax.set_ylabel('count')
  ax.legend(fontsize='small')
  ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  return fig
