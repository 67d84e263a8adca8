"""Processes and samplers of `genvision_jax.diffusion`: marginals and training targets by
closed form and by hand, each sampler on Gaussian data where the exact denoiser is known (the
sampled moments match the data's within Monte-Carlo error), one compilation whatever the
number of steps, the generic DDIM against the index-based chain of the ddpm process, the loss
falling on a fixed batch for every process, invalid sampler/process pairs refused, run
directories written before processes existed loading and sampling as before, and the
Monte-Carlo bounds unbiased (against the all-T bound and against a fine quadrature)."""

import json
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from genvision_jax import configs, diffusion, methods
from genvision_jax.diffusion import likelihood, processes, samplers
from genvision_jax.methods import common
from tests.conftest import experiment

PROCESSES = {
    'ddpm': lambda: processes.DDPMProcess(diffusion.linear_betas(1000)),
    'ddpm_v_cosine': lambda: processes.DDPMProcess(diffusion.cosine_betas(1000), 'v'),
    'vp': lambda: processes.VPProcess(),
    'vp_v': lambda: processes.VPProcess('v'),
    'flow': lambda: processes.FlowProcess(),
    'edm': lambda: processes.EDMProcess(),
}


# -- processes: closed forms -----------------------------------------------------------------


def test_marginals_at_the_data_end_and_one_step_in():
  """alpha, sigma at t = 0 (the data: 1, 0) and one step of a 1000-step grid in (t = 1/T;
  sigma_min for EDM), by the formulas of each process; and the empirical moments of
  `corrupt` at t = 0.25 (flow) against them."""
  T = 1000
  ddpm = PROCESSES['ddpm']()
  a, s = ddpm.alpha_sigma(jnp.asarray([0.0, 1.0]))
  beta0 = 1e-4  # Ho et al.'s first beta
  np.testing.assert_allclose(a, [1.0, math.sqrt(1 - beta0)], rtol=1e-6)
  np.testing.assert_allclose(s, [0.0, math.sqrt(beta0)], rtol=1e-4)
  vp = processes.VPProcess()
  t = 1.0 / T
  log_a = -0.25 * t**2 * (20.0 - 0.1) - 0.5 * t * 0.1
  a, s = vp.alpha_sigma(jnp.asarray([0.0, t]))
  np.testing.assert_allclose(a, [1.0, math.exp(log_a)], rtol=1e-6)
  np.testing.assert_allclose(s, [0.0, math.sqrt(1 - math.exp(2 * log_a))], rtol=1e-4)
  a, s = processes.FlowProcess().alpha_sigma(jnp.asarray([0.0, t, 1.0]))
  np.testing.assert_allclose(a, [1.0, 1 - t, 0.0], atol=1e-7)
  np.testing.assert_allclose(s, [0.0, t, 1.0], atol=1e-7)
  edm = processes.EDMProcess()
  a, s = edm.alpha_sigma(jnp.asarray([0.0, 0.002]))
  np.testing.assert_allclose(a, [1.0, 1.0])
  np.testing.assert_allclose(s, [0.0, 0.002])
  # Empirical moments of corrupt() at t = 0.25 against the closed form (flow).
  x0 = jnp.full((200000, 1), 0.6)
  xt = processes.FlowProcess().corrupt(x0, jnp.full((200000,), 0.25),
                                       jax.random.normal(jax.random.key(0), x0.shape))
  assert abs(float(xt.mean()) - 0.75 * 0.6) < 4 * 0.25 / math.sqrt(200000)
  assert abs(float(xt.std()) - 0.25) < 0.002


def test_training_targets_by_hand():
  """x_0 = 0.5, eps = -1 on one pixel."""
  x0, eps = jnp.full((1, 1), 0.5), jnp.full((1, 1), -1.0)
  # Flow matching, t = 0.25: the velocity eps - x_0.
  np.testing.assert_allclose(processes.FlowProcess().target(x0, eps, jnp.asarray([0.25])),
                             [[-1.5]])
  # VP with v-prediction, t = 0.5: v = alpha eps - sigma x_0.
  log_a = -0.25 * 0.25 * 19.9 - 0.5 * 0.5 * 0.1
  a, s = math.exp(log_a), math.sqrt(1 - math.exp(2 * log_a))
  np.testing.assert_allclose(processes.VPProcess('v').target(x0, eps, jnp.asarray([0.5])),
                             [[-a - 0.5 * s]], rtol=1e-5)
  # EDM, sigma = 1, sigma_data = 0.5: c_skip = 0.25 / 1.25, c_out = 0.5 / sqrt(1.25),
  # x = 0.5 - 1 = -0.5, target (x_0 - c_skip x) / c_out.
  target = processes.EDMProcess().target(x0, eps, jnp.asarray([1.0]))
  np.testing.assert_allclose(target, [[(0.5 + 0.2 * 0.5) / (0.5 / math.sqrt(1.25))]], rtol=1e-5)
  # DDPM (eps): the noise itself, with the index-based corruption of training.
  ddpm = PROCESSES['ddpm']()
  np.testing.assert_allclose(ddpm.target(x0, eps, jnp.asarray([1])), eps)


@pytest.mark.parametrize('name', sorted(PROCESSES))
def test_a_perfect_prediction_gives_back_x0_and_eps(name):
  """denoised(target) = (x_0, eps): the network's output and the parameterization agree, at
  training times (integer indices for ddpm) and at float times (the samplers')."""
  process = PROCESSES[name]()
  x0 = jax.random.uniform(jax.random.key(1), (5, 4, 4, 1), minval=-1, maxval=1)
  eps = jax.random.normal(jax.random.key(2), x0.shape)
  t = process.sample_t(jax.random.key(3), 5)
  xt = process.corrupt(x0, t, eps)
  x_in, _ = process.net_inputs(xt, t)
  target = process.target(x0, eps, t)
  t_float = jnp.asarray(t, jnp.float32)
  x0_hat, eps_hat = process.denoised(target, xt, t_float)
  np.testing.assert_allclose(x0_hat, x0, atol=2e-3)
  np.testing.assert_allclose(eps_hat, eps, atol=2e-3)
  assert x_in.shape == xt.shape


# -- samplers: exact denoiser on Gaussian data --------------------------------------------------


MU, S0 = 0.3, 0.5  # data N(MU, S0^2) per coordinate


def _exact_denoiser(process):
  """E[x_0 | x_t] for x_0 ~ N(MU, S0^2): MU + alpha S0^2 / (alpha^2 S0^2 + sigma^2)
  (x_t - alpha MU), and eps_hat consistent with it."""
  def denoise(x, t):
    a, s = process.alpha_sigma(t)
    a, s = a[:, None], s[:, None]
    x0 = MU + a * S0**2 / (a**2 * S0**2 + s**2) * (x - a * MU)
    return x0, (x - a * x0) / s
  return denoise


CASES = [(p, s, steps) for p in ('ddpm', 'vp', 'flow', 'edm')
         for s, steps in (('ddim', 1000), ('euler', 1000), ('heun', 200),
                          ('euler_maruyama', 1000), ('dpmpp_2m', 200))
         if not (p == 'flow' and s == 'euler_maruyama')] + [('vp', 'ddim_eta1', 1000)]


@pytest.mark.parametrize('name,sampler,steps', CASES)
def test_samplers_reach_the_gaussian_data_distribution(name, sampler, steps):
  process = PROCESSES[name]()
  n, d = 2000, 8
  eta = 1.0 if sampler == 'ddim_eta1' else 0.0
  sampler = sampler.replace('_eta1', '')
  x_T = process.prior_std * jax.random.normal(jax.random.key(0), (n, d))
  out = np.asarray(samplers.sample(process, _exact_denoiser(process), x_T,
                                   process.grid(steps, sampler), sampler, jax.random.key(1), eta))
  se_mean, se_std = S0 / math.sqrt(n * d), S0 / math.sqrt(2 * n * d)
  assert abs(out.mean() - MU) < 4 * se_mean, (out.mean(), se_mean)
  assert abs(out.std() - S0) < 4 * se_std, (out.std(), se_std)


@pytest.mark.parametrize('sampler,order', [('ddim', 1), ('euler', 1), ('heun', 2),
                                           ('dpmpp_2m', 2)])
def test_deterministic_samplers_converge_at_their_order(sampler, order):
  """On EDM's grid with the exact Gaussian denoiser, doubling the steps from 20 to 40 divides
  the distance to a 4,000-step Heun solution of the same ODE by about 2^order (first-order DDIM
  and Euler, second-order Heun and DPM-Solver++(2M)): a broken second-order correction fails."""
  process = processes.EDMProcess()
  x_T = process.prior_std * jax.random.normal(jax.random.key(0), (256, 4))
  solve = lambda s, n: np.asarray(samplers.sample(process, _exact_denoiser(process), x_T,
                                                  process.grid(n), s))
  reference = solve('heun', 4000)
  errors = [np.abs(solve(sampler, n) - reference).max() for n in (20, 40)]
  measured = math.log2(errors[0] / errors[1])
  assert order - 0.3 < measured < order + 0.4, (errors, measured)


def test_few_steps_are_not_enough_so_the_moment_test_can_fail():
  """The check above is not vacuous: 3 DDIM steps miss the data's spread by far more."""
  process = processes.VPProcess()
  x_T = jax.random.normal(jax.random.key(0), (2000, 8))
  out = samplers.sample(process, _exact_denoiser(process), x_T, process.grid(3), 'ddim')
  assert abs(float(out.std()) - S0) > 20 * S0 / math.sqrt(2 * 16000)


W_POS, SD_MODE = 0.2, 0.05  # binary "ink" data: each coordinate N(+1, SD^2) w.p. W_POS, else N(-1, SD^2)


def _binary_denoiser(process):
  """E[x_0 | x_t] for the two-mode data above (posterior mode weights times each mode's
  Gaussian posterior mean), clipped to [-1, 1] with eps_hat recomputed as the package's
  denoiser does with diffusion.clip_denoised (the default)."""
  modes, log_w = jnp.asarray([-1.0, 1.0]), jnp.log(jnp.asarray([1 - W_POS, W_POS]))

  def denoise(x, t):
    a, s = (v[:, None] for v in process.alpha_sigma(t))
    var = (a**2 * SD_MODE**2 + s**2)[..., None]
    xx, aa = x[..., None], a[..., None]
    r = jax.nn.softmax(log_w - 0.5 * (xx - aa * modes)**2 / var, axis=-1)
    x0 = jnp.clip((r * (modes + aa * SD_MODE**2 / var * (xx - aa * modes))).sum(-1), -1, 1)
    return x0, (x - a * x0) / s
  return denoise


@pytest.mark.parametrize('name', ['ddpm', 'vp', 'flow', 'edm'])
def test_heun_in_few_steps_reaches_two_mode_data_with_a_clipped_denoiser(name):
  """Heun with 10 steps (19 calls) puts W_POS of the mass on the +1 mode within Monte-Carlo
  error on every process. Integrating dx/dt in the ddpm process's step index on its uniform
  grid (before session 15) gave 0.42 here, and FD 1,911 on MNIST at 19 calls."""
  process = PROCESSES[name]()
  n, d = 2000, 8
  x_T = process.prior_std * jax.random.normal(jax.random.key(0), (n, d))
  out = np.asarray(samplers.sample(process, _binary_denoiser(process), x_T,
                                   process.grid(10, 'heun'), 'heun'))
  se = math.sqrt(W_POS * (1 - W_POS) / (n * d))
  assert abs((out > 0).mean() - W_POS) < 4 * se, ((out > 0).mean(), se)
  assert np.abs(np.abs(out) - 1).mean() < 0.05  # on the modes, not between them


@pytest.mark.parametrize('name', ['ddpm', 'vp', 'edm'])
def test_one_euler_step_is_one_ddim_step_where_alpha_is_positive(name):
  """Euler in (x/alpha, sigma/alpha) is DDIM (eta = 0) on the same grid, step for step."""
  process = PROCESSES[name]()
  x_T = jax.random.normal(jax.random.key(0), (64, 4))
  grid = process.grid(7, 'euler')
  run = lambda s: np.asarray(samplers.sample(process, _binary_denoiser(process), x_T, grid, s))
  np.testing.assert_allclose(run('euler'), run('ddim'), atol=2e-5)


def test_ddpm_grids_index_for_ddim_and_karras_in_sigma_over_alpha_for_heun():
  """DDIM and DPM-Solver++ keep the index grid of `sampling_timesteps` (runs sample as
  before); Euler and Heun walk Karras et al.'s rho = 7 spacing of sigma/alpha from the last
  index (t = T) to the first (t = 1), by hand from the linear betas."""
  process = PROCESSES['ddpm']()
  np.testing.assert_array_equal(process.grid(5, 'ddim'), [1000, 750, 501, 251, 1, 0])
  np.testing.assert_array_equal(process.grid(5, 'dpmpp_2m'), process.grid(5))
  abar = np.cumprod(1 - np.linspace(1e-4, 0.02, 1000))
  snr_sigma = np.sqrt((1 - abar) / abar)
  lo, hi = snr_sigma[0] ** (1 / 7), snr_sigma[-1] ** (1 / 7)
  expected = (hi + np.arange(5) / 4 * (lo - hi))**7
  grid = process.grid(5, 'heun')
  assert grid[0] == 1000 and grid[-2] == 1 and grid[-1] == 0
  a, s = process.alpha_sigma(jnp.asarray(grid[:-1], jnp.float32))
  np.testing.assert_allclose(np.asarray(s / a), expected, rtol=2e-4)


@pytest.mark.parametrize('sampler', ['ddim', 'euler', 'heun', 'euler_maruyama', 'dpmpp_2m'])
def test_each_sampler_is_one_scan_traced_once_whatever_the_steps(sampler):
  process = processes.EDMProcess()
  calls = []
  exact = _exact_denoiser(process)
  denoise = lambda x, t: calls.append(1) or exact(x, t)
  counts = []
  for steps in (4, 40):
    calls.clear()
    traces = []

    def run(x, key, steps=steps):
      traces.append(1)
      return samplers.sample(process, denoise, x, process.grid(steps), sampler, key)

    fn = jax.jit(run)
    for seed in range(2):
      out = fn(jax.random.normal(jax.random.key(seed), (3, 2)), jax.random.key(seed))
      assert np.all(np.isfinite(out))
    assert len(traces) == 1  # compiled once
    counts.append(len(calls))
  assert counts[0] == counts[1] <= 3, counts  # scan bodies, not unrolled loops
  assert samplers.nfe(sampler, 40) == (79 if sampler == 'heun' else 40)


def test_invalid_sampler_and_process_pairs_are_refused():
  with pytest.raises(ValueError, match='defines an ODE'):
    samplers.check(processes.FlowProcess(), 'euler_maruyama')
  with pytest.raises(ValueError, match="ancestral 'ddpm' sampler needs the discrete"):
    samplers.check(processes.EDMProcess(), 'ddpm')
  with pytest.raises(ValueError, match='unknown sampler'):
    samplers.check(processes.VPProcess(), 'lms')
  config = configs.load(experiment('ddpm_mnist.py:smoke'), {
      'diffusion.process': 'flow', 'diffusion.sampler': 'euler_maruyama',
      'diffusion.prediction': 'eps'})
  with pytest.raises(configs.ConfigError) as e:
    configs.validate(config)
  assert "diffusion.prediction='eps' does not apply to the 'flow' process" in str(e.value)
  assert 'cannot sample it' in str(e.value)
  config = configs.load(experiment('ddpm_mnist.py:smoke'), {'diffusion.process': 've'})
  with pytest.raises(configs.ConfigError, match='diffusion.process must be one of'):
    configs.validate(config)


# -- the method with every process -------------------------------------------------------------


def _method(spec='ddpm_mnist.py:smoke', **overrides):
  config = configs.load(experiment(spec), overrides)
  configs.validate(config)
  return methods.create(config, (28, 28, 1), 10)


PROCESS_OVERRIDES = {
    'ddpm': {},
    'vp': {'diffusion.process': 'vp', 'diffusion.prediction': 'v'},
    'flow': {'diffusion.process': 'flow', 'diffusion.prediction': 'velocity',
             'diffusion.t_sampling': 'logit_normal'},
    'edm': {'diffusion.process': 'edm', 'diffusion.prediction': 'edm',
            'diffusion.sampler': 'heun'},
}


@pytest.mark.parametrize('name', sorted(PROCESS_OVERRIDES))
def test_loss_falls_on_a_fixed_batch_and_every_sampler_returns_images(name):
  method = _method(**PROCESS_OVERRIDES[name])
  method.tx = common.make_optimizer(configs.optimizer('adam', learning_rate=3e-3))
  state = jax.jit(method.create_state)(jax.random.key(0))
  x0 = jnp.where(jnp.arange(28)[:, None] // 7 % 2 == 0, 0.8, -0.8)[None, :, :, None]
  x0 = jnp.broadcast_to(x0, (8, 28, 28, 1))
  fixed = jax.jit(lambda params: jnp.mean(method.loss_terms(params, x0, None,
                                                            jax.random.key(9))[0]))
  before = float(fixed(state.params))
  step = jax.jit(method.train_step)
  for _ in range(20):
    state, metrics = step(state, {'image': x0, 'label': jnp.zeros((8,), jnp.int32)})
  after = float(fixed(state.params))
  assert np.isfinite(float(metrics['loss'])) and after < 0.7 * before, (before, after)
  refused = set()
  for sampler in samplers.SAMPLERS:  # what each process refuses (no compilation)
    try:
      method.sample_settings(sampler, None if sampler == 'ddpm' else 3)
    except ValueError:
      refused.add(sampler)
  assert refused == {'ddpm': set(), 'vp': {'ddpm'}, 'flow': {'ddpm', 'euler_maruyama'},
                     'edm': {'ddpm'}}[name]
  sampler = {'ddpm': 'dpmpp_2m', 'vp': 'euler_maruyama', 'flow': 'euler', 'edm': 'heun'}[name]
  images = method.generate(state, jax.random.key(1), 2, sampler=sampler, steps=3)
  chex.assert_shape(images, (2, 28, 28, 1))
  assert np.all(np.isfinite(images)) and float(images.std()) > 0


def test_generic_ddim_on_the_ddpm_process_follows_the_index_chain():
  """The generic DDIM of `samplers` on the ddpm process's time grid and the index-based chain
  that every run before processes used give the same images (to float32 rounding)."""
  method = _method(**{'diffusion.num_timesteps': 50})
  state = jax.jit(method.create_state)(jax.random.key(0))
  state = state.replace(ema_params=jax.tree.map(lambda p: p + 0.02, state.ema_params))
  x_T = jax.random.normal(jax.random.key(5), (3, 28, 28, 1))
  _, idx, _, _ = method.sample_settings('ddim', 10)
  legacy = jax.jit(lambda x: method.reverse_chain(state.ema_params, x, None, None, 'ddim', idx,
                                                  0.0, 0.0))(x_T)
  grid = method.process.grid(10)
  np.testing.assert_array_equal(grid[:-1], idx + 1)
  generic = jax.jit(lambda x: method.solve(state.ema_params, x, None, None, 'ddim', grid, 0.0,
                                           0.0))(x_T)
  assert float(jnp.abs(legacy).mean()) > 0.05
  np.testing.assert_allclose(generic, legacy, atol=2e-4)


# -- likelihood: unbiased Monte-Carlo bounds ---------------------------------------------------


def test_stratified_discrete_bound_is_unbiased_for_the_all_t_bound():
  """On a smoke model (T = 40) the mean of many 6-strata estimates matches the mean of many
  all-T evaluations within their combined standard error, image by image."""
  method = _method(**{'diffusion.num_timesteps': 40})
  state = jax.jit(method.create_state)(jax.random.key(0))
  state = state.replace(ema_params=jax.tree.map(lambda p: p + 0.01, state.ema_params))
  images = jnp.asarray(np.linspace(-1, 1, 2 * 28 * 28).reshape(2, 28, 28, 1), jnp.float32)
  reps = 24
  batch = {'image': jnp.tile(images, (reps, 1, 1, 1)), 'label': jnp.zeros((2 * reps,))}
  mc_fn = jax.jit(lambda s, b, r: method.bits_per_dim_mc(s, b, r, 6))
  out = mc_fn(state, batch, jax.random.key(1))
  mc, decoder = out['total'].reshape(reps, 2), out['decoder'].reshape(reps, 2)
  exact = jax.jit(method.bits_per_dim)(state, batch, jax.random.key(2))['total'].reshape(reps, 2)
  mc, exact = np.asarray(mc, np.float64), np.asarray(exact, np.float64)
  se = np.sqrt(mc.var(0, ddof=1) / reps + exact.var(0, ddof=1) / reps)
  assert np.all(np.abs(mc.mean(0) - exact.mean(0)) < 4 * se), (mc.mean(0), exact.mean(0), se)
  assert np.all(mc.std(0) > 0)  # an estimate, not the exact sum
  # The check can fail: leaving out any one part (here the decoder term L_0) would break it.
  assert np.all(np.asarray(decoder).mean(0) > 4 * se)


@pytest.mark.parametrize('name', ['vp', 'flow', 'edm'])
def test_continuous_bound_estimate_is_unbiased_and_bounds_the_true_likelihood(name):
  """With the exact denoiser of Gaussian data N(MU, S0^2), 4 strata (many draws) agree with
  2,048 strata, and both lie above the exact -log2 P of the points' 8-bit bins under that
  Gaussian, within half a bit of it (the decoder term at sigma/alpha = 0.002 costs ~0.26)."""
  process = PROCESSES[name]()
  exact = _exact_denoiser(process)
  denoise = lambda x, t: exact(x, t)[0]
  points = np.asarray([-0.5, 0.1, 0.3, 0.9])
  x0 = jnp.tile(jnp.asarray(points[None], jnp.float32), (512, 1))
  estimate = lambda k: jax.jit(lambda r: likelihood.continuous_bpd(process, denoise, x0, r, k))
  coarse = np.concatenate([np.asarray(estimate(4)(jax.random.key(i))['total'])
                           for i in range(4)])
  fine = np.asarray(estimate(2048)(jax.random.key(9))['total'])
  se = math.sqrt(coarse.var(ddof=1) / len(coarse) + fine.var(ddof=1) / len(fine))
  assert coarse.std() > 0 and abs(coarse.mean() - fine.mean()) < 4 * se, (
      coarse.mean(), fine.mean(), se)
  bins = stats.norm.cdf(points + 1 / 255, MU, S0) - stats.norm.cdf(points - 1 / 255, MU, S0)
  true_bpd = -np.mean(np.log2(bins))
  assert true_bpd - 4 * se < fine.mean() < true_bpd + 0.5, (fine.mean(), true_bpd)


def _smoothed_gaussian_log_pdf(process, x):
  """log N(x; MU, S0^2 + u0^2) summed over coordinates: the data density at the ODE's data
  end (sigma/alpha = u0) for Gaussian data."""
  u0 = likelihood.ode_smoothing(process)
  return stats.norm.logpdf(np.asarray(x, np.float64), MU, math.sqrt(S0**2 + u0**2)).sum(-1)


@pytest.mark.parametrize('name', ['ddpm', 'vp', 'flow', 'edm'])
def test_ode_likelihood_matches_the_gaussian_closed_form(name):
  """With the exact denoiser of N(MU, S0^2) and the exact divergence, the probability-flow
  ODE's log p(x) is the closed form to < 0.01 nats/dim at 50 steps, and the error shrinks by
  more than 5x from 10 to 50 steps (second order: a wrong term would not converge)."""
  process = PROCESSES[name]()
  x = MU + S0 * jax.random.normal(jax.random.key(5), (64, 8))
  closed = _smoothed_gaussian_log_pdf(process, x)
  err = lambda steps: np.abs(np.asarray(jax.jit(lambda v: likelihood.ode_log_likelihood(
      process, _exact_denoiser(process), v, jax.random.key(0), steps, exact_trace=True))(x))
                             - closed).max() / 8
  coarse, fine = err(10), err(50)
  assert fine < 0.01 and fine < coarse / 5, (coarse, fine)


def test_hutchinson_divergence_is_unbiased_on_correlated_data():
  """Data N(m, C) with a full covariance C (so the flow's Jacobian has off-diagonal terms and
  a Rademacher probe is not exact): the exact-trace ODE log p matches log N(x; m, C + u0^2 I)
  and the mean over 512 probes matches the exact trace within Monte-Carlo error (ddpm
  process, 30 steps)."""
  process = PROCESSES['ddpm']()
  rng = np.random.default_rng(0)
  a_mat = rng.normal(size=(4, 4)) * 0.3
  cov, m = a_mat @ a_mat.T + 0.05 * np.eye(4), np.asarray([0.3, -0.2, 0.1, 0.0])

  def denoise(x, t):
    a, s = process.alpha_sigma(t)
    a, s = a[:, None, None], s[:, None, None]
    # E[x0 | x] = m + a C (a^2 C + s^2 I)^-1 (x - a m); C and the inverse commute.
    gain = a * jnp.linalg.solve(a**2 * cov + s**2 * jnp.eye(4), jnp.asarray(cov))
    x0 = m + jnp.einsum('bij,bj->bi', gain, x - a[..., 0] * m)
    return x0, (x - a[..., 0] * x0) / s[..., 0]

  x = jnp.tile(jnp.asarray([[0.5, -0.4, 0.2, 0.1]]), (512, 1))
  run = lambda exact: np.asarray(jax.jit(lambda v: likelihood.ode_log_likelihood(
      process, denoise, v, jax.random.key(3), 30, exact_trace=exact))(x))
  hutch, exact = run(False), run(True)
  u0 = likelihood.ode_smoothing(process)
  closed = stats.multivariate_normal(m, cov + u0**2 * np.eye(4)).logpdf(np.asarray(x[0]))
  assert abs(exact[0] - closed) < 0.02, (exact[0], closed)
  se = hutch.std(ddof=1) / math.sqrt(len(hutch))
  assert hutch.std() > 0.01  # the probes do vary
  assert abs(hutch.mean() - exact[0]) < 4 * se, (hutch.mean(), exact[0], se)


def test_ode_bits_per_dim_matches_the_true_discrete_likelihood():
  """Dequantized ODE bits/dim on the exact Gaussian model. Uniform q: the true -log2 P of the
  8-bit bins to 0.01 bits (dequantization's Jensen gap is tiny for a density smooth on the
  bin's scale, the ODE's error at 50 steps ~0.005; the VDM bound above pays ~0.26 for its
  decoder). Truncated-normal q: still an upper bound, looser here by its entropy deficit
  (log of the bin width minus q's entropy, by hand: 0.18 bits)."""
  process = PROCESSES['flow']()
  points = np.asarray([-0.5, 0.1, 0.3, 0.9])
  x0 = jnp.tile(jnp.asarray(points[None], jnp.float32), (256, 1))
  bins = stats.norm.cdf(points + 1 / 255, MU, S0) - stats.norm.cdf(points - 1 / 255, MU, S0)
  true_bpd = -np.mean(np.log2(bins))
  c = (1 / 255) / 0.002  # the bin's half width in q's std
  z = math.erf(c / math.sqrt(2))
  q_entropy = math.log(0.002 * z * math.sqrt(2 * math.pi)) + 0.5 * (
      1 - 2 * c * stats.norm.pdf(c) / z)  # truncated N(0, 0.002^2) on [-1/255, 1/255]
  deficit = (math.log(2 / 255) - q_entropy) / math.log(2)
  for dequantization, expected in (('uniform', true_bpd), ('normal', true_bpd + deficit)):
    out = np.asarray(jax.jit(lambda r: likelihood.ode_bpd(
        process, _exact_denoiser(process), x0, r, 50, dequantization=dequantization))(
            jax.random.key(4))['total'])
    se = out.std(ddof=1) / math.sqrt(len(out))
    assert se > 0 and abs(out.mean() - expected) < 0.01 + 4 * se, (
        dequantization, out.mean(), expected, se)
  assert deficit > 0.1


# -- quality against cost: evaluate --sampler / --nfe_sweep ----------------------------------


def test_nfe_sweep_summary_by_hand():
  from genvision_jax.evaluation import nfe_sweep  # pylint: disable=g-import-not-at-top
  rows = [{'sampler': 'ddim', 'steps': 50, 'nfe': 50, 'fd': 10.0},
          {'sampler': 'ddim', 'steps': 10, 'nfe': 10, 'fd': 14.0},
          {'sampler': 'heun', 'steps': 3, 'nfe': 5, 'fd': 12.0},
          {'sampler': 'heun', 'steps': 10, 'nfe': 19, 'fd': 9.5},
          {'sampler': 'dpmpp_2m', 'steps': 10, 'nfe': 10, 'fd': 9.9},
          {'sampler': 'euler', 'steps': 10, 'nfe': 10, 'fd': 30.0}]
  record = nfe_sweep.summarize(rows)
  assert record['reference'] == {'sampler': 'ddim', 'steps': 50, 'nfe': 50, 'fd': 10.0}
  assert record['nfe_to_reach_reference'] == {
      'ddim': {'nfe': 50, 'steps': 50, 'fd': 10.0}, 'heun': {'nfe': 19, 'steps': 10, 'fd': 9.5},
      'dpmpp_2m': {'nfe': 10, 'steps': 10, 'fd': 9.9}}
  assert record['recommended'] == 'dpmpp_2m' and record['speedup_over_reference'] == 5.0
  assert samplers.steps_for_nfe('heun', 5) == 3 and samplers.steps_for_nfe('heun', 4) == 2


def test_evaluate_with_a_sampler_and_an_nfe_sweep(tmp_path):
  from genvision_jax import training  # pylint: disable=g-import-not-at-top
  from genvision_jax.evaluation import runner  # pylint: disable=g-import-not-at-top
  workdir = tmp_path / 'flow'
  training.train_and_evaluate(configs.load(experiment('flow_mnist.py:smoke'), {}), str(workdir),
                              verbose=False)
  with pytest.raises(runner.EvaluationError, match='defines an ODE'):
    runner.evaluate_run(str(workdir), num_samples=10, metrics=['fd'], verbose=False,
                        sampling={'sampler': 'euler_maruyama'})
  result = runner.evaluate_run(
      str(workdir), num_samples=10, metrics=['fd'], verbose=False, bootstrap=0,
      sampling={'sampler': 'heun', 'steps': 2}, nfe_sweep=[2, 3], sweep_samplers=['heun'],
      sweep_samples=10)
  assert result['details']['sampling'] == {'sampler': 'heun', 'steps': 2, 'nfe': 3}
  sweep = json.loads((workdir / 'eval' / 'nfe_sweep.json').read_text())
  points = [(r['sampler'], r['steps'], r['nfe']) for r in sweep['rows']]
  assert points == [('heun', 1, 1), ('heun', 2, 3), ('ddim', 50, 50)]  # + the reference
  assert all(np.isfinite(r['fd']) and 0 <= r['precision'] <= 1 for r in sweep['rows'])
  assert sweep['protocol']['samples'] == 10 and (workdir / 'eval' / 'nfe_sweep.png').exists()
  assert sweep['recommended'] in (None, 'heun', 'ddim')
  # The probability-flow ODE likelihood on the same run (`genvision bpd --estimator=ode`).
  from genvision_jax.training import diffusion_eval  # pylint: disable=g-import-not-at-top
  with pytest.raises(ValueError, match='use --ode_steps'):
    diffusion_eval.evaluate_bits_per_dim(str(workdir), num=2, estimator='ode', num_t=4)
  with pytest.raises(ValueError, match='add --estimator=ode'):
    diffusion_eval.evaluate_bits_per_dim(str(workdir), num=2, dequantization='normal')
  record = diffusion_eval.evaluate_bits_per_dim(str(workdir), num=3, estimator='ode',
                                                ode_steps=2)
  p = record['protocol']
  assert (p['estimator'], p['ode_steps'], p['network_calls_per_example']) == ('ode', 2, 4)
  assert np.isfinite(record['bits_per_dim']) and 'prior_bpd' not in record
  assert np.load(workdir / 'eval' / 'bits_per_dim.npy').shape == (3,)
