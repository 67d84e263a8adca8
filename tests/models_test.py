"""Shapes of every architecture, with chex."""

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genvision_jax import models
from genvision_jax.models import layers


@pytest.mark.parametrize('size,plan', [(28, (2, 7)), (32, (3, 4)), (64, (4, 4))])
def test_upsampling_plan(size, plan):
  assert layers.upsampling_plan(size) == plan


def test_upsampling_plan_rejects_odd_sizes():
  with pytest.raises(ValueError):
    layers.upsampling_plan(27)


@pytest.mark.parametrize('size,channels', [(28, 1), (32, 3), (64, 3)])
def test_dcgan_shapes(size, channels):
  g = models.DCGANGenerator(image_size=size, channels=channels, width=8)
  d = models.DCGANDiscriminator(image_size=size, width=8)
  z = jnp.ones((3, 10))
  g_vars = g.init(jax.random.PRNGKey(0), z, train=False)
  images, _ = g.apply(g_vars, z, train=True, mutable=['batch_stats'])
  chex.assert_shape(images, (3, size, size, channels))
  assert float(jnp.max(jnp.abs(images))) <= 1.0  # tanh output
  d_vars = d.init(jax.random.PRNGKey(1), images, train=False)
  logits, _ = d.apply(d_vars, images, train=True, mutable=['batch_stats'])
  chex.assert_shape(logits, (3,))


def test_dcgan_width_sets_channels():
  g = models.DCGANGenerator(image_size=32, channels=3, width=8)
  params = g.init(jax.random.PRNGKey(0), jnp.ones((1, 4)), train=False)['params']
  # 32 px: 3 stages, base 4x4; dense to 4*4*(8*4) features, then 16, 8, then 3 channels.
  chex.assert_shape(params['Dense_0']['kernel'], (4, 4 * 4 * 32))
  chex.assert_shape(params['UpConv2x_0']['kernel'], (4, 4, 32, 16))
  chex.assert_shape(params['UpConv2x_2']['kernel'], (4, 4, 8, 3))


def test_discriminator_without_batchnorm_has_no_state():
  d = models.DCGANDiscriminator(image_size=28, width=4, norm='none')
  variables = d.init(jax.random.PRNGKey(0), jnp.ones((2, 28, 28, 1)), train=False)
  assert 'batch_stats' not in variables


@pytest.mark.parametrize('architecture', ['conv', 'mlp'])
@pytest.mark.parametrize('likelihood', ['bernoulli', 'gaussian'])
@pytest.mark.parametrize('size,channels', [(28, 1), (32, 3)])
def test_vae_shapes(architecture, likelihood, size, channels):
  vae = models.VAE(image_size=size, channels=channels, latent_dim=5, architecture=architecture,
                   width=4, hidden=16, likelihood=likelihood)
  x, z = jnp.zeros((2, size, size, channels)), jnp.zeros((2, 5))
  params = vae.init(jax.random.PRNGKey(0), x, z)
  mean, logvar = vae.apply(params, x, method=models.VAE.encode)
  chex.assert_shape([mean, logvar], (2, 5))
  out = vae.apply(params, z, method=models.VAE.decode)
  if likelihood == 'bernoulli':
    assert set(out) == {'logits'}
  else:
    assert set(out) == {'mean', 'logvar'}
  for v in out.values():
    chex.assert_shape(v, (2, size, size, channels))


@pytest.mark.parametrize('impl', ['xla', 'gemm', 'split', 'auto'])
@pytest.mark.parametrize('shape,features,use_bias', [((2, 7, 7, 8), 4, False),
                                                    ((1, 4, 5, 3), 6, True),
                                                    ((2, 3, 3, 5), 32, False)])
def test_upconv2x_equals_the_strided_transposed_convolution(shape, features, use_bias, impl):
  """Same parameters, same outputs and same gradients as nn.ConvTranspose(4x4, stride 2,
  'SAME'), by sub-pixel convolution ('xla', 'split') and by phase matrix products ('gemm'); a
  kernel tap out of place would break this."""
  x = jax.random.normal(jax.random.PRNGKey(0), shape)
  reference = nn.ConvTranspose(features, (4, 4), strides=(2, 2), padding='SAME',
                               use_bias=use_bias)
  fast = layers.UpConv2x(features, use_bias=use_bias, impl=impl)
  params = reference.init(jax.random.PRNGKey(1), x)
  if use_bias:
    params = jax.tree.map(lambda p: p + 0.1, params)
  chex.assert_trees_all_equal_shapes(params, fast.init(jax.random.PRNGKey(1), x))
  y_ref, y_fast = reference.apply(params, x), fast.apply(params, x)
  chex.assert_shape(y_fast, (shape[0], 2 * shape[1], 2 * shape[2], features))
  chex.assert_trees_all_close(y_fast, y_ref, atol=1e-5)

  def loss(module):
    return lambda p, x: jnp.sum(jnp.sin(module.apply(p, x)))
  g_ref = jax.grad(loss(reference), argnums=(0, 1))(params, x)
  g_fast = jax.grad(loss(fast), argnums=(0, 1))(params, x)
  chex.assert_trees_all_close(g_fast, g_ref, atol=1e-4)


@pytest.mark.parametrize('shape,kernel,stride', [((2, 9, 9, 3), 4, 2), ((2, 8, 8, 5), 4, 2),
                                                 ((1, 7, 6, 4), 3, 1), ((2, 5, 5, 2), 3, 2),
                                                 ((1, 6, 6, 3), 1, 1)])
def test_conv2d_implementations_equal_xla_convolution(shape, kernel, stride):
  """conv2d by XLA's convolution, by the loop-safe custom VJP, by im2col matrix products and
  'split' (kernel gradient as per-tap products): the same values and gradients as lax's 'SAME'
  convolution, odd sizes and strides included."""
  x = jax.random.normal(jax.random.PRNGKey(0), shape)
  w = jax.random.normal(jax.random.PRNGKey(1), (kernel, kernel, shape[-1], 6))

  def reference(x, w):
    return jax.lax.conv_general_dilated(x, w, (stride, stride), 'SAME',
                                        dimension_numbers=('NHWC', 'HWIO', 'NHWC'))

  candidates = {
      'xla': lambda x, w: layers.conv2d(x, w, stride, impl='xla'),
      'gemm': lambda x, w: layers.conv2d(x, w, stride, impl='gemm'),
      'split': lambda x, w: layers.conv2d(x, w, stride, impl='split'),
      'loop_safe': lambda x, w: layers.conv2d_loop_safe(x, w, stride),
  }
  y_ref = reference(x, w)
  g_ref = jax.grad(lambda x, w: jnp.sum(jnp.sin(reference(x, w))), argnums=(0, 1))(x, w)
  for name, conv in candidates.items():
    y = conv(x, w)
    chex.assert_trees_all_close(y, y_ref, atol=1e-4, custom_message=name)
    g = jax.grad(lambda x, w: jnp.sum(jnp.sin(conv(x, w))), argnums=(0, 1))(x, w)
    chex.assert_trees_all_close(g, g_ref, atol=1e-4, custom_message=name)


def test_convolution_form_choice():
  cpu = lambda form: form if jax.default_backend() == 'cpu' else 'xla'
  assert layers.conv_form(64, 128) == cpu('gemm')     # wide output: matrix product on CPU
  assert layers.conv_form(1, 16) == cpu('gemm')       # image input
  assert layers.conv_form(48, 16, 1) == cpu('gemm')   # 1x1: a plain matrix product
  assert layers.conv_form(48, 16) == cpu('split')     # 16-31 outputs: products for dw only
  assert layers.conv_form(64, 4) == 'xla'             # thin output: XLA's convolution
  assert layers.conv_form(4, 8) == 'xla'              # tiny layer (compiles faster)
  assert layers.conv_form(64, 4, impl='gemm') == 'gemm'
  assert layers.conv_form(1, 64, impl='xla') == 'xla'
  with layers.convolution_implementation('split'):
    assert layers.conv_form(4, 8) == 'split' and layers.conv_form(4, 8, impl='xla') == 'xla'
  with layers.convolution_implementation('xla'):
    assert layers.conv_form(64, 128) == 'xla'
  with pytest.raises(ValueError, match='unknown convolution implementation'):
    layers.conv_form(1, 1, impl='im2col')


def test_depth_to_space_order():
  x = jnp.arange(2 * 2 * 4).reshape(1, 2, 2, 4)  # channel c = (row phase, col phase)
  y = layers.depth_to_space(x, 2)
  chex.assert_shape(y, (1, 4, 4, 1))
  # Output pixel (2i + p, 2j + q) is channel 2p + q of input pixel (i, j).
  assert int(y[0, 0, 1, 0]) == int(x[0, 0, 0, 1])
  assert int(y[0, 1, 0, 0]) == int(x[0, 0, 0, 2])
  assert int(y[0, 3, 2, 0]) == int(x[0, 1, 1, 2])


@pytest.mark.parametrize('size,n_layers', [(28, 2), (32, 3), (64, 3)])
def test_patchgan_shapes(size, n_layers):
  d = models.PatchDiscriminator(image_size=size, width=4, layers=n_layers)
  x = jnp.zeros((2, size, size, 3))
  variables = d.init(jax.random.PRNGKey(0), x, train=False)
  logits, _ = d.apply(variables, x, train=True, mutable=['batch_stats'])
  chex.assert_shape(logits, (2, size // 2**n_layers, size // 2**n_layers))


@pytest.mark.parametrize('n_layers,patch', [(1, 16), (2, 34), (3, 70)])
def test_patchgan_receptive_field_is_measured_exactly(n_layers, patch):
  """The input rows and columns that one central patch logit depends on (non-zero gradient)
  form a patch x patch square: 16, 34, 70 for 1, 2, 3 stride-2 layers, pix2pix's
  NLayerDiscriminator (70 x 70 at n_layers=3). Computed by hand: from the logit back through
  the two stride-1 4x4 convolutions r = 1 + 3 + 3 = 7, then r <- 2 (r - 1) + 4 per stride-2
  layer: 16, 34, 70. The image (160 px) keeps the central patch clear of the zero padding;
  no normalization, so only convolutions couple pixels (train-mode BatchNorm would couple
  them all)."""
  from genvision_jax.models import patchgan  # pylint: disable=g-import-not-at-top
  size = 160
  d = models.PatchDiscriminator(image_size=size, width=4, layers=n_layers, norm='none')
  x = jax.random.normal(jax.random.PRNGKey(1), (1, size, size, 2))
  variables = d.init(jax.random.PRNGKey(0), x, train=False)
  h = size // 2**n_layers
  g = jax.grad(lambda x: d.apply(variables, x, train=False)[0, h // 2, h // 2])(x)
  g = np.abs(np.asarray(g[0])).sum(axis=-1)
  rows, cols = np.nonzero(g.sum(axis=1))[0], np.nonzero(g.sum(axis=0))[0]
  assert rows.min() > 0 and cols.min() > 0 and rows.max() < size - 1 and cols.max() < size - 1
  # Contiguous and exactly `patch` wide in both directions.
  np.testing.assert_array_equal(rows, np.arange(rows.min(), rows.min() + patch))
  np.testing.assert_array_equal(cols, np.arange(cols.min(), cols.min() + patch))
  assert patchgan.receptive_field(n_layers) == patch


def test_spectral_norm_discriminator_keeps_its_state_in_batch_stats():
  d = models.DCGANDiscriminator(image_size=28, width=4, norm='none', spectral_norm=True)
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 28, 28, 1))
  variables = d.init(jax.random.PRNGKey(1), x, train=False)
  assert 'batch_stats' in variables  # the power-iteration vectors
  _, updated = d.apply(variables, x, train=True, mutable=['batch_stats'])
  leaves_before = jax.tree.leaves(variables['batch_stats'])
  leaves_after = jax.tree.leaves(updated['batch_stats'])
  assert any(not np.allclose(a, b) for a, b in zip(leaves_before, leaves_after))


@pytest.mark.parametrize('size,channels,scales', [(28, 1, 3), (32, 3, 4)])
def test_began_paper_autoencoder_and_generator(size, channels, scales):
  """Berthelot et al. section 3.3: a 3x3 conv (n), then per scale a pair of 3x3 convs with
  n, 2n, 3n, ... filters and a stride-2 3x3 conv down between scales, a Dense to h; the decoder
  and G: Dense to n planes at the lowest scale, a pair of 3x3 convs (n) per scale, nearest-
  neighbour upsampling, a 3x3 conv to the channels. No normalization, no batch statistics."""
  n, h = 4, 6
  ae = models.began.PaperAutoencoder(image_size=size, width=n, hidden=h)
  x = jax.random.uniform(jax.random.PRNGKey(0), (2, size, size, channels), minval=-1)
  variables = ae.init(jax.random.PRNGKey(1), x)
  assert set(variables) == {'params'}
  chex.assert_shape(ae.apply(variables, x), (2, size, size, channels))
  enc = variables['params']['encoder']
  convs = [enc[f'Conv_{i}']['kernel'].shape for i in range(len(enc) - 1)]
  expected = [(3, 3, channels, n)]
  for scale in range(1, scales + 1):
    expected += [(3, 3, expected[-1][-1], scale * n), (3, 3, scale * n, scale * n)]
    if scale < scales:
      expected.append((3, 3, scale * n, (scale + 1) * n))
  assert convs == expected
  base = size // 2**(scales - 1)
  assert enc['Dense_0']['kernel'].shape == (base * base * scales * n, h)
  dec = variables['params']['decoder']
  assert dec['Dense_0']['kernel'].shape == (h, base * base * n)
  assert [dec[f'Conv_{i}']['kernel'].shape for i in range(2 * scales + 1)] == (
      [(3, 3, n, n)] * (2 * scales) + [(3, 3, n, channels)])
  g = models.GENERATORS['began'](image_size=size, channels=channels, width=n)
  z = jax.random.uniform(jax.random.PRNGKey(2), (5, h), minval=-1)
  g_vars = g.init(jax.random.PRNGKey(3), z)
  assert jax.tree.map(jnp.shape, g_vars['params']['decoder']) == jax.tree.map(jnp.shape, dec)
  raw = g.apply(g_vars, z * 50)  # training: the paper's linear output
  samples = g.apply(g_vars, z * 50, train=False)  # samples: clipped to [-1, 1]
  chex.assert_shape(samples, (5, size, size, channels))
  assert float(jnp.max(jnp.abs(raw))) > 1.0
  np.testing.assert_array_equal(samples, jnp.clip(raw, -1, 1))
  tanh_g = models.GENERATORS['began'](image_size=size, channels=channels, width=n, output='tanh')
  np.testing.assert_allclose(tanh_g.apply(g_vars, z), jnp.tanh(g.apply(g_vars, z)), atol=1e-6)


def test_began_generator_starts_at_its_init_value():
  """model.began_g_init: the bias of G's last convolution starts at the value (linear output)
  or at its arctanh (tanh), so that G's output with the other weights at zero is that value."""
  z = jax.random.uniform(jax.random.PRNGKey(0), (3, 6), minval=-1)
  for output, bias in (('linear', -0.74), ('tanh', np.arctanh(-0.74))):
    g = models.GENERATORS['began'](image_size=28, channels=1, width=4, output=output,
                                   init_value=-0.74)
    params = g.init(jax.random.PRNGKey(1), z)['params']
    last = params['decoder'][f'Conv_{6}']
    np.testing.assert_allclose(last['bias'], [bias], rtol=1e-6)
    params['decoder']['Conv_6'] = dict(last, kernel=jnp.zeros_like(last['kernel']))
    np.testing.assert_allclose(g.apply({'params': params}, z), -0.74, rtol=1e-6)
  default = models.GENERATORS['began'](image_size=28, channels=1, width=4)
  assert float(default.init(jax.random.PRNGKey(1), z)['params']['decoder']['Conv_6']['bias'][0]) == 0


def test_nearest_neighbour_upsampling():
  x = jnp.arange(4.0).reshape(1, 2, 2, 1)
  np.testing.assert_array_equal(models.began.upsample_nearest(x)[0, :, :, 0],
                                [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]])
  np.testing.assert_array_equal(
      models.began.upsample_nearest(x),
      jax.image.resize(x, (1, 4, 4, 1), 'nearest'))  # jax's own nearest resize agrees
