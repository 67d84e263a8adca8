"""The Parti transformer: causal masking, text dependence, and KV-cache decoding equal to full
recomputation."""

import chex
import jax
import jax.numpy as jnp
import numpy as np

from genvision_jax.models.parti import PartiTransformer

KW = dict(vocab_size=20, max_tokens=6, num_codes=12, num_positions=10, text_width=16,
          text_depth=1, width=16, depth=2, num_heads=2)


def _setup():
  net = PartiTransformer(**KW)
  tokens = jnp.array([[3, 4, 5, 0, 0, 0], [7, 0, 0, 0, 0, 0]])
  inputs = jax.random.randint(jax.random.key(1), (2, 10), 0, 13)
  params = net.init(jax.random.key(0), tokens, inputs)['params']
  # Redraw every parameter so no zero-initialized layer hides a dependence.
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(2), len(leaves))
  params = jax.tree.unflatten(tree, [0.3 * jax.random.normal(k, x.shape)
                                     for k, x in zip(keys, leaves)])
  return net, params, tokens, inputs


def test_position_t_never_sees_later_tokens_but_sees_the_text():
  net, params, tokens, inputs = _setup()
  logits = net.apply({'params': params}, tokens, inputs)
  chex.assert_shape(logits, (2, 10, 12))
  changed = inputs.at[:, 6].set((inputs[:, 6] + 1) % 13)
  other = net.apply({'params': params}, tokens, changed)
  np.testing.assert_allclose(other[:, :6], logits[:, :6], atol=1e-5)  # before: unchanged
  assert np.abs(other[:, 6:] - logits[:, 6:]).max() > 1e-3            # from t on: changed
  text = net.apply({'params': params}, tokens.at[0, 1].set(9), inputs)
  assert np.abs(text[0, 0] - logits[0, 0]).max() > 1e-3  # the first position reads the text


def test_kv_cache_decoding_equals_full_recomputation():
  net, params, tokens, inputs = _setup()
  full = net.apply({'params': params}, tokens, inputs)
  dec = PartiTransformer(**KW, decode=True)
  context, mask, _ = dec.apply({'params': params}, tokens, method=dec.encode_text)
  cache = dec.init(jax.random.key(0), tokens, inputs)['cache']
  steps = []
  for i in range(inputs.shape[1]):
    out, mutated = dec.apply({'params': params, 'cache': cache}, inputs[:, i:i + 1], context,
                             mask, method=dec.decode_codes, mutable=['cache'])
    cache = mutated['cache']
    steps.append(out[:, 0])
  np.testing.assert_allclose(jnp.stack(steps, 1), full, atol=1e-4)
