"""Method steps: loss descent on a fixed batch, Algorithm 1's D/G update counts, separation of
the two networks' state, EMA, and one compilation per step."""


import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genvision_jax import configs, methods
from genvision_jax.methods import common
from tests.conftest import experiment, host_leaves


def _images(shape, seed=0):
  # Digit-like data in [-1, 1]: mostly background with a bright blob.
  rng = np.random.default_rng(seed)
  x = -np.ones(shape, np.float32)
  h, w = shape[-3], shape[-2]
  x[..., h // 4:3 * h // 4, w // 3:2 * w // 3, :] = 1.0
  x += rng.normal(0, 0.1, shape).astype(np.float32)
  return jnp.asarray(np.clip(x, -1, 1))


def _method(spec, **overrides):
  config = configs.load(experiment(spec), overrides)
  return config, methods.create(config, (28, 28, 1))


def test_vae_step_reduces_negative_elbo_on_a_fixed_batch():
  _, method = _method('vae_mnist.py:smoke', **{'optim.learning_rate': 1e-2})
  state = method.create_state(jax.random.key(0))
  batch = {'image': _images((16, 28, 28, 1))}
  step = jax.jit(method.train_step)
  losses = []
  for _ in range(30):
    state, metrics = step(state, batch)
    losses.append(float(metrics['loss']))
  assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5]), losses
  assert int(state.step) == 30


def test_vae_metrics_are_consistent():
  _, method = _method('beta_vae_mnist.py:smoke')
  assert method.beta == 4.0
  state = method.create_state(jax.random.key(0))
  _, m = jax.jit(method.train_step)(state, {'image': _images((16, 28, 28, 1))})
  # loss = recon + beta * kl; neg_elbo = recon + kl.
  np.testing.assert_allclose(m['loss'], m['recon'] + 4.0 * m['kl'], rtol=1e-5)
  np.testing.assert_allclose(m['neg_elbo'], m['recon'] + m['kl'], rtol=1e-5)
  np.testing.assert_allclose(m['bits_per_dim'], m['neg_elbo'] / (784 * np.log(2)), rtol=1e-5)


def test_vae_generate_shape_and_range():
  _, method = _method('vae_mnist.py:smoke')
  state = method.create_state(jax.random.key(0))
  images = method.generate(state, jax.random.key(1), 5)
  chex.assert_shape(images, (5, 28, 28, 1))
  assert float(images.min()) >= -1 and float(images.max()) <= 1


def test_dynamic_binarization_draws_each_pixel_with_its_grey_level_as_probability():
  from genvision_jax.methods import vae  # pylint: disable=g-import-not-at-top
  grey = jnp.broadcast_to(jnp.array([-1.0, -0.5, 0.0, 0.6, 1.0]), (4000, 5))
  b = np.asarray(vae.binarize_dynamic(jax.random.key(0), grey))
  assert set(np.unique(b)) == {-1.0, 1.0}
  on = (b == 1).mean(0)
  p = np.array([0.0, 0.25, 0.5, 0.8, 1.0])
  # Binomial(4000, p): 5 standard errors; black never turns on, white never off.
  assert np.all(np.abs(on - p) <= 5 * np.sqrt(p * (1 - p) / 4000)), on
  again = np.asarray(vae.binarize_dynamic(jax.random.key(1), grey))
  assert (again != b).mean() > 0.2  # a fresh draw each time


def test_static_binarization_is_one_draw_per_image_whatever_the_batch():
  from genvision_jax.methods import vae  # pylint: disable=g-import-not-at-top
  x = _images((6, 28, 28, 1))
  b = np.asarray(vae.binarize_static(x, 0))
  assert set(np.unique(b)) <= {-1.0, 1.0}
  # The same image binarizes the same at another position, in another batch.
  np.testing.assert_array_equal(np.asarray(vae.binarize_static(x[::-1], 0))[::-1], b)
  np.testing.assert_array_equal(np.asarray(vae.binarize_static(x[2:4], 0)), b[2:4])
  assert (np.asarray(vae.binarize_static(x, 1)) != b).mean() > 0.01  # another seed, other draws
  # Distinct images get independent draws: the pixel frequency follows the grey level.
  grey = jnp.zeros((2000, 4, 4, 1)).at[:, 0, 0, 0].set(jnp.linspace(-0.99, 0.99, 2000))
  on = (np.asarray(vae.binarize_static(grey, 0))[:, 1:, 1:] == 1).mean()
  assert abs(on - 0.5) < 5 * np.sqrt(0.25 / (2000 * 9)), on


@pytest.mark.parametrize('mode', ['dynamic', 'static'])
def test_vae_step_trains_on_the_binarized_batch(mode):
  """The step's Bernoulli likelihood sees binary images: a grey batch gives exactly the step
  of the batch binarized by the method's rule with the step's key (binarizing binary images
  changes nothing), and not the step of the grey batch itself (the old behaviour)."""
  _, method = _method('vae_mnist.py:smoke', **{'data.binarize': mode,
                                                'optim.learning_rate': 1e-2})
  grey = jax.random.uniform(jax.random.key(5), (16, 28, 28, 1), minval=-1.0)
  step = jax.jit(method.train_step)
  state = method.create_state(jax.random.key(0))
  for _ in range(5):  # away from the initial logits ~ 0, where every target costs log 2
    state, _ = step(state, {'image': grey})
  binary = method.binarized(grey, jax.random.fold_in(state.rng, state.step))
  assert set(np.unique(np.asarray(binary))) == {-1.0, 1.0}
  _, from_grey = step(state, {'image': grey})
  _, from_binary = step(state, {'image': binary})
  np.testing.assert_allclose(from_grey['recon'], from_binary['recon'], rtol=1e-6)
  # Without binarization (unvalidated config) the same state and batch give another loss.
  _, unbinarized = _method('vae_mnist.py:smoke', **{'data.binarize': 'none',
                                                     'optim.learning_rate': 1e-2})
  _, on_grey = jax.jit(unbinarized.train_step)(state, {'image': grey})
  assert abs(float(on_grey['recon']) - float(from_grey['recon'])) > 0.1  # >> the 1e-6 above


def test_discretized_vae_likelihood_is_a_probability_and_the_step_learns():
  _, method = _method('vae_mnist.py:discretized,smoke', **{'optim.learning_rate': 1e-2})
  assert method.binarize == 'none' and method.likelihood == 'discretized_gaussian'
  state = method.create_state(jax.random.key(0))
  x = jnp.round((_images((16, 28, 28, 1)) + 1) * 127.5) / 127.5 - 1  # 8-bit levels
  step = jax.jit(method.train_step)
  losses = []
  for _ in range(30):
    state, metrics = step(state, {'image': x})
    losses.append(float(metrics['recon']))
  assert np.mean(losses[-5:]) < 0.9 * np.mean(losses[:5]), losses
  # log p(x | z) of discrete data is a log-probability: <= 0 (a density need not be).
  log_lik, _, _ = method.elbo_terms(state.params, x, jax.random.key(1))
  assert np.all(np.asarray(log_lik) <= 0)


@pytest.mark.parametrize('overrides,message', [
    ({'data.binarize': 'none'}, "likelihood='bernoulli' is a likelihood of binary images"),
    ({'model.likelihood': 'discretized_gaussian'}, 'models 8-bit levels'),
    ({'model.likelihood': 'bernoulli_grey'}, 'only loads VAE run directories written before'),
    ({'data.binarize': 'always'}, 'data.binarize must be one of'),
])
def test_vae_likelihood_and_binarization_must_match(overrides, message):
  config = configs.load(experiment('vae_mnist.py:smoke'), overrides)
  with pytest.raises(configs.ConfigError, match=message) as e:
    configs.validate(config)
  assert '--config.' in str(e.value)  # names the fix


def test_binarize_is_refused_for_methods_that_do_not_binarize():
  config = configs.load(experiment('dcgan_mnist.py:smoke'), {'data.binarize': 'dynamic'})
  with pytest.raises(configs.ConfigError, match=r"binary images \(\['simple', 'vae'\]\), not method='gan'"):
    configs.validate(config)


@pytest.fixture(scope='module')
def gan():
  config, method = _method('dcgan_mnist.py:smoke', **{'train.d_steps': 3})
  return config, method, method.create_state(jax.random.key(0))


def test_gan_counts_d_steps_discriminator_updates_per_generator_update(gan):
  _, method, state = gan
  step = jax.jit(method.train_step)
  batch = {'image': _images((3, 16, 28, 28, 1))}
  for _ in range(2):
    state, _ = step(state, batch)
  assert (int(state.d_updates), int(state.g_updates), int(state.step)) == (6, 2, 2)


def test_gan_rejects_batches_without_the_d_steps_axis(gan):
  _, method, state = gan
  with pytest.raises(ValueError, match='d_steps'):
    method.train_step(state, {'image': _images((16, 28, 28, 1))})


def _d_loss(method, d_params, d_batch_stats, real, fake):
  real_logits, bs = method._discriminate_train(d_params, d_batch_stats, real)  # pylint: disable=protected-access
  fake_logits, _ = method._discriminate_train(d_params, bs, fake)  # pylint: disable=protected-access
  terms = method.objective(real_logits, fake_logits)
  return float(jnp.mean(terms.d_real) + jnp.mean(terms.d_fake))


def _g_loss(method, g_params, g_batch_stats, d_params, d_batch_stats, z):
  fake, _ = method._generate_train(g_params, g_batch_stats, z)  # pylint: disable=protected-access
  logits, _ = method._discriminate_train(d_params, d_batch_stats, fake)  # pylint: disable=protected-access
  return float(jnp.mean(method.objective(None, logits).g))


def test_gan_updates_each_reduce_their_own_loss_on_a_fixed_batch():
  """Trained on one fixed real batch, D's loss on (real, fixed fakes) falls with D's updates
  and G's loss on fixed noise falls with G's updates (each against the current opponent)."""
  _, method = _method('dcgan_mnist.py:smoke', **{'train.d_steps': 1})
  state = method.create_state(jax.random.key(0))
  real = _images((16, 28, 28, 1))
  z = jax.random.normal(jax.random.key(5), (16, method.latent_dim))
  fake, _ = method._generate_train(state.g_params, state.g_batch_stats, z)  # pylint: disable=protected-access
  d_update = jax.jit(method._d_update)  # pylint: disable=protected-access
  d_before = _d_loss(method, state.d_params, state.d_batch_stats, real, fake)
  d_state = state
  for i in range(10):
    d_state, _ = d_update(d_state, real, jax.random.key(i))
  assert _d_loss(method, d_state.d_params, d_state.d_batch_stats, real, fake) < d_before
  # G against the improved, now fixed, D.
  g_update = jax.jit(method._g_update, static_argnums=1)  # pylint: disable=protected-access
  g_before = _g_loss(method, d_state.g_params, d_state.g_batch_stats, d_state.d_params,
                     d_state.d_batch_stats, z)
  g_state = d_state
  for i in range(10):
    g_state, _ = g_update(g_state, 16, jax.random.key(100 + i))
  assert _g_loss(method, g_state.g_params, g_state.g_batch_stats, d_state.d_params,
                 d_state.d_batch_stats, z) < g_before


def test_gan_updates_touch_only_their_own_network(gan):
  _, method, state = gan
  real = _images((16, 28, 28, 1))
  after_d, _ = jax.jit(method._d_update)(state, real, jax.random.key(0))  # pylint: disable=protected-access
  chex.assert_trees_all_equal(after_d.g_params, state.g_params)
  chex.assert_trees_all_equal(after_d.g_batch_stats, state.g_batch_stats)
  assert not np.allclose(after_d.d_batch_stats['BatchNorm_0']['mean'],
                         state.d_batch_stats['BatchNorm_0']['mean'])
  after_g, _ = jax.jit(method._g_update, static_argnums=1)(after_d, 16, jax.random.key(1))  # pylint: disable=protected-access
  chex.assert_trees_all_equal(after_g.d_params, after_d.d_params)
  chex.assert_trees_all_equal(after_g.d_batch_stats, after_d.d_batch_stats)  # D's BN untouched
  chex.assert_trees_all_equal(after_g.d_opt_state, after_d.d_opt_state)
  assert not np.allclose(after_g.g_batch_stats['BatchNorm_0']['mean'],
                         after_d.g_batch_stats['BatchNorm_0']['mean'])


def test_gan_generate_shape_range_and_ema_choice(gan):
  _, method, state = gan
  state = state.replace(ema_params=jax.tree.map(jnp.zeros_like, state.ema_params))
  ema = method.generate(state, jax.random.key(0), 4)
  raw = method.generate(state, jax.random.key(0), 4, use_ema=False)
  chex.assert_shape([ema, raw], (4, 28, 28, 1))
  assert float(jnp.abs(raw).max()) <= 1.0
  assert not np.allclose(ema, raw)


def test_ema_update():
  params, ema = {'w': jnp.array(2.0)}, {'w': jnp.array(0.0)}
  # Before `start` the EMA copies the parameters.
  np.testing.assert_allclose(common.ema_update(ema, params, 3, 0.9, start=10)['w'], 2.0)
  # Warm-up: at n = step - start = 0 the decay is min(0.9, 1/10) = 0.1.
  np.testing.assert_allclose(common.ema_update(ema, params, 10, 0.9, start=10)['w'], 1.8)
  # Long after start: the configured decay.
  np.testing.assert_allclose(common.ema_update(ema, params, 10_000, 0.9)['w'], 0.2, rtol=1e-6)


def test_train_step_compiles_once(gan):
  _, method, state = gan

  @jax.jit
  @chex.assert_max_traces(n=1)
  def step(state, batch):
    return method.train_step(state, batch)

  for seed in range(3):
    state, _ = step(state, {'image': _images((3, 16, 28, 28, 1), seed)})


def test_optimizer_choices():
  cfg = configs.optimizer('rmsprop', learning_rate=5e-5, b2=0.9)
  tx = common.make_optimizer(cfg)
  params = {'w': jnp.ones(3)}
  updates, _ = tx.update({'w': jnp.ones(3)}, tx.init(params), params)
  assert float(updates['w'][0]) < 0
  with pytest.raises(ValueError, match='unknown optimizer'):
    common.make_optimizer(configs.optimizer('lbfgsx'))


@pytest.mark.parametrize('spec', ['vae_mnist.py:smoke', 'dcgan_mnist.py:smoke'])
def test_bfloat16_step_is_finite_and_close_to_float32(spec):
  lead = 2 if 'dcgan' in spec else None
  images = _images((lead, 16, 28, 28, 1) if lead else (16, 28, 28, 1))
  results = {}
  for dtype in ('float32', 'bfloat16'):
    _, method = _method(spec, **{'train.compute_dtype': dtype})
    state = method.create_state(jax.random.key(0))
    new_state, metrics = jax.jit(method.train_step)(state, {'image': images})
    results[dtype] = (state, new_state, metrics)
  (s32, n32, m32), (s16, n16, m16) = results['float32'], results['bfloat16']
  chex.assert_trees_all_equal(host_leaves(s32), host_leaves(s16))  # same float32 initial state
  for leaf in host_leaves(n16):
    assert leaf.dtype != jnp.bfloat16  # parameters and optimizer state stay float32
    assert np.all(np.isfinite(leaf))
  for key in m32:
    assert m16[key].dtype == jnp.float32, key  # losses are reduced in float32
    np.testing.assert_allclose(m16[key], m32[key], rtol=0.05, atol=0.05, err_msg=key)
  # The update itself points the same way: cosine similarity of the parameter changes (the
  # first Adam step is ~lr * sign(grad), so bf16 noise flips the sign of tiny gradients).
  params = 'params' if lead is None else 'g_params'
  d32 = jnp.concatenate([(a - b).ravel() for a, b in zip(
      jax.tree.leaves(getattr(n32, params)), jax.tree.leaves(getattr(s32, params)))])
  d16 = jnp.concatenate([(a - b).ravel() for a, b in zip(
      jax.tree.leaves(getattr(n16, params)), jax.tree.leaves(getattr(s16, params)))])
  cosine = float(d32 @ d16 / (jnp.linalg.norm(d32) * jnp.linalg.norm(d16)))
  assert cosine > 0.9, cosine


def test_global_norm_is_the_root_sum_of_squares_without_deprecation_warnings():
  """common.global_norm by hand; pyproject turns a DeprecationWarning of a call inside
  genvision_jax into an error, so the old optax.global_norm call fails this test."""
  tree = {'a': jnp.array([3.0, 0.0]), 'b': {'c': jnp.array([[4.0]]), 'd': jnp.array(12.0)}}
  np.testing.assert_allclose(float(common.global_norm(tree)), 13.0, rtol=1e-6)


def test_a_deprecated_call_inside_genvision_jax_fails_a_test():
  """The pytest filters of pyproject.toml: a DeprecationWarning attributed to a genvision_jax
  module (a library warning with stacklevel=2 about its caller), or one optax raises, is an
  error; the same warning attributed to a third-party module is ignored."""
  import warnings  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top

  def deprecated_api():  # how jax, numpy, ... warn: about the line that called them
    warnings.warn('deprecated_api is deprecated', DeprecationWarning, stacklevel=2)

  caller = 'def call():\n  deprecated_api()\n'
  inside = {'__name__': 'genvision_jax.some_module', 'deprecated_api': deprecated_api}
  outside = {'__name__': 'some_library.module', 'deprecated_api': deprecated_api}
  exec(compile(caller, 'genvision_jax/some_module.py', 'exec'), inside)  # pylint: disable=exec-used
  exec(compile(caller, 'some_library/module.py', 'exec'), outside)  # pylint: disable=exec-used
  with pytest.raises(DeprecationWarning, match='deprecated_api is deprecated'):
    inside['call']()
  outside['call']()  # ignored
  with pytest.raises(DeprecationWarning, match='global_norm is deprecated'):
    optax.global_norm({'a': jnp.ones(2)})
