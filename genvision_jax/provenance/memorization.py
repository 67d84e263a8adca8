"""Image attribution by nearest neighbours, and the memorization statistic of a run.

For a feature map phi (pixels, digits_cnn features, Inception when weights are given) and the
training images Train:
  d(x) = min_{y in Train} ||phi(x) - phi(y)||_2          (1-NN distance to the training set)
  m    = median{d(t) : t in Test}                        (how far a typical unseen image is)
  M    = (1/N) sum_i 1[d(x_i) < m]                       over N generated samples
M is the fraction of samples closer to a training image than the typical test image is
(Carlini et al. 2023 in spirit: copies of training images give M = 1, samples that are as
novel as test images give M = 1/2). Under H0 "samples are as far from Train as test images"
the count is ~Bin(N, 1/2) (ignoring the error in m): the one-sided binomial p-value. Beside it,
Meehan et al.'s (2020) rank test: A = P(d(x) < d(t)) = U / (N n) from the Mann-Whitney U of
the two distance samples, and Z_U (negative = data copying), with scipy's p-value of
'less'.

Subset attribution and its counterfactual check: nearest-neighbour attribution says a sample
"comes from" the training images nearest to it. For a subset S of the training images (a
k-means cluster in a feature space, `cluster_subset`, or a random control, `random_subset`),
f(S) = (1/N) sum_i 1[NN(x_i) in S] is the share of the samples it attributes to S
(`subset_share`; Clopper-Pearson interval). Retraining the generator with S left out
(data.exclude) and measuring f(S) again against the full training set tests whether S caused
what the attribution credits it with: a faithful attribution predicts f drops to what a model
that never saw S still puts there, while leaving out a random R of the same size leaves f(S)
within the seed-to-seed spread.
"""

from typing import NamedTuple

import numpy as np
from scipy import stats

from genvision_jax.evaluation import metrics as ev_metrics


class Neighbours(NamedTuple):
  distances: np.ndarray  # [N, k] ascending
  indices: np.ndarray    # [N, k] rows of the reference


def nearest(query, reference, k: int = 1) -> Neighbours:
  """The k nearest reference rows of every query row (Euclidean, float64, blocked)."""
  q = np.asarray(query, np.float64).reshape(len(query), -1)
  r = np.asarray(reference, np.float64).reshape(len(reference), -1)
  if not 1 <= k <= len(r):
    raise ValueError(f'k must be in [1, {len(r)}] (got {k})')
  dist, idx = np.empty((len(q), k)), np.empty((len(q), k), np.int64)
  for start, d2 in ev_metrics._sq_distance_blocks(q, r):  # pylint: disable=protected-access
    part = np.argpartition(d2, k - 1, axis=1)[:, :k] if k < len(r) else np.tile(
        np.arange(len(r)), (len(d2), 1))
    rows = np.arange(len(d2))[:, None]
    order = np.argsort(d2[rows, part], axis=1, kind='stable')
    best = part[rows, order]
    dist[start:start + len(d2)] = np.sqrt(d2[rows, best])
    idx[start:start + len(d2)] = best
  return Neighbours(dist, idx)


def memorization(generated_distances, test_distances) -> dict:
  """The statistics above from the 1-NN distances to Train of generated samples and of test
  images (disjoint from Train)."""
  g = np.asarray(generated_distances, np.float64)
  t = np.asarray(test_distances, np.float64)
  m = float(np.median(t))
  if m <= 0:
    raise ValueError('the median test image is a copy of a training image (distance 0): the '
                     'test split overlaps the training split')
  closer = int(np.sum(g < m))
  u = stats.mannwhitneyu(g, t, alternative='less')
  n, n_t = len(g), len(t)
  # scipy's U counts the pairs (sample, test image) with the sample farther (ties half);
  # Meehan et al.'s Z_U standardizes it (no tie correction), so copying makes it negative
  z_u = (float(u.statistic) - n * n_t / 2.0) / np.sqrt(n * n_t * (n + n_t + 1) / 12.0)
  return {'fraction_closer': closer / n, 'count_closer': closer, 'num_samples': n,
          'ties_at_median': int(np.sum(g == m)), 'median_test_distance': m,
          'p_value': ev_metrics.accuracy_p_value(closer, n, 0.5),
          'rank_a': 1.0 - float(u.statistic) / (n * n_t), 'z_u': z_u, 'rank_p_value': float(u.pvalue),
          'num_test': n_t, 'median_sample_distance': float(np.median(g))}


def subset_share(nearest_indices, subset) -> dict:
  """The share of queries whose nearest reference row (nearest_indices[:, 0] or [N]) lies in
  `subset` (reference row indices), with its 95 % Clopper-Pearson interval."""
  from genvision_jax.provenance import statistics  # pylint: disable=g-import-not-at-top
  first = np.asarray(nearest_indices)
  first = first[:, 0] if first.ndim == 2 else first
  count = int(np.isin(first, np.asarray(subset)).sum())
  rate = statistics.rate_interval(count, len(first))
  return {'share': count / len(first), 'count': count, 'num': len(first),
          'interval': [rate.low, rate.high]}


def cluster_subset(features, num_clusters: int, cluster: int, seed: int = 0) -> np.ndarray:
  """Row indices of one k-means cluster (scikit-learn, k-means++ seeded by `seed`) of the
  feature rows; clusters are numbered by size, largest first, so the choice is stable."""
  from sklearn.cluster import KMeans  # pylint: disable=g-import-not-at-top
  x = np.asarray(features, np.float64).reshape(len(features), -1)
  if not 2 <= num_clusters <= len(x):
    raise ValueError(f'the number of clusters must be in [2, {len(x)}] (got {num_clusters})')
  if not 0 <= cluster < num_clusters:
    raise ValueError(f'cluster must be in [0, {num_clusters}) (got {cluster})')
  labels = KMeans(num_clusters, n_init=4, random_state=seed).fit_predict(x)
  sizes = np.bincount(labels, minlength=num_clusters)
  order = np.argsort(-sizes, kind='stable')
  return np.flatnonzero(labels == order[cluster])


def random_subset(num_rows: int, size: int, seed: int = 0, avoid=None) -> np.ndarray:
  """`size` distinct row indices in [0, num_rows) drawn with `seed`, none of them in `avoid`
  (sorted)."""
  pool = np.setdiff1d(np.arange(num_rows), np.asarray(avoid if avoid is not None else [],
                                                      np.int64))
  if not 1 <= size <= len(pool):
    raise ValueError(f'the subset size must be in [1, {len(pool)}] (got {size})')
  return np.sort(np.random.default_rng(seed).choice(pool, size, replace=False))
