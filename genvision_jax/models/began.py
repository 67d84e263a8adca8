"""BEGAN's discriminator (Berthelot et al. 2017): an autoencoder. It returns the
reconstruction of its input; the method turns it into the energy ||x - AE(x)||_1
(`losses.reconstruction_energy`)."""

import functools
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from genvision_jax.models.layers import Conv, UpConv2x, spectral, upsampling_plan


class AutoencoderDiscriminator(nn.Module):
  """images [B, S, S, C] -> reconstructions [B, S, S, C] (float32), through a `hidden`-d code.
  ELU activations and no normalization, as in the paper."""
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
