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
