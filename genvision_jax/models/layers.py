"""Building blocks shared by the architectures."""

from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def upsampling_plan(image_size: int, min_base: int = 4) -> tuple[int, int]:
  """(number of 2x stages, base resolution) so that base * 2**stages == image_size.

  Halves while the size stays even and at least `min_base`: 28 -> (2, 7), 32 -> (3, 4),
  64 -> (4, 4).
  """
  if image_size < min_base:
    raise ValueError(f'image size {image_size} is smaller than {min_base}')
  stages, base = 0, image_size
  while base % 2 == 0 and base // 2 >= min_base:
    base //= 2
    stages += 1
  if stages == 0:
    raise ValueError(f'image size {image_size} cannot be halved; use 28, 32 or 64')
  return stages, base


def norm_layer(kind: str, train: bool, name: str | None = None) -> Callable:
  """'batch' (BatchNorm, running averages at eval), 'layer', or 'none' (identity)."""
  if kind == 'batch':
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, name=name)
  if kind == 'layer':
    return nn.LayerNorm(name=name)
  if kind == 'none':
    return lambda x: x
  raise ValueError(f"unknown normalization '{kind}'; use 'batch', 'layer' or 'none'")


NORMS = ('batch', 'layer', 'none')


# Taps of a 4-tap, stride-2, 'SAME' transposed convolution along one axis, regrouped by output
# phase: y[2i] = x[i-1] k[0] + x[i] k[2] and y[2i+1] = x[i] k[1] + x[i+1] k[3].
# _PHASE_TAPS[p, d, t] = 1 when kernel tap t feeds output phase p from input offset d - 1.
_PHASE_TAPS = np.zeros((2, 3, 4), np.float32)
_PHASE_TAPS[0, 0, 0] = _PHASE_TAPS[0, 1, 2] = 1.0
_PHASE_TAPS[1, 1, 1] = _PHASE_TAPS[1, 2, 3] = 1.0


def depth_to_space(x, block: int = 2):
  """[B, H, W, block*block*C] -> [B, block*H, block*W, C], channels ordered (row, col, C)."""
  b, h, w, c = x.shape
  c_out = c // (block * block)
  x = x.reshape(b, h, w, block, block, c_out)
  x = x.transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, h * block, w * block, c_out)


def subpixel_kernel(kernel):
  """The 3x3 kernel with 4*C_out outputs, ordered (row phase, col phase, C_out), whose
  stride-1 'SAME' convolution followed by `depth_to_space` equals the stride-2 'SAME'
  transposed convolution (flax/lax convention, kernel not flipped) with the 4x4 `kernel`."""
  taps = jnp.asarray(_PHASE_TAPS, kernel.dtype)
  w = jnp.einsum('pdt,qeu,tuio->deipqo', taps, taps, kernel)
  kh, kw, c_in, _, _, c_out = w.shape
  return w.reshape(kh, kw, c_in, 4 * c_out)


class UpConv2x(nn.Module):
  """Drop-in for `nn.ConvTranspose(features, (4, 4), strides=(2, 2), padding='SAME')`.

  Same parameters (kernel [4, 4, C_in, features], optional bias) and the same function, but
  computed as one stride-1 3x3 convolution to 4*features channels followed by depth-to-space,
  which skips the multiplications by the zeros a transposed convolution inserts between input
  pixels (several times faster on XLA:CPU). `tests/models_test.py` proves the equality.
  """
  features: int
  use_bias: bool = True
  kernel_init: Callable = nn.initializers.lecun_normal()
  bias_init: Callable = nn.initializers.zeros
  dtype: Any = None
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    kernel = self.param('kernel', self.kernel_init, (4, 4, x.shape[-1], self.features),
                        self.param_dtype)
    bias = (self.param('bias', self.bias_init, (self.features,), self.param_dtype)
            if self.use_bias else None)
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    y = jax.lax.conv_general_dilated(
        x, subpixel_kernel(kernel), window_strides=(1, 1), padding='SAME',
        dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    y = depth_to_space(y, 2)
    return y + bias if bias is not None else y
