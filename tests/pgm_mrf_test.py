"""pgm/mrf.py (grid MRFs: BP, ICM, Gibbs, pseudo-likelihood) and pgm/naive_bayes.py, against
brute force and the generic routines of pgm/inference.py on small grids."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genvision_jax.pgm import inference, mrf as M, naive_bayes
from genvision_jax.pgm.factors import ModelError


def random_grid(seed, hh=3, ww=3, k=2, strength=0.5):
  rng = np.random.default_rng(seed)
  return M.GridMRF(jnp.asarray(rng.normal(size=(hh, ww, k)), jnp.float32),
                   jnp.asarray(rng.normal(size=(hh, ww - 1, k, k)) * strength, jnp.float32),
                   jnp.asarray(rng.normal(size=(hh - 1, ww, k, k)) * strength, jnp.float32))


def grid_marginals(marg, hh, ww):
  return np.stack([[marg[f'{r},{c}'] for c in range(ww)] for r in range(hh)])


@pytest.mark.parametrize('k', [2, 3])
def test_grid_bp_reaches_the_generic_bp_fixed_point(k):
  mrf = random_grid(0, k=k)
  fg = M.to_factor_graph(mrf)
  for maximize in (False, True):
    beliefs, iters, converged = M.loopy_bp(mrf, maximize=maximize, max_iters=500, tol=1e-7)
    assert bool(converged) and int(iters) < 500
    tasks = ('map',) if maximize else ('marginals',)
    generic = inference.infer(fg, 'bp', tasks=tasks, tol=1e-10, max_iters=1000)
    if maximize:
      got = np.argmax(np.asarray(beliefs), -1)
      want = np.array([[generic.assignment[f'{r},{c}'] for c in range(3)] for r in range(3)])
      np.testing.assert_array_equal(got, want)
    else:
      np.testing.assert_allclose(np.exp(np.asarray(beliefs)),
                                 grid_marginals(generic.marginals, 3, 3), atol=2e-5)
      exact = grid_marginals(inference.marginals(fg, 'enumeration'), 3, 3)
      assert np.abs(np.exp(np.asarray(beliefs)) - exact).max() < 0.05   # loopy: close, not equal


def test_grid_bp_is_exact_on_a_chain():
  mrf = random_grid(1, hh=1, ww=7, k=3, strength=1.0)
  fg = M.to_factor_graph(mrf)
  beliefs, _, converged = M.loopy_bp(mrf, max_iters=200, damping=0.0, tol=1e-7)
  assert bool(converged)
  np.testing.assert_allclose(np.exp(np.asarray(beliefs)),
                             grid_marginals(inference.marginals(fg, 'enumeration'), 1, 7),
                             atol=1e-5)
  mb, _, _ = M.loopy_bp(mrf, maximize=True, max_iters=200, damping=0.0, tol=1e-7)
  best = inference.map_assignment(fg, 'enumeration')
  np.testing.assert_array_equal(np.argmax(np.asarray(mb), -1)[0],
                                [best[f'0,{c}'] for c in range(7)])


def test_log_score_and_conditionals_match_the_factor_graph():
  mrf = random_grid(2, k=3)
  fg = M.to_factor_graph(mrf)
  x = jnp.asarray(np.random.default_rng(0).integers(0, 3, size=(3, 3)))
  a = {f'{r},{c}': int(x[r, c]) for r in range(3) for c in range(3)}
  assert float(M.log_score(mrf, x)) == pytest.approx(fg.log_score(a), abs=1e-5)
  # p(x_11 | rest) from the factor graph with every other pixel observed
  rest = {v: s for v, s in a.items() if v != '1,1'}
  want = inference.marginals(fg, 'enumeration', evidence=rest)['1,1']
  np.testing.assert_allclose(np.exp(np.asarray(M.conditionals(mrf, x))[1, 1]), want, atol=1e-5)


def test_checkerboard_gibbs_matches_enumeration():
  mrf = random_grid(3)
  exact = grid_marginals(inference.marginals(M.to_factor_graph(mrf), 'enumeration'), 3, 3)
  marg, sample = jax.vmap(lambda key: M.gibbs(mrf, key, num_sweeps=2000, burn_in=100))(
      jax.random.split(jax.random.PRNGKey(0), 8))
  per_chain = np.asarray(marg)
  mean = per_chain.mean(0)
  se = per_chain.std(0, ddof=1) / math.sqrt(8)
  assert np.all(np.abs(mean - exact) < 5 * se + 0.005)
  assert np.all(se < 0.03) and sample.shape == (8, 3, 3)


def test_icm_reaches_a_local_maximum_and_never_lowers_the_score():
  mrf = random_grid(4, hh=6, ww=6, k=2, strength=1.0)
  init = jnp.zeros((6, 6), jnp.int32)
  x, changed = M.icm(mrf, init, num_sweeps=30)
  assert int(changed) == 0
  assert float(M.log_score(mrf, x)) >= float(M.log_score(mrf, init))
  best = np.argmax(np.asarray(mrf.unary + M.neighbour_terms(mrf, x)), -1)
  np.testing.assert_array_equal(np.asarray(x), best)      # no single-pixel move improves


def test_noisy_channel_posterior_by_hand():
  """With a flat prior (no couplings) the posterior of each pixel is the channel's:
  p(x = y | y) = 1 - flip."""
  prior = M.ising(jnp.zeros((2, 3)), 0.0, 0.0)
  y = jnp.array([[0, 1, 1], [1, 0, 0]])
  post = M.noisy_channel(prior, y, flip=0.2)
  beliefs, _, _ = M.loopy_bp(post)
  np.testing.assert_allclose(np.exp(np.asarray(beliefs))[..., 1],
                             np.where(np.asarray(y) == 1, 0.8, 0.2), atol=1e-6)
  with pytest.raises(ModelError, match=r'flip probability must be in \(0, 0.5\)'):
    M.noisy_channel(prior, y, flip=0.7)
  with pytest.raises(ModelError, match='needs horizontal'):
    M.GridMRF(prior.unary, prior.vertical, prior.horizontal).check()


def test_pseudolikelihood_recovers_an_ising_model():
  """Samples of a homogeneous 4 x 4 Ising model (coupling 0.4, bias 0.1) drawn by long Gibbs
  chains; the fitted couplings average near 0.4 and the biases near 0.1."""
  truth = M.ising(jnp.full((4, 4), 0.1), 0.4, 0.4)
  keys = jax.random.split(jax.random.PRNGKey(0), 3000)
  _, samples = jax.vmap(lambda k: M.gibbs(truth, k, num_sweeps=60, burn_in=59))(keys)
  params = {'bias': jnp.full((4, 4), 0.3), 'h': jnp.full((4, 3), -0.2), 'v': jnp.full((3, 4), 0.7)}
  assert float(M.ising_pseudo_log_likelihood(params, samples[:50])) == pytest.approx(
      float(M.pseudo_log_likelihood(params, samples[:50])), rel=1e-5)   # closed form = generic
  model, info = M.fit_pseudolikelihood(samples, l2=0.0)
  assert info['converged'] or info['iterations'] > 10
  assert abs(float(jnp.mean(info['h'])) - 0.4) < 0.06
  assert abs(float(jnp.mean(info['v'])) - 0.4) < 0.06
  assert abs(float(jnp.mean(info['bias'])) - 0.1) < 0.06
  assert model.unary.shape == (4, 4, 2)
  # maximum likelihood by persistent contrastive divergence, from zeros, recovers it too
  _, ml = M.fit_maximum_likelihood(samples, num_steps=400, num_chains=500, learning_rate=0.1,
                                   l2=0.0)
  assert abs(float(jnp.mean(ml['h'])) - 0.4) < 0.08
  assert abs(float(jnp.mean(ml['v'])) - 0.4) < 0.08
  assert abs(float(jnp.mean(ml['bias'])) - 0.1) < 0.08
  with pytest.raises(ModelError, match='binary images'):
    M.fit_pseudolikelihood(jnp.full((2, 4, 4), 0.5))


def test_naive_bayes_mle_by_hand_and_as_a_bayes_net():
  x = np.array([[1, 0, 1], [1, 1, 1], [0, 0, 1], [0, 1, 0]])
  y = np.array([0, 0, 1, 1])
  ml = naive_bayes.fit(x, y, 2, alpha=0.0)
  np.testing.assert_allclose(np.exp(ml['log_prior']), [0.5, 0.5])
  np.testing.assert_allclose(ml['probs'], [[1, 0.5, 1], [0, 0.5, 0.5]])
  smooth = naive_bayes.fit(x, y, 2, alpha=1.0)
  np.testing.assert_allclose(smooth['probs'], [[3 / 4, 2 / 4, 3 / 4], [1 / 4, 2 / 4, 2 / 4]])
  # Bayes' rule by hand for the row [1, 0, 0] under the smoothed model
  row = np.array([[1, 0, 0]])
  lik = [0.75 * 0.5 * 0.25, 0.25 * 0.5 * 0.5]
  np.testing.assert_allclose(naive_bayes.posterior(smooth, row)[0],
                             np.array(lik) / sum(lik), atol=1e-6)
  # and by inference in the equivalent Bayes net with the features observed
  fg = naive_bayes.as_bayes_net(smooth).to_factor_graph()
  with jax.enable_x64(True):
    post = inference.marginals(fg, 'elimination', evidence={'x0': 1, 'x1': 0, 'x2': 0})['y']
  np.testing.assert_allclose(post, np.array(lik) / sum(lik), atol=1e-6)
  # an unsmoothed zero probability gives -inf for the impossible class, not NaN
  lj = np.asarray(naive_bayes.log_joint(ml, np.array([[0, 0, 1]])))
  assert lj[0, 0] == -np.inf and np.isfinite(lj[0, 1])
  assert int(naive_bayes.predict(ml, np.array([[0, 0, 1]]))[0]) == 1


def test_naive_bayes_evidence_against_scipy_beta_binomial():
  """log p(x | y, alpha) = sum over class-pixel cells of the beta-binomial log-pmf of the count
  minus log C(n, k) (the pixels are a sequence, not a count)."""
  import scipy.special
  import scipy.stats
  rng = np.random.default_rng(0)
  x = (rng.uniform(size=(40, 6)) < rng.uniform(size=6)).astype(np.int32)
  y = rng.integers(0, 3, size=40)
  for alpha in (0.05, 1.0, 3.0):
    want = 0.0
    for c in range(3):
      n = int(np.sum(y == c))
      for d in range(6):
        k = int(x[y == c, d].sum())
        want += (scipy.stats.betabinom.logpmf(k, n, alpha, alpha)
                 - math.log(scipy.special.comb(n, k)))
    assert float(naive_bayes.log_evidence(x, y, 3, alpha)) == pytest.approx(want, rel=1e-5)
  # the chosen alpha is the grid's argmax of that evidence
  grid = (0.01, 0.1, 1.0, 10.0)
  best = max(grid, key=lambda a: float(naive_bayes.log_evidence(x, y, 3, a)))
  assert naive_bayes.empirical_bayes_alpha(x, y, 3, grid) == best
