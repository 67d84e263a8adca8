"""The denoising U-Net of DDPM (Ho et al. 2020, after PixelCNN++ / Wide ResNets), sized for
28-64 px images.

  x_t [B, H, W, C], t [B] (integer timestep), labels [B] (optional) -> [B, H, W, C]

A sinusoidal embedding of t goes through a 2-layer MLP; with `num_classes` > 0 a learned class
embedding is added to it (index `num_classes` is the "null" class that classifier-free guidance
trains with by label dropout). Each resolution level has `num_res_blocks` residual blocks
(GroupNorm, SiLU, 3x3 conv, + Dense(embedding), GroupNorm, SiLU, dropout, 3x3 conv, with a 1x1
skip projection when the width changes), self-attention after the blocks of the resolutions in
`attention_resolutions`, and a stride-2 conv down to the next level. The decoder mirrors it
with one extra block per level, each fed the concatenated skip activation, and nearest-
neighbour 2x upsampling + 3x3 conv. Level i has `base * channel_mults[i]` channels; the image
is halved len(channel_mults) - 1 times, so the size must be divisible by 2**(levels - 1):
28 -> 14 -> 7 with three levels. The last conv of every residual branch and of the output is
zero-initialized, so the initial network is the identity on its skip paths and outputs 0.
"""

import math
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from genvision_jax.models.layers import Conv


def timestep_embedding(t, dim: int, max_period: float = 10000.0):
  """[B] timesteps -> [B, dim]: [cos(t w_i), sin(t w_i)] with w_i = max_period^(-i / (dim/2)),
  i = 0 .. dim/2 - 1 (Vaswani et al.'s sinusoids, as in DDPM)."""
  half = dim // 2
  freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / half)
  args = jnp.asarray(t, jnp.float32)[:, None] * freqs[None]
  emb = jnp.concatenate([jnp.cos(args), jnp.sin(args)], axis=-1)
  if dim % 2:
    emb = jnp.pad(emb, ((0, 0), (0, 1)))
  return emb


def _groups(channels: int, groups: int) -> int:
  return math.gcd(channels, groups)


class ResBlock(nn.Module):
  """h = conv(dropout(silu(GN(conv(silu(GN(x))) + Dense(emb))))); returns skip(x) + h."""
  features: int
  dropout: float = 0.0
  groups: int = 8
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, emb, train: bool):
    h = nn.GroupNorm(_groups(x.shape[-1], self.groups), dtype=self.dtype)(x)
    h = Conv(self.features, 3, dtype=self.dtype)(nn.silu(h))
    h = h + nn.Dense(self.features, dtype=self.dtype)(nn.silu(emb))[:, None, None, :]
    h = nn.silu(nn.GroupNorm(_groups(self.features, self.groups), dtype=self.dtype)(h))
    h = nn.Dropout(self.dropout, deterministic=not train)(h)
    h = Conv(self.features, 3, kernel_init=nn.initializers.zeros, dtype=self.dtype)(h)
    if x.shape[-1] != self.features:
      x = Conv(self.features, 1, dtype=self.dtype, name='skip')(x)
    return x + h


class AttentionBlock(nn.Module):
  """Multi-head self-attention over the H*W positions of GN(x); returns x + out."""
  num_heads: int = 1
  groups: int = 8
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    b, h, w, c = x.shape
    y = nn.GroupNorm(_groups(c, self.groups), dtype=self.dtype)(x).reshape(b, h * w, c)
    y = nn.MultiHeadDotProductAttention(
        num_heads=self.num_heads, dtype=self.dtype, out_kernel_init=nn.initializers.zeros)(y)
    return x + y.reshape(b, h, w, c)


class CrossAttentionBlock(nn.Module):
  """Multi-head attention from the H*W positions of GN(x) to a text encoding `context`
  [B, L, D] (positions where `context_mask` [B, L] is false are ignored); returns x + out."""
  num_heads: int = 1
  groups: int = 8
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, context, context_mask=None):
    b, h, w, c = x.shape
    y = nn.GroupNorm(_groups(c, self.groups), dtype=self.dtype)(x).reshape(b, h * w, c)
    mask = (None if context_mask is None else
            nn.make_attention_mask(jnp.ones((b, h * w), bool), context_mask))
    y = nn.MultiHeadDotProductAttention(
        num_heads=self.num_heads, qkv_features=c, out_features=c, dtype=self.dtype,
        out_kernel_init=nn.initializers.zeros)(y, context.astype(self.dtype), mask=mask)
    return x + y.reshape(b, h, w, c)


class UNet(nn.Module):
  """See the module docstring. `__call__(x, t, labels=None, train=False, context=None,
  context_mask=None, pooled=None)`: a text encoding `context` [B, L, D] adds cross-attention
  after every self-attention (Imagen, Saharia et al. 2022), `pooled` [B, D] is projected and
  added to the time embedding."""
  channels: int                              # output channels (= image channels)
  base: int = 32
  channel_mults: Sequence[int] = (1, 2, 2)
  num_res_blocks: int = 2
  attention_resolutions: Sequence[int] = (7,)
  dropout: float = 0.0
  num_heads: int = 1
  num_classes: int = 0                       # > 0: class-conditional, null class = num_classes
  groups: int = 8                            # GroupNorm groups (gcd with the width)
  dtype: Any = jnp.float32                   # compute dtype; parameters and output float32

  @nn.compact
  def __call__(self, x, t, labels=None, train: bool = False, context=None, context_mask=None,
               pooled=None):
    levels = len(self.channel_mults)
    if x.shape[1] % 2**(levels - 1) or x.shape[2] % 2**(levels - 1):
      raise ValueError(f'image {x.shape[1]}x{x.shape[2]} cannot be halved {levels - 1} times '
                       f'(channel_mults={tuple(self.channel_mults)}); use fewer levels')
    emb_dim = 4 * self.base
    emb = timestep_embedding(t, self.base)
    emb = nn.Dense(emb_dim, dtype=self.dtype)(emb)
    emb = nn.Dense(emb_dim, dtype=self.dtype)(nn.silu(emb))
    if self.num_classes:
      if labels is None:
        raise ValueError('a class-conditional UNet needs labels (num_classes means "none")')
      emb = emb + nn.Embed(self.num_classes + 1, emb_dim, dtype=self.dtype,
                           name='class_embedding')(labels)
    elif labels is not None:
      raise ValueError('this UNet is unconditional (num_classes=0) but got labels')
    if pooled is not None:
      emb = emb + nn.Dense(emb_dim, dtype=self.dtype, name='text_embedding')(pooled)

    block = lambda f: ResBlock(f, self.dropout, self.groups, self.dtype)
    self_attend = lambda: AttentionBlock(self.num_heads, self.groups, self.dtype)

    def attend():
      if context is None:
        return self_attend()
      cross = CrossAttentionBlock(self.num_heads, self.groups, self.dtype)
      return lambda h: cross(self_attend()(h), context, context_mask)
    h = Conv(self.base, 3, dtype=self.dtype)(x.astype(self.dtype))
    skips = [h]
    for level, mult in enumerate(self.channel_mults):
      for _ in range(self.num_res_blocks):
        h = block(self.base * mult)(h, emb, train)
        if h.shape[1] in self.attention_resolutions:
          h = attend()(h)
        skips.append(h)
      if level < levels - 1:
        h = Conv(h.shape[-1], 3, strides=2, dtype=self.dtype, name=f'down_{level}')(h)
        skips.append(h)

    h = block(h.shape[-1])(h, emb, train)
    h = attend()(h)
    h = block(h.shape[-1])(h, emb, train)

    for level, mult in reversed(list(enumerate(self.channel_mults))):
      for _ in range(self.num_res_blocks + 1):
        h = block(self.base * mult)(jnp.concatenate([h, skips.pop()], axis=-1), emb, train)
        if h.shape[1] in self.attention_resolutions:
          h = attend()(h)
      if level > 0:
        h = jnp.repeat(jnp.repeat(h, 2, axis=1), 2, axis=2)
        h = Conv(h.shape[-1], 3, dtype=self.dtype, name=f'up_{level}')(h)

    h = nn.silu(nn.GroupNorm(_groups(h.shape[-1], self.groups), dtype=self.dtype)(h))
    out = Conv(self.channels, 3, kernel_init=nn.initializers.zeros, dtype=self.dtype)(h)
    return out.astype(jnp.float32)
