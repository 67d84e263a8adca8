"""Progressive growing: the fade-in ends equal the lower and higher resolution paths, the
schedule, one compile per stage, and a resume in the middle of a fade-in."""

import collections
import itertools
import json

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genvision_jax import configs, methods, training
from genvision_jax.models import progan
from tests.conftest import REPO

SMOKE = str(REPO / 'experiments' / 'gan' / 'progan_mnist.py:smoke')


def _nets(image_size=32):
  g = progan.Generator(image_size=image_size, channels=1, width=4, max_width=16)
  d = progan.Discriminator(image_size=image_size, width=4, max_width=16)
  z = jax.random.normal(jax.random.PRNGKey(0), (4, 8))
  g_params = g.init(jax.random.PRNGKey(1), z)['params']
  x = jax.random.uniform(jax.random.PRNGKey(2), (4, image_size, image_size, 1), minval=-1)
  d_params = d.init(jax.random.PRNGKey(3), x)['params']
  return g, g_params, d, d_params, z, x


def test_every_stage_has_its_parameters_from_the_start():
  g, g_params, d, d_params, *_ = _nets()
  assert progan.num_stages(32) == 4
  assert [progan.stage_resolution(32, s) for s in range(4)] == [4, 8, 16, 32]
  assert {f'to_rgb_{s}' for s in range(4)} <= set(g_params)
  assert {f'from_rgb_{s}' for s in range(4)} <= set(d_params)
  # Initializing at a low stage creates the same tree as at the final one.
  low = g.init(jax.random.PRNGKey(1), jnp.zeros((1, 8)), stage=1)['params']
  assert jax.tree.structure(low) == jax.tree.structure(g_params)
  chex.assert_trees_all_equal_shapes(low, g_params)


@pytest.mark.parametrize('stage', [1, 2, 3])
def test_generator_fade_in_ends(stage):
  """alpha = 0: the previous stage's image, upsampled; alpha = 1: the new stage alone."""
  g, params, _, _, z, _ = _nets()
  apply = lambda **kw: g.apply({'params': params}, z, **kw)
  res = progan.stage_resolution(32, stage)
  low = apply(stage=stage - 1)
  chex.assert_shape(low, (4, res // 2, res // 2, 1))
  np.testing.assert_array_equal(apply(stage=stage, alpha=0.0), progan.upsample2x(low))
  high = apply(stage=stage)
  chex.assert_shape(high, (4, res, res, 1))
  np.testing.assert_array_equal(apply(stage=stage, alpha=1.0), high)
  mid = apply(stage=stage, alpha=0.25)
  np.testing.assert_allclose(mid, 0.75 * progan.upsample2x(low) + 0.25 * high, atol=1e-5)
  assert not np.allclose(high, progan.upsample2x(low), atol=1e-3)  # the stages really differ


@pytest.mark.parametrize('stage', [1, 2, 3])
def test_discriminator_fade_in_ends(stage):
  """alpha = 0: the previous stage's D on the average-pooled image; alpha = 1: the new one."""
  *_, d, params, _, x = _nets()
  x = progan.downsample(x, 2**(3 - stage))
  apply = lambda images, **kw: d.apply({'params': params}, images, **kw)
  np.testing.assert_array_equal(apply(x, stage=stage, alpha=0.0),
                                apply(progan.downsample(x), stage=stage - 1))
  np.testing.assert_array_equal(apply(x, stage=stage, alpha=1.0), apply(x, stage=stage))
  assert not np.allclose(apply(x, stage=stage), apply(progan.downsample(x), stage=stage - 1))


def test_minibatch_stddev_feature():
  x = jnp.arange(2 * 1 * 1 * 3, dtype=jnp.float32).reshape(2, 1, 1, 3)  # rows 0..2 and 3..5
  y = progan.minibatch_stddev(x, group_size=2)
  chex.assert_shape(y, (2, 1, 1, 4))
  np.testing.assert_allclose(y[..., 3], 1.5, rtol=1e-5)  # std of (a, a + 3) is 1.5 for all a


def _method(image_size=32, **overrides):
  config = configs.load(SMOKE, overrides)
  return config, methods.create(config, (image_size, image_size, 1))


def test_schedule_host_and_device_agree():
  _, m = _method(**{'progan.stable_steps': 3, 'progan.fade_steps': 2})
  # stage 0: steps 0-2; stage 1: fade 3-4, stable 5-7; stage 2: fade 8-9, stable 10-12; ...
  expected = {0: (0, 1.0), 2: (0, 1.0), 3: (1, 0.5), 4: (1, 1.0), 7: (1, 1.0), 8: (2, 0.5),
              13: (3, 0.5), 14: (3, 1.0), 100: (3, 1.0)}
  for step, (stage, alpha) in expected.items():
    s, a = m.stage_alpha(step)
    assert (int(s), float(a)) == (stage, alpha), step
    assert m.phase(step) == stage, step
  assert [m.phase_end(s) for s in (0, 2, 3, 7, 8, 13, 50)] == [3, 3, 8, 8, 13, None, None]
  assert m.schedule_length() == 3 + 3 * 5


def test_switch_step_equals_the_stage_step():
  """`train_step` (all stages in one function) and the loop's per-stage step agree."""
  config, m = _method(16, **{'progan.stable_steps': 1, 'progan.fade_steps': 2,
                             'gan.penalty': 'none'})  # (penalty: faster compile)
  state = m.create_state(jax.random.PRNGKey(0)).replace(step=jnp.int32(1))  # stage 1, fading
  images = jax.random.uniform(jax.random.PRNGKey(1), (config.train.d_steps, 8, 16, 16, 1),
                              minval=-1)
  batch = {'image': images, 'label': jnp.zeros(images.shape[:2], jnp.int32)}
  a, metrics = jax.jit(m.train_step)(state, batch)
  b, _ = jax.jit(m.train_step_for(1))(state, batch)
  assert float(metrics['alpha']) == 0.5 and float(metrics['resolution']) == 8.0
  chex.assert_trees_all_close(a, b, rtol=1e-5, atol=1e-6)


_TRACES = []  # (method instance serial, stage) per trace of a stage's step
_INSTANCES = itertools.count()


class _CountStageTraces(methods.ProGANMethod):
  """Records every trace of a stage's step. Instances are told apart by a serial number, not
  by id(): a collected method object's id can be reused by the next run's."""

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self.serial = next(_INSTANCES)

  def train_step_for(self, stage):
    inner = super().train_step_for(stage)

    def counted(state, batch):
      _TRACES.append((self.serial, stage))
      return inner(state, batch)
    return counted


def test_one_compile_per_stage_and_bit_exact_resume_mid_fade(tmp_path, monkeypatch):
  """7 steps straight == 3 steps (stopping inside stage 1's fade-in) + a restart + 4 more;
  each stage's step traced once per run."""
  _TRACES.clear()
  monkeypatch.setitem(methods.METHODS, 'progan_counted', _CountStageTraces)

  def config(num_steps):
    c = configs.load(SMOKE, {'progan.stable_steps': 2, 'progan.fade_steps': 3,
                             'train.num_steps': num_steps, 'train.checkpoint_every': 3,
                             'train.sample_every': 100, 'gan.penalty': 'none'})
    with c.unlocked():
      c.method = 'progan_counted'
    return c

  straight = training.train_and_evaluate(config(7), str(tmp_path / 'straight'), verbose=False)
  first = training.train_and_evaluate(config(3), str(tmp_path / 'resumed'), verbose=False)
  assert first.step == 3
  resumed = training.train_and_evaluate(config(7), str(tmp_path / 'resumed'), verbose=False)
  for x, y in zip(jax.tree.leaves(jax.device_get(straight.state)),
                  jax.tree.leaves(jax.device_get(resumed.state))):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  # Three runs (3 method objects): stages 0 and 1, stages 0 and 1, stage 1 only.
  assert sorted(collections.Counter(_TRACES).values()) == [1] * 5
  assert sorted(stage for _, stage in _TRACES) == [0, 0, 1, 1, 1]
  records = [json.loads(line) for line in open(tmp_path / 'straight' / 'metrics.jsonl')]
  assert [r['resolution'] for r in records] == [4.0, 8.0, 8.0, 8.0]  # steps 2, 4, 6, 7


def test_drift_term_eps_drift_times_mean_squared_real_output():
  """Karras et al.'s drift term: D's loss gains eps_drift * E[D(x)^2] over the real images.
  Checked by hand at stage 0: D(x) is computed here on the real minibatch at 4 px; with plain
  SGD (rate lr) D's parameters after one step differ from a drift-free step by exactly
  -lr * eps_drift * grad_theta E[D(x)^2], and d_loss by eps_drift * E[D(x)^2]."""
  eps, lr = 0.5, 1.0  # large, so the difference stands far above float32 rounding
  sgd = {'optim.d.name': 'sgd', 'optim.d.learning_rate': lr, 'optim.d.b1': 0.0,
         'gan.penalty': 'none', 'train.d_steps': 1}
  assert configs.load(SMOKE).progan.drift == 0.001  # the paper's eps_drift by default
  _, with_drift = _method(8, **sgd, **{'progan.drift': eps})
  _, without = _method(8, **sgd, **{'progan.drift': 0.0})
  state = with_drift.create_state(jax.random.PRNGKey(0))
  images = jax.random.uniform(jax.random.PRNGKey(1), (1, 8, 8, 8, 1), minval=-1)
  batch = {'image': images, 'label': jnp.zeros((1, 8), jnp.int32)}
  a, metrics_a = jax.jit(with_drift.train_step_for(0))(state, batch)
  b, metrics_b = jax.jit(without.train_step_for(0))(state, batch)

  real = with_drift.real_at_stage(images[0], 0, 1.0)   # the 4 px real images
  def mean_squared_output(d_params):
    out = with_drift.discriminator.apply({'params': d_params}, real, None, train=True, stage=0,
                                         alpha=None)
    return jnp.mean(out**2)
  drift, grad = jax.value_and_grad(mean_squared_output)(state.d_params)
  np.testing.assert_allclose(metrics_a['d_drift'], drift, rtol=1e-5)
  np.testing.assert_allclose(metrics_a['d_loss'] - metrics_b['d_loss'], eps * drift, rtol=1e-4)
  expected = jax.tree.map(lambda p, g: p - lr * eps * g, b.d_params, grad)
  chex.assert_trees_all_close(a.d_params, expected, rtol=1e-4, atol=1e-5)
  assert 'd_drift' not in metrics_b
  # Run directories written before the term existed train without it.
  old = configs.load(SMOKE).to_dict()
  del old['progan']['drift']
  assert configs.from_dict(old).progan.drift == 0.0
  with pytest.raises(configs.ConfigError, match='progan.drift'):
    configs.validate(configs.load(SMOKE, {'progan.drift': -1.0}))
