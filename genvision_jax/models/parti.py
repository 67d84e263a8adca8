"""The autoregressive text-to-image transformer of Parti (Yu et al. 2022), small: a text encoder
and a decoder that predicts the image's VQ codes left to right (raster order), attending
causally to the codes so far and fully to the text.

  PartiTransformer(tokens [B, L], inputs [B, N]) -> logits [B, N, num_codes]

`inputs` are the codes shifted right behind a BOS id (= num_codes): position i sees BOS and
codes 0 .. i-1 (teacher forcing). With `decode=True` the decoder's attention keeps a KV cache
(flax's 'cache' collection) and takes one position per call: sampling costs N passes of one
token instead of N passes of up to N tokens. The text encoder is `models.text`'s interface.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from genvision_jax.models.text import TransformerBlock, TransformerTextEncoder


class ImageTokenDecoder(nn.Module):
  """Causal transformer over image codes with cross-attention to the text (see module doc)."""
  num_codes: int
  num_positions: int
  width: int = 128
  depth: int = 4
  num_heads: int = 4
  dropout: float = 0.0
  decode: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, inputs, context, context_mask, train: bool = False):
    x = nn.Embed(self.num_codes + 1, self.width, dtype=self.dtype, name='codes')(inputs)
    positions = self.param('positions', nn.initializers.normal(0.02),
                           (self.num_positions, self.width))
    if self.decode and self.has_variable('cache', 'position'):  # one token at a time
      index = self.variable('cache', 'position', lambda: jnp.zeros((), jnp.int32))
      x = x + jax.lax.dynamic_slice_in_dim(positions, index.value, 1).astype(self.dtype)
      index.value = index.value + 1
    else:
      if self.decode:  # the cache's initialization (a full-length dummy input)
        self.variable('cache', 'position', lambda: jnp.zeros((), jnp.int32))
      x = x + positions[:inputs.shape[1]].astype(self.dtype)
    for i in range(self.depth):
      x = TransformerBlock(self.width, self.num_heads, self.dropout, causal=True, cross=True,
                           decode=self.decode, dtype=self.dtype, name=f'block_{i}')(
                               x, None, context, context_mask, train=train)
    x = nn.LayerNorm(dtype=self.dtype)(x)
    return nn.Dense(self.num_codes, dtype=self.dtype, name='logits')(x).astype(jnp.float32)


class PartiTransformer(nn.Module):
  """Text encoder + image-code decoder. `__call__(tokens, inputs)` -> logits (teacher forcing);
  `encode_text(tokens)` -> (embeddings, mask, pooled); `decode_codes(inputs, context, mask)` ->
  logits (one position per call when decode=True)."""
  vocab_size: int
  max_tokens: int
  num_codes: int
  num_positions: int
  text_width: int = 64
  text_depth: int = 2
  width: int = 128
  depth: int = 4
  num_heads: int = 4
  dropout: float = 0.0
  decode: bool = False
  dtype: Any = jnp.float32

  def setup(self):
    self.text = TransformerTextEncoder(self.vocab_size, self.max_tokens, self.text_width,
                                       self.text_depth, self.num_heads, self.dropout, self.dtype)
    self.decoder = ImageTokenDecoder(self.num_codes, self.num_positions, self.width, self.depth,
                                     self.num_heads, self.dropout, self.decode, self.dtype)

  def __call__(self, tokens, inputs, train: bool = False):
    context, mask, _ = self.text(tokens, train)
    return self.decoder(inputs, context, mask, train)

  def encode_text(self, tokens):
    return self.text(tokens)

  def decode_codes(self, inputs, context, context_mask):
    return self.decoder(inputs, context, context_mask)
