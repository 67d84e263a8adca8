"""pix2pix's U-Net generator (models/pix2pix.py): skip-connection shapes by hand, dropout as
its noise at test time, output range."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genvision_jax.models import pix2pix


@pytest.mark.parametrize('size, depth', [(28, 2), (32, 5), (64, 6), (256, 8)])
def test_default_depth_halves_the_image_evenly(size, depth):
  assert pix2pix.default_depth(size) == depth


def test_unet_layers_and_skip_connections_have_the_papers_shapes():
  """Width 4, 32 px, depth 5: encoder 4, 8, 16, 32, 32 channels (16, 8, 4, 2, 1 px); each
  decoder layer takes the previous output concatenated with the encoder's of its size."""
  g = pix2pix.UNetGenerator(channels=3, width=4)
  x = jnp.zeros((2, 32, 32, 4))
  variables = jax.eval_shape(lambda: g.init({'params': jax.random.key(0),
                                            'dropout': jax.random.key(1)}, x))
  kernels = {name: p['kernel'].shape for name, p in variables['params'].items()
             if 'kernel' in p}
  chex.assert_equal(kernels, {
      'Conv_0': (4, 4, 4, 4), 'Conv_1': (4, 4, 4, 8), 'Conv_2': (4, 4, 8, 16),
      'Conv_3': (4, 4, 16, 32), 'Conv_4': (4, 4, 32, 32),
      'UpConv2x_0': (4, 4, 32, 32), 'UpConv2x_1': (4, 4, 32 + 32, 16),
      'UpConv2x_2': (4, 4, 16 + 16, 8), 'UpConv2x_3': (4, 4, 8 + 8, 4),
      'UpConv2x_4': (4, 4, 4 + 4, 3)})
  _, inter = g.apply(jax.tree.map(jnp.zeros_like, variables), x, train=False, stochastic=False,
                     capture_intermediates=True)
  sizes = {name: v['__call__'][0].shape[1] for name, v in inter['intermediates'].items()
           if name.startswith(('Conv', 'UpConv'))}
  assert [sizes[f'Conv_{i}'] for i in range(5)] == [16, 8, 4, 2, 1]
  assert [sizes[f'UpConv2x_{i}'] for i in range(5)] == [2, 4, 8, 16, 32]


def test_dropout_is_the_noise_at_test_time_and_the_output_is_in_range():
  g = pix2pix.UNetGenerator(channels=1, width=4)
  x = jax.random.uniform(jax.random.key(0), (2, 28, 28, 2), minval=-1)
  variables = g.init({'params': jax.random.key(1), 'dropout': jax.random.key(2)}, x)
  sample = lambda k: g.apply(variables, x, train=False, rngs={'dropout': jax.random.key(k)})
  a, b = sample(3), sample(4)
  assert a.shape == (2, 28, 28, 1)
  assert not np.allclose(a, b)  # two samples for one input
  np.testing.assert_array_equal(a, sample(3))
  assert float(jnp.max(jnp.abs(a))) <= 1.0
  mean_field = g.apply(variables, x, train=False, stochastic=False)
  np.testing.assert_array_equal(mean_field, g.apply(variables, x, train=False, stochastic=False))
  with pytest.raises(ValueError, match='halves the 30 px input unevenly'):
    pix2pix.UNetGenerator(depth=2).init({'params': jax.random.key(0)}, jnp.zeros((1, 30, 30, 1)),
                                        stochastic=False)


# -- the method --------------------------------------------------------------------------------

from genvision_jax import configs, methods  # noqa: E402  pylint: disable=g-import-not-at-top
from tests.conftest import REPO  # noqa: E402  pylint: disable=g-import-not-at-top


def _method(variant='smoke', **overrides):
  config = configs.load(str(REPO / 'experiments' / 'i2i' / f'pix2pix_mnist.py:{variant}'),
                        overrides)
  configs.validate(config)
  return config, methods.create(config, (32, 32, 1))


def _digits(n=8, seed=0):
  return jax.random.uniform(jax.random.key(seed), (n, 32, 32, 1), minval=-1.0)


def test_the_discriminator_sees_the_input():
  """For a fixed output, D's logits change with the input it is paired with."""
  _, m = _method()
  state = m.create_state(jax.random.key(0))
  y = _digits(2)
  x1 = m.pairs(y, jax.random.key(1))['input']
  x2 = m.pairs(_digits(2, seed=5), jax.random.key(1))['input']
  d = lambda x: m.discriminator.apply({'params': state.d_params,
                                       'batch_stats': state.d_batch_stats},
                                      m._pair(x, y), train=False)  # pylint: disable=protected-access
  assert not np.allclose(d(x1), d(x2))


def test_generator_loss_is_the_weighted_sum_of_its_terms():
  """g_loss = gan_weight * adversarial + l1_weight * L1, and L1-only trains no D."""
  _, m = _method(**{'pix2pix.l1_weight': 7.0, 'pix2pix.gan_weight': 0.5})
  state = m.create_state(jax.random.key(0))
  new, metrics = jax.jit(m.train_step)(state, {'image': _digits()})
  np.testing.assert_allclose(metrics['g_loss'],
                             0.5 * metrics['g_adversarial'] + 7.0 * metrics['l1'], rtol=1e-5)
  assert int(new.step) == 1
  _, l1_only = _method('l1,smoke')
  state = l1_only.create_state(jax.random.key(0))
  new, metrics = jax.jit(l1_only.train_step)(state, {'image': _digits()})
  assert 'd_loss' not in metrics and 'g_adversarial' not in metrics
  np.testing.assert_allclose(metrics['g_loss'], 100.0 * metrics['l1'], rtol=1e-6)
  chex.assert_trees_all_equal(new.d_params, state.d_params)  # D untouched


def test_l1_descends_on_one_batch_and_the_grid_shows_input_output_target():
  _, m = _method('inpainting,l1,smoke', **{'optim.g.learning_rate': 1e-2})
  state = m.create_state(jax.random.key(0))
  step = jax.jit(m.train_step)
  batch = {'image': _digits()}
  first = None
  for _ in range(25):
    state, metrics = step(state, batch)
    first = float(metrics['l1']) if first is None else first
  assert float(metrics['l1']) < 0.8 * first
  images = _digits(4)
  fn, cols = m.grid_from_data(images, 6)
  grid = fn(state, jax.random.key(2))
  assert cols == 3 and grid.shape == (6, 32, 32, 1)
  pair = m.pairs(images[:2], jax.random.key(0))
  np.testing.assert_array_equal(grid[2::3], images[:2])  # targets
  np.testing.assert_array_equal(grid[0::3], pair['input'][..., :1])  # inputs with their holes


def test_pix2pix_config_errors_name_the_field():
  with pytest.raises(configs.ConfigError) as e:
    _method(**{'pix2pix.loss': 'began', 'task.upsample_input': False, 'model.depth': 3,
               'data.image_size': 28})
  message = str(e.value)
  assert "pix2pix.loss must be one of" in message
  assert 'task.upsample_input=True' in message
  assert 'model.depth=3 halves data.image_size=28 unevenly' in message
  with pytest.raises(configs.ConfigError, match='both 0: nothing to train'):
    _method(**{'pix2pix.gan_weight': 0.0, 'pix2pix.l1_weight': 0.0})
