"""Diffusion: the forward process and posterior against independent computations, the
marginals at both ends, DDIM(eta = 1) against the DDPM posterior, the bound in bits/dim of an
eps = 0 model against a numpy computation, the sampler compiled once, the loss on a fixed
batch, config validation, and the CLI on the :smoke configs."""

import functools
import json

import chex
import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest
from scipy import stats

from genvision_jax import configs, diffusion, losses, methods
from genvision_jax.methods import common
from tests.conftest import experiment, run_main


def _process(schedule='linear', T=1000):
  return diffusion.GaussianDiffusion.from_schedule(schedule, T)


def _digits(shape, seed=0):
  """Images on the 256 levels of [-1, 1]: background -1 with a bright bar."""
  rng = np.random.default_rng(seed)
  k = np.zeros(shape, np.int64)
  k[..., shape[-3] // 4:3 * shape[-3] // 4, shape[-2] // 3:2 * shape[-2] // 3, :] = 255
  k = np.clip(k + rng.integers(-20, 21, shape), 0, 255)
  return (k / 127.5 - 1.0).astype(np.float32)


# -- schedules and the forward process -----------------------------------------------------------


def test_schedules():
  lin = diffusion.linear_betas(1000)
  np.testing.assert_allclose([lin[0], lin[-1]], [1e-4, 0.02])
  # Ho et al.: abar_T ~ 4e-5 for the linear schedule at T = 1000.
  assert 3e-5 < np.prod(1 - lin) < 5e-5
  cos = diffusion.cosine_betas(1000)
  u = np.arange(1, 1001) / 1000
  abar = np.cumprod(1 - cos)
  s = 0.008
  expected = np.cos((u + s) / (1 + s) * np.pi / 2)**2 / np.cos(s / (1 + s) * np.pi / 2)**2
  np.testing.assert_allclose(abar[:900], expected[:900], rtol=1e-9)  # before the 0.999 cap
  assert np.all((cos > 0) & (cos <= 0.999)) and np.all(np.diff(np.cumprod(1 - cos)) < 0)
  with pytest.raises(ValueError, match='schedule'):
    diffusion.make_betas('quadratic', 10)


@pytest.mark.parametrize('t', [0, 250, 999])
def test_q_sample_empirical_moments_match_the_closed_form(t):
  p = _process()
  x0 = jnp.asarray([[-1.0, -0.3], [0.2, 0.9]]).reshape(1, 2, 2, 1)
  n = 40000
  noise = jax.random.normal(jax.random.key(t), (n, 2, 2, 1))
  ts = jnp.full((n,), t)
  xt = np.asarray(p.q_sample(jnp.broadcast_to(x0, (n, 2, 2, 1)), ts, noise), np.float64)
  mean, var, log_var = p.q_mean_variance(x0, jnp.asarray([t]))
  np.testing.assert_allclose(np.exp(log_var), var, rtol=1e-5)
  se = np.sqrt(float(var.squeeze()) / n)
  np.testing.assert_allclose(xt.mean(0), mean[0], atol=5 * se)
  np.testing.assert_allclose(xt.var(0), np.broadcast_to(var[0], (2, 2, 1)),
                             rtol=5 * np.sqrt(2 / n))


@pytest.mark.parametrize('schedule', ['linear', 'cosine'])
@pytest.mark.parametrize('t', [1, 10, 300, 999])
def test_posterior_matches_bayes_rule_on_a_grid(schedule, t):
  """q(x_{t-1} | x_t, x_0) ∝ q(x_t | x_{t-1}) q(x_{t-1} | x_0), normalized numerically on a
  grid of x_{t-1} values: its mean and variance equal the closed form."""
  p = _process(schedule)
  betas = diffusion.make_betas(schedule, 1000)
  abar = np.cumprod(1 - betas)
  x0, xt = 0.6, -0.4
  prior_mean, prior_var = np.sqrt(abar[t - 1]) * x0, 1 - abar[t - 1]
  # A grid spanning both factors: the prior around prior_mean, the likelihood around
  # x_t / sqrt(alpha_t).
  ends = [prior_mean, xt / np.sqrt(1 - betas[t])]
  width = 10 * np.sqrt(max(prior_var, betas[t]))
  grid = np.linspace(min(ends) - width, max(ends) + width, 400001)
  log_post = (-(grid - prior_mean)**2 / (2 * prior_var)
              - (xt - np.sqrt(1 - betas[t]) * grid)**2 / (2 * betas[t]))
  w = np.exp(log_post - log_post.max())
  w /= w.sum()
  grid_mean = np.sum(w * grid)
  grid_var = np.sum(w * (grid - grid_mean)**2)
  mean, var, log_var = p.q_posterior_mean_variance(
      jnp.full((1, 1), x0), jnp.full((1, 1), xt), jnp.asarray([t]))
  np.testing.assert_allclose(float(mean.squeeze()), grid_mean, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(float(var.squeeze()), grid_var, rtol=1e-3)
  np.testing.assert_allclose(float(jnp.exp(log_var).squeeze()), grid_var, rtol=1e-3)


@pytest.mark.parametrize('schedule', ['linear', 'cosine'])
def test_marginals_at_both_ends(schedule):
  """Paper t = 1 (index 0): x_t is the data to within the first noise level; t = T: N(0, I)."""
  p = _process(schedule)
  x0 = jnp.asarray(_digits((256, 8, 8, 1)))
  noise = jax.random.normal(jax.random.key(0), x0.shape)
  first = p.q_sample(x0, jnp.zeros((256,), jnp.int32), noise)
  assert float(jnp.max(jnp.abs(first - x0))) < 0.05  # sqrt(1 - abar_0) = 0.01 (linear)
  last = np.asarray(p.q_sample(x0, jnp.full((256,), 999), noise))
  assert abs(last.mean()) < 0.02 and abs(last.std() - 1) < 0.02
  assert stats.kstest(last.ravel(), 'norm').pvalue > 1e-3
  assert float(jnp.max(p.prior_bpd(x0))) < 1e-3  # L_T ~ 0: x_T carries no information


def test_parameterizations_invert_each_other():
  p = _process('cosine')
  k = jax.random.split(jax.random.key(1), 2)
  x0 = jnp.clip(jax.random.normal(k[0], (6, 4, 4, 1)), -1, 1)
  eps = jax.random.normal(k[1], x0.shape)
  t = jnp.asarray([0, 1, 10, 500, 900, 999])
  xt = p.q_sample(x0, t, eps)
  for prediction in diffusion.PREDICTIONS:
    target = p.training_target(prediction, x0, t, eps)
    x0_hat, eps_hat = p.to_x0_eps(prediction, target, xt, t, clip=False)
    np.testing.assert_allclose(x0_hat, x0, atol=2e-3)
    np.testing.assert_allclose(eps_hat, eps, atol=2e-3)


def test_ddim_with_eta_1_is_the_ddpm_posterior():
  p = _process()
  k = jax.random.split(jax.random.key(2), 2)
  t = jnp.asarray([1, 5, 100, 500, 999])
  xt = jax.random.normal(k[0], (5, 4, 4, 1))
  x0_hat, eps_hat = p.to_x0_eps('eps', jax.random.normal(k[1], xt.shape), xt, t)
  ddim_mean, sigma = p.ddim_mean_std(x0_hat, eps_hat, t, t - 1, eta=1.0)
  mean, log_var = p.p_mean_variance(x0_hat, xt, t, 'small')
  np.testing.assert_allclose(ddim_mean, mean, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(sigma**2, jnp.exp(log_var), rtol=1e-4)
  # Last step (t = 0 -> the data): the mean is x0_hat and no noise is added.
  m0, s0 = p.ddim_mean_std(x0_hat, eps_hat, jnp.zeros_like(t), jnp.full_like(t, -1), 1.0)
  np.testing.assert_allclose(m0, x0_hat, atol=1e-6)
  assert float(jnp.max(s0)) == 0.0


def test_discretized_gaussian_sums_to_one_over_the_256_levels():
  levels = jnp.arange(256, dtype=jnp.float32) / 127.5 - 1.0
  for mean, log_scale in [(0.0, -2.0), (-0.97, -4.0), (0.5, 0.5)]:
    logp = losses.discretized_gaussian_log_likelihood(
        levels.reshape(256, 1), jnp.full((256, 1), mean), jnp.full((256, 1), log_scale))
    np.testing.assert_allclose(float(jnp.sum(jnp.exp(logp))), 1.0, rtol=1e-4)


def _numpy_bound_bits_per_dim(x0, T, noises, variance):
  """The bound for the model predicting eps = 0, written from Ho et al.'s formulas in float64:
  x0_hat = clip(x_t / sqrt(abar_t), -1, 1)."""
  betas = np.linspace(1e-4 * 1000 / T, 0.02 * 1000 / T, T)
  alphas = 1 - betas
  abar = np.cumprod(alphas)
  abar_prev = np.concatenate([[1.0], abar[:-1]])
  post_var = betas * (1 - abar_prev) / (1 - abar)
  x0 = x0.astype(np.float64)
  b, d = x0.shape[0], x0[0].size
  kl = lambda m1, v1, m2, v2: 0.5 * (np.log(v2 / v1) + (v1 + (m1 - m2)**2) / v2 - 1)
  total = kl(np.sqrt(abar[-1]) * x0, 1 - abar[-1], 0.0, 1.0).reshape(b, -1).sum(1)
  for t in range(T):
    xt = np.sqrt(abar[t]) * x0 + np.sqrt(1 - abar[t]) * noises[t]
    x0_hat = np.clip(xt / np.sqrt(abar[t]), -1, 1)
    coef = lambda x_0: (np.sqrt(abar_prev[t]) * betas[t] * x_0
                        + np.sqrt(alphas[t]) * (1 - abar_prev[t]) * xt) / (1 - abar[t])
    if variance == 'small':
      var = post_var[t] if t > 0 else post_var[1]
    else:
      var = betas[t] if t > 0 else post_var[1]
    if t == 0:
      s = np.sqrt(var)
      up = stats.norm.cdf((x0 + 1 / 255 - coef(x0_hat)) / s)
      lo = stats.norm.cdf((x0 - 1 / 255 - coef(x0_hat)) / s)
      prob = np.where(x0 < -0.999, up, np.where(x0 > 0.999, 1 - lo, up - lo))
      term = -np.log(np.maximum(prob, 1e-12))
    else:
      term = kl(coef(x0), post_var[t], coef(x0_hat), var)
    total = total + term.reshape(b, -1).sum(1)
  return total / (d * np.log(2))


@pytest.mark.parametrize('variance', ['small', 'large'])
def test_bound_of_an_eps_zero_model_matches_a_hand_computation(variance):
  T = 50  # betas up to 0.4: the numpy schedule needs no cap
  p = _process('linear', T)
  x0 = _digits((3, 4, 4, 1))
  rng = jax.random.key(7)
  noises = [np.asarray(jax.random.normal(jax.random.fold_in(rng, t), x0.shape), np.float64)
            for t in range(T)]
  eps_zero = lambda xt, t: p.to_x0_eps('eps', jnp.zeros_like(xt), xt, t)[0]
  out = jax.jit(lambda x: p.bits_per_dim(eps_zero, x, rng, variance))(jnp.asarray(x0))
  expected = _numpy_bound_bits_per_dim(x0, T, noises, variance)
  np.testing.assert_allclose(out['total'], expected, rtol=2e-4)
  np.testing.assert_allclose(out['total'], out['prior'] + out['terms'].sum(1), rtol=1e-5)


# -- the method --------------------------------------------------------------------------------


def _method(spec, **overrides):
  config = configs.load(experiment(spec), overrides)
  return config, methods.create(config, (28, 28, 1), 10)


@pytest.fixture(scope='module')
def cond():
  _, method = _method('ddpm_cond_mnist.py:smoke', **{'diffusion.num_timesteps': 20})
  return method, jax.jit(method.create_state)(jax.random.key(0))


def test_sampler_compiles_once_scans_the_chain_and_returns_images(cond, monkeypatch):
  method, state = cond
  traces = []
  denoise = method.denoise
  monkeypatch.setattr(method, 'denoise', lambda *a, **k: traces.append(1) or denoise(*a, **k))

  @jax.jit
  @chex.assert_max_traces(n=1)
  def fn(state, rng, label):
    return method.generate(state, rng, 6, label=label, sampler='ddim', steps=5, eta=0.5,
                           guidance=3.0)

  for seed in range(2):
    images = fn(state, jax.random.key(seed), (jnp.arange(6) + seed) % 10)
    chex.assert_shape(images, (6, 28, 28, 1))
    assert float(images.min()) >= -1 and float(images.max()) <= 1
    assert np.all(np.isfinite(images))
  assert len(traces) == 1  # the 5 steps are one lax.scan body, not an unrolled Python loop


def test_ddim_eta_1_sampler_follows_the_ddpm_sampler(cond):
  """With sigma^2 = beta~_t, the DDIM(eta = 1, all steps) chain and the ancestral DDPM chain
  are the same Markov chain: from the same x_T and noise they give the same images."""
  method, state = cond
  method.variance = 'small'
  rng = jax.random.key(3)
  ddpm = jax.jit(functools.partial(method.generate, num=3, sampler='ddpm', label=2))(state, rng)
  ddim = jax.jit(functools.partial(method.generate, num=3, sampler='ddim', steps=20, eta=1.0,
                                   label=2))(state, rng)
  method.variance = 'large'
  np.testing.assert_allclose(ddim, ddpm, atol=1e-4)


def test_guidance_combines_conditional_and_unconditional_outputs(cond):
  method, state = cond
  xt = jax.random.normal(jax.random.key(0), (2, 28, 28, 1))
  t, labels = jnp.asarray([3, 15]), jnp.asarray([7, 1])
  params = jax.tree.map(lambda p: p + 0.01, state.params)  # zero-init output is not a test
  apply = jax.jit(lambda y: method.model.apply({'params': params}, xt, t, y))
  c, u = apply(labels), apply(jnp.full((2,), method.null_label))
  assert not np.allclose(c, u)
  out = jax.jit(method.network_output, static_argnums=4)(params, xt, t, labels, 3.0)
  np.testing.assert_allclose(out, 4.0 * c - 3.0 * u, rtol=1e-4, atol=1e-5)


def test_label_dropout_rate(cond):
  method, _ = cond
  labels = method.train_labels({'label': jnp.full((4000,), 3)}, jax.random.key(0))
  frac = float(jnp.mean(labels == method.null_label))
  assert abs(frac - method.p_uncond) < 0.02 and set(np.unique(labels)) == {3, 10}


def test_decode_is_the_deterministic_ddim_map(cond):
  method, state = cond
  z = jax.random.normal(jax.random.key(4), (2, method.latent_dim))
  dec = jax.jit(method.decode)
  a = dec(state, z, jnp.asarray([1, 2]))
  chex.assert_shape(a, (2, 28, 28, 1))
  np.testing.assert_array_equal(a, dec(state, z, jnp.asarray([1, 2])))


def test_loss_falls_on_a_fixed_batch(cond):
  method, state = cond
  method.tx = common.make_optimizer(configs.optimizer('adam', learning_rate=3e-3))
  state = state.replace(opt_state=method.tx.init(state.params))
  x0 = jnp.asarray(_digits((8, 28, 28, 1)))
  labels = jnp.arange(8) % 10
  fixed = jax.jit(lambda params: jnp.mean(method.loss_terms(params, x0, labels,
                                                            jax.random.key(9))[0]))
  before = float(fixed(state.params))
  step = jax.jit(method.train_step)
  for _ in range(30):
    state, metrics = step(state, {'image': x0, 'label': labels})
  assert np.isfinite(float(metrics['loss'])) and int(state.step) == 30
  assert float(fixed(state.params)) < 0.6 * before, (before, float(fixed(state.params)))
  # The EMA follows the parameters but lags them.
  assert not np.allclose(state.ema_params['Conv_0']['kernel'], state.params['Conv_0']['kernel'])


def test_invalid_diffusion_configs_name_the_field():
  config = configs.load(experiment('ddpm_mnist.py:smoke'), {
      'diffusion.sampler': 'lms', 'diffusion.guidance': 3.0, 'diffusion.sample_steps': 500,
      'model.channel_mults': (1, 2, 2, 2), 'diffusion.prediction': 'x'})
  with pytest.raises(configs.ConfigError) as e:
    configs.validate(config)
  for message in ("diffusion.sampler must be one of ('ddpm', 'ddim', 'euler', 'heun',",
                  'needs a class-conditional model',
                  'diffusion.sample_steps must be in [1, num_timesteps=100]',
                  'halves data.image_size=28 3 times',
                  "diffusion.prediction='x' does not apply to the 'ddpm' process: use eps or v"):
    assert message in str(e.value)


# -- the CLI ----------------------------------------------------------------------------------


@pytest.mark.parametrize('spec', ['ddpm_mnist.py:smoke', 'ddpm_cond_mnist.py:smoke'])
def test_cli_train_sample_and_bits_per_dim(tmp_path, spec):
  workdir = tmp_path / 'run'
  proc = run_main('train', f'--config={experiment(spec)}', f'--workdir={workdir}',
                 '--config.train.num_steps=2', '--config.diffusion.num_timesteps=20')
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert (workdir / 'samples' / 'step_0000002.png').exists()
  if 'cond' not in spec:
    _loads_as_a_run_written_before_processes(workdir)
    return
  out = tmp_path / 'sevens.png'
  proc = run_main('sample', f'--workdir={workdir}', '--steps=5', '--sampler=ddim', '--guidance=3',
                 '--label=7', '--num=4', f'--out={out}')
  assert proc.returncode == 0, proc.stderr[-3000:]
  image = np.asarray(Image.open(out))
  assert image.shape == (2 * (2 * 30 + 2), 2 * (2 * 30 + 2)) and image.std() > 0
  proc = run_main('bpd', f'--workdir={workdir}', '--num=3')
  assert proc.returncode == 0, proc.stderr[-3000:]
  record = json.loads((workdir / 'eval' / 'bits_per_dim.json').read_text())
  assert record['protocol']['num_examples'] == 3 and record['protocol']['split'] == 'test'
  assert record['protocol']['checkpoint_step'] == 2 and record['bits_per_dim'] > 0


def _loads_as_a_run_written_before_processes(workdir):
  """A config.json without diffusion.process / t_sampling / clip_denoised (every run written
  before processes existed) loads as the same config -- the ddpm process, hence the same
  samples -- and samples."""
  from genvision_jax import training  # pylint: disable=g-import-not-at-top
  path = workdir / 'config.json'
  stored = json.loads(path.read_text())
  _, method, state = training.load_run(str(workdir))
  before = method.generate(state, jax.random.key(0), 2, steps=3)
  original = training.read_config(str(workdir)).to_dict()
  for field in ('process', 't_sampling', 'clip_denoised'):
    del stored['diffusion'][field]
  path.write_text(json.dumps(stored))
  config, method, state = training.load_run(str(workdir))
  assert config.to_dict() == original and config.diffusion.process == 'ddpm'
  assert isinstance(method.process, diffusion.GaussianDiffusion)
  np.testing.assert_array_equal(method.generate(state, jax.random.key(0), 2, steps=3), before)


@pytest.mark.parametrize('spec', ['tti/diffusion_digits.py:smoke', 'i2i/palette_mnist.py:smoke'])
def test_old_configs_of_the_diffusion_subclasses_fill_the_process_fields(spec):
  """Text-to-image and Palette runs written before processes existed validate as ddpm runs
  (their own LATER_DEFAULTS keep DiffusionMethod's)."""
  stored = configs.load(experiment(spec)).to_dict()
  for field in ('process', 't_sampling', 'clip_denoised'):
    del stored['diffusion'][field]
  config = configs.from_dict(stored)
  configs.validate(config)
  assert (config.diffusion.process, config.diffusion.clip_denoised) == ('ddpm', True)


def test_sampler_settings_are_checked():
  _, method = _method('ddpm_mnist.py:smoke')
  with pytest.raises(ValueError, match='needs a class-conditional model'):
    method.sample_settings(guidance=3.0)
  with pytest.raises(ValueError, match='runs all T=100 steps'):
    method.sample_settings('ddpm', steps=10)
  with pytest.raises(ValueError, match='unconditional'):
    method.generate(None, jax.random.key(0), 2, label=3)
  sampler, ts, eta, guidance = method.sample_settings('ddim', steps=7, eta=0.3)
  assert sampler == 'ddim' and eta == 0.3 and guidance == 0.0
  assert ts[0] == 99 and ts[-1] == 0 and len(ts) == 7 and np.all(np.diff(ts) < 0)
