"""DCGAN (Radford et al. 2016) for 28, 32 and 64 px images.

Generator: z -> dense projection to a small feature map -> fractionally-strided (transposed)
4x4 stride-2 convolutions with BatchNorm and ReLU -> tanh image. The transposed convolutions
are `UpConv2x`: the same function and parameters as `nn.ConvTranspose`, computed without the
inserted zeros. Discriminator: strided 4x4
convolutions with LeakyReLU (0.2), normalization on all but the first layer, one logit per image.
"""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from genvision_jax.models.layers import Conv, UpConv2x, norm_layer, upsampling_plan

_INIT = nn.initializers.normal(0.02)  # DCGAN paper: weights from N(0, 0.02).


class Generator(nn.Module):
  """z [B, latent] -> images [B, S, S, C] in [-1, 1] (float32; `dtype` is the compute dtype)."""
  image_size: int = 28
  channels: int = 1
  width: int = 64
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, z, train: bool = True):
    stages, base = upsampling_plan(self.image_size)
    features = self.width * 2**(stages - 1)
    h = nn.Dense(base * base * features, use_bias=False, kernel_init=_INIT, dtype=self.dtype)(z)
    h = h.reshape(z.shape[0], base, base, features)
    h = nn.relu(norm_layer('batch', train, self.dtype)(h))
    for _ in range(stages - 1):
      features //= 2
      h = UpConv2x(features, use_bias=False, kernel_init=_INIT, dtype=self.dtype)(h)
      h = nn.relu(norm_layer('batch', train, self.dtype)(h))
    h = UpConv2x(self.channels, kernel_init=_INIT, dtype=self.dtype)(h)
    return jnp.tanh(h.astype(jnp.float32))


class Discriminator(nn.Module):
  """images [B, S, S, C] -> logits [B] (float32; `dtype` is the compute dtype)."""
  image_size: int = 28
  width: int = 64
  norm: str = 'batch'
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = True):
    stages, _ = upsampling_plan(self.image_size)
    h = x
    for i in range(stages):
      h = Conv(self.width * 2**i, 4, strides=2, kernel_init=_INIT,
               use_bias=(i == 0 or self.norm == 'none'), dtype=self.dtype)(h)
      if i > 0:
        h = norm_layer(self.norm, train, self.dtype)(h)
      h = nn.leaky_relu(h, 0.2)
    h = h.reshape(h.shape[0], -1)
    return nn.Dense(1, kernel_init=_INIT, dtype=self.dtype)(h)[:, 0].astype(jnp.float32)
