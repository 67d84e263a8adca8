"""Text encoders (models/text.py) and the U-Net's cross-attention to them."""

import chex
import jax
import jax.numpy as jnp
import numpy as np

from genvision_jax.models.text import TransformerTextEncoder
from genvision_jax.models.unet import UNet


def _randomized(params, seed=0):
  """Every parameter redrawn ~ N(0, 0.2^2): zero-initialized output layers no longer hide
  what a block computes."""
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  return jax.tree.unflatten(tree, [0.2 * jax.random.normal(k, x.shape, x.dtype)
                                   for k, x in zip(keys, leaves)])


def test_encoder_shapes_mask_and_padding():
  enc = TransformerTextEncoder(vocab_size=20, max_tokens=8, width=16, depth=2, num_heads=2)
  tokens = jnp.array([[3, 4, 5, 0, 0, 0], [0, 0, 0, 0, 0, 0]])
  params = enc.init(jax.random.key(0), tokens)
  emb, mask, pooled = enc.apply(params, tokens)
  chex.assert_shape(emb, (2, 7, 16))
  chex.assert_shape(pooled, (2, 16))
  np.testing.assert_array_equal(mask, [[1, 1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0, 0]])
  # Padding is invisible: the same caption with less padding encodes the same.
  emb2, _, pooled2 = enc.apply(params, tokens[:, :4])
  np.testing.assert_allclose(pooled2, pooled, atol=1e-5)
  np.testing.assert_allclose(emb2[0, :4], emb[0, :4], atol=1e-5)
  # Different captions differ.
  _, _, other = enc.apply(params, jnp.array([[3, 4, 6, 0, 0, 0]]))
  assert np.abs(other[0] - pooled[0]).max() > 1e-3


def test_unet_cross_attention_reads_the_text_and_only_its_valid_positions():
  net = UNet(channels=1, base=8, channel_mults=(1, 2), attention_resolutions=(8,), num_heads=2,
             groups=4)
  x = jax.random.normal(jax.random.key(1), (2, 16, 32, 1))
  t = jnp.array([10, 500])
  context = jax.random.normal(jax.random.key(2), (2, 5, 12))
  mask = jnp.array([[True, True, True, False, False]] * 2)
  pooled = context[:, 0]
  params = _randomized(net.init(jax.random.key(0), x, t, context=context, context_mask=mask,
                                pooled=pooled)['params'])
  run = lambda c, p: net.apply({'params': params}, x, t, context=c, context_mask=mask, pooled=p)
  out = run(context, pooled)
  chex.assert_shape(out, (2, 16, 32, 1))
  other = context.at[:, 1].set(-context[:, 1])  # a valid position changes: the output changes
  assert np.abs(run(other, pooled) - out).max() > 1e-3
  masked = context.at[:, 4].set(7.0)  # a masked position changes: nothing changes
  np.testing.assert_allclose(run(masked, pooled), out, atol=1e-5)
  assert np.abs(run(context, pooled + 1.0) - out).max() > 1e-3  # the pooled text is used
  # Without text the network has its old parameters: existing runs load unchanged.
  plain = net.init(jax.random.key(0), x, t)['params']
  n = sum(k.startswith('AttentionBlock_') for k in plain)  # one cross block per self block
  assert set(params) - set(plain) == {f'CrossAttentionBlock_{i}' for i in range(n)} | {
      'text_embedding'}
