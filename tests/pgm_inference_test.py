"""pgm/factors.py, pgm/inference.py: every inference routine against brute-force enumeration
(itself checked against hand computations: the lectures' Bayes net and factor-graph examples)."""

import itertools
import math

import jax
import numpy as np
import pytest

from genvision_jax.pgm import bayesnet, factors as F, inference, markov
from genvision_jax.pgm.factors import ModelError


@pytest.fixture(autouse=True)
def x64():
  with jax.enable_x64(True):
    yield


RED, BLUE = 0, 1


def lecture_net():
  """The lectures' five-variable net P(X5|X3) P(X4|X2,X3) P(X3) P(X2|X1) P(X1); red 0, blue 1."""
  return bayesnet.BayesNet(
      {f'x{i}': 2 for i in range(1, 6)},
      {'x2': ['x1'], 'x4': ['x2', 'x3'], 'x5': ['x3']},
      {'x1': [0.4, 0.6],
       'x2': [[0.7, 0.3], [0.5, 0.5]],                       # rows x1 = red, blue
       'x3': [0.6, 0.4],
       'x4': [[[0.5, 0.5], [0.8, 0.2]], [[0.6, 0.4], [0.3, 0.7]]],   # [x2][x3] -> x4
       'x5': [[0.7, 0.3], [0.4, 0.6]]})


def brute_force(fg):
  """Z, marginals and the best score by a Python loop over every assignment (no jax)."""
  names = fg.variables
  z, marg, best = 0.0, {v: np.zeros(fg.domains[v]) for v in names}, -np.inf
  for xs in itertools.product(*[range(fg.domains[v]) for v in names]):
    a = dict(zip(names, xs))
    s = sum(float(np.asarray(f.log_table)[tuple(a[v] for v in f.variables)]) for f in fg.factors)
    z += math.exp(s)
    for v, x in a.items():
      marg[v][x] += math.exp(s)
    best = max(best, s)
  return math.log(z), {v: m / z for v, m in marg.items()}, best


def random_graph(seed, loopy, n=6, strength=1.0):
  """Unary factors on every variable plus pairwise factors on a random tree (and, if loopy, a
  few extra pairs and one triple, which close cycles); domains of 2-3 values."""
  rng = np.random.default_rng(seed)
  names = [f'v{i}' for i in range(n)]
  domains = {v: int(rng.integers(2, 4)) for v in names}
  fs = [F.log_factor((v,), rng.normal(size=domains[v]) * strength) for v in names]
  for i in range(1, n):
    j = int(rng.integers(0, i))
    pair = (names[j], names[i])
    fs.append(F.log_factor(pair, rng.normal(size=[domains[u] for u in pair]) * strength))
  if loopy:
    for a, b in [(0, n - 1), (1, n - 2)]:
      pair = (names[a], names[b])
      fs.append(F.log_factor(pair, rng.normal(size=[domains[u] for u in pair]) * strength))
    tri = (names[0], names[2], names[4])
    fs.append(F.log_factor(tri, rng.normal(size=[domains[u] for u in tri]) * strength))
  return F.FactorGraph(domains, fs)


def test_lecture_factor_graph_scores_as_the_slides_say():
  foods = ['chocolate', 'peanut butter', 'ice cream', 'tuna']
  psi1 = [0.1, 5, 1, 6]
  psi2 = [4, 8, 7, 3]
  psi12 = [[2, 9, 7, 0.1], [4, 2, 3, 0.2], [7, 3, 2, 0.1], [0.1, 0.2, 0.1, 2]]
  fg = F.FactorGraph({'a': 4, 'b': 4}, [F.factor(['a'], psi1), F.factor(['b'], psi2),
                                         F.factor(['a', 'b'], psi12)])
  tuna, ice_cream = foods.index('tuna'), foods.index('ice cream')
  assert math.exp(fg.log_score({'a': tuna, 'b': ice_cream})) == pytest.approx(6 * 7 * 0.1)
  z = sum(psi1[i] * psi2[j] * psi12[i][j] for i in range(4) for j in range(4))
  for method in ('enumeration', 'elimination', 'bp'):
    assert inference.log_partition(fg, method) == pytest.approx(math.log(z), rel=1e-9)
  # the MAP by hand: peanut butter first (5) then ice cream (7) scores 5 * 7 * 3 = 105; next
  # best are peanut butter with chocolate (5 * 4 * 4) or twice (5 * 8 * 2), 80 each
  best = inference.map_assignment(fg, 'elimination')
  assert (foods[best['a']], foods[best['b']]) == ('peanut butter', 'ice cream')
  assert math.exp(fg.log_score(best)) == pytest.approx(105)


def test_lecture_bayes_net_query_by_hand():
  """P(X2, X5 | X1 = red, X3 = blue, X4 = blue): X2's posterior is proportional to
  P(x2 | red) P(x4 = blue | x2, blue) = [0.7 * 0.2, 0.3 * 0.7] = [0.4, 0.6]; X5 depends on X3
  alone, P(x5 | blue) = [0.4, 0.6]; the joint is their product."""
  fg = lecture_net().to_factor_graph()
  evidence = {'x1': RED, 'x3': BLUE, 'x4': BLUE}
  want = np.outer([0.4, 0.6], [0.4, 0.6])
  for method in ('enumeration', 'elimination', 'bp'):
    assert inference.log_partition(fg, method) == pytest.approx(0.0, abs=1e-12)  # Z = 1
    log_pe = inference.log_partition(fg, method, evidence)
    got = np.array([[math.exp(inference.log_partition(fg, method, {**evidence, 'x2': a, 'x5': b})
                              - log_pe) for b in (RED, BLUE)] for a in (RED, BLUE)])
    np.testing.assert_allclose(got, want, atol=1e-12)
    m = inference.marginals(fg, method, evidence)
    np.testing.assert_allclose(m['x2'], [0.4, 0.6], atol=1e-12)
    np.testing.assert_allclose(m['x5'], [0.4, 0.6], atol=1e-12)
    np.testing.assert_allclose(m['x1'], [1, 0])
  # p(e) by hand: sum_x2 P(red) P(x2|red) P(blue) P(x4=blue|x2,blue) = 0.4 * 0.4 * 0.35
  assert math.exp(inference.log_partition(fg, 'elimination', evidence)) == pytest.approx(
      0.4 * 0.4 * (0.7 * 0.2 + 0.3 * 0.7))


@pytest.mark.parametrize('seed', range(4))
@pytest.mark.parametrize('loopy', [False, True])
def test_exact_methods_match_brute_force(seed, loopy):
  fg = random_graph(seed, loopy)
  assert fg.is_tree() == (not loopy)
  log_z, marg, best = brute_force(fg)
  enum = inference.infer(fg, 'enumeration')
  assert enum.log_z == pytest.approx(log_z, rel=1e-9)
  assert enum.log_score == pytest.approx(best, rel=1e-9)
  runs = [inference.infer(fg, 'elimination', heuristic=h) for h in ('min_fill', 'min_degree')]
  if not loopy:
    runs.append(inference.infer(fg, 'bp'))
  for r in runs:
    assert abs(math.exp(r.log_z - log_z) - 1) < 1e-6, r.method   # Z to 1e-6 relative
    for v in fg.variables:
      np.testing.assert_allclose(r.marginals[v], marg[v], atol=1e-6, err_msg=r.method)
    assert r.assignment == enum.assignment, r.method
    assert r.log_score == pytest.approx(best, rel=1e-9)


def test_ties_give_an_assignment_of_maximal_score():
  """Two variables that must agree (psi = 1 on the diagonal): two MAPs of equal score."""
  fg = F.FactorGraph({'a': 2, 'b': 2, 'c': 2}, [F.factor(['a', 'b'], np.eye(2)),
                                                  F.factor(['b', 'c'], np.eye(2))])
  for method in ('enumeration', 'elimination', 'bp'):
    a = inference.map_assignment(fg, method)
    assert a['a'] == a['b'] == a['c'], method       # consistent, not an argmax per variable
    assert fg.log_score(a) == pytest.approx(0.0)


@pytest.mark.parametrize('seed', range(3))
def test_loopy_bp_is_close_and_reports_convergence(seed):
  fg = random_graph(seed, loopy=True, strength=0.3)
  log_z, marg, best = brute_force(fg)
  r = inference.infer(fg, 'bp')
  assert r.converged and 1 < r.iterations < 200
  assert abs(r.log_z - log_z) < 0.05                          # Bethe, not exact
  for v in fg.variables:
    np.testing.assert_allclose(r.marginals[v], marg[v], atol=0.03)
  assert r.log_score <= best + 1e-9
  # the tree schedule refuses a loopy graph; flooding on a tree is exact
  with pytest.raises(ModelError, match='without cycles'):
    inference.infer(fg, 'bp', schedule='tree')
  tree = random_graph(seed, loopy=False)
  flood = inference.infer(tree, 'bp', schedule='flooding', tol=1e-12, max_iters=100)
  exact = inference.infer(tree, 'enumeration')
  assert flood.converged
  assert flood.log_z == pytest.approx(exact.log_z, rel=1e-9)


def test_bp_stops_at_max_iters_without_converging():
  strong = random_graph(3, loopy=True, strength=4.0)
  r = inference.infer(strong, 'bp', tasks=('marginals',), damping=0.0, max_iters=3, tol=0.0)
  assert not r.converged and r.iterations == 3


@pytest.mark.parametrize('loopy', [False, True])
def test_gibbs_marginals_within_monte_carlo_error(loopy):
  fg = random_graph(7, loopy)
  _, marg, _ = brute_force(fg)
  r = inference.infer(fg, 'gibbs', tasks=('marginals',), rng=0, num_sweeps=3000, burn_in=300,
                      num_chains=8)
  for v in fg.variables:
    err = np.abs(r.marginals[v] - marg[v])
    assert np.all(err < 5 * r.stderr[v] + 0.005), (v, err, r.stderr[v])
    assert np.all(r.stderr[v] < 0.03)
  assert r.samples.shape == (8, len(fg.variables))
  with pytest.raises(ModelError, match='not log Z or the MAP'):
    inference.infer(fg, 'gibbs', tasks=('log_z',))


def test_gibbs_respects_evidence_and_zero_potentials():
  fg = lecture_net().to_factor_graph()
  r = inference.infer(fg, 'gibbs', evidence={'x1': RED, 'x3': BLUE, 'x4': BLUE},
                      tasks=('marginals',), num_sweeps=4000, num_chains=4)
  np.testing.assert_allclose(r.marginals['x2'], [0.4, 0.6], atol=0.03)
  np.testing.assert_allclose(r.marginals['x3'], [0, 1])
  # hard constraint a == b: a Gibbs chain started anywhere feasible never leaves the diagonal
  hard = F.FactorGraph({'a': 3, 'b': 3}, [F.factor(['a', 'b'], np.eye(3)),
                                          F.factor(['a'], [1, 2, 3])])
  m = inference.marginals(hard, 'gibbs', num_sweeps=500, burn_in=0)
  assert abs(m['a'].sum() - 1) < 1e-9 and np.allclose(m['a'], m['b'])


def test_a_thousand_variable_chain_does_not_underflow():
  """The product of 999 potentials of 0.01-0.1 is ~1e-760, far below float64's range: every
  method works in log space. Reference: the forward algorithm in numpy with a scale per step."""
  rng = np.random.default_rng(0)
  k, n = 3, 1000
  pair = rng.uniform(0.01, 0.1, size=(k, k))
  unary = rng.uniform(0.5, 1.5, size=k)
  names = [f'x{t}' for t in range(n)]
  fg = F.FactorGraph({v: k for v in names},
                     [F.factor([names[0]], unary)] +
                     [F.factor([names[t - 1], names[t]], pair) for t in range(1, n)])
  alpha, log_scale = unary.copy(), 0.0
  for _ in range(1, n):
    alpha = alpha @ pair
    log_scale += math.log(alpha.sum())
    alpha /= alpha.sum()
  want = log_scale + math.log(alpha.sum())
  assert want < -1000          # exp(-1000) underflows even float64 (min ~1e-308)
  for method in ('elimination', 'bp'):
    got = inference.log_partition(fg, method)
    assert math.isfinite(got) and got == pytest.approx(want, rel=1e-9), method
  m = inference.marginals(fg, 'bp')
  np.testing.assert_allclose(m['x999'], alpha, atol=1e-9)   # the last marginal is alpha


def test_markov_chain_as_factor_graph_is_normalized():
  p = np.array([[0.9, 0.1], [0.3, 0.7]])
  fg = markov.to_factor_graph([0.5, 0.5], p, length=1000)
  assert inference.log_partition(fg, 'bp') == pytest.approx(0.0, abs=1e-9)
  m = inference.marginals(fg, 'bp')
  np.testing.assert_allclose(m['x1000'], markov.stationary(p), atol=1e-9)   # mixed long ago


def test_invalid_models_are_clear_errors():
  with pytest.raises(ModelError, match=r'table shape \(2, 3\) does not match'):
    F.FactorGraph({'a': 2, 'b': 2}, [F.factor(['a', 'b'], np.ones((2, 3)))])
  with pytest.raises(ModelError, match='must be finite and >= 0'):
    F.factor(['a'], [0.5, -0.1])
  with pytest.raises(ModelError, match='unknown variable'):
    F.FactorGraph({'a': 2}, [F.factor(['a', 'z'], np.ones((2, 2)))])
  with pytest.raises(ModelError, match='has 1 axes but it has 2 variables'):
    F.factor(['a', 'b'], [1.0, 2.0])
  with pytest.raises(ModelError, match='cycle x1 -> x2 -> x3 -> x1|cycle x2 -> x3 -> x1 -> x2'):
    bayesnet.BayesNet({'x1': 2, 'x2': 2, 'x3': 2}, {'x1': ['x3'], 'x2': ['x1'], 'x3': ['x2']},
                      {v: np.full((2, 2), 0.5) for v in ('x1', 'x2', 'x3')})
  with pytest.raises(ModelError, match='row for x1=1 sums to 0.9'):
    bayesnet.BayesNet({'x1': 2, 'x2': 2}, {'x2': ['x1']},
                      {'x1': [0.5, 0.5], 'x2': [[0.5, 0.5], [0.5, 0.4]]})
  with pytest.raises(ModelError, match='need'):
    bayesnet.BayesNet({'x1': 2, 'x2': 3}, {'x2': ['x1']},
                      {'x1': [0.5, 0.5], 'x2': [[0.5, 0.5], [0.5, 0.5]]})
  fg = lecture_net().to_factor_graph()
  with pytest.raises(ModelError, match='outside its domain'):
    inference.marginals(fg, evidence={'x1': 2})
  with pytest.raises(ModelError, match='unknown inference method'):
    inference.infer(fg, 'magic')
  with pytest.raises(ModelError, match='enumeration needs the joint table'):
    inference.infer(F.FactorGraph({f'v{i}': 10 for i in range(9)}, []), 'enumeration')
  with pytest.raises(ModelError, match='sums to 1.1'):
    markov.check(transition=[[0.5, 0.6], [0.5, 0.5]])
  with pytest.raises(ModelError, match='reducible'):
    markov.stationary(np.eye(2))


def test_bayes_net_sampling_likelihood_and_mle():
  net = lecture_net()
  fg = net.to_factor_graph()
  # log-likelihood of a complete row = the factor graph's score = the product of the CPTs
  row = {'x1': BLUE, 'x2': RED, 'x3': RED, 'x4': BLUE, 'x5': BLUE}
  want = math.log(0.6 * 0.5 * 0.6 * 0.5 * 0.3)
  assert net.log_likelihood([[row[v] for v in net.variables]])[0] == pytest.approx(want)
  assert fg.log_score(row) == pytest.approx(want)
  # ancestral samples: empirical marginals near the exact ones (4 sd of a proportion)
  x = np.asarray(net.sample(jax.random.PRNGKey(0), 40000))
  exact = inference.marginals(fg)
  for j, v in enumerate(net.variables):
    freq = np.bincount(x[:, j], minlength=2) / len(x)
    assert np.all(np.abs(freq - exact[v]) < 4 * np.sqrt(0.25 / len(x))), v
  # MLE: the refit on many samples is near the truth; on a hand data set it is the counts
  refit = bayesnet.BayesNet.fit(x, net.domains, net.parents)
  np.testing.assert_allclose(refit.cpts['x4'], net.cpts['x4'], atol=0.03)
  data = np.array([[0, 0], [0, 1], [0, 1], [1, 1]])
  mle = bayesnet.BayesNet.fit(data, {'a': 2, 'b': 2}, {'b': ['a']})
  np.testing.assert_allclose(mle.cpts['a'], [3 / 4, 1 / 4])
  np.testing.assert_allclose(mle.cpts['b'], [[1 / 3, 2 / 3], [0, 1]])
  smooth = bayesnet.BayesNet.fit(data, {'a': 2, 'b': 2}, {'b': ['a']}, alpha=1.0)
  np.testing.assert_allclose(smooth.cpts['b'], [[2 / 5, 3 / 5], [1 / 3, 2 / 3]])
  with pytest.raises(ModelError, match='outside 0..1'):
    bayesnet.BayesNet.fit([[0, 2]], {'a': 2, 'b': 2}, {'b': ['a']})


def test_markov_chain_stationary_sampling_and_mle():
  a, b = 0.2, 0.05
  p = np.array([[1 - a, a], [b, 1 - b]])
  np.testing.assert_allclose(markov.stationary(p), [b / (a + b), a / (a + b)], atol=1e-12)
  seqs = np.asarray(markov.sample(jax.random.PRNGKey(1), [1.0, 0.0], p, length=400, num=100))
  assert seqs.shape == (100, 400) and np.all(seqs[:, 0] == 0)
  _, fitted = markov.fit(seqs, 2)
  np.testing.assert_allclose(fitted, p, atol=0.02)
  init, trans = markov.fit([[0, 1, 1, 0], [1, 1, 1, 1]], 2)
  np.testing.assert_allclose(init, [0.5, 0.5])
  np.testing.assert_allclose(trans, [[0, 1], [1 / 5, 4 / 5]])   # 0->1 once; 1->0 once, 1->1 4x
  ll = markov.log_likelihood([[0, 1, 1]], [0.5, 0.5], p)
  assert ll[0] == pytest.approx(math.log(0.5 * a * (1 - b)))
