"""PatchGAN discriminator (Isola et al. 2017): a fully convolutional classifier that returns
one logit per overlapping image patch, [B, h, w]. Its receptive field, the patch size, is set
by the number of stride-2 layers: 4x4 convolutions, `layers` of them with stride 2 and two
with stride 1, see `receptive_field`; pix2pix's 70x70 PatchGAN is layers=3."""

import functools
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from genvision_jax.models.layers import Conv, norm_layer, spectral

_INIT = nn.initializers.normal(0.02)


def receptive_field(layers: int) -> int:
  """Patch size seen by one output logit: two 4x4 stride-1 layers, then `layers` stride-2."""
  r = 4 + 3  # the two stride-1 4x4 convolutions
  for _ in range(layers):
    r = (r - 1) * 2 + 4
  return r


class PatchDiscriminator(nn.Module):
  """images [B, S, S, C] -> per-patch logits [B, S / 2**layers, S / 2**layers] (float32)."""
  image_size: int = 28
  width: int = 64
  norm: str = 'batch'
  dtype: Any = jnp.float32
  layers: int = 2
  spectral_norm: bool = False
  num_classes: int = 0
  conditioning: str = 'concat'

  @nn.compact
  def __call__(self, x, labels=None, train: bool = True):
    if self.num_classes:
      raise ValueError('the PatchGAN discriminator is unconditional here; pix2pix conditions '
                       'it on the input image instead')
    layer = functools.partial(spectral, enabled=self.spectral_norm, train=train)
    h = nn.leaky_relu(layer(Conv(self.width, 4, 2, kernel_init=_INIT, dtype=self.dtype), x), 0.2)
    for i in range(1, self.layers + 1):
      stride = 2 if i < self.layers else 1
      h = layer(Conv(self.width * 2**min(i, 3), 4, stride, kernel_init=_INIT,
                     use_bias=self.norm == 'none', dtype=self.dtype), h)
      h = nn.leaky_relu(norm_layer(self.norm, train, self.dtype)(h), 0.2)
    h = layer(Conv(1, 4, 1, kernel_init=_INIT, dtype=self.dtype), h)
    return h[..., 0].astype(jnp.float32)
