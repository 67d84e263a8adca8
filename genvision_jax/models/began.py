"""BEGAN (Berthelot et al. 2017): the discriminator is an autoencoder. It returns the
reconstruction of its input; the method turns it into the energy ||x - AE(x)||_1
(`losses.reconstruction_energy`).

Two architectures (`model.began_arch`):
- 'paper' (`PaperAutoencoder` with `PaperGenerator`): section 3.3 of the paper. ELU after every
  convolution, no normalization; the encoder runs a pair of 3x3 convolutions at each scale and
  goes down one scale by a 3x3 stride-2 convolution, its filters growing linearly (n, 2n, 3n, ...);
  a fully connected layer maps to the embedding of size h. The decoder maps h to n planes at the
  lowest resolution and runs a pair of 3x3 convolutions at each scale with nearest-neighbour
  upsampling between scales, then one 3x3 convolution to the image channels. The generator has
  the decoder's shape (its own weights) and maps z of size h to an image (linear as in the
  paper, clipped to [-1, 1] for samples; or tanh, `model.began_g_output`).
  The number of scales follows the image size: 28 px -> 7, 14, 28 (the paper's 64 px -> 8 ... 64).
- 'infogan' (`InfoGANAutoencoder`): the small autoencoder of the InfoGAN-style MNIST networks
  (as in hwalsuklee/tensorflow-generative-model-collections' BEGAN, "(64)4c2s-FC32_BR-FC64*14*14_BR-
  (1)4dc2s"): one 4x4 stride-2 convolution with ReLU, a fully connected code of size h with
  BatchNorm and ReLU, a fully connected layer back to n planes at half resolution with BatchNorm
  and ReLU, one transposed 4x4 stride-2 convolution to the image and tanh. Used with the DCGAN
  generator (experiments/gan/began_mnist.py); on the digits it learns all ten classes where the
  paper's architecture collapses to "1"s in the same budget. Real and generated batches go through
  it separately, so its BatchNorm statistics are those of one kind of batch at a time.
- 'dcgan' (`AutoencoderDiscriminator`, the package's first BEGAN): 4x4 stride-2 convolutions
  down, transposed 4x4 convolutions up (DCGAN-shaped); kept so that older run directories load.
"""

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from genvision_jax.models.layers import Conv, UpConv2x, norm_layer, spectral, upsampling_plan


class AutoencoderDiscriminator(nn.Module):
  """images [B, S, S, C] -> reconstructions [B, S, S, C] (float32), through a `hidden`-d code.
  ELU activations and no normalization; DCGAN-shaped (model.began_arch='dcgan')."""
  image_size: int = 28
  width: int = 64
  norm: str = 'none'  # unused: BEGAN's autoencoder has no normalization
  dtype: Any = jnp.float32
  hidden: int = 64
  spectral_norm: bool = False

  @nn.compact
  def __call__(self, x, labels=None, train: bool = True):
    del labels
    layer = functools.partial(spectral, enabled=self.spectral_norm, train=train)
    stages, base = upsampling_plan(self.image_size)
    h = x
    for i in range(stages):
      h = nn.elu(layer(Conv(self.width * 2**i, 4, 2, dtype=self.dtype), h))
    code = layer(nn.Dense(self.hidden, dtype=self.dtype), h.reshape(x.shape[0], -1))
    features = self.width * 2**(stages - 1)
    h = nn.elu(layer(nn.Dense(base * base * features, dtype=self.dtype), code))
    h = h.reshape(x.shape[0], base, base, features)
    for _ in range(stages - 1):
      features //= 2
      h = nn.elu(layer(UpConv2x(features, dtype=self.dtype), h))
    return layer(UpConv2x(x.shape[-1], dtype=self.dtype), h).astype(jnp.float32)


class InfoGANAutoencoder(nn.Module):
  """images [B, S, S, C] -> reconstructions [B, S, S, C] in [-1, 1] (float32) through an
  h-d code (model.began_arch='infogan'; see the module docstring). `width` = n."""
  image_size: int = 28
  width: int = 64
  norm: str = 'batch'  # unused: the code and the layer after it always have BatchNorm
  dtype: Any = jnp.float32
  hidden: int = 32
  spectral_norm: bool = False  # unused (validated off)

  @nn.compact
  def __call__(self, x, labels=None, train: bool = True):
    del labels
    half = self.image_size // 2
    h = nn.relu(Conv(self.width, 4, 2, dtype=self.dtype)(x)).reshape(x.shape[0], -1)
    code = nn.relu(norm_layer('batch', train, self.dtype)(nn.Dense(self.hidden,
                                                                   dtype=self.dtype)(h)))
    h = nn.Dense(half * half * self.width, dtype=self.dtype)(code)
    h = nn.relu(norm_layer('batch', train, self.dtype)(h))
    h = h.reshape(x.shape[0], half, half, self.width)
    return jnp.tanh(UpConv2x(x.shape[-1], dtype=self.dtype)(h)).astype(jnp.float32)


class InfoGANGenerator(nn.Module):
  """z [B, latent] -> images [B, S, S, C] in [-1, 1] (float32): the InfoGAN MNIST generator
  (Chen et al. 2016, "FC1024_BR-FC7x7x128_BR-(64)4dc2s_BR-(1)4dc2s"): two fully connected
  layers (1024, then 2n planes at a quarter of the resolution) and two transposed 4x4 stride-2
  convolutions (n planes, then the image), BatchNorm and ReLU after all but the last, tanh out.
  `width` = n (64 in InfoGAN). model.generator='infogan' (BEGAN's generator in
  experiments/gan/began_mnist.py; any GAN objective can use it)."""
  image_size: int = 28
  channels: int = 1
  width: int = 64
  dtype: Any = jnp.float32
  norm: str = 'batch'  # 'batch' or 'none'

  @nn.compact
  def __call__(self, z, labels=None, train: bool = True):
    del labels
    quarter = self.image_size // 4
    h = nn.relu(norm_layer(self.norm, train, self.dtype)(nn.Dense(1024, dtype=self.dtype)(z)))
    h = nn.Dense(quarter * quarter * 2 * self.width, dtype=self.dtype)(h)
    h = nn.relu(norm_layer(self.norm, train, self.dtype)(h))
    h = h.reshape(z.shape[0], quarter, quarter, 2 * self.width)
    h = nn.relu(norm_layer(self.norm, train, self.dtype)(UpConv2x(self.width,
                                                                   dtype=self.dtype)(h)))
    return jnp.tanh(UpConv2x(self.channels, dtype=self.dtype)(h)).astype(jnp.float32)


def upsample_nearest(x):
  """[B, H, W, C] -> [B, 2H, 2W, C], each pixel repeated in a 2x2 block."""
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


class PaperDecoder(nn.Module):
  """code [B, h] -> [B, S, S, channels] (linear output): the paper's decoder / generator body.
  `scales` = number of resolutions (base, 2 base, ..., S); `width` = n."""
  image_size: int = 28
  channels: int = 1
  width: int = 64
  dtype: Any = jnp.float32
  output_bias: float = 0.0  # initial bias of the last convolution (the output's start value)

  @nn.compact
  def __call__(self, code):
    stages, base = upsampling_plan(self.image_size)
    h = nn.Dense(base * base * self.width, dtype=self.dtype)(code)
    h = h.reshape(code.shape[0], base, base, self.width)
    for scale in range(stages + 1):
      h = nn.elu(Conv(self.width, 3, dtype=self.dtype)(h))
      h = nn.elu(Conv(self.width, 3, dtype=self.dtype)(h))
      if scale < stages:
        h = upsample_nearest(h)
    out = Conv(self.channels, 3, dtype=self.dtype,
               bias_init=nn.initializers.constant(self.output_bias))
    return out(h).astype(jnp.float32)


class PaperEncoder(nn.Module):
  """images [B, S, S, C] -> code [B, hidden]: 3x3 conv (n), then at scale i = 1, 2, ... a pair
  of 3x3 convs with i * n filters and (but at the lowest scale) a 3x3 stride-2 conv to
  (i + 1) * n filters; a fully connected layer to the code (no activation)."""
  image_size: int = 28
  width: int = 64
  hidden: int = 64
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    stages, _ = upsampling_plan(self.image_size)
    h = nn.elu(Conv(self.width, 3, dtype=self.dtype)(x))
    for scale in range(1, stages + 2):
      h = nn.elu(Conv(self.width * scale, 3, dtype=self.dtype)(h))
      h = nn.elu(Conv(self.width * scale, 3, dtype=self.dtype)(h))
      if scale <= stages:
        h = nn.elu(Conv(self.width * (scale + 1), 3, 2, dtype=self.dtype)(h))
    return nn.Dense(self.hidden, dtype=self.dtype)(h.reshape(x.shape[0], -1))


class PaperAutoencoder(nn.Module):
  """images [B, S, S, C] -> reconstructions [B, S, S, C] (float32) through an h-d embedding
  (model.began_arch='paper'): `PaperEncoder` then `PaperDecoder`."""
  image_size: int = 28
  width: int = 64
  norm: str = 'none'  # unused: no normalization in the paper
  dtype: Any = jnp.float32
  hidden: int = 64
  spectral_norm: bool = False  # unused (validated off)

  @nn.compact
  def __call__(self, x, labels=None, train: bool = True):
    del labels, train
    code = PaperEncoder(self.image_size, self.width, self.hidden, self.dtype, name='encoder')(x)
    return PaperDecoder(self.image_size, x.shape[-1], self.width, self.dtype,
                        name='decoder')(code)


class PaperGenerator(nn.Module):
  """z [B, h] -> images [B, S, S, C]: the decoder's shape with its own weights. No
  normalization, so no batch statistics.

  output='linear' (the paper): the decoder's linear output in training, clipped to [-1, 1]
  outside it (samples); 'tanh': tanh always. A tanh output that saturates at the background
  value (-1) has no gradient left to leave a blank image, which the autoencoder reconstructs
  almost perfectly; the linear output keeps that gradient.
  """
  image_size: int = 28
  channels: int = 1
  width: int = 64
  dtype: Any = jnp.float32
  output: str = 'linear'
  init_value: float = 0.0  # the value G's output starts near (model.began_g_init)

  @nn.compact
  def __call__(self, z, labels=None, train: bool = True):
    del labels
    bias = float(np.arctanh(self.init_value)) if self.output == 'tanh' else self.init_value
    h = PaperDecoder(self.image_size, self.channels, self.width, self.dtype, bias,
                     name='decoder')(z)
    if self.output == 'tanh':
      return jax.nn.tanh(h)
    return h if train else jnp.clip(h, -1.0, 1.0)
