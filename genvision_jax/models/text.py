"""Text encoders for text-to-image models.

The interface every text encoder of the package offers (so that a pretrained T5 or CLIP text
tower can stand in for the small one trained here):

  encoder(tokens [B, L] int32, train: bool) -> (embeddings [B, L', D], mask [B, L'] bool,
                                               pooled [B, D])

tokens are word ids with 0 as padding; `mask` marks the embeddings a model may attend to, and
`pooled` summarizes the caption in one vector (added to a diffusion model's time embedding).
An all-padding caption is the "null" caption of classifier-free guidance: it still has one
valid position (the learned [CLS] slot), so attention over it is always defined.

`TransformerTextEncoder` (trained from scratch with the generator): a learned [CLS] vector
followed by word + learned position embeddings, `depth` pre-LayerNorm transformer blocks
(multi-head self-attention restricted to valid positions, GELU MLP of 4x width), a final
LayerNorm; pooled = the [CLS] output.
"""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp


class TransformerBlock(nn.Module):
  """Pre-LN transformer block: x + MHA(LN(x)) then x + MLP(LN(x)); `mask` [B, L] or None,
  `causal` for decoder self-attention, `context` (+ `context_mask`) adds cross-attention."""
  width: int
  num_heads: int
  dropout: float = 0.0
  causal: bool = False
  cross: bool = False
  decode: bool = False       # autoregressive sampling with a KV cache (causal blocks)
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, mask=None, context=None, context_mask=None, train: bool = False):
    attn_mask = None
    if self.causal and not self.decode:
      attn_mask = nn.make_causal_mask(jnp.ones(x.shape[:2], bool))
    if mask is not None:
      pad = nn.make_attention_mask(mask, mask)
      attn_mask = pad if attn_mask is None else nn.combine_masks(attn_mask, pad)
    y = nn.LayerNorm(dtype=self.dtype)(x)
    y = nn.MultiHeadDotProductAttention(
        num_heads=self.num_heads, dtype=self.dtype, dropout_rate=self.dropout,
        decode=self.decode, name='self_attention')(y, mask=attn_mask, deterministic=not train)
    x = x + y
    if self.cross:
      y = nn.LayerNorm(dtype=self.dtype)(x)
      cmask = (None if context_mask is None else
               nn.make_attention_mask(jnp.ones(x.shape[:2], bool), context_mask))
      y = nn.MultiHeadDotProductAttention(
          num_heads=self.num_heads, dtype=self.dtype, dropout_rate=self.dropout,
          name='cross_attention')(y, context, mask=cmask, deterministic=not train)
      x = x + y
    y = nn.LayerNorm(dtype=self.dtype)(x)
    y = nn.Dense(4 * self.width, dtype=self.dtype)(y)
    y = nn.Dense(self.width, dtype=self.dtype)(nn.gelu(y))
    y = nn.Dropout(self.dropout)(y, deterministic=not train)
    return x + y


class TransformerTextEncoder(nn.Module):
  """See the module docstring."""
  vocab_size: int
  max_tokens: int
  width: int = 64
  depth: int = 2
  num_heads: int = 4
  dropout: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, tokens, train: bool = False):
    b, length = tokens.shape
    if length > self.max_tokens:
      raise ValueError(f'{length} tokens; this encoder takes at most {self.max_tokens}')
    mask = jnp.concatenate([jnp.ones((b, 1), bool), tokens != 0], axis=1)
    x = nn.Embed(self.vocab_size, self.width, dtype=self.dtype, name='words')(tokens)
    positions = self.param('positions', nn.initializers.normal(0.02),
                           (self.max_tokens, self.width))
    x = x + positions[:length].astype(self.dtype)
    cls = self.param('cls', nn.initializers.normal(0.02), (1, 1, self.width))
    x = jnp.concatenate([jnp.broadcast_to(cls, (b, 1, self.width)).astype(self.dtype), x], 1)
    for i in range(self.depth):
      x = TransformerBlock(self.width, self.num_heads, self.dropout, dtype=self.dtype,
                           name=f'block_{i}')(x, mask, train=train)
    x = nn.LayerNorm(dtype=self.dtype)(x).astype(jnp.float32)
    return x, mask, x[:, 0]
