"""A study's statistics: the distribution of a metric over each group's runs, the ranking with
intervals, and every pairwise difference tested with Welch's t-test, Holm-corrected for the
number of pairs (statsmodels' `multipletests`), as Lucic et al. compare GAN losses by the
distribution of FID over runs rather than by one run each."""

import itertools
import math

import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests

from genvision_jax.evaluation import significance as S


def holm(p_values, alpha: float = 0.05) -> tuple[list[float], list[bool]]:
  """Holm's step-down adjusted p-values and rejections at family-wise error `alpha`
  (statsmodels.stats.multitest.multipletests(method='holm')). NaN p-values (no test) stay NaN
  and are not counted in the family."""
  p = np.asarray(p_values, np.float64)
  adjusted = np.full(p.shape, np.nan)
  reject = np.zeros(p.shape, bool)
  ok = np.isfinite(p)
  if ok.any():
    r, adj, _, _ = multipletests(p[ok], alpha=alpha, method='holm')
    adjusted[ok], reject[ok] = adj, r
  return adjusted.tolist(), reject.tolist()


def summarize(values_by_group: dict[str, list[float]], higher_is_better: bool | None,
              alpha: float = 0.05, confidence: float = 0.95) -> dict:
  """{'groups': {name: summary}, 'ranking': [names best first], 'tests': [pairwise]}.

  A group's summary: n, mean, std, the t-interval of the mean (nan with one run), median,
  min, max and the values. Ranking by mean (best first; lower first when the direction is
  unknown). Tests: Welch's t-test for every pair with >= 2 runs each, two-sided, with Holm's
  adjustment over all pairs and whether it rejects at `alpha`.
  """
  groups = {}
  for name, values in values_by_group.items():
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if not len(v):
      groups[name] = {'n': 0, 'values': []}
      continue
    s = S.seed_summary(v, confidence=confidence)
    groups[name] = {'n': s.n, 'mean': s.mean, 'std': s.std, 'low': s.t_low, 'high': s.t_high,
                    'median': float(np.median(v)), 'min': float(v.min()),
                    'max': float(v.max()), 'values': v.tolist()}
  ranked = [n for n in groups if groups[n]['n']]
  ranked.sort(key=lambda n: groups[n]['mean'], reverse=bool(higher_is_better))
  tests = []
  for a, b in itertools.combinations(ranked, 2):
    va, vb = groups[a]['values'], groups[b]['values']
    if min(len(va), len(vb)) < 2:
      continue
    t = S.welch_test(va, vb)
    tests.append({'a': a, 'b': b, 'difference': t.mean_diff, 'statistic': t.statistic,
                  'p_value': t.p_value})
  adjusted, reject = holm([t['p_value'] for t in tests], alpha)
  for t, adj, r in zip(tests, adjusted, reject):
    t['p_holm'] = adj
    t['significant'] = bool(r)
  return {'groups': groups, 'ranking': ranked, 'tests': tests, 'alpha': alpha,
          'confidence': confidence, 'higher_is_better': higher_is_better,
          'test': "Welch's t-test, two-sided, Holm-adjusted over all pairs"}


def rank_agreement(means: dict[str, float], reference: dict[str, float]) -> dict | None:
  """Spearman's rank correlation (scipy) between our group means and a reference table (e.g.
  Lucic et al.'s FIDs) on the groups both have; None with fewer than 3 in common."""
  shared = [k for k in means if k in reference and math.isfinite(means[k])]
  if len(shared) < 3:
    return None
  r = stats.spearmanr([means[k] for k in shared], [reference[k] for k in shared])
  return {'groups': shared, 'spearman_rho': float(r.statistic), 'p_value': float(r.pvalue)}


def distribution_figure(summary: dict, metric: str, path: str | None = None, title: str = ''):
  """Box plot with every run as a point (Lucic et al.'s figure), groups in ranking order;
  saved to `path` (matplotlib Agg, no pyplot state). The y axis is logarithmic when the
  positive values span more than a factor of 10 (a collapsed run would otherwise flatten the
  rest). Returns the Figure."""
  from matplotlib.backends.backend_agg import FigureCanvasAgg  # pylint: disable=g-import-not-at-top
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  names = summary['ranking'] + [n for n in summary['groups'] if n not in summary['ranking']]
  data = [summary['groups'][n]['values'] for n in names]
  fig = Figure(figsize=(max(4.0, 0.9 * len(names) + 1.5), 3.8))
  FigureCanvasAgg(fig)
  ax = fig.add_subplot()
  ax.boxplot([d if d else [np.nan] for d in data], tick_labels=names, showfliers=False)
  rng = np.random.default_rng(0)
  for i, d in enumerate(data, start=1):
    if d:
      ax.scatter(i + rng.uniform(-0.12, 0.12, len(d)), d, s=16, color='C0', alpha=0.8,
                 zorder=3)
  ax.set_ylabel(metric)
  values = np.array([v for d in data for v in d], dtype=float)
  values = values[np.isfinite(values)]
  if values.size and values.min() > 0 and values.max() / values.min() > 10:
    ax.set_yscale('log')
    ax.set_ylabel(f'{metric} (log scale)')
  hib = summary.get('higher_is_better')
  direction = '' if hib is None else (' (higher is better)' if hib else ' (lower is better)')
  ax.set_title((title + ': ' if title else '') + f'{metric} per run{direction}', fontsize=10)
  ax.tick_params(axis='x', labelrotation=30)
  ax.grid(alpha=0.3, axis='y')
  fig.tight_layout()
  if path:
    fig.savefig(path, dpi=100)
  return fig
