"""The tests behind every provenance decision: is this image watermarked, is it fake?

Bit watermarks (HiDDeN, Stable Signature): k of n extracted bits match the key. Under the null
of an unwatermarked image the bits are fair coins, so k ~ Bin(n, 1/2) and the p-value is
P(Bin(n, 1/2) >= k) (the exact test `scipy.stats.binomtest(k, n, alternative='greater')`).
An image is flagged when k >= tau, tau the smallest count whose p-value is <= the chosen
false-positive rate.

Tree-Ring: the inverted noise's masked Fourier coefficients y (2M independent real numbers)
against the key k. Unwatermarked, y ~ N(0, s^2 I), so eta = ||(y - k)/s||^2 follows a
non-central chi^2 with 2M degrees of freedom and non-centrality ||k/s||^2; a small eta means
close to the key: p = P(chi'^2 <= eta) (Wen et al. 2023's `get_p_value`).

Empirical rates: TPR at a fixed FPR from scores of positives and negatives (higher score =
more positive), ROC AUC (scikit-learn), and Clopper-Pearson intervals of rates.
"""

from typing import NamedTuple

import numpy as np
from scipy import stats
from sklearn import metrics as sk_metrics

from genvision_jax.evaluation import metrics as ev_metrics
from genvision_jax.evaluation import significance


def bit_p_value(num_matches: int, num_bits: int) -> float:
  """P(Bin(n, 1/2) >= k): the chance that an unwatermarked image matches k of n key bits."""
  return ev_metrics.accuracy_p_value(num_matches, num_bits, 0.5)


def bit_threshold(num_bits: int, fpr: float) -> int:
  """The smallest number of matching bits tau with P(Bin(n, 1/2) >= tau) <= fpr (n + 1 when
  even all n matches are likelier than fpr): flagging k >= tau has false-positive rate <= fpr."""
  if not 0 < fpr < 1:
    raise ValueError(f'the false-positive rate must be in (0, 1) (got {fpr})')
  k = np.arange(num_bits + 1)
  tail = stats.binom.sf(k - 1, num_bits, 0.5)  # P(X >= k)
  ok = np.nonzero(tail <= fpr)[0]
  return int(ok[0]) if len(ok) else num_bits + 1


def ncx2_p_value(eta, df: int, noncentrality) -> np.ndarray:
  """P(chi'^2_df(noncentrality) <= eta), elementwise; the central chi^2 when the
  non-centrality is 0 (a `zeros` key)."""
  eta, nc = np.asarray(eta, np.float64), np.asarray(noncentrality, np.float64)
  central = stats.chi2.cdf(eta, df)
  return np.where(nc > 0, stats.ncx2.cdf(eta, df, np.maximum(nc, 1e-300)), central)


class Rate(NamedTuple):
  rate: float
  low: float
  high: float
  count: int
  total: int


def rate_interval(count: int, total: int, confidence: float = 0.95) -> Rate:
  """count / total with its exact (Clopper-Pearson) interval."""
  if total <= 0:
    return Rate(float('nan'), float('nan'), float('nan'), 0, 0)
  ci = stats.binomtest(int(count), int(total)).proportion_ci(confidence, method='exact')
  return Rate(count / total, float(ci.low), float(ci.high), int(count), int(total))


def empirical_threshold(negative_scores, fpr: float) -> float:
  """The score threshold whose false-positive rate on the negatives is at most fpr (flag
  score > threshold): the ceil((1 - fpr) n)-th smallest negative score. With fewer than 1 / fpr
  negatives this is their maximum and the rate is only bounded by the sample size."""
  neg = np.sort(np.asarray(negative_scores, np.float64))
  n = len(neg)
  if n == 0:
    raise ValueError('an empirical threshold needs negative scores')
  index = int(np.ceil((1.0 - fpr) * n)) - 1
  return float(neg[min(max(index, 0), n - 1)])


def tpr_at_fpr(positive_scores, negative_scores, fpr: float) -> dict:
  """TPR and the realized FPR at the empirical threshold of the negatives (higher score =
  positive), each with its Clopper-Pearson interval."""
  pos, neg = np.asarray(positive_scores), np.asarray(negative_scores)
  thr = empirical_threshold(neg, fpr)
  tp, fp = int(np.sum(pos > thr)), int(np.sum(neg > thr))
  return {'threshold': thr, 'fpr_target': float(fpr),
          'tpr': rate_interval(tp, len(pos))._asdict(),
          'fpr': rate_interval(fp, len(neg))._asdict(),
          'resolvable': bool(len(neg) * fpr >= 1.0)}


def roc_auc(positive_scores, negative_scores, num_resamples: int = 200, rng=0) -> dict:
  """ROC AUC (scikit-learn) with a bootstrap interval resampling positives and negatives
  independently ('normal' method: AUC is a plug-in statistic)."""
  pos = np.asarray(positive_scores, np.float64)
  neg = np.asarray(negative_scores, np.float64)

  def auc(p, n):
    y = np.concatenate([np.ones(len(p)), np.zeros(len(n))])
    return sk_metrics.roc_auc_score(y, np.concatenate([p, n]))

  b = significance.bootstrap_interval(auc, pos, neg, num_resamples=num_resamples, rng=rng,
                                      method='normal')
  return {'auc': b.estimate, 'low': max(b.low, 0.0), 'high': min(b.high, 1.0),
          'num_positive': len(pos), 'num_negative': len(neg)}
