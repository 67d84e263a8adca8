"""DCGAN (Radford et al. 2016) for 28, 32 and 64 px images.

Generator: z -> dense projection to a small feature map -> fractionally-strided (transposed)
4x4 stride-2 convolutions with BatchNorm and ReLU -> tanh image. The transposed convolutions
are `UpConv2x`: the same function and parameters as `nn.ConvTranspose`, computed without the
inserted zeros. Discriminator: strided 4x4 convolutions with LeakyReLU (0.2), normalization
on all but the first layer, one logit per image.

Class-conditional variants (num_classes > 0) take integer labels [B]: the generator by a label
embedding concatenated to z ('embedding') or by conditional BatchNorm, whose scale and shift
come from the label ('cbn'); the discriminator by a projection term <embed(y), features>
added to the logit (Miyato & Koyama 2018, 'projection') or by one-hot label planes
concatenated to the image ('concat').
"""

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from genvision_jax.models.layers import Conv, UpConv2x, norm_layer, spectral, upsampling_plan

_INIT = nn.initializers.normal(0.02)  # DCGAN paper: weights from N(0, 0.02).


G_CONDITIONING = ('embedding', 'cbn')
D_CONDITIONING = ('projection', 'concat')


class ConditionalBatchNorm(nn.Module):
  """BatchNorm without its own affine part, scaled and shifted per class."""
  num_classes: int
  train: bool
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, h, labels):
    h = nn.BatchNorm(use_running_average=not self.train, momentum=0.9, epsilon=1e-5,
                     use_scale=False, use_bias=False, dtype=self.dtype)(h)
    features = h.shape[-1]
    gamma = nn.Embed(self.num_classes, features, embedding_init=nn.initializers.zeros,
                     name='gamma')(labels)
    beta = nn.Embed(self.num_classes, features, embedding_init=nn.initializers.zeros,
                    name='beta')(labels)
    return h * (1.0 + gamma[:, None, None, :]).astype(h.dtype) + beta[:, None, None, :].astype(
        h.dtype)


class Generator(nn.Module):
  """z [B, latent] (+ labels [B]) -> images [B, S, S, C] in [-1, 1] (float32; `dtype` is the
  compute dtype)."""
  image_size: int = 28
  channels: int = 1
  width: int = 64
  dtype: Any = jnp.float32
  num_classes: int = 0
  conditioning: str = 'embedding'
  norm: str = 'batch'  # 'batch' (DCGAN) or 'none' (e.g. BEGAN's generator has no BatchNorm)

  @nn.compact
  def __call__(self, z, labels=None, train: bool = True):
    stages, base = upsampling_plan(self.image_size)
    cbn = self.num_classes > 0 and self.conditioning == 'cbn'

    def norm(h):
      if cbn:
        return ConditionalBatchNorm(self.num_classes, train, self.dtype)(h, labels)
      return norm_layer(self.norm, train, self.dtype)(h)

    if self.num_classes > 0 and self.conditioning == 'embedding':
      z = jnp.concatenate([z, nn.Embed(self.num_classes, z.shape[-1], name='label_embed')(
          labels).astype(z.dtype)], axis=-1)
    features = self.width * 2**(stages - 1)
    h = nn.Dense(base * base * features, use_bias=False, kernel_init=_INIT, dtype=self.dtype)(z)
    h = h.reshape(z.shape[0], base, base, features)
    h = nn.relu(norm(h))
    for _ in range(stages - 1):
      features //= 2
      h = UpConv2x(features, use_bias=False, kernel_init=_INIT, dtype=self.dtype)(h)
      h = nn.relu(norm(h))
    h = UpConv2x(self.channels, kernel_init=_INIT, dtype=self.dtype)(h)
    return jnp.tanh(h.astype(jnp.float32))


class Discriminator(nn.Module):
  """images [B, S, S, C] (+ labels [B]) -> logits [B] (float32; `dtype` is the compute dtype)."""
  image_size: int = 28
  width: int = 64
  norm: str = 'batch'
  dtype: Any = jnp.float32
  num_classes: int = 0
  conditioning: str = 'projection'
  spectral_norm: bool = False  # Miyato et al. 2018: every layer's weight / its top singular value

  @nn.compact
  def __call__(self, x, labels=None, train: bool = True):
    stages, _ = upsampling_plan(self.image_size)
    layer = functools.partial(spectral, enabled=self.spectral_norm, train=train)
    h = x
    if self.num_classes > 0 and self.conditioning == 'concat':
      planes = jax.nn.one_hot(labels, self.num_classes, dtype=x.dtype)[:, None, None, :]
      h = jnp.concatenate([h, jnp.broadcast_to(planes, (*x.shape[:3], self.num_classes))], -1)
    for i in range(stages):
      h = layer(Conv(self.width * 2**i, 4, strides=2, kernel_init=_INIT,
                     use_bias=(i == 0 or self.norm == 'none'), dtype=self.dtype), h)
      if i > 0:
        h = norm_layer(self.norm, train, self.dtype)(h)
      h = nn.leaky_relu(h, 0.2)
    h = h.reshape(h.shape[0], -1)
    logits = layer(nn.Dense(1, kernel_init=_INIT, dtype=self.dtype), h)[:, 0].astype(jnp.float32)
    if self.num_classes > 0 and self.conditioning == 'projection':
      embed = nn.Embed(self.num_classes, h.shape[-1], embedding_init=_INIT,
                       name='label_projection')(labels)
      logits = logits + jnp.sum(embed.astype(jnp.float32) * h.astype(jnp.float32), axis=-1)
    return logits
