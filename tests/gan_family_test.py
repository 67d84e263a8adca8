"""The GAN loss table beyond minimax/non-saturating, its penalties, and the configs of
experiments/gan/: hand-computed values, gradient signs, the gradient-penalty norm against a
linear critic and the points where each penalty is evaluated against a nonlinear one
(D(x) = 1/2 ||x||^2, grad D = x), weight clipping, and every config's :smoke run through the
CLI."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genvision_jax import configs, losses, methods
from tests.conftest import REPO, run_main

GAN_CONFIGS = sorted(p.name for p in (REPO / 'experiments' / 'gan').glob('*_mnist.py'))


def test_wgan_lsgan_hinge_hand_values():
  real, fake = jnp.array([2.0, -0.5]), jnp.array([0.5, -3.0])
  w = losses.wgan(real, fake)
  np.testing.assert_allclose(w.d_real, [-2.0, 0.5])
  np.testing.assert_allclose(w.d_fake, [0.5, -3.0])
  np.testing.assert_allclose(w.g, [-0.5, 3.0])
  ls = losses.lsgan(real, fake)
  np.testing.assert_allclose(ls.d_real, [1.0, 2.25])   # (D(x) - 1)^2
  np.testing.assert_allclose(ls.d_fake, [0.25, 9.0])   # D(G(z))^2
  np.testing.assert_allclose(ls.g, [0.25, 16.0])       # (D(G(z)) - 1)^2
  h = losses.hinge(real, fake)
  np.testing.assert_allclose(h.d_real, [0.0, 1.5])     # relu(1 - D(x))
  np.testing.assert_allclose(h.d_fake, [1.5, 0.0])     # relu(1 + D(G(z)))
  np.testing.assert_allclose(h.g, [-0.5, 3.0])


@pytest.mark.parametrize('name', ['wgan', 'lsgan', 'hinge'])
def test_gradient_signs(name):
  """D lowers its loss by raising real outputs and lowering fake ones (inside the margins);
  G lowers its loss by raising the fake output."""
  fn = losses.GAN_OBJECTIVES[name]
  at = jnp.array([0.3])
  assert float(jax.grad(lambda r: fn(r, at).d_real.sum())(at)[0]) < 0
  assert float(jax.grad(lambda f: fn(at, f).d_fake.sum())(at)[0]) > 0
  assert float(jax.grad(lambda f: fn(None, f).g.sum())(at)[0]) < 0


def test_gradient_penalty_of_a_linear_critic():
  """D(x) = <w, x>: the gradient is w at every interpolate, so the penalty is (||w|| - 1)^2,
  with the norm over all of H, W and C. A norm over one axis only gives other values."""
  w = jax.random.normal(jax.random.PRNGKey(0), (6, 5, 2))
  critic = lambda x: jnp.einsum('bhwc,hwc->b', x, w)
  real = jax.random.normal(jax.random.PRNGKey(1), (4, 6, 5, 2))
  fake = jax.random.normal(jax.random.PRNGKey(2), (4, 6, 5, 2))
  penalty = losses.gradient_penalty(critic, real, fake, jax.random.PRNGKey(3))
  chex.assert_shape(penalty, (4,))
  expected = (float(jnp.linalg.norm(w)) - 1.0)**2
  np.testing.assert_allclose(penalty, expected, rtol=1e-5)
  wrong_axis = (jnp.linalg.norm(w, axis=-1) - 1.0)**2  # the classic mistake
  assert not np.allclose(float(wrong_axis.mean()), expected, rtol=1e-2)
  # The same on perturbed real data (DRAGAN); R1 is half the squared norm.
  np.testing.assert_allclose(losses.dragan_penalty(critic, real, fake, jax.random.PRNGKey(4)),
                             expected, rtol=1e-5)
  np.testing.assert_allclose(losses.r1_penalty(critic, real), 0.5 * float(jnp.sum(w**2)),
                             rtol=1e-5)


# D(x) = 1/2 ||x||^2 per example: a nonlinear critic whose input gradient is x itself, so
# ||grad D(p)|| = ||p|| tells at which point p a penalty was evaluated.
_HALF_SQUARED_NORM = lambda x: 0.5 * jnp.sum(x.reshape(x.shape[0], -1)**2, axis=-1)


def _norms(x):
  return np.linalg.norm(np.asarray(x, np.float64).reshape(x.shape[0], -1), axis=-1)


def _real_fake(shape=(4, 3, 3, 2)):
  rng = np.random.default_rng(0)
  return (jnp.asarray(rng.normal(0.3, 0.4, shape), jnp.float32),
          jnp.asarray(rng.normal(-0.5, 0.2, shape), jnp.float32))


def test_wgan_gp_is_evaluated_at_the_interpolates():
  """Fixed eps per example: x_hat = eps x + (1 - eps) x~, penalty (||x_hat|| - 1)^2 by hand.
  Evaluated at x or at x~ instead, the values differ."""
  real, fake = _real_fake()
  eps = np.array([0.0, 0.25, 0.6, 1.0])
  got = losses.gradient_penalty(_HALF_SQUARED_NORM, real, fake, None, alpha=eps)
  x, xt = np.asarray(real, np.float64), np.asarray(fake, np.float64)
  x_hat = eps[:, None, None, None] * x + (1 - eps[:, None, None, None]) * xt
  np.testing.assert_allclose(got, (_norms(x_hat) - 1.0)**2, rtol=1e-5)
  # eps = 1 is the real point and eps = 0 the fake one: only the middle two tell them apart.
  for wrong in (x, xt):
    assert not np.allclose(got[1:3], (_norms(wrong)[1:3] - 1.0)**2, rtol=1e-2)


def test_wgan_gp_draws_one_uniform_eps_per_example():
  """With fake = 0 and ||x|| = 1 the penalty is (eps - 1)^2, whose mean over eps ~ U(0, 1)
  is 1/3 (1 at the fake points, 0 at the real ones); one eps per example, not per pixel."""
  n = 4000
  x = np.random.default_rng(1).normal(size=(n, 4, 4, 1))
  x = jnp.asarray(x / _norms(x)[:, None, None, None], jnp.float32)
  got = np.asarray(losses.gradient_penalty(_HALF_SQUARED_NORM, x, jnp.zeros_like(x),
                                           jax.random.PRNGKey(0)))
  assert abs(got.mean() - 1.0 / 3.0) < 0.03, got.mean()   # standard error 0.005
  assert abs(np.sqrt(got).mean() - 0.5) < 0.03            # |eps - 1|, uniform on [0, 1]
  assert got.min() >= 0.0 and got.max() <= 1.0 + 1e-5


def test_dragan_is_evaluated_between_the_data_and_its_perturbation():
  """Fixed a and eps: x~ = x + a * c * std(x) * eps with c = 0.5 and std over the minibatch;
  penalty (||x~|| - 1)^2 by hand. At x, at the fake data or at x + delta the values differ."""
  real, fake = _real_fake()
  a = np.array([0.2, 0.5, 0.9, 0.7])
  eps = np.random.default_rng(2).normal(size=real.shape)
  got = losses.dragan_penalty(_HALF_SQUARED_NORM, real, fake, jax.random.PRNGKey(0),
                              alpha=a, noise=jnp.asarray(eps, jnp.float32))
  x = np.asarray(real, np.float64)
  delta = 0.5 * x.std() * eps
  expected = (_norms(x + a[:, None, None, None] * delta) - 1.0)**2
  np.testing.assert_allclose(got, expected, rtol=1e-5)
  for wrong in (x, np.asarray(fake, np.float64), x + delta):
    assert not np.allclose(got, (_norms(wrong) - 1.0)**2, rtol=1e-2)


def test_dragan_draws_gaussian_noise_scaled_by_the_data_std():
  """D(x) = 1/2 ||x - x0||^2 around the real batch x0: grad D(x~) = a * delta, whose norm is
  a * c * std(x) * ||eps||. With c std(x) sqrt(n) = 1 (std 1/16, n = 1024 pixels) the
  penalty is ~ (a - 1)^2: mean 1/3 over a ~ U(0, 1). Penalized at x + delta instead it
  would be ~ 0, at x exactly 1; a std taken per example or noise of another scale would
  move the mean."""
  n_ex = 2000
  signs = np.random.default_rng(3).choice([-1.0, 1.0], size=(n_ex, 32, 32, 1))
  real = jnp.asarray(signs / 16.0, jnp.float32)   # std exactly 1/16 when the signs balance
  real = real - jnp.mean(real)
  critic = lambda v: _HALF_SQUARED_NORM(v - real)
  got = np.asarray(losses.dragan_penalty(critic, real, None, jax.random.PRNGKey(1)))
  scale = 0.5 * float(jnp.std(real)) * 32.0
  np.testing.assert_allclose(scale, 1.0, rtol=1e-2)
  assert abs(got.mean() - 1.0 / 3.0) < 0.03, got.mean()
  assert abs(np.sqrt(got).mean() - 0.5) < 0.03


def test_r1_is_evaluated_at_the_real_points():
  """R1 = 1/2 ||grad D(x)||^2 = 1/2 ||x||^2 at the real x, not at the fake points."""
  real, fake = _real_fake()
  got = losses.r1_penalty(_HALF_SQUARED_NORM, real, fake, jax.random.PRNGKey(0))
  np.testing.assert_allclose(got, 0.5 * _norms(real)**2, rtol=1e-5)
  assert not np.allclose(got, 0.5 * _norms(fake)**2, rtol=1e-2)


def test_gradient_penalty_is_on_raw_outputs_and_interpolates():
  """A critic that is linear on one image's line: D(x) = 2 <x, 1> / n. Its gradient norm is
  2/sqrt(n) everywhere -> (2/sqrt(n) - 1)^2; a sigmoid on the output would change it."""
  n = 4 * 4
  critic = lambda x: 2.0 * jnp.sum(x.reshape(x.shape[0], -1), -1) / n
  x = jnp.zeros((3, 4, 4, 1))
  penalty = losses.gradient_penalty(critic, x, x + 1.0, jax.random.PRNGKey(0))
  np.testing.assert_allclose(penalty, (2.0 / math.sqrt(n) - 1.0)**2, rtol=1e-5)
  sigmoid_critic = lambda v: jax.nn.sigmoid(critic(v))
  assert not np.allclose(losses.gradient_penalty(sigmoid_critic, x, x + 1.0,
                                                 jax.random.PRNGKey(0)), penalty)


def _method(name, **overrides):
  config = configs.load(str(REPO / 'experiments' / 'gan' / name), overrides)
  configs.validate(config)
  return config, methods.create(config, (28, 28, 1))


def _batch(method, seed=0):
  shape = (method.d_steps, 16, 28, 28, 1)
  return {'image': jnp.asarray(np.random.default_rng(seed).uniform(-1, 1, shape), jnp.float32)}


def test_generator_without_batchnorm():
  _, method = _method('began_mnist.py:smoke', **{'model.g_norm': 'none',
                                                 'model.generator': 'dcgan'})
  state = method.create_state(jax.random.PRNGKey(0))
  assert not jax.tree.leaves(state.g_batch_stats)  # no BatchNorm statistics to carry
  images = method.generate(state, jax.random.PRNGKey(1), 3, use_ema=False)
  chex.assert_shape(images, (3, 28, 28, 1))
  with pytest.raises(configs.ConfigError, match="needs model.g_norm='batch'"):
    _method('cgan_mnist.py:smoke', **{'model.g_norm': 'none', 'model.g_conditioning': 'cbn'})
  with pytest.raises(configs.ConfigError, match="model.g_norm must be 'batch' or 'none'"):
    _method('began_mnist.py:smoke', **{'model.g_norm': 'layer'})
  with pytest.raises(configs.ConfigError, match='applies to the DCGAN and InfoGAN generators only'):
    _method('progan_mnist.py:smoke', **{'model.g_norm': 'none'})


def test_weight_clipping_bounds_the_critic_after_an_update():
  _, method = _method('wgan_mnist.py:smoke', **{'optim.d.learning_rate': 0.5})
  state = method.create_state(jax.random.PRNGKey(0))
  state, _ = jax.jit(method.train_step)(state, _batch(method))
  leaves = jax.tree.leaves(state.d_params)
  assert max(float(jnp.max(jnp.abs(p))) for p in leaves) <= 0.01 + 1e-7
  assert any(float(jnp.max(jnp.abs(p))) == pytest.approx(0.01) for p in leaves)


def test_wgan_gp_step_reports_and_adds_the_penalty():
  _, method = _method('wgan_gp_mnist.py:smoke')
  state = method.create_state(jax.random.PRNGKey(0))
  state, metrics = jax.jit(method.train_step)(state, _batch(method))
  assert float(metrics['d_penalty']) > 0
  # d_loss includes 10 * penalty on top of the two WGAN terms.
  np.testing.assert_allclose(
      metrics['d_loss'],
      metrics['d_loss_real'] + metrics['d_loss_fake'] + 10 * metrics['d_penalty'], rtol=1e-4)
  assert (int(state.d_updates), int(state.g_updates)) == (2, 1)


def test_wgan_defaults_follow_the_papers():
  config, _ = _method('wgan_mnist.py')
  assert config.train.d_steps == 5 and config.gan.clip_value == 0.01
  assert config.optim.d.name == 'rmsprop' and config.optim.d.learning_rate == 5e-5
  config, _ = _method('wgan_gp_mnist.py')
  assert config.train.d_steps == 5 and config.model.d_norm == 'layer'
  assert (config.optim.d.b1, config.optim.d.b2, config.optim.d.learning_rate) == (0.0, 0.9, 1e-4)


def test_batchnorm_with_a_gradient_penalty_is_rejected():
  config = configs.load(str(REPO / 'experiments' / 'gan' / 'wgan_gp_mnist.py'),
                        {'model.d_norm': 'batch'})
  with pytest.raises(configs.ConfigError, match='d_norm=layer'):
    configs.validate(config)


@pytest.mark.parametrize('name', GAN_CONFIGS)
def test_every_gan_config_smoke_trains_through_the_cli(tmp_path, name, capsys):
  """`genvision train` in this process (the CLI's own entry point; a fresh interpreter per
  config cost seconds of imports each: tests/cli_test.py keeps the subprocess runs)."""
  from genvision_jax import main  # pylint: disable=g-import-not-at-top
  code = main.run(['genvision', 'train', f'--config={REPO}/experiments/gan/{name}:smoke',
                   f'--workdir={tmp_path}'])
  out, err = capsys.readouterr()
  assert code == 0, err[-3000:]
  assert 'step 6/6' in out + err and 'non-finite' not in err
  if name in ('sdgan_mnist.py', 'minimax_mnist.py'):  # identity preservation: SD-GAN only
    from genvision_jax.evaluation import runner  # pylint: disable=g-import-not-at-top
    if name == 'minimax_mnist.py':
      with pytest.raises(runner.EvaluationError, match="drop 'identity'"):
        runner.evaluate_run(str(tmp_path), 20, metrics=['identity'], verbose=False)
      return
    result = runner.evaluate_run(str(tmp_path), 20, metrics=['identity'], verbose=False)
    for kind in ('generated', 'independent', 'real'):
      value = result['metrics'][f'digits_cnn/identity_{kind}']
      low, high = result['intervals'][f'digits_cnn/identity_{kind}']
      assert 0 <= low <= value <= high <= 1, kind
    assert result['metrics']['digits_cnn/identity_real'] >= 0.8  # the classifier's ceiling
    assert result['details']['identity_pairs'] == 20


@pytest.mark.parametrize('g_cond,d_cond', [('embedding', 'projection'), ('cbn', 'concat')])
def test_conditional_outputs_depend_on_the_label(g_cond, d_cond):
  config = configs.load(str(REPO / 'experiments' / 'gan' / 'cgan_mnist.py:smoke'),
                        {'model.g_conditioning': g_cond, 'model.d_conditioning': d_cond})
  method = methods.create(config, (28, 28, 1), num_classes=10)
  state = method.create_state(jax.random.PRNGKey(0))
  batch = _batch(method)
  batch['label'] = jnp.tile(jnp.arange(16) % 10, (method.d_steps, 1))
  state, _ = jax.jit(method.train_step)(state, batch)
  # Conditional BatchNorm starts as the identity (zero tables); give it trained-like values.
  def randomize(path, p):
    names = jax.tree_util.keystr(path)
    if "'gamma'" in names or "'beta'" in names:
      return 0.3 * jax.random.normal(jax.random.PRNGKey(len(names)), p.shape)
    return p
  state = state.replace(g_params=jax.tree_util.tree_map_with_path(randomize, state.g_params))
  a = method.generate(state, jax.random.PRNGKey(1), 4, use_ema=False, label=3)
  b = method.generate(state, jax.random.PRNGKey(1), 4, use_ema=False, label=7)
  chex.assert_shape(a, (4, 28, 28, 1))
  assert float(jnp.max(jnp.abs(a - b))) > 1e-2 * float(jnp.max(jnp.abs(a)))  # relative
  x = batch['image'][0][:4]
  la, _ = method._discriminate_train(state.d_params, state.d_batch_stats, x, jnp.full(4, 3))  # pylint: disable=protected-access
  lb, _ = method._discriminate_train(state.d_params, state.d_batch_stats, x, jnp.full(4, 7))  # pylint: disable=protected-access
  assert float(jnp.max(jnp.abs(la - lb))) > 1e-6


def test_unconditional_gan_rejects_a_label():
  _, method = _method('non_saturating_mnist.py:smoke')
  state = method.create_state(jax.random.PRNGKey(0))
  with pytest.raises(ValueError, match='unconditional'):
    method.generate(state, jax.random.PRNGKey(0), 2, label=3)


def test_sample_a_label_and_a_class_grid_from_a_conditional_run(tmp_path):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  proc = run_main('train', '--config=experiments/gan/cgan_mnist.py:smoke', f'--workdir={tmp_path}')
  assert proc.returncode == 0, proc.stderr[-3000:]
  proc = run_main('sample', f'--workdir={tmp_path}', '--label=7', '--num=4',
                 f'--out={tmp_path / "sevens.png"}')
  assert proc.returncode == 0, proc.stderr[-3000:]
  proc = run_main('sample', f'--workdir={tmp_path}', '--class_grid', '--num=3',
                 f'--out={tmp_path / "grid.png"}')
  assert proc.returncode == 0, proc.stderr[-3000:]
  grid = np.asarray(Image.open(tmp_path / 'grid.png'))
  assert grid.shape == (2 * (10 * 30 + 2), 2 * (3 * 30 + 2))  # 10 rows (classes) x 3 columns
  proc = run_main('sample', f'--workdir={tmp_path}', '--label=12')
  assert proc.returncode == 2 and 'label must be in [0, 10)' in proc.stderr


def test_began_hand_values_and_k_control():
  real_e, fake_e = jnp.array([0.2, 0.4]), jnp.array([0.1, 0.3])
  terms = losses.began(real_e, fake_e, k=0.5)
  np.testing.assert_allclose(terms.d_real, [0.2, 0.4])
  np.testing.assert_allclose(terms.d_fake, [-0.05, -0.15])
  np.testing.assert_allclose(terms.g, [0.1, 0.3])
  # k_{t+1} = clip(k_t + lambda_k (gamma L(x) - L(G(z))), 0, 1), by hand:
  # 0.5 + 0.1 (0.5 * 0.3 - 0.2) = 0.495; L(x) and L(G(z)) swapped would give 0.48.
  np.testing.assert_allclose(losses.began_k_update(0.5, 0.3, 0.2, 0.5, 0.1), 0.495, rtol=1e-6)
  # 0.2 + 0.01 (0.7 * 0.4 - 0.05) = 0.2023; a rise when G's energy is below gamma L(x).
  np.testing.assert_allclose(losses.began_k_update(0.2, 0.4, 0.05, 0.7, 0.01), 0.2023,
                             rtol=1e-6)
  # The clip acts only past the ends: 0.98 + 0.1 (1 * 0.5 - 0.2) = 1.01 -> 1; 0.02 - 0.03 -> 0.
  assert float(losses.began_k_update(0.98, 0.5, 0.2, 1.0, 0.1)) == 1.0
  assert float(losses.began_k_update(0.02, 0.1, 0.35, 0.5, 0.1)) == 0.0
  # M_global = L(x) + |gamma L(x) - L(G(z))| on both sides of the equilibrium.
  np.testing.assert_allclose(losses.began_convergence(0.3, 0.2, 0.5), 0.3 + 0.05, rtol=1e-6)
  np.testing.assert_allclose(losses.began_convergence(0.3, 0.1, 0.5), 0.3 + 0.05, rtol=1e-6)
  np.testing.assert_allclose(losses.began_convergence(0.4, 0.3, 0.75), 0.4 + 0.0, atol=1e-7)
  x = jnp.ones((2, 3, 3, 1))
  np.testing.assert_allclose(losses.reconstruction_energy(x, x * 0.5), [0.5, 0.5])


def test_began_k_follows_the_generator_steps_energy():
  """One train_step from k_t = 0.5: k_{t+1} uses L(G(z_G)) of the generator update (its loss),
  as in the paper, not the D update's L(G(z_D)); M_global likewise. Fails on the old code,
  which updated k inside the D update."""
  _, method = _method('began_mnist.py:smoke', **{'gan.began_lambda_k': 0.1,
                                                 'gan.began_gamma': 0.5, 'train.d_steps': 1})
  state = method.create_state(jax.random.PRNGKey(0)).replace(began_k=jnp.float32(0.5))
  new_state, m = jax.jit(method.train_step)(state, _batch(method))
  real_e, g_fake_e, d_fake_e = (float(m[k]) for k in ('d_loss_real', 'g_loss', 'd_fake_logit'))
  expected = 0.5 + 0.1 * (0.5 * real_e - g_fake_e)
  assert 0.0 < expected < 1.0  # the clip plays no part
  np.testing.assert_allclose(float(new_state.began_k), expected, rtol=1e-6)
  np.testing.assert_allclose(float(m['began_k']), expected, rtol=1e-6)
  np.testing.assert_allclose(float(m['began_m_global']),
                             real_e + abs(0.5 * real_e - g_fake_e), rtol=1e-6)
  with_d_noise = 0.5 + 0.1 * (0.5 * real_e - d_fake_e)
  assert abs(with_d_noise - expected) > 1e-5  # the test tells the two apart


def test_began_k_stays_in_the_unit_interval_during_training():
  # G starts at 0, the mean of the uniform noise batches: its samples are the easier to
  # reconstruct and the balance gamma L(x) - L(G(z)) starts positive.
  _, method = _method('began_mnist.py:paper,smoke', **{'gan.began_lambda_k': 5.0,
                                                       'model.began_g_init': 0.0})
  state = method.create_state(jax.random.PRNGKey(0))
  step = jax.jit(method.train_step)
  ks = []
  for i in range(6):
    state, metrics = step(state, _batch(method, seed=i))
    ks.append(float(metrics['began_k']))
    assert np.isfinite(float(metrics['began_m_global']))
  assert all(0.0 <= k <= 1.0 for k in ks), ks
  assert max(ks) > 0.0  # it moved off its initial 0 (and was clipped at 1 with this gain)


def test_began_learning_rate_staircase():
  """gan.began_lr_decay_steps = 4: the rate is multiplied by 0.5 after every 4 updates. With a
  constant gradient Adam's step is exactly the rate, so the updates show the staircase."""
  from genvision_jax.methods import gan  # pylint: disable=g-import-not-at-top
  np.testing.assert_allclose(gan.began_lr_factor(jnp.arange(10), every=4, factor=0.5),
                             [1, 1, 1, 1, .5, .5, .5, .5, .25, .25])
  _, method = _method('began_mnist.py:smoke', **{'gan.began_lr_decay_steps': 4,
                                                 'optim.g.learning_rate': 1e-3})
  params = {'w': jnp.zeros(())}
  opt_state = method.g_tx.init(params)
  steps = []
  for _ in range(9):
    updates, opt_state = method.g_tx.update({'w': jnp.ones(())}, opt_state, params)
    steps.append(-float(updates['w']))
  np.testing.assert_allclose(steps, [1e-3] * 4 + [5e-4] * 4 + [2.5e-4], rtol=1e-4)
  _, plain = _method('began_mnist.py:smoke', **{'gan.began_lr_decay_steps': 0,
                                                'optim.g.learning_rate': 1e-4})
  opt_state = plain.g_tx.init(params)
  for _ in range(5):
    updates, opt_state = plain.g_tx.update({'w': jnp.ones(())}, opt_state, params)
  np.testing.assert_allclose(-float(updates['w']), 1e-4, rtol=1e-4)  # no decay when 0


def test_began_paper_architecture_and_old_run_directories():
  """The paper's G has the shape of D's decoder and samples z ~ Uniform[-1, 1]; a run directory
  written before model.began_arch existed loads with the DCGAN-shaped autoencoder."""
  from genvision_jax import models  # pylint: disable=g-import-not-at-top
  config, method = _method('began_mnist.py:paper,smoke')
  assert isinstance(method.discriminator, models.began.PaperAutoencoder)
  state = method.create_state(jax.random.PRNGKey(0))
  shapes = lambda tree: jax.tree.map(jnp.shape, tree)
  assert shapes(state.g_params['decoder']) == shapes(state.d_params['decoder'])
  assert not jax.tree.leaves(state.g_batch_stats) and not jax.tree.leaves(state.d_batch_stats)
  z = method.latents(jax.random.PRNGKey(1), 4000)
  assert float(z.min()) >= -1.0 and float(z.max()) <= 1.0
  np.testing.assert_allclose(float(jnp.var(z)), 1 / 3, rtol=0.05)  # Uniform[-1, 1]
  old = config.to_dict()
  for key in ('began_arch', 'began_hidden', 'began_g_output'):
    del old['model'][key]
  for key in ('began_lr_decay_steps', 'began_lr_decay_factor', 'began_energy'):
    del old['gan'][key]
  old['model'].update(generator='dcgan', latent_dim=8)
  old_config = configs.from_dict(old)
  assert old_config.model.began_arch == 'dcgan' and old_config.gan.began_lr_decay_steps == 0
  assert old_config.model.began_g_output == 'tanh' and old_config.gan.began_energy == 'l1'
  old_method = methods.create(configs.validate(old_config), (28, 28, 1))
  assert type(old_method.discriminator) is models.began.AutoencoderDiscriminator
  assert not old_method.uniform_latents
  old_state = old_method.create_state(jax.random.PRNGKey(0))
  assert 'decoder' not in old_state.d_params  # the first autoencoder's own layer names
  with pytest.raises(configs.ConfigError, match='model.began_arch must be one of'):
    _method('began_mnist.py:smoke', **{'model.began_arch': 'resnet'})


def test_began_mnist_generator_starts_near_the_digits_mean():
  """began_mnist's G starts near the training digits' mean pixel (-0.738 in [-1, 1]), not at
  mid-grey 0: from 0 its samples stayed harder to reconstruct than gamma L(x) and k_t at 0 for
  900 steps (no adversarial signal). An old run directory keeps the zero start."""
  config, method = _method('began_mnist.py:paper')
  state = method.create_state(jax.random.PRNGKey(0))
  images = method.decode(state, method.latents(jax.random.PRNGKey(1), 16), use_ema=False)
  assert abs(float(jnp.mean(images)) - config.model.began_g_init) < 0.1
  assert config.model.began_g_init == pytest.approx(-0.74)
  old = config.to_dict()
  del old['model']['began_g_init']
  assert configs.from_dict(old).model.began_g_init == 0.0
  with pytest.raises(configs.ConfigError, match='began_g_init'):
    _method('began_mnist.py:paper,smoke', **{'model.began_g_init': 1.0})


def test_began_energies_by_hand():
  """L(v) per image for a residual of 0.5 at each of 9 pixels: 'l1' 0.5, 'mse' 0.25, 'l2'
  sqrt(9 * 0.25) = 1.5; a residual that differs per pixel tells 'l1' from 'l2' / 3."""
  x = jnp.ones((2, 3, 3, 1))
  np.testing.assert_allclose(losses.reconstruction_energy(x, x * 0.5, 'l1'), [0.5, 0.5])
  np.testing.assert_allclose(losses.reconstruction_energy(x, x * 0.5, 'mse'), [0.25, 0.25])
  np.testing.assert_allclose(losses.reconstruction_energy(x, x * 0.5, 'l2'), [1.5, 1.5],
                             rtol=1e-6)
  r = jnp.zeros((1, 2, 2, 1)).at[0, 0, 0, 0].set(-2.0)  # residuals 2, 0, 0, 0 against 0
  np.testing.assert_allclose(losses.reconstruction_energy(jnp.zeros_like(r), r, 'l1'), [0.5])
  np.testing.assert_allclose(losses.reconstruction_energy(jnp.zeros_like(r), r, 'mse'), [1.0])
  np.testing.assert_allclose(losses.reconstruction_energy(jnp.zeros_like(r), r, 'l2'), [2.0],
                             rtol=1e-6)
  with pytest.raises(configs.ConfigError, match='gan.began_energy must be one of'):
    _method('began_mnist.py:smoke', **{'gan.began_energy': 'l3'})


def test_began_mnist_uses_the_infogan_pair_and_uniform_noise():
  """began_mnist: the InfoGAN generator (FC 1024 first), the 'infogan' autoencoder with a
  32-d BatchNorm code, z ~ Uniform[-1, 1]^62, the per-image L2 energy; the energies the method
  trains on are those of losses.reconstruction_energy(x, AE(x), 'l2')."""
  from genvision_jax import models  # pylint: disable=g-import-not-at-top
  config, method = _method('began_mnist.py')
  assert isinstance(method.generator, models.began.InfoGANGenerator)
  assert isinstance(method.discriminator, models.began.InfoGANAutoencoder)
  state = method.create_state(jax.random.PRNGKey(0))
  assert state.g_params['Dense_0']['kernel'].shape == (62, 1024)
  assert state.d_params['Dense_0']['kernel'].shape[-1] == 32
  assert jax.tree.leaves(state.d_batch_stats)  # BatchNorm in the autoencoder
  z = method.latents(jax.random.PRNGKey(1), 1000)
  assert z.shape == (1000, 62) and float(z.min()) >= -1.0 and float(z.max()) <= 1.0
  x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (8, 28, 28, 1)), jnp.float32)
  energy, _ = method._discriminate_train(state.d_params, state.d_batch_stats, x)  # pylint: disable=protected-access
  recon = method.discriminator.apply({'params': state.d_params,
                                      'batch_stats': state.d_batch_stats}, x, train=True,
                                     mutable=['batch_stats'])[0]
  np.testing.assert_allclose(energy, jnp.sqrt(jnp.sum((x - recon)**2, axis=(1, 2, 3))),
                             rtol=1e-5)
  assert config.gan.began_lambda_k == pytest.approx(0.001 / 8)


def test_began_needs_its_autoencoder_discriminator():
  config = configs.load(str(REPO / 'experiments' / 'gan' / 'began_mnist.py'),
                        {'model.discriminator': 'dcgan'})
  with pytest.raises(configs.ConfigError, match='go together'):
    configs.validate(config)


@pytest.mark.parametrize('seed', range(4))
def test_sdgan_real_pairs_are_two_different_images_of_one_class(seed):
  """Never an image with itself, always one class; examples with a classmate keep their own
  pair, and their partner is uniform over the other members of the class."""
  from genvision_jax.methods import sdgan  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  labels = jnp.asarray(np.concatenate([[7], rng.integers(0, 5, 40)]))  # 7 is alone
  counts = np.zeros((41, 41))
  for k in range(200):
    first, second = map(np.asarray, sdgan.same_identity_pairs(labels, jax.random.PRNGKey(k)))
    assert np.all(first != second)
    np.testing.assert_array_equal(labels[first], labels[second])
    np.testing.assert_array_equal(first[1:], np.arange(1, 41))  # pairable: kept in place
    assert first[0] != 0  # the lone 7 is replaced, not paired with itself
    counts[first[1:], second[1:]] += 1
  # Example 1's partner: uniform over its m - 1 classmates (200 draws; loose bound).
  mates = np.flatnonzero((np.asarray(labels) == int(labels[1])) & (np.arange(41) != 1))
  assert set(np.flatnonzero(counts[1])) <= set(mates)
  if len(mates) > 1:
    expected = 200 / len(mates)
    assert np.all(np.abs(counts[1, mates] - expected) < 4 * np.sqrt(expected) + 2)


def test_sdgan_latents_are_uniform_and_share_the_identity_part():
  """z ~ U[-1, 1] (Donahue et al.): in [-1, 1], mean 0, variance 1/3 (N(0, 1): variance 1,
  values beyond 1). Pairs share z_I unless shared_identity=False; old run directories
  (no latent_distribution) load as 'normal', what they were trained with."""
  config = configs.load(str(REPO / 'experiments' / 'gan' / 'sdgan_mnist.py:smoke'))
  configs.validate(config)
  assert config.sdgan.latent_distribution == 'uniform'
  method = methods.create(config, (28, 28, 1), num_classes=10)
  k = method.identity_dim
  z = np.asarray(method.paired_latents(jax.random.PRNGKey(1), 2000))
  assert z.min() >= -1.0 and z.max() <= 1.0
  assert abs(z.mean()) < 0.02 and abs(z.var() - 1.0 / 3.0) < 0.02
  np.testing.assert_array_equal(z[:2000, :k], z[2000:, :k])
  assert not np.allclose(z[:2000, k:], z[2000:, k:])
  independent = np.asarray(method.paired_latents(jax.random.PRNGKey(1), 5, False))
  assert not np.allclose(independent[:5, :k], independent[5:, :k])
  images = method.generate(method.create_state(jax.random.PRNGKey(0)), jax.random.PRNGKey(2), 4)
  chex.assert_shape(images, (4, 28, 28, 1))
  old = config.to_dict()
  del old['sdgan']['latent_distribution']
  upgraded = configs.from_dict(old)
  assert upgraded.sdgan.latent_distribution == 'normal'
  z = np.asarray(methods.create(upgraded, (28, 28, 1), 10).paired_latents(
      jax.random.PRNGKey(1), 2000))
  assert abs(z.var() - 1.0) < 0.05
  with pytest.raises(configs.ConfigError, match='latent_distribution'):
    configs.validate(configs.load(str(REPO / 'experiments' / 'gan' / 'sdgan_mnist.py:smoke'),
                                  {'sdgan.latent_distribution': 'gaussian'}))


def test_sdgan_train_step_and_identity_rows():
  config = configs.load(str(REPO / 'experiments' / 'gan' / 'sdgan_mnist.py:smoke'))
  configs.validate(config)
  method = methods.create(config, (28, 28, 1), num_classes=10)
  state = method.create_state(jax.random.PRNGKey(0))
  batch = _batch(method)
  batch['label'] = jnp.tile(jnp.arange(16) % 10, (method.d_steps, 1))
  state, metrics = jax.jit(method.train_step)(state, batch)
  assert np.isfinite(float(metrics['d_loss'])) and int(state.d_updates) == method.d_steps
  # D's real pairs are two different images of one class (image i is filled with i; labels
  # 0-5 occur twice, 6-9 once).
  labels = jnp.arange(16) % 10
  real = jnp.broadcast_to(jnp.arange(16.0)[:, None, None, None], (16, 28, 28, 1))
  pairs, _ = method.d_inputs(state, real, labels, jax.random.PRNGKey(3))
  a, b = (np.asarray(pairs[:, 0, 0, c]).astype(int) for c in (0, 1))
  assert np.all(a != b) and np.all(np.asarray(labels)[a] == np.asarray(labels)[b])
  with pytest.raises(ValueError, match='must exceed'):
    methods.create(configs.load(str(REPO / 'experiments' / 'gan' / 'sdgan_mnist.py:smoke'),
                                {'train.batch_size': 10}), (28, 28, 1), num_classes=10)
  # D judges pairs: 2 channels for grey digits.
  assert method.d_input_shape == (28, 28, 2)
  images = method.generate(state, jax.random.PRNGKey(2), 16)
  chex.assert_shape(images, (16, 28, 28, 1))
