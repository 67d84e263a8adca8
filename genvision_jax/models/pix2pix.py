"""pix2pix's U-Net generator (Isola et al. 2017, "U-Net 256" of their code, sized to the image).

Encoder: 4x4 stride-2 convolutions, LeakyReLU 0.2, BatchNorm on all but the first, channels
width, 2 width, 4 width, 8 width, 8 width, ... Decoder: ReLU, 4x4 stride-2 transposed
convolutions (`UpConv2x`), BatchNorm, dropout 0.5 on the `dropout_layers` innermost decoder
layers, and after each one the encoder activation of the same size concatenated (the skip
connections). The output layer maps to `channels` with tanh, in [-1, 1].

Dropout is the generator's only noise (the paper found a z input ignored): pix2pix keeps it
active at test time as well, so `__call__(..., stochastic=True)` (the default) draws it from
the 'dropout' rng in training and sampling alike; `stochastic=False` gives the deterministic
mean-field output.

`depth` stride-2 levels; by default as many as halve the image size evenly down to at least
1 px (28 px: 2 levels, 28 -> 14 -> 7; 32: 5; 64: 6; the paper's 256 px: 8).
"""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from genvision_jax.models.layers import Conv, UpConv2x, norm_layer

_INIT = nn.initializers.normal(0.02)


def default_depth(image_size: int) -> int:
  """The number of times `image_size` halves evenly (at most 8, the paper's U-Net 256)."""
  depth, size = 0, image_size
  while size % 2 == 0 and size > 1 and depth < 8:
    size //= 2
    depth += 1
  if depth == 0:
    raise ValueError(f'image size {image_size} cannot be halved; use e.g. 28, 32 or 64')
  return depth


class UNetGenerator(nn.Module):
  """input [B, S, S, C_in] -> output [B, S, S, channels] in [-1, 1]."""
  channels: int = 1
  width: int = 64
  depth: int = 0            # 0: default_depth(S)
  dropout: float = 0.5
  dropout_layers: int = 3   # innermost decoder layers with dropout (the paper's 3)
  norm: str = 'batch'
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = True, stochastic: bool = True):
    depth = self.depth or default_depth(x.shape[1])
    if x.shape[1] % 2**depth:
      raise ValueError(f'a U-Net of depth {depth} halves the {x.shape[1]} px input unevenly')
    widths = [self.width * 2**min(i, 3) for i in range(depth)]
    skips, h = [], x.astype(self.dtype)
    for i, w in enumerate(widths):  # encoder
      if i:
        h = nn.leaky_relu(h, 0.2)
      h = Conv(w, 4, 2, use_bias=i == 0 or self.norm == 'none', kernel_init=_INIT,
               dtype=self.dtype)(h)
      if i and i < depth - 1:  # pix2pix: no norm on the first and the innermost layer
        h = norm_layer(self.norm, train, self.dtype)(h)
      skips.append(h)
    for j, i in enumerate(reversed(range(depth - 1))):  # decoder, innermost first
      h = UpConv2x(widths[i], use_bias=self.norm == 'none', kernel_init=_INIT,
                   dtype=self.dtype)(nn.relu(h))
      h = norm_layer(self.norm, train, self.dtype)(h)
      if j < self.dropout_layers and self.dropout > 0:
        h = nn.Dropout(self.dropout, deterministic=not stochastic)(h)
      h = jnp.concatenate([h, skips[i]], axis=-1)
    h = UpConv2x(self.channels, kernel_init=_INIT, dtype=self.dtype)(nn.relu(h))
    return jnp.tanh(h.astype(jnp.float32))
