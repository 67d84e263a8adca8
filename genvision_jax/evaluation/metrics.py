"""Sample-quality metrics as pure functions of arrays, with float64 statistics.

Inputs are feature arrays [N, D] (e.g. Inception-v3 pool features of real and generated
images), classifier logits or probabilities [N, K], class labels [N], or importance log-weights
[B, k]; anything array-like (numpy, jax) is accepted and converted to float64 numpy. Nothing
here reads images, runs a network or touches files: the feature extractor and the run
directories are the callers' business.

Contents (reference implementations in brackets; see each docstring):
  feature_statistics, frechet_distance, frechet_distance_from_features   FID [pytorch-fid]
  polynomial_kernel, mmd2_unbiased, kernel_inception_distance           KID [torch-fidelity]
  default_kid_subset_size, check_kid_subset_size
  inception_score                                                       IS  [torch-fidelity]
  knn_radii, precision_recall, density_coverage, manifold_metrics
      improved precision/recall [Kynkaanniemi et al. 2019], density/coverage [Naeem et al. 2020]
  classifier_two_sample_test, accuracy_p_value                          C2ST [Lopez-Paz & Oquab]
  mode_coverage                                                         class histogram, 2 KLs
  iwae_bound, elbo_from_log_weights                                     [Burda et al. 2016]
  FEATURE_METRICS                                                       name -> (real, fake) -> dict
"""

import math
import warnings
from typing import Callable, NamedTuple

import numpy as np
from scipy import linalg, optimize, special, stats

# Rows of a pairwise-distance block are chosen so that one block holds about this many float64
# entries (32 MiB): 10k x 10k distance matrices are never materialized whole.
_BLOCK_ELEMENTS = 1 << 22


def _features(x, name: str) -> np.ndarray:
  x = np.asarray(x, dtype=np.float64)
  if x.ndim != 2:
    raise ValueError(f'{name} must be a [N, D] feature array, got shape {x.shape}.')
  if not np.all(np.isfinite(x)):
    raise ValueError(f'{name} contains non-finite values.')
  return x


def _numpy_rng(rng) -> np.random.Generator | np.random.RandomState:
  """An int seed becomes np.random.default_rng(seed); Generators and RandomStates pass through
  (a RandomState reproduces torch-fidelity's draws, which use the legacy API)."""
  if isinstance(rng, (np.random.Generator, np.random.RandomState)):
    return rng
  return np.random.default_rng(rng)


# ----------------------------------------------------------------------------------------------
# Frechet (Inception) distance


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
  """Mean and covariance of features [N, D] in float64: (mu [D], sigma [D, D]).

  mu = 1/N sum_i f_i,  sigma = 1/(N - 1) sum_i (f_i - mu)(f_i - mu)^T  (np.cov, rowvar=False),
  as pytorch-fid's `calculate_activation_statistics` (which keeps mu in float32; here both are
  float64).
  """
  f = _features(features, 'features')
  if f.shape[0] < 2:
    raise ValueError(f'Need at least 2 feature vectors for a covariance, got {f.shape[0]}.')
  return f.mean(axis=0), np.cov(f, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6, method: str = 'sqrtm') -> float:
  """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2) (Heusel et al. 2017, FID):

    d^2 = ||mu1 - mu2||^2 + tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^{1/2}).

  Computed exactly as pytorch-fid's `calculate_frechet_distance` (v0.3.0): the square root of
  the product by `scipy.linalg.sqrtm`; if it is not finite (a near-singular product, e.g. from
  fewer samples than dimensions) both covariances get `eps` added to their diagonals and the
  root is retaken; a small imaginary part from numerical error is discarded, and an imaginary
  diagonal larger than 1e-3 is an error.

  method='eigh' (not pytorch-fid's, about twice as fast for 2048-d, e.g. inside
  `significance.bootstrap_interval`): sigma1 sigma2 is similar to the PSD matrix
  sigma1^{1/2} sigma2 sigma1^{1/2}, so tr((sigma1 sigma2)^{1/2}) = sum_i sqrt(lambda_i) over the
  latter's eigenvalues (symmetric eigensolvers; negative rounding clipped to 0). Agrees with
  'sqrtm' to ~1e-12 relative on full-rank covariances (tested against the reference fixture).
  """
  mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
  sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
  sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
  if mu1.shape != mu2.shape:
    raise ValueError(f'Mean vectors have different shapes: {mu1.shape} vs {mu2.shape}.')
  if sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
    raise ValueError(f'Covariances {sigma1.shape}, {sigma2.shape} do not match the means '
                     f'{mu1.shape}.')
  diff = mu1 - mu2
  if method == 'eigh':
    w, v = linalg.eigh(0.5 * (sigma1 + sigma1.T))
    root1 = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    lam = linalg.eigvalsh(root1 @ (0.5 * (sigma2 + sigma2.T)) @ root1)
    tr_covmean = np.sqrt(np.clip(lam, 0.0, None)).sum()
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)
  if method != 'sqrtm':
    raise ValueError(f"method must be 'sqrtm' or 'eigh', got {method!r}.")
  covmean = linalg.sqrtm(sigma1.dot(sigma2))
  if not np.isfinite(covmean).all():
    warnings.warn(f'FID: singular product of covariances; adding {eps} to their diagonals.')
    offset = np.eye(sigma1.shape[0]) * eps
    covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
  if np.iscomplexobj(covmean):
    if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
      raise ValueError(f'FID: imaginary component {np.max(np.abs(covmean.imag))} in the square '
                       'root of the covariance product.')
    covmean = covmean.real
  return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def frechet_distance_from_features(features_1, features_2, eps: float = 1e-6,
                                   method: str = 'sqrtm') -> float:
  """FID between two feature sets [N1, D], [N2, D]: `frechet_distance` of their
  `feature_statistics`. FID is biased upwards for small N (it falls as N grows): compare models
  only at equal N, and use N >= 10,000 (50,000 is the standard) for 2048-d Inception features.
  With N <= D the covariance is rank-deficient; that case warns."""
  f1, f2 = _features(features_1, 'features_1'), _features(features_2, 'features_2')
  if min(len(f1), len(f2)) <= f1.shape[1]:
    warnings.warn(f'FID from {min(len(f1), len(f2))} samples of {f1.shape[1]}-d features: the '
                  'covariances are rank-deficient and the distance is strongly biased.')
  return frechet_distance(*feature_statistics(f1), *feature_statistics(f2), eps=eps,
                          method=method)


# ----------------------------------------------------------------------------------------------
# Kernel Inception Distance


def polynomial_kernel(x, y, degree: int = 3, gamma: float | None = None, coef0: float = 1.0):
  """k(x, y) = (gamma x.y + coef0)^degree for all row pairs, [N, M]; gamma defaults to 1/D, so
  the KID kernel is (x.y / D + 1)^3 (Binkowski et al. 2018)."""
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  gamma = 1.0 / x.shape[1] if gamma is None else gamma
  return (x @ y.T * gamma + coef0)**degree


def mmd2_unbiased(x, y, degree: int = 3, gamma: float | None = None, coef0: float = 1.0) -> float:
  """Unbiased (U-statistic) squared MMD of Gretton et al. (2012, eq. 3) with `polynomial_kernel`:

    MMD^2_u = 1/(m(m-1)) sum_{i != j} k(x_i, x_j) + 1/(n(n-1)) sum_{i != j} k(y_i, y_j)
              - 2/(mn) sum_{i, j} k(x_i, y_j).

  For m = n this is torch-fidelity's `mmd2(..., mmd_est='unbiased')`. Its expectation is the
  population MMD^2 (0 for equal distributions), so single values can be negative.
  """
  x, y = _features(x, 'x'), _features(y, 'y')
  m, n = len(x), len(y)
  if m < 2 or n < 2:
    raise ValueError('mmd2_unbiased needs at least 2 samples per set.')
  kxx = polynomial_kernel(x, x, degree, gamma, coef0)
  kyy = polynomial_kernel(y, y, degree, gamma, coef0)
  kxy = polynomial_kernel(x, y, degree, gamma, coef0)
  sum_xx = kxx.sum() - np.trace(kxx)
  sum_yy = kyy.sum() - np.trace(kyy)
  return float(sum_xx / (m * (m - 1)) + sum_yy / (n * (n - 1)) - 2.0 * kxy.sum() / (m * n))


def default_kid_subset_size(num_samples: int) -> int:
  """torch-fidelity's 1000 rows per subset, or half the sample count when that is smaller (so
  that the subsets differ; see `check_kid_subset_size`)."""
  return min(1000, num_samples // 2)


def check_kid_subset_size(subset_size: int, num_samples: int) -> None:
  """Refuses KID subsets of more than half of the `num_samples` rows of the smaller set: with
  larger subsets the subsets overlap mostly (all of them are the whole set at subset_size = N)
  and the std over subsets no longer measures anything."""
  if subset_size < 2:
    raise ValueError(f'KID subset_size={subset_size}: the unbiased MMD needs at least 2 rows.')
  if subset_size > num_samples // 2:
    raise ValueError(f'KID subset_size={subset_size} is more than half of the {num_samples} '
                     'samples, so the subsets would mostly be the same rows; lower the subset '
                     f'size to at most {num_samples // 2} (or generate at least '
                     f'{2 * subset_size} samples).')


class KIDResult(NamedTuple):
  mean: float          # KID: mean of the subset MMD^2 estimates
  std: float           # their standard deviation (ddof=0, as torch-fidelity)
  values: np.ndarray   # the per-subset MMD^2_u, [num_subsets]


def kernel_inception_distance(features_1, features_2, num_subsets: int = 100,
                              subset_size: int = 1000, rng=0, degree: int = 3,
                              gamma: float | None = None, coef0: float = 1.0) -> KIDResult:
  """KID (Binkowski et al. 2018), as torch-fidelity's `kid_features_to_metric`: the unbiased
  `mmd2_unbiased` with the cubic kernel (x.y/D + 1)^3, on `num_subsets` pairs of random subsets
  of `subset_size` rows drawn without replacement, reported as mean and std over subsets.

  `rng`: an int seed (np.random.default_rng), a np.random.Generator, or a
  np.random.RandomState. Per subset the indices of features_1 are drawn first, then those of
  features_2, each with `rng.choice(n, subset_size, replace=False)`: passing
  np.random.RandomState(s) reproduces torch-fidelity's subsets for `rng_seed=s`.

  `subset_size` may be at most half the smaller set (`check_kid_subset_size`): torch-fidelity
  allows up to all of it, but subsets of (nearly) the whole set are (nearly) the same set every
  time, and their std (~1e-16 for subset_size = N) then says nothing about the spread of KID.
  """
  f1, f2 = _features(features_1, 'features_1'), _features(features_2, 'features_2')
  check_kid_subset_size(subset_size, min(len(f1), len(f2)))
  rng = _numpy_rng(rng)
  values = np.zeros(num_subsets)
  for i in range(num_subsets):
    idx1 = rng.choice(len(f1), subset_size, replace=False)
    idx2 = rng.choice(len(f2), subset_size, replace=False)
    values[i] = mmd2_unbiased(f1[idx1], f2[idx2], degree, gamma, coef0)
  return KIDResult(float(values.mean()), float(values.std()), values)


# ----------------------------------------------------------------------------------------------
# Inception Score


class ISResult(NamedTuple):
  mean: float          # mean over splits of exp(E_x KL(p(y|x) || p(y)))
  std: float           # std over splits (ddof=0, as torch-fidelity and openai/improved-gan)
  values: np.ndarray   # per-split scores, [splits]


def inception_score(logits_or_probs, splits: int = 10, from_logits: bool = True,
                    rng=None) -> ISResult:
  """Inception Score (Salimans et al. 2016): IS = exp(E_x KL(p(y|x) || p(y))), per split.

  The N rows are cut into `splits` contiguous parts [i N // splits, (i+1) N // splits); in each,
  p(y) is the mean of the part's p(y|x), and the score exp(mean_x sum_y p(y|x) log(p(y|x)/p(y)))
  is computed in float64. Reported as mean and std over splits, as openai/improved-gan and
  torch-fidelity's `isc_features_to_metric`. `from_logits`: rows are logits (softmax applied)
  rather than probabilities. `rng` (seed, Generator or RandomState): if given, rows are first
  permuted by `rng.permutation(N)`: np.random.RandomState(2020) reproduces torch-fidelity's
  default (`shuffle=True, rng_seed=2020`); None keeps the order (its `shuffle=False`).
  """
  x = np.asarray(logits_or_probs, np.float64)
  if x.ndim != 2:
    raise ValueError(f'Expected [N, K] logits or probabilities, got shape {x.shape}.')
  n = len(x)
  if not 1 <= splits <= n:
    raise ValueError(f'splits={splits} must be between 1 and N={n}.')
  if rng is not None:
    x = x[_numpy_rng(rng).permutation(n)]
  if from_logits:
    log_p = special.log_softmax(x, axis=1)
    p = np.exp(log_p)
  else:
    if np.any(x < 0) or not np.allclose(x.sum(axis=1), 1.0, atol=1e-4):
      raise ValueError('Probabilities must be non-negative rows summing to 1 '
                       '(pass from_logits=True for logits).')
    p = x
  scores = np.zeros(splits)
  for i in range(splits):
    part = p[i * n // splits:(i + 1) * n // splits]
    q = part.mean(axis=0, keepdims=True)
    if from_logits:
      kl = part * (log_p[i * n // splits:(i + 1) * n // splits] - np.log(q))
    else:  # 0 log 0 = 0 for exactly-zero probabilities.
      kl = special.xlogy(part, part) - special.xlogy(part, q)
    scores[i] = math.exp(kl.sum(axis=1).mean())
  return ISResult(float(scores.mean()), float(scores.std()), scores)


# ----------------------------------------------------------------------------------------------
# k-NN manifolds: improved precision/recall and density/coverage


def _sq_norms(x):
  return np.einsum('ij,ij->i', x, x)


def _sq_distance_blocks(x, y, block_rows: int | None = None):
  """Yields (start, d2) with d2[i, j] = ||x[start + i] - y[j]||^2 for row blocks of x, by the
  matmul expansion |x|^2 + |y|^2 - 2 x.y (clipped at 0), as torch.cdist does for large inputs."""
  if block_rows is None:
    block_rows = max(1, _BLOCK_ELEMENTS // max(1, len(y)))
  y_sq = _sq_norms(y)
  for start in range(0, len(x), block_rows):
    xb = x[start:start + block_rows]
    d2 = _sq_norms(xb)[:, None] + y_sq[None, :] - 2.0 * (xb @ y.T)
    np.maximum(d2, 0.0, out=d2)
    yield start, d2


def _knn_sq_radii(x, ks, block_rows=None) -> list[np.ndarray]:
  """Squared distance from each row of x to its k-th nearest other row, for each k in ks."""
  if max(ks) >= len(x):
    raise ValueError(f'k={max(ks)} needs more than {max(ks)} samples, got {len(x)}.')
  radii = [np.empty(len(x)) for _ in ks]
  for start, d2 in _sq_distance_blocks(x, x, block_rows):
    rows = np.arange(len(d2))
    d2[rows, start + rows] = 0.0  # the point itself, exactly; it is the 0-th neighbour
    part = np.partition(d2, list(ks), axis=1)
    for r, k in zip(radii, ks):
      r[start:start + len(d2)] = part[:, k]
  return radii


def knn_radii(features, k: int = 3, block_rows: int | None = None) -> np.ndarray:
  """Distance from each row of features [N, D] to its k-th nearest neighbour among the other
  rows, [N] (the radius of its k-NN ball in Kynkaanniemi et al. and Naeem et al.)."""
  return np.sqrt(_knn_sq_radii(_features(features, 'features'), [k], block_rows)[0])


class ManifoldMetrics(NamedTuple):
  precision: float   # fraction of generated samples inside the real k-NN manifold
  recall: float      # fraction of real samples inside the generated k-NN manifold
  density: float     # mean number of real k-NN balls holding a generated sample, / k
  coverage: float    # fraction of real k-NN balls holding at least one generated sample


def manifold_metrics(real_features, fake_features, k: int = 5,
                     block_rows: int | None = None) -> ManifoldMetrics:
  """Improved precision and recall (Kynkaanniemi et al. 2019) and density and coverage (Naeem
  et al. 2020) from k-NN balls, sharing the distance passes. With r_k(x) the distance from x to
  its k-th nearest neighbour within its own set, real X (N), fake Y (M), and ONE k for all four:

    precision = 1/M sum_j 1[exists i: ||y_j - x_i|| <= r_k(x_i)]
    recall    = 1/N sum_i 1[exists j: ||x_i - y_j|| <= r_k(y_j)]
    density   = 1/(k M) sum_j sum_i 1[||y_j - x_i|| < r_k(x_i)]
    coverage  = 1/N sum_i 1[min_j ||x_i - y_j|| < r_k(x_i)]

  `<=` in precision/recall as torch-fidelity's `prc` (and the authors' code), `<` in
  density/coverage as the authors' `prdc` package; they differ only on tied distances (e.g.
  discrete features). k = 5 is prdc's `nearest_k` and what most papers report for all four
  (Kynkaanniemi et al. used k = 3). Distances are computed in float64 row blocks of about 4M
  entries, so 10k x 10k is fine.
  """
  real = _features(real_features, 'real_features')
  fake = _features(fake_features, 'fake_features')
  (r_real,) = _knn_sq_radii(real, [k], block_rows)
  (r_fake,) = _knn_sq_radii(fake, [k], block_rows)
  in_real = np.zeros(len(fake), bool)
  density_count = 0
  real_recalled = np.zeros(len(real), bool)
  real_min_d2 = np.full(len(real), np.inf)
  for start, d2 in _sq_distance_blocks(fake, real, block_rows):  # [fake block, all real]
    in_real[start:start + len(d2)] = (d2 <= r_real[None, :]).any(axis=1)
    density_count += int((d2 < r_real[None, :]).sum())
    real_recalled |= (d2 <= r_fake[start:start + len(d2), None]).any(axis=0)
    np.minimum(real_min_d2, d2.min(axis=0), out=real_min_d2)
  return ManifoldMetrics(precision=float(in_real.mean()),
                         recall=float(real_recalled.mean()),
                         density=density_count / (k * len(fake)),
                         coverage=float((real_min_d2 < r_real).mean()))


def precision_recall(real_features, fake_features, k: int = 5,
                     block_rows: int | None = None) -> tuple[float, float]:
  """Improved precision and recall (Kynkaanniemi et al. 2019) with k-NN manifolds: (precision,
  recall); see `manifold_metrics` for the formulas. Precision measures sample fidelity (are
  generated samples on the real manifold?), recall measures diversity (is the real manifold
  covered by the generated one?). Matches torch-fidelity's `prc` (`prc_neighborhood=k`; its
  default is the paper's k = 3, this one's the k = 5 shared by all four manifold metrics)."""
  m = manifold_metrics(real_features, fake_features, k, block_rows)
  return m.precision, m.recall


def density_coverage(real_features, fake_features, k: int = 5,
                     block_rows: int | None = None) -> tuple[float, float]:
  """Density and coverage (Naeem et al. 2020): (density, coverage); see `manifold_metrics`.
  Both use only real-sample k-NN balls, so they are robust to outliers in the generated set;
  density can exceed 1, coverage is in [0, 1]. Matches `prdc.compute_prdc(nearest_k=k)`."""
  m = manifold_metrics(real_features, fake_features, k, block_rows)
  return m.density, m.coverage


# ----------------------------------------------------------------------------------------------
# Classifier two-sample test


def accuracy_p_value(num_correct: int, num_total: int, chance: float = 0.5) -> float:
  """One-sided exact binomial p-value of H0 "accuracy = chance" against "accuracy > chance":
  P(Binomial(num_total, chance) >= num_correct) (scipy.stats.binomtest, alternative='greater').
  """
  return float(stats.binomtest(int(num_correct), int(num_total), chance,
                               alternative='greater').pvalue)


def _fit_predict_logistic(x_train, y_train, x_test, l2: float = 1.0, max_iter: int = 500):
  """L2-regularized logistic regression (sum of log-losses + l2/2 ||w||^2, bias unpenalized,
  i.e. scikit-learn's default C = 1/l2 = 1) by L-BFGS on standardized features; returns
  P(y = 1 | x_test)."""
  mean, std = x_train.mean(axis=0), x_train.std(axis=0)
  std = np.where(std > 0, std, 1.0)
  xt, xs = (x_train - mean) / std, (x_test - mean) / std
  sign = 2.0 * y_train - 1.0

  def loss_and_grad(params):
    w, b = params[:-1], params[-1]
    margin = sign * (xt @ w + b)
    loss = np.logaddexp(0.0, -margin).sum() + 0.5 * l2 * w.dot(w)
    g = -sign * special.expit(-margin)  # d loss / d logit
    return loss, np.concatenate([xt.T @ g + l2 * w, [g.sum()]])

  res = optimize.minimize(loss_and_grad, np.zeros(xt.shape[1] + 1), jac=True, method='L-BFGS-B',
                          options={'maxiter': max_iter})
  return special.expit(xs @ res.x[:-1] + res.x[-1])


class C2STResult(NamedTuple):
  accuracy: float    # held-out accuracy of the real-vs-generated classifier
  p_value: float     # one-sided binomial p-value of H0: accuracy = 1/2
  num_correct: int
  num_test: int


def classifier_two_sample_test(real_features, fake_features, train_fraction: float = 0.5,
                               rng=0, l2: float = 1.0,
                               fit_predict: Callable | None = None) -> C2STResult:
  """Classifier two-sample test (Lopez-Paz & Oquab 2017): the notes' discriminator-based metric.

  A fresh classifier learns real (label 1) vs generated (label 0) on a train split and is
  scored on the held-out rest. Under H0: p_real = p_fake no classifier beats chance, so the
  number of correct test predictions is Binomial(n_test, 1/2); the p-value is
  P(Binomial(n_test, 1/2) >= n_correct) (`accuracy_p_value`). Accuracy near 1/2 means the sets
  are indistinguishable by this classifier on these features; near 1, easily told apart.

  Both sets are cut to the same size min(N_real, N_fake) (so chance is exactly 1/2), shuffled
  with `rng` (seed or np.random.Generator) and split per class: `train_fraction` of each for
  training. The default classifier is logistic regression on standardized features (L2 weight
  `l2`, see `_fit_predict_logistic`). `fit_predict(x_train, y_train, x_test) -> P(y=1 | x_test)`
  (or 0/1 labels) plugs in any other classifier, e.g. a small network on images.
  """
  real = _features(real_features, 'real_features')
  fake = _features(fake_features, 'fake_features')
  rng = _numpy_rng(rng)
  n = min(len(real), len(fake))
  n_train = int(round(train_fraction * n))
  if not 1 <= n_train < n:
    raise ValueError(f'train_fraction={train_fraction} leaves no train or test data (n={n}).')
  real = real[rng.permutation(len(real))[:n]]
  fake = fake[rng.permutation(len(fake))[:n]]
  x_train = np.concatenate([real[:n_train], fake[:n_train]])
  y_train = np.concatenate([np.ones(n_train), np.zeros(n_train)])
  x_test = np.concatenate([real[n_train:], fake[n_train:]])
  y_test = np.concatenate([np.ones(n - n_train), np.zeros(n - n_train)])
  if fit_predict is None:
    prob = _fit_predict_logistic(x_train, y_train, x_test, l2=l2)
  else:
    prob = np.asarray(fit_predict(x_train, y_train, x_test), np.float64)
  num_correct = int(((prob > 0.5) == (y_test == 1)).sum())
  return C2STResult(num_correct / len(y_test), accuracy_p_value(num_correct, len(y_test)),
                    num_correct, len(y_test))


# ----------------------------------------------------------------------------------------------
# Mode coverage for labelled data


class ModeCoverage(NamedTuple):
  histogram: np.ndarray            # generated samples per class, [K] (counts; soft: expected)
  num_covered: int                 # classes with histogram >= min_count
  sample_distribution: np.ndarray  # smoothed class distribution of the samples, [K]
  data_distribution: np.ndarray    # smoothed class distribution of the data, [K]
  kl_data_to_samples: float        # KL(data || samples): large when modes are DROPPED
  kl_samples_to_data: float        # KL(samples || data): large when samples pile into classes
                                   # rare (or absent) in the data


def mode_coverage(samples, data_distribution, min_count: int = 1, alpha: float = 1.0,
                  soft: bool = False) -> ModeCoverage:
  """Mode coverage of a labelled dataset's classes by generated samples (e.g. the classes that
  a pretrained MNIST classifier assigns to GAN samples, as in the mode-collapse studies).

  samples: integer labels [N], or class probabilities / scores [N, K] (argmax taken, or summed
  when `soft`: expected counts). data_distribution: the data's class probabilities or counts,
  [K]. A class is covered when at least `min_count` samples fall into it.

  Both distributions are smoothed by the same additive mass eps = alpha / N per class,
  p~ = (p + eps) / (1 + K eps), which for the sample histogram is Laplace smoothing with `alpha`
  pseudo-counts per class: q~ = (c + alpha) / (N + K alpha). Then

    kl_data_to_samples = KL(p_data || q_samples) = sum_y p(y) log(p(y) / q(y))

  is the mode-dropping direction (a class of the data with no samples costs ~p(y) log(N p(y) /
  alpha)); and

    kl_samples_to_data = KL(q_samples || p_data) = sum_y q(y) log(q(y) / p(y))

  penalizes samples concentrated on few classes or on classes the data lacks. Both are 0 iff the
  smoothed distributions agree; smoothing keeps them finite.
  """
  p = np.asarray(data_distribution, np.float64)
  if p.ndim != 1 or np.any(p < 0) or p.sum() <= 0:
    raise ValueError('data_distribution must be non-negative class probabilities or counts, [K].')
  num_classes = len(p)
  p = p / p.sum()
  s = np.asarray(samples)
  if s.ndim == 2:
    if s.shape[1] != num_classes:
      raise ValueError(f'samples have {s.shape[1]} classes, the data {num_classes}.')
    hist = (s.astype(np.float64).sum(axis=0) if soft
            else np.bincount(s.argmax(axis=1), minlength=num_classes).astype(np.float64))
  elif s.ndim == 1:
    if not np.issubdtype(s.dtype, np.integer) or s.min() < 0 or s.max() >= num_classes:
      raise ValueError(f'Labels must be integers in [0, {num_classes}).')
    hist = np.bincount(s, minlength=num_classes).astype(np.float64)
  else:
    raise ValueError(f'samples must be labels [N] or probabilities [N, K], got {s.shape}.')
  n = len(s)
  eps = alpha / n
  q_s = (hist / n + eps) / (1.0 + num_classes * eps)
  p_s = (p + eps) / (1.0 + num_classes * eps)
  return ModeCoverage(
      histogram=hist, num_covered=int((hist >= min_count).sum()), sample_distribution=q_s,
      data_distribution=p_s,
      kl_data_to_samples=float(np.sum(special.rel_entr(p_s, q_s))),
      kl_samples_to_data=float(np.sum(special.rel_entr(q_s, p_s))))


# ----------------------------------------------------------------------------------------------
# Importance-weighted log-likelihood bound


def iwae_bound(log_weights, axis: int = -1) -> np.ndarray:
  """Importance-weighted bound of Burda et al. (2016), per example, in float64:

    L_k(x) = log (1/k sum_{i=1..k} w_i) = logsumexp_i(log w_i) - log k,
    log w_i = log p(x, z_i) - log q(z_i | x),  z_i ~ q(z | x) independently,

  with the k samples along `axis`. E[L_k] <= E[L_{k+1}] <= log p(x), and L_k -> log p(x) as
  k -> infinity (for bounded weights). k = 1 is the single-sample ELBO estimate
  log p(x, z) - log q(z|x); for any k, L_k >= `elbo_from_log_weights` (Jensen), sample by sample.
  """
  lw = np.asarray(log_weights, np.float64)
  return special.logsumexp(lw, axis=axis) - math.log(lw.shape[axis])


def elbo_from_log_weights(log_weights, axis: int = -1) -> np.ndarray:
  """The ELBO estimate from the same k samples: mean_i log w_i, i.e. the average of k
  single-sample (k = 1) IWAE bounds. Its expectation is E_q[log p(x, z) - log q(z|x)]."""
  return np.asarray(log_weights, np.float64).mean(axis=axis)


# ----------------------------------------------------------------------------------------------
# Set-level metrics by name: (real_features, fake_features) -> {name: float}. For the CLI and
# for `significance.bootstrap_interval`.


def _kid_dict(real, fake):
  size = default_kid_subset_size(min(len(real), len(fake)))
  res = kernel_inception_distance(real, fake, subset_size=size)
  return {'kid': res.mean, 'kid_std': res.std}


FEATURE_METRICS: dict[str, Callable[..., dict[str, float]]] = {
    'fid': lambda real, fake: {'fid': frechet_distance_from_features(real, fake)},
    'kid': _kid_dict,
    'manifold': lambda real, fake: manifold_metrics(real, fake)._asdict(),
    'c2st': lambda real, fake: {
        k: v for k, v in classifier_two_sample_test(real, fake)._asdict().items()
        if k in ('accuracy', 'p_value')},
}
