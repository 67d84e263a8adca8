"""HiDDeN: network shapes, the bounded residual, the warm-up curriculum, the noise layers'
identities and straight-through gradients, the loss falling on a fixed batch, and a small model
trained without attacks reading back every bit of its key (bit accuracy 1.0)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genvision_jax import attacks, configs, methods
from genvision_jax.models import watermark
from tests.conftest import experiment


def _method(**overrides):
  config = configs.load(experiment('provenance/hidden_mnist.py:smoke'), overrides)
  configs.validate(config)
  return methods.create(config, (28, 28, 1))


def _digits(n, seed=0):
  rng = np.random.default_rng(seed)
  x = -np.ones((n, 28, 28, 1), np.float32)
  for i in range(n):  # a bright random box per image: ink on black like the digits
    t, l = rng.integers(2, 14, 2)
    x[i, t:t + 10, l:l + 6] = rng.uniform(0.3, 1.0)
  return jnp.asarray(x)


def test_network_shapes():
  enc, dec = watermark.HiddenEncoder(32, 1, 8, 1), watermark.HiddenDecoder(32, 8, 1)
  x, bits = jnp.zeros((3, 28, 28, 1)), jnp.ones((3, 32))
  r = enc.apply(enc.init(jax.random.key(0), x, bits), x, bits)
  chex.assert_shape(r, (3, 28, 28, 1))
  assert float(jnp.abs(r).max()) < 1.0
  logits = dec.apply(dec.init(jax.random.key(1), x), jnp.zeros((2, 40, 36, 1)))  # any size
  chex.assert_shape(logits, (2, 32))
  dense = watermark.HiddenDecoder(32, 8, 1, readout='dense')
  logits = dense.apply(dense.init(jax.random.key(1), x), x)
  chex.assert_shape(logits, (3, 32))


def test_residual_is_bounded_and_clipped():
  method = _method(**{'hidden.strength': 0.3})
  state = method.create_state(jax.random.key(0))
  x = _digits(4)
  marked = method.embed(state, x, np.ones(method.num_bits))
  assert float(jnp.abs(marked - x).max()) <= 0.3 + 1e-6
  assert float(marked.min()) >= -1.0 and float(marked.max()) <= 1.0
  assert float(jnp.abs(marked - x).max()) > 0.0


def test_warm_up_has_no_attack_and_no_image_loss():
  method = _method(**{'hidden.warmup_steps': 10, 'hidden.noise': ('crop',)})
  plain = _method(**{'hidden.warmup_steps': 0, 'hidden.noise': ('identity',),
                     'hidden.image_weight': 0.0, 'hidden.strength': 0.5})  # the warm-up's
  state = method.create_state(jax.random.key(0))
  x, rng = _digits(8), jax.random.key(3)
  loss_w, aux_w = method.batch_loss(state.params, x, rng, jnp.asarray(4))
  loss_p, aux_p = plain.batch_loss(state.params, x, rng, jnp.asarray(4))
  np.testing.assert_allclose(loss_w, loss_p, rtol=1e-6)
  assert float(aux_w['image_weight']) == 0.0
  np.testing.assert_allclose(method.ramp(jnp.asarray([5, 10, 15, 20, 30])),
                             [0.0, 0.0, 0.5, 1.0, 1.0])
  loss_after, aux = method.batch_loss(state.params, x, rng, jnp.asarray(30))
  assert abs(float(loss_after) - float(loss_w)) > 1e-6  # the crop and the image loss are on
  # the strength: 0.5 in the warm-up, geometric mean of 0.5 and 0.1 half way, 0.1 after
  np.testing.assert_allclose(method.strength_at(jnp.asarray([0, 10, 15, 20, 30])),
                             [0.5, 0.5, np.sqrt(0.05), 0.1, 0.1], rtol=1e-6)
  assert float(aux['strength']) == pytest.approx(0.1) and float(aux_w['strength']) == 0.5
  off = _method(**{'hidden.start_strength': 0.0})  # runs of before the curriculum
  assert float(off.strength_at(jnp.asarray(0))) == pytest.approx(0.1)


def test_noise_layers():
  x = _digits(4)
  cover = x * 0.5
  rng = jax.random.key(0)
  for name in attacks.NOISE_LAYERS:
    y = attacks.noise_layer(name, x, cover, rng)
    chex.assert_shape(y, x.shape)
    chex.assert_tree_all_finite(y)
  np.testing.assert_array_equal(attacks.noise_layer('identity', x, cover, rng), x)
  # dropout and cropout take every pixel from the image or the cover
  for name in ('dropout', 'cropout'):
    y = attacks.noise_layer(name, x, cover, rng)
    assert bool(jnp.all((y == x) | (y == cover)))
  # JPEG forward is the real codec, backward the identity
  np.testing.assert_allclose(attacks.noise_layer('jpeg', x, cover, rng), attacks.jpeg(x, 50),
                             atol=1e-6)
  g = jax.grad(lambda a: jnp.sum(attacks.jpeg_straight_through(a) * 2.0))(x)
  np.testing.assert_allclose(g, 2.0 * np.ones(x.shape))
  with pytest.raises(ValueError, match='unknown noise layer'):
    attacks.noise_layer('rotate', x, cover, rng)


def test_invalid_config_names_the_field():
  config = configs.load(experiment('provenance/hidden_mnist.py:smoke'), {
      'hidden.strength': 0.0, 'hidden.noise': ('jpeg', 'rotate')})
  with pytest.raises(configs.ConfigError) as e:
    configs.validate(config)
  assert 'hidden.strength must be in (0, 1]' in str(e.value)
  assert "unknown: ['rotate']" in str(e.value)


def test_train_step_reduces_the_loss_and_reads_back_every_bit():
  """A small model without attacks learns 8 bits on 16 fixed images: the loss falls and the
  key -> embed -> extract round trip reads all bits of every image (bit accuracy 1.0)."""
  method = _method(**{'model.num_bits': 8, 'hidden.noise': ('identity',),
                      'hidden.warmup_steps': 0, 'hidden.image_weight': 0.0,
                      'hidden.strength': 0.3, 'optim.learning_rate': 1e-2})
  state = method.create_state(jax.random.key(0))
  batch = {'image': _digits(16)}
  step = jax.jit(method.train_step)
  state, first = step(state, batch)
  for _ in range(200):
    state, metrics = step(state, batch)
  assert float(metrics['loss']) < 0.5 * float(first['loss']), (first['loss'], metrics['loss'])
  key = np.random.default_rng(1).integers(0, 2, (16, 8))
  marked = method.embed(state, batch['image'], key)
  read = np.asarray(method.extract(state, marked)) > 0
  assert np.mean(read == key) == 1.0
