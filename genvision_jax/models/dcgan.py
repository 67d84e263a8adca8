"""DCGAN (Radford et al. 2016) for 28, 32 and 64 px images.

Generator: z -> dense projection to a small feature map -> fractionally-strided (transposed)
4x4 stride-2 convolutions with BatchNorm and ReLU -> tanh image. Discriminator: strided 4x4
convolutions with LeakyReLU (0.2), normalization on all but the first layer, one logit per image.
"""

import flax.linen as nn
import jax.numpy as jnp

from genvision_jax.models.layers import norm_layer, upsampling_plan

_INIT = nn.initializers.normal(0.02)  # DCGAN paper: weights from N(0, 0.02).


class Generator(nn.Module):
  """z [B, latent] -> images [B, S, S, C] in [-1, 1]."""
  image_size: int = 28
  channels: int = 1
  width: int = 64

  @nn.compact
  def __call__(self, z, train: bool = True):
    stages, base = upsampling_plan(self.image_size)
    features = self.width * 2**(stages - 1)
    h = nn.Dense(base * base * features, use_bias=False, kernel_init=_INIT)(z)
    h = h.reshape(z.shape[0], base, base, features)
    h = nn.relu(norm_layer('batch', train)(h))
    for _ in range(stages - 1):
      features //= 2
      h = nn.ConvTranspose(features, (4, 4), strides=(2, 2), padding='SAME', use_bias=False,
                           kernel_init=_INIT)(h)
      h = nn.relu(norm_layer('batch', train)(h))
    h = nn.ConvTranspose(self.channels, (4, 4), strides=(2, 2), padding='SAME',
                         kernel_init=_INIT)(h)
    return jnp.tanh(h)


class Discriminator(nn.Module):
  """images [B, S, S, C] -> logits [B]."""
  image_size: int = 28
  width: int = 64
  norm: str = 'batch'

  @nn.compact
  def __call__(self, x, train: bool = True):
    stages, _ = upsampling_plan(self.image_size)
    h = x
    for i in range(stages):
      h = nn.Conv(self.width * 2**i, (4, 4), strides=(2, 2), padding='SAME', kernel_init=_INIT,
                  use_bias=(i == 0 or self.norm == 'none'))(h)
      if i > 0:
        h = norm_layer(self.norm, train)(h)
      h = nn.leaky_relu(h, 0.2)
    h = h.reshape(h.shape[0], -1)
    return nn.Dense(1, kernel_init=_INIT)(h)[:, 0]
