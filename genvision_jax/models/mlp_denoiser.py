"""A residual MLP denoiser for vector inputs (the codes of the package's autoencoders and
VAEs): latent diffusion on flat latents, where a U-Net's convolutions have no image to slide
over. `__call__(x, t, labels=None, train=False)` as the U-Net's, x of any shape [B, ...].

x -> Dense(width) -> `depth` blocks h + Dense(silu(Dense(LN(h)) + emb)) -> LN -> Dense (zero
init), the time embedding the U-Net's sinusoids through a 2-layer MLP, plus a class embedding
(null class = num_classes) for a conditional model. The U-Net's field names are kept so one
config section builds either: `base` is the width, `num_res_blocks` the depth; channel_mults,
attention_resolutions and num_heads do not apply.
"""

import math
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from genvision_jax.models.unet import timestep_embedding


class MLPDenoiser(nn.Module):
  channels: int                  # unused (the output has x's shape); kept for the registry
  base: int = 256                # width
  channel_mults: Sequence[int] = ()
  num_res_blocks: int = 4        # depth
  attention_resolutions: Sequence[int] = ()
  dropout: float = 0.0
  num_heads: int = 1
  num_classes: int = 0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, t, labels=None, train: bool = False):
    shape = x.shape
    width = self.base
    emb = timestep_embedding(t, width)
    emb = nn.Dense(width, dtype=self.dtype)(emb)
    emb = nn.Dense(width, dtype=self.dtype)(nn.silu(emb))
    if self.num_classes:
      if labels is None:
        raise ValueError('a class-conditional denoiser needs labels (num_classes means "none")')
      emb = emb + nn.Embed(self.num_classes + 1, width, dtype=self.dtype,
                           name='class_embedding')(labels)
    elif labels is not None:
      raise ValueError('this denoiser is unconditional (num_classes=0) but got labels')
    h = nn.Dense(width, dtype=self.dtype)(x.reshape(shape[0], -1).astype(self.dtype))
    for _ in range(self.num_res_blocks):
      y = nn.Dense(2 * width, dtype=self.dtype)(nn.LayerNorm(dtype=self.dtype)(h))
      y = nn.silu(y + nn.Dense(2 * width, dtype=self.dtype)(nn.silu(emb)))
      y = nn.Dropout(self.dropout, deterministic=not train)(y)
      h = h + nn.Dense(width, dtype=self.dtype)(y)
    h = nn.LayerNorm(dtype=self.dtype)(h)
    out = nn.Dense(math.prod(shape[1:]), kernel_init=nn.initializers.zeros,
                   dtype=self.dtype)(h)
    return out.reshape(shape).astype(jnp.float32)
