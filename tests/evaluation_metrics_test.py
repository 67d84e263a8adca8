"""Metrics against closed forms, hand-computed values, synthetic ground truth and stored outputs
of the reference implementations (pytorch-fid, torch-fidelity, prdc)."""

import importlib.util
import json
import math
import pathlib
import warnings

import numpy as np
import pytest
from scipy import special, stats
from scipy.spatial import distance

from genvision_jax.evaluation import metrics

FIXTURES = pathlib.Path(__file__).resolve().parent / 'fixtures' / 'metrics'


def _load_reference():
  """The stored outputs and the fixture generator module (imported by path, numpy only), whose
  make_inputs / make_logits rebuild the inputs from their seeds."""
  spec = importlib.util.spec_from_file_location('make_reference', FIXTURES / 'make_reference.py')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return json.loads((FIXTURES / 'reference.json').read_text())['cases'], module


REF, GEN = _load_reference()


# ----------------------------------------------------------------------------------------------
# FID


def test_feature_statistics_are_float64_mean_and_unbiased_covariance():
  x = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
  mu, sigma = metrics.feature_statistics(x)
  assert mu.dtype == np.float64 and sigma.dtype == np.float64
  x64 = x.astype(np.float64)
  np.testing.assert_allclose(mu, x64.sum(0) / 50, rtol=1e-12)
  centred = x64 - x64.mean(0)
  np.testing.assert_allclose(sigma, centred.T @ centred / 49, rtol=1e-12)


def test_frechet_distance_of_a_set_with_itself_is_zero():
  x = np.random.default_rng(1).normal(size=(400, 16)) @ np.random.default_rng(2).normal(
      size=(16, 16))
  assert abs(metrics.frechet_distance_from_features(x, x)) < 1e-8


def test_frechet_distance_closed_form_for_commuting_covariances():
  # 1-D by hand: N(0, 1) vs N(1, 4): (0 - 1)^2 + 1 + 4 - 2 sqrt(1 * 4) = 2.
  assert metrics.frechet_distance([0.0], [[1.0]], [1.0], [[4.0]]) == pytest.approx(2.0, rel=1e-12)
  # Diagonal: ||mu1 - mu2||^2 + sum (a + b - 2 sqrt(ab)) = ||mu1 - mu2||^2 + sum (sqrt a - sqrt b)^2.
  a, b = np.array([1.0, 4.0, 9.0, 0.25]), np.array([4.0, 4.0, 1.0, 1.0])
  mu1, mu2 = np.array([0.0, 1.0, 2.0, 3.0]), np.array([1.0, 1.0, 0.0, 3.0])
  expected = (1 + 0 + 4 + 0) + (1 + 0 + 4 + 0.25)   # = 10.25
  assert metrics.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(
      expected, rel=1e-12)
  # The same spectra in a shared rotated basis commute: same distance (the trace is invariant).
  q, _ = np.linalg.qr(np.random.default_rng(3).normal(size=(4, 4)))
  s1, s2 = q @ np.diag(a) @ q.T, q @ np.diag(b) @ q.T
  assert metrics.frechet_distance(q @ mu1, s1, q @ mu2, s2) == pytest.approx(expected, rel=1e-9)
  assert metrics.frechet_distance(q @ mu1, s1, q @ mu2, s2, method='eigh') == pytest.approx(
      expected, rel=1e-9)


def test_frechet_distance_adds_eps_when_the_square_root_is_not_finite(monkeypatch):
  sqrtm = metrics.linalg.sqrtm
  calls = []

  def failing_once(m):
    calls.append(m)
    return np.full_like(m, np.nan) if len(calls) == 1 else sqrtm(m)

  monkeypatch.setattr(metrics.linalg, 'sqrtm', failing_once)
  s1, s2 = np.diag([1.0, 0.0]), np.diag([1.0, 4.0])
  with pytest.warns(UserWarning, match='singular'):
    fid = metrics.frechet_distance(np.zeros(2), s1, np.zeros(2), s2, eps=1e-2)
  np.testing.assert_allclose(calls[1], (s1 + 1e-2 * np.eye(2)) @ (s2 + 1e-2 * np.eye(2)))
  # tr(s1 + s2 - 2 sqrt((s1 + eps)(s2 + eps))) with diagonal products.
  expected = 1 + 0 + 1 + 4 - 2 * (math.sqrt(1.01 * 1.01) + math.sqrt(0.01 * 4.01))
  assert fid == pytest.approx(expected, rel=1e-12)


def test_frechet_distance_rejects_mismatched_shapes():
  with pytest.raises(ValueError):
    metrics.frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))


@pytest.mark.parametrize('name', ['fid', 'fid_rank_deficient'])
def test_frechet_distance_matches_pytorch_fid(name):
  c = REF[name]
  x1, x2 = GEN.make_inputs(c['seed'], c['n1'], c['n2'], c['d'])
  with warnings.catch_warnings():
    warnings.simplefilter('ignore')  # the rank-deficient case warns, by design
    fid = metrics.frechet_distance_from_features(x1, x2)
  assert fid == pytest.approx(c['fid'], rel=1e-6)
  if name == 'fid':  # the eigenvalue route agrees on full-rank covariances
    fast = metrics.frechet_distance_from_features(x1, x2, method='eigh')
    assert fast == pytest.approx(c['fid'], rel=1e-9)


def test_frechet_distance_warns_about_too_few_samples():
  x = np.random.default_rng(0).normal(size=(10, 16))
  with pytest.warns(UserWarning, match='rank-deficient'):
    metrics.frechet_distance_from_features(x, x + 1)


# ----------------------------------------------------------------------------------------------
# KID


def _kid_by_hand(x, y, num_subsets, subset_size, seed):
  """torch-fidelity's KID written out in float64 numpy: per subset, rows drawn without
  replacement (indices of x first, then of y, from np.random.default_rng(seed) as the
  docstring of `kernel_inception_distance` says); k(a, b) = (a.b / d + 1)^3;
  mmd2 = (sum K_xx - tr K_xx) / (m (m - 1)) + (sum K_yy - tr K_yy) / (m (m - 1))
         - 2 sum K_xy / m^2; mean and (ddof=0) std over subsets."""
  rng = np.random.default_rng(seed)
  d, m = x.shape[1], subset_size
  out = []
  for _ in range(num_subsets):
    a = x[rng.choice(len(x), m, replace=False)]
    b = y[rng.choice(len(y), m, replace=False)]
    kxx, kyy, kxy = [(np.einsum('id,jd->ij', u, v) / d + 1.0)**3 for u, v in
                     ((a, a), (b, b), (a, b))]
    out.append((kxx.sum() - np.einsum('ii', kxx)) / (m * (m - 1))
               + (kyy.sum() - np.einsum('ii', kyy)) / (m * (m - 1)) - 2.0 * kxy.sum() / m**2)
  return np.mean(out), np.std(out)


def test_kid_matches_torch_fidelity_with_its_subsets():
  c = REF['kid']
  x1, x2 = GEN.make_inputs(c['seed'], c['n1'], c['n2'], c['d'])
  res = metrics.kernel_inception_distance(x1, x2, c['subsets'], c['subset_size'],
                                          rng=np.random.RandomState(c['rng_seed']))
  assert res.mean == pytest.approx(c['kid_mean'], rel=1e-9)
  assert res.std == pytest.approx(c['kid_std'], rel=1e-9)
  assert res.values.shape == (c['subsets'],)
  # A seeded Generator: the same numbers as the formula by hand on the documented draws.
  ours = metrics.kernel_inception_distance(x1, x2, 7, 60, rng=5)
  mean, std = _kid_by_hand(x1, x2, 7, 60, seed=5)
  assert ours.mean == pytest.approx(mean, rel=1e-10) and ours.std == pytest.approx(std, rel=1e-9)
  assert std > 0.01 * abs(mean)   # subsets that differ: a real spread


def test_kid_refuses_subsets_larger_than_half_the_samples():
  x1, x2 = GEN.make_inputs(0, 300, 250, 8)
  metrics.kernel_inception_distance(x1, x2, 2, 125)   # half of the smaller set: fine
  with pytest.raises(ValueError, match=r'more than half of the 250 samples.*at most 125'):
    metrics.kernel_inception_distance(x1, x2, 2, 126)
  assert metrics.default_kid_subset_size(5000) == 1000
  assert metrics.default_kid_subset_size(60) == 30


def test_unbiased_mmd2_matches_torch_fidelity():
  c = REF['mmd2']
  x1, x2 = GEN.make_inputs(c['seed'], c['n1'], c['n2'], c['d'])
  assert metrics.mmd2_unbiased(x1, x2) == pytest.approx(c['mmd2'], rel=1e-9)


def test_polynomial_kernel_hand_value():
  # (x.y / d + 1)^3 with x.y = 1*3 + 2*(-1) = 1, d = 2: 1.5^3.
  k = metrics.polynomial_kernel(np.array([[1.0, 2.0]]), np.array([[3.0, -1.0]]))
  np.testing.assert_allclose(k, [[3.375]])


def _mmd2_biased(x, y):
  """The V-statistic (diagonals included): biased upwards."""
  kxx, kyy = metrics.polynomial_kernel(x, x), metrics.polynomial_kernel(y, y)
  return kxx.mean() + kyy.mean() - 2 * metrics.polynomial_kernel(x, y).mean()


def test_kid_estimator_is_unbiased():
  rng = np.random.default_rng(0)
  m, d, trials = 16, 4, 600

  def sample_pairs(shift):
    return [(rng.normal(size=(m, d)), rng.normal(size=(m, d)) + shift) for _ in range(trials)]

  # Equal distributions: population MMD^2 = 0. The U-statistic averages to 0, the V-statistic
  # to a clearly positive number.
  pairs = sample_pairs(0.0)
  u = np.array([metrics.mmd2_unbiased(x, y) for x, y in pairs])
  v = np.array([_mmd2_biased(x, y) for x, y in pairs])
  se_u, se_v = u.std(ddof=1) / math.sqrt(trials), v.std(ddof=1) / math.sqrt(trials)
  assert abs(u.mean()) < 3 * se_u
  assert v.mean() > 10 * se_v
  # Different distributions: the small-sample mean equals the population MMD^2, estimated by
  # one large-sample U-statistic (itself unbiased, with a small error).
  u = np.array([metrics.mmd2_unbiased(x, y) for x, y in sample_pairs(0.3)])
  population = metrics.mmd2_unbiased(rng.normal(size=(3000, d)), rng.normal(size=(3000, d)) + 0.3)
  assert population > 0.1
  assert abs(u.mean() - population) < 4 * u.std(ddof=1) / math.sqrt(trials) + 0.01


# ----------------------------------------------------------------------------------------------
# Inception Score


def test_inception_score_matches_torch_fidelity():
  c = REF['isc']
  logits = GEN.make_logits(c['seed'], c['n'], c['classes'])
  shuffled = metrics.inception_score(logits, c['splits'], rng=np.random.RandomState(c['rng_seed']))
  assert shuffled.mean == pytest.approx(c['shuffled_mean'], rel=1e-10)
  assert shuffled.std == pytest.approx(c['shuffled_std'], rel=1e-9)
  ordered = metrics.inception_score(logits, c['splits'])
  assert ordered.mean == pytest.approx(c['ordered_mean'], rel=1e-10)
  assert ordered.std == pytest.approx(c['ordered_std'], rel=1e-9)
  # Probabilities give the same score as their logits.
  probs = metrics.inception_score(special.softmax(logits, axis=1), c['splits'], from_logits=False)
  assert probs.mean == pytest.approx(c['ordered_mean'], rel=1e-10)


def test_inception_score_extremes():
  # Confident and evenly spread over K classes: IS = K (exact one-hot probabilities: 0 log 0 = 0).
  one_hot = np.tile(np.eye(10), (100, 1))
  res = metrics.inception_score(one_hot, splits=10, from_logits=False)
  np.testing.assert_allclose(res.values, 10.0, rtol=1e-12)
  assert res.std < 1e-12
  # Always the same class, or no confidence at all: IS = 1.
  assert metrics.inception_score(np.tile([[9.0, 0.0, 0.0]], (30, 1)), splits=3).mean == \
      pytest.approx(1.0, rel=1e-12)
  assert metrics.inception_score(np.zeros((30, 5)), splits=3).mean == pytest.approx(1.0)
  with pytest.raises(ValueError):
    metrics.inception_score(np.full((4, 2), 0.7), splits=2, from_logits=False)


# ----------------------------------------------------------------------------------------------
# Precision / recall, density / coverage


def test_manifold_metrics_match_torch_fidelity_and_prdc():
  c = REF['prc']
  fake, real = GEN.make_inputs(c['seed'], c['n1'], c['n2'], c['d'])
  precision, recall = metrics.precision_recall(real, fake, k=c['k_prc'])
  assert precision == pytest.approx(c['precision'], abs=1e-6)   # torch-fidelity: float32 mean
  assert recall == pytest.approx(c['recall'], abs=1e-6)
  m = metrics.manifold_metrics(real, fake, c['k_prdc'], block_rows=37)
  for key in ('precision', 'recall', 'density', 'coverage'):
    assert getattr(m, key) == pytest.approx(c['prdc'][key], abs=1e-12), key


def test_knn_radii_match_brute_force_and_blocks():
  x = np.random.default_rng(0).normal(size=(120, 5))
  brute = np.sort(distance.cdist(x, x), axis=1)[:, 3]  # column 0 is the point itself
  np.testing.assert_allclose(metrics.knn_radii(x, 3), brute, rtol=1e-10)
  np.testing.assert_allclose(metrics.knn_radii(x, 3, block_rows=7), brute, rtol=1e-10)


def _uniform_box(rng, n, low, high):
  return rng.uniform(low, high, size=(n, len(low)))


def test_precision_recall_on_overlapping_boxes():
  rng = np.random.default_rng(0)
  n = 2000
  real = _uniform_box(rng, n, [0.0, 0.0], [1.0, 1.0])
  # Half of the generated box lies in the real one: precision = recall = 1/2 up to the k-NN
  # balls sticking out of the supports (radius ~ sqrt(3 / (pi n)) ~ 0.02).
  shifted = _uniform_box(rng, n, [0.5, 0.0], [1.5, 1.0])
  p, r = metrics.precision_recall(real, shifted)
  assert p == pytest.approx(np.mean(shifted[:, 0] <= 1.0), abs=0.04)
  assert r == pytest.approx(np.mean(real[:, 0] >= 0.5), abs=0.04)
  # Mode dropping: all samples realistic (precision ~ 1), half the data missed (recall ~ 1/2).
  half = _uniform_box(rng, n // 2, [0.0, 0.0], [0.5, 1.0])
  p, r = metrics.precision_recall(real, half)
  assert p > 0.95 and r == pytest.approx(0.5, abs=0.04)
  m = metrics.manifold_metrics(real, half)
  assert m.coverage == pytest.approx(0.5, abs=0.04)
  # Disjoint supports: nothing in common.
  far = _uniform_box(rng, n, [3.0, 3.0], [4.0, 4.0])
  assert metrics.manifold_metrics(real, far) == (0.0, 0.0, 0.0, 0.0)


def _manifold_by_hand(real, fake, k, strict_precision_recall=False):
  """The papers' definitions with scipy's exact pairwise distances: r_k = distance to the k-th
  nearest other point of the own set (column k of the sorted rows; column 0 is the point
  itself); precision/recall count a point inside a ball when its distance is <= the radius
  (torch-fidelity; prdc's `compute_prdc` uses < there: strict_precision_recall), density and
  coverage when it is < the radius (prdc)."""
  r_real = np.sort(distance.cdist(real, real), axis=1)[:, k]
  r_fake = np.sort(distance.cdist(fake, fake), axis=1)[:, k]
  d = distance.cdist(real, fake)   # [N real, M fake]
  inside = np.less if strict_precision_recall else np.less_equal
  return dict(precision=inside(d, r_real[:, None]).any(axis=0).mean(),
              recall=inside(d, r_fake[None, :]).any(axis=1).mean(),
              density=(d < r_real[:, None]).sum(axis=0).mean() / k,
              coverage=(d.min(axis=1) < r_real).mean())


def test_density_and_coverage_for_equal_distributions():
  rng = np.random.default_rng(1)
  real, fake = rng.normal(size=(1500, 3)), rng.normal(size=(1500, 3))
  m = metrics.manifold_metrics(real, fake)
  assert m.density == pytest.approx(1.0, abs=0.1)   # E[density] = 1 (Naeem et al.)
  assert m.coverage > 0.9                            # -> 1 - 1/2^k = 0.97 for k = 5
  assert m.precision > 0.8 and m.recall > 0.8
  # One k = 5 for all four (the default), each value the definition by hand.
  hand = _manifold_by_hand(real[:300], fake[:250], k=5)
  got = metrics.manifold_metrics(real[:300], fake[:250])
  for key, value in hand.items():
    assert getattr(got, key) == pytest.approx(value, abs=1e-12), key
  assert metrics.density_coverage(real[:300], fake[:250]) == pytest.approx(
      (hand['density'], hand['coverage']), abs=1e-12)
  assert metrics.precision_recall(real[:300], fake[:250]) == pytest.approx(
      (hand['precision'], hand['recall']), abs=1e-12)


def test_manifold_metrics_on_tied_distances_match_prdc_and_torch_fidelity():
  """Discrete features: many distances equal a k-NN radius exactly, so `<` and `<=` differ.
  Density/coverage against the stored output of prdc 0.2 (`<`); precision/recall against the
  definitions by hand with torch-fidelity's `<=` (prdc's own precision/recall use `<`)."""
  c = REF['prdc_ties']
  fake, real = GEN.make_discrete_inputs(c['seed'], c['n1'], c['n2'], c['d'], c['levels'])
  k = c['k_prdc']
  m = metrics.manifold_metrics(real, fake, k, block_rows=13)
  assert m.density == pytest.approx(c['prdc']['density'], abs=1e-12)
  assert m.coverage == pytest.approx(c['prdc']['coverage'], abs=1e-12)
  hand = _manifold_by_hand(real, fake, k)
  assert (m.precision, m.recall) == pytest.approx((hand['precision'], hand['recall']), abs=1e-12)
  strict = _manifold_by_hand(real, fake, k, strict_precision_recall=True)
  assert (strict['precision'], strict['recall']) == pytest.approx(
      (c['prdc']['precision'], c['prdc']['recall']), abs=1e-12)
  # The case tells the comparisons apart: with <= in density/coverage (or < in
  # precision/recall) the numbers change.
  r_real = np.sort(distance.cdist(real, real), axis=1)[:, k]
  d = distance.cdist(real, fake)
  assert (d <= r_real[:, None]).sum(axis=0).mean() / k != pytest.approx(m.density)
  assert (d.min(axis=1) <= r_real).mean() != pytest.approx(m.coverage)
  assert strict['precision'] != pytest.approx(m.precision)


# ----------------------------------------------------------------------------------------------
# Classifier two-sample test


def test_accuracy_p_value_hand_value():
  assert metrics.accuracy_p_value(10, 10) == pytest.approx(0.5**10)
  assert metrics.accuracy_p_value(9, 10) == pytest.approx(11 * 0.5**10)


def test_c2st_identical_distributions_is_at_chance():
  rng = np.random.default_rng(0)
  # High-dimensional and few samples: the classifier overfits its train split, so any leak of
  # training data into the evaluation would show as accuracy well above 1/2.
  real, fake = rng.normal(size=(100, 50)), rng.normal(size=(120, 50))
  res = metrics.classifier_two_sample_test(real, fake, rng=1)
  assert res.num_test == 100   # min(100, 120) = 100 per class, half of each held out
  assert 0.35 < res.accuracy < 0.65 and res.p_value > 0.01
  real, fake = rng.normal(size=(1000, 8)), rng.normal(size=(1000, 8))
  res = metrics.classifier_two_sample_test(real, fake, rng=2)
  assert abs(res.accuracy - 0.5) < 0.05 and res.p_value > 0.01


def test_c2st_separated_distributions():
  rng = np.random.default_rng(0)
  real, fake = rng.normal(size=(500, 8)), rng.normal(size=(500, 8))
  fake[:, 3] += 4.0
  res = metrics.classifier_two_sample_test(real, fake, rng=0)
  assert res.accuracy > 0.95 and res.p_value < 1e-50
  # A plugged-in classifier is the one scored, on held-out rows only, balanced per class.
  seen = {}

  def always_real(x_train, y_train, x_test):
    seen.update(x_train=x_train, y_train=y_train, x_test=x_test)
    return np.ones(len(x_test))

  res = metrics.classifier_two_sample_test(real, fake, train_fraction=0.6, rng=0,
                                           fit_predict=always_real)
  assert (res.num_test, res.num_correct, res.accuracy) == (400, 200, 0.5)
  assert seen['x_train'].shape == (600, 8) and seen['y_train'].sum() == 300
  train_rows = {r.tobytes() for r in seen['x_train']}
  assert not any(r.tobytes() in train_rows for r in seen['x_test'])


# ----------------------------------------------------------------------------------------------
# Mode coverage


def test_mode_coverage_hand_made_histogram():
  labels = np.array([0] * 6 + [1] * 3 + [2] * 1)   # class 3 dropped
  res = metrics.mode_coverage(labels, [25, 25, 25, 25], min_count=2, alpha=1.0)
  np.testing.assert_array_equal(res.histogram, [6, 3, 1, 0])
  assert res.num_covered == 2
  assert metrics.mode_coverage(labels, [0.25] * 4).num_covered == 3
  # eps = alpha / N = 0.1: q = ([.6, .3, .1, 0] + .1) / 1.4, p = (.25 + .1) / 1.4.
  q = np.array([0.7, 0.4, 0.2, 0.1]) / 1.4
  p = np.full(4, 0.25)
  np.testing.assert_allclose(res.sample_distribution, q)
  np.testing.assert_allclose(res.data_distribution, p)
  kl_pq = sum(0.25 * math.log(0.25 / qi) for qi in q)
  kl_qp = sum(qi * math.log(qi / 0.25) for qi in q)
  assert res.kl_data_to_samples == pytest.approx(kl_pq, rel=1e-12)
  assert res.kl_samples_to_data == pytest.approx(kl_qp, rel=1e-12)
  # Probabilities (argmax) give the same histogram; soft counts sum them.
  probs = np.eye(4)[labels] * 0.7 + 0.075
  assert np.array_equal(metrics.mode_coverage(probs, p).histogram, res.histogram)
  np.testing.assert_allclose(metrics.mode_coverage(probs, p, soft=True).histogram,
                             0.7 * res.histogram + 0.75)
  # Matching the data exactly: both KLs are 0.
  perfect = metrics.mode_coverage(np.repeat(np.arange(4), 5), p)
  assert perfect.num_covered == 4
  assert abs(perfect.kl_data_to_samples) < 1e-12 and abs(perfect.kl_samples_to_data) < 1e-12


def test_mode_coverage_kl_directions():
  """Dropping a mode is what KL(data || samples) punishes most; putting samples where the data
  has (almost) none is what KL(samples || data) punishes most."""
  data = np.array([0.5, 0.5, 0.0])
  dropped = metrics.mode_coverage(np.zeros(90, int), data)            # only class 0
  invented = metrics.mode_coverage(np.repeat(np.arange(3), 30), data)  # a third in class 2
  assert dropped.num_covered == 1 and invented.num_covered == 3
  assert dropped.kl_data_to_samples > dropped.kl_samples_to_data
  assert invented.kl_samples_to_data > invented.kl_data_to_samples
  assert np.isfinite([dropped.kl_data_to_samples, invented.kl_samples_to_data]).all()
  with pytest.raises(ValueError):
    metrics.mode_coverage(np.array([0, 5]), data)


# ----------------------------------------------------------------------------------------------
# IWAE bound


def test_iwae_bound_hand_values_and_jensen():
  np.testing.assert_allclose(metrics.iwae_bound(np.log([[1.0, 3.0]])), [math.log(2.0)])
  lw = np.random.default_rng(0).normal(size=(50, 1)) * 3
  np.testing.assert_allclose(metrics.iwae_bound(lw), lw[:, 0])   # k = 1: the ELBO sample
  lw = np.random.default_rng(1).normal(size=(50, 20)) * 3
  assert np.all(metrics.iwae_bound(lw) >= metrics.elbo_from_log_weights(lw))
  np.testing.assert_allclose(metrics.iwae_bound(lw.T, axis=0), metrics.iwae_bound(lw))


def test_iwae_bound_rises_with_k_to_the_true_log_likelihood():
  """z ~ N(0, 1), x | z ~ N(z, s2): log p(x) = log N(x; 0, 1 + s2). The proposal q(z | x) =
  N(0, 2^2) is deliberately wrong (the posterior is N(x / (1 + s2), s2 / (1 + s2))) but wider,
  so the weights are bounded."""
  rng = np.random.default_rng(0)
  s2, m, v = 0.5, 0.0, 4.0
  x = np.array([-1.0, 0.5, 2.0])
  log_px = stats.norm.logpdf(x, 0.0, math.sqrt(1 + s2))
  reps, k_max = 1000, 1000
  z = m + math.sqrt(v) * rng.normal(size=(reps, 3, k_max))
  log_w = (stats.norm.logpdf(x[None, :, None], z, math.sqrt(s2)) + stats.norm.logpdf(z)
           - stats.norm.logpdf(z, m, math.sqrt(v)))
  # ELBO in closed form: E_q[log p(x|z)] + E_q[log p(z)] + entropy of q.
  elbo = (-0.5 * math.log(2 * math.pi * s2) - ((x - m)**2 + v) / (2 * s2)
          - 0.5 * math.log(2 * math.pi) - (m**2 + v) / 2 + 0.5 * math.log(2 * math.pi * v) + 0.5)
  assert np.all(log_px - elbo > 4.0)   # a loose bound to start from
  k1 = metrics.iwae_bound(log_w[..., :1])
  np.testing.assert_allclose(k1.mean(0), elbo, atol=4 * k1.std(0).max() / math.sqrt(reps))
  means = [metrics.iwae_bound(log_w[..., :k]).mean(0) for k in (1, 3, 10, 30)]
  for earlier, later in zip(means, means[1:]):
    assert np.all(later > earlier)                   # tighter with every k ...
    assert np.all(later < log_px)                    # ... and still a lower bound
  gap = log_px - metrics.iwae_bound(log_w).mean(0)  # k = 1000: ~log p(x)
  assert np.all(np.abs(gap) < 0.01)


def test_feature_metrics_registry():
  """Each entry's values against an independent value: pytorch-fid's stored FID, KID by hand
  on the documented draws (default subset size: half the samples), the manifold metrics by the
  definitions, and the C2ST against scikit-learn's logistic regression on the same split."""
  assert set(metrics.FEATURE_METRICS) == {'fid', 'kid', 'manifold', 'c2st'}
  c = REF['fid']
  x1, x2 = GEN.make_inputs(c['seed'], c['n1'], c['n2'], c['d'])
  assert metrics.FEATURE_METRICS['fid'](x1, x2) == {'fid': pytest.approx(c['fid'], rel=1e-6)}
  real, fake = x1[:160], x2[:140]
  mean, std = _kid_by_hand(real, fake, 100, 70, seed=0)
  kid = metrics.FEATURE_METRICS['kid'](real, fake)
  assert kid == {'kid': pytest.approx(mean, rel=1e-10), 'kid_std': pytest.approx(std, rel=1e-9)}
  assert metrics.FEATURE_METRICS['manifold'](real, fake) == pytest.approx(
      _manifold_by_hand(real, fake, k=5), abs=1e-12)
  c2st = metrics.FEATURE_METRICS['c2st'](real, fake)
  assert set(c2st) == {'accuracy', 'p_value'}
  # The registry's split (seed 0): both sets shuffled and cut to n = 140, half of each trains.
  from sklearn.linear_model import LogisticRegression  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  r, f = real[rng.permutation(160)[:140]], fake[rng.permutation(140)[:140]]
  x_train, x_test = np.concatenate([r[:70], f[:70]]), np.concatenate([r[70:], f[70:]])
  y = np.repeat([1, 0], 70)
  mu, sd = x_train.mean(0), x_train.std(0)
  clf = LogisticRegression(C=1.0, max_iter=2000).fit((x_train - mu) / sd, y)
  correct = int((clf.predict((x_test - mu) / sd) == y).sum())
  assert c2st['accuracy'] == pytest.approx(correct / 140, abs=1.5 / 140)
  n_correct = round(c2st['accuracy'] * 140)
  assert c2st['p_value'] == pytest.approx(stats.binom.sf(n_correct - 1, 140, 0.5), rel=1e-9)
