"""Building blocks shared by the architectures."""

import contextlib
import functools
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


def norm_layer(kind: str, train: bool, dtype: Any = None, name: str | None = None) -> Callable:
  """'batch' (BatchNorm, running averages at eval), 'layer', or 'none' (identity).

  Statistics are computed in float32 even when `dtype` (the output dtype) is bfloat16.
  """
  if kind == 'batch':
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=dtype,
                        name=name)
  if kind == 'layer':
    return nn.LayerNorm(dtype=dtype, name=name)
  if kind == 'none':
    return lambda x: x
  raise ValueError(f"unknown normalization '{kind}'; use 'batch', 'layer' or 'none'")


NORMS = ('batch', 'layer', 'none')


def spectral(layer: nn.Module, x, enabled: bool, train: bool):
  """layer(x), with spectral normalization of its weights when `enabled` (flax SpectralNorm:
  one power iteration per training call; its vectors live in the batch_stats collection)."""
  if not enabled:
    return layer(x)
  return nn.SpectralNorm(layer, n_steps=1)(x, update_stats=train)


_NHWC = ('NHWC', 'HWIO', 'NHWC')


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
  out = -(-size // stride)
  total = max((out - 1) * stride + kernel - size, 0)
  return total // 2, total - total // 2


_LOOP_SAFE_CONVOLUTIONS = [False]


@contextlib.contextmanager
def loop_safe_convolutions():
  """While tracing inside this context, `conv2d` uses `conv2d_loop_safe` (see there).

  The training loop traces its fused multi-step function (a `lax.scan` over steps) under it;
  single steps keep XLA's own convolution gradients, which are a little faster on CPU.
  """
  _LOOP_SAFE_CONVOLUTIONS.append(True)
  try:
    yield
  finally:
    _LOOP_SAFE_CONVOLUTIONS.pop()


CONV_IMPLS = ('auto', 'xla', 'gemm', 'split')
_CONV_IMPL = ['auto']


@contextlib.contextmanager
def convolution_implementation(impl: str):
  """While tracing inside this context, convolutions whose own `impl` is 'auto' use `impl`
  ('xla', 'gemm' or 'split'; 'auto' restores the choice of `conv_form`). For measurements:
  `benchmarks/run.py --conv_impl=xla` compares against XLA's convolutions everywhere."""
  if impl not in CONV_IMPLS:
    raise ValueError(f"unknown convolution implementation '{impl}'; use one of {CONV_IMPLS}")
  _CONV_IMPL.append(impl)
  try:
    yield
  finally:
    _CONV_IMPL.pop()


def conv_form(c_in: int, c_out: int, kernel_size: int = 3, impl: str = 'auto') -> str:
  """How a convolution from `c_in` to `c_out` channels is computed: 'gemm' (a matrix product
  of image patches, `conv2d_gemm`), 'split' (XLA's convolution forward and for the input
  gradient, the kernel gradient as one matrix product per tap, `conv2d_split`) or 'xla'
  (XLA's convolution and its own gradients).

  'auto' follows `convolution_implementation` if one is active; else, on CPU: 'gemm' for 1x1
  kernels (a plain matrix product) and for layers with at least 32 output channels or at
  least 16 from an image (at most 4 input channels); 'split' for 16-31 output channels; 'xla'
  for thinner (and tiny) layers; on GPU and TPU always 'xla'. Measured per layer (fwd + bwd)
  on a 2-core CPU at batch 64 and 256: XLA:CPU's convolutions run well below its matrix-product
  speed, their kernel gradients worst of all and worse with the batch (28x28, 48 -> 16
  channels: 58 ms at batch 64 but 906 ms at 256; split 34 and 124 ms; a 1x1 48 -> 16 skip
  projection 176 ms, as a product 18 ms); DCGAN's 7x7x128 -> 14x14x64 upsampling 315 -> 169 ms
  as products. For thin outputs (1-8 channels from wide inputs) XLA's convolution won both
  (large patches, a small product), and tiny layers keep it because it compiles faster.
  """
  if impl not in CONV_IMPLS:
    raise ValueError(f"unknown convolution implementation '{impl}'; use one of {CONV_IMPLS}")
  if impl == 'auto':
    impl = _CONV_IMPL[-1]
  if impl != 'auto':
    return impl
  if jax.default_backend() != 'cpu':
    return 'xla'
  if kernel_size == 1 or c_out >= 32 or (c_in <= 4 and c_out >= 16):
    return 'gemm'
  return 'split' if c_out >= 16 else 'xla'


def conv2d(x, kernel, stride: int = 1, impl: str = 'auto'):
  """'SAME' 2-D convolution, NHWC x HWIO -> NHWC (`impl`: see `conv_form`)."""
  form = conv_form(kernel.shape[2], kernel.shape[3], max(kernel.shape[:2]), impl)
  if form == 'gemm':
    return conv2d_gemm(x, kernel, stride)
  if form == 'split':
    return conv2d_split(x, kernel, stride)
  if _LOOP_SAFE_CONVOLUTIONS[-1]:
    return conv2d_loop_safe(x, kernel, stride)
  pads = [_same_padding(x.shape[i + 1], kernel.shape[i], stride) for i in range(2)]
  return jax.lax.conv_general_dilated(x, kernel, (stride, stride), pads,
                                      dimension_numbers=_NHWC)


def _tap_views(x, kh: int, kw: int, stride: int):
  """The kh*kw views of the 'SAME'-padded input that meet kernel tap (i, j) (row-major over
  taps), each [B, H', W', C] at the output's positions."""
  h, w = x.shape[1:3]
  oh, ow = -(-h // stride), -(-w // stride)
  (top, bottom), (left, right) = _same_padding(h, kh, stride), _same_padding(w, kw, stride)
  xp = jnp.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
  return [xp[:, i:i + stride * (oh - 1) + 1:stride, j:j + stride * (ow - 1) + 1:stride, :]
          for i in range(kh) for j in range(kw)]


def conv2d_gemm(x, kernel, stride: int = 1):
  """`conv2d` as one matrix product (im2col): the kh*kw shifted, strided views of the padded
  input concatenated along channels, [B, H', W', kh*kw*C_in], times the kernel reshaped to
  [kh*kw*C_in, C_out]. Same function as XLA's convolution (tested, gradients included); its
  gradients are matrix products and slices too, so it is also fast inside fused loops."""
  kh, kw, c, c_out = kernel.shape
  patches = jnp.concatenate(_tap_views(x, kh, kw, stride), axis=-1)
  return patches @ kernel.reshape(kh * kw * c, c_out)  # one dot_general over channels


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv2d_loop_safe(x, kernel, stride: int = 1):
  """`conv2d` with the usual gradients, written so that every convolution of the backward
  pass is itself NHWC x HWIO -> NHWC (operands transposed explicitly).

  Why: inside a loop (`lax.scan` of fused training steps) XLA:CPU leaves autodiff's
  transposed convolutions in other dimension orders (f01b_i01o->01bf, b01f_01oi->b01f) and
  runs them through a generic emitter, measured 50x slower (a DCGAN step: 0.45 instead of
  14 it/s, 26 s to compile). In this form the fused steps run at full speed. Same values as
  `conv2d` (tested).
  """
  return _conv2d_fwd(x, kernel, stride)[0]


def _conv2d_fwd(x, kernel, stride):
  pads = [_same_padding(x.shape[i + 1], kernel.shape[i], stride) for i in range(2)]
  y = jax.lax.conv_general_dilated(x, kernel, (stride, stride), pads, dimension_numbers=_NHWC)
  return y, (x, kernel)


def _input_gradient(x, kernel, dy, stride):
  """dx of `conv2d`: dy (dilated by the stride) convolved with the flipped kernel, in and out
  channels swapped; an NHWC x HWIO -> NHWC convolution."""
  pads = []
  for i in range(2):
    size, k, n_out = x.shape[i + 1], kernel.shape[i], dy.shape[i + 1]
    lo, _ = _same_padding(size, k, stride)
    pads.append((k - 1 - lo, size + lo - ((n_out - 1) * stride + 1)))
  flipped = jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2)
  dx = jax.lax.conv_general_dilated(dy, flipped, (1, 1), pads, lhs_dilation=(stride, stride),
                                    dimension_numbers=_NHWC)
  return dx.astype(x.dtype)


def _conv2d_bwd(stride, residuals, dy):
  x, kernel = residuals
  pads = []
  for i in range(2):
    size, k, n_out = x.shape[i + 1], kernel.shape[i], dy.shape[i + 1]
    lo, _ = _same_padding(size, k, stride)
    span = (n_out - 1) * stride + 1  # extent of dy dilated by the stride
    pads.append((lo, k - 1 + span - 1 - (size + lo - 1)))
  # dw[kh, kw, ci, co] = sum_{b, oh, ow} x[b, s*oh + kh - lo, s*ow + kw - lo, ci] dy[b, oh, ow, co]:
  # a convolution with the input channels as batch and the batch as features.
  dw = jax.lax.conv_general_dilated(x.transpose(3, 1, 2, 0), dy.transpose(1, 2, 0, 3), (1, 1),
                                    pads, rhs_dilation=(stride, stride),
                                    dimension_numbers=_NHWC)
  return _input_gradient(x, kernel, dy, stride), dw.transpose(1, 2, 0, 3).astype(kernel.dtype)


conv2d_loop_safe.defvjp(_conv2d_fwd, _conv2d_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv2d_split(x, kernel, stride: int = 1):
  """`conv2d` by XLA's convolution, whose input gradient is XLA's convolution too (in the
  loop-safe NHWC form of `conv2d_loop_safe`) but whose kernel gradient is kh*kw matrix
  products, one per tap: dw[i, j] = x_pad[:, i::s, j::s, :]^T dy over all batch and pixel
  positions, accumulated in float32. XLA:CPU's own kernel gradient of a 3x3 convolution to
  16 channels ran 5-7x slower at batch 256 (see `conv_form`). Same values as `conv2d` (tested).
  """
  return _conv2d_fwd(x, kernel, stride)[0]


def _conv2d_split_bwd(stride, residuals, dy):
  x, kernel = residuals
  kh, kw, c_in, c_out = kernel.shape
  dy_rows = dy.reshape(-1, c_out)
  taps = [jnp.einsum('nc,no->co', view.reshape(-1, c_in), dy_rows,
                     preferred_element_type=jnp.float32)
          for view in _tap_views(x, kh, kw, stride)]
  dw = jnp.stack(taps).reshape(kernel.shape)
  return _input_gradient(x, kernel, dy, stride), dw.astype(kernel.dtype)


conv2d_split.defvjp(_conv2d_fwd, _conv2d_split_bwd)


class Conv(nn.Module):
  """Drop-in for `nn.Conv(features, (k, k), strides=(s, s), padding='SAME')` (same parameter
  names and shapes) computed by `conv2d`: a matrix product of patches where that is faster
  (`conv_form`), else XLA's convolution, with a kernel gradient of per-tap products ('split')
  or XLA's own, in a backward pass that stays fast inside fused loops."""
  features: int
  kernel_size: int = 3
  strides: int = 1
  use_bias: bool = True
  kernel_init: Callable = nn.initializers.lecun_normal()
  bias_init: Callable = nn.initializers.zeros
  dtype: Any = None
  param_dtype: Any = jnp.float32
  impl: str = 'auto'  # 'auto', 'xla', 'gemm' or 'split': see `conv_form`

  @nn.compact
  def __call__(self, x):
    k = self.kernel_size
    kernel = self.param('kernel', self.kernel_init, (k, k, x.shape[-1], self.features),
                        self.param_dtype)
    bias = (self.param('bias', self.bias_init, (self.features,), self.param_dtype)
            if self.use_bias else None)
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    y = conv2d(x, kernel, self.strides, self.impl)
    return y + bias if bias is not None else y


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


def conv_transpose2x_gemm(x, kernel):
  """The stride-2 'SAME' transposed convolution with the 4x4 `kernel` (as `UpConv2x`) as four
  matrix products, one per output phase (p, q): y[2i+p, 2j+q] = sum over d, e in {0, 1} of
  x_pad[i+p+d, j+q+e] kernel[p+2d, q+2e] (x_pad: x with one pixel of zeros around). Only the
  4 taps that meet real input pixels are multiplied, and no convolution is left for XLA:CPU."""
  b, h, w, c = x.shape
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  phases = []
  for p in (0, 1):
    for q in (0, 1):
      patches = jnp.concatenate([xp[:, p + d:p + d + h, q + e:q + e + w, :]
                                 for d in (0, 1) for e in (0, 1)], axis=-1)
      phases.append(patches @ kernel[p::2, q::2].reshape(4 * c, -1))
  return depth_to_space(jnp.concatenate(phases, axis=-1), 2)


class UpConv2x(nn.Module):
  """Drop-in for `nn.ConvTranspose(features, (4, 4), strides=(2, 2), padding='SAME')`.

  Same parameters (kernel [4, 4, C_in, features], optional bias) and the same function, but
  computed as one stride-1 3x3 convolution to 4*features channels followed by depth-to-space,
  which skips the multiplications by the zeros a transposed convolution inserts between input
  pixels (several times faster on XLA:CPU); or, where `conv_form` says so (wide layers on CPU),
  as four matrix products, one per output phase (`conv_transpose2x_gemm`), which also skips
  the zero taps of that 3x3 kernel. `tests/models_test.py` proves the equalities.
  """
  features: int
  use_bias: bool = True
  kernel_init: Callable = nn.initializers.lecun_normal()
  bias_init: Callable = nn.initializers.zeros
  dtype: Any = None
  param_dtype: Any = jnp.float32
  impl: str = 'auto'  # 'auto', 'xla', 'gemm' or 'split': see `conv_form`

  @nn.compact
  def __call__(self, x):
    kernel = self.param('kernel', self.kernel_init, (4, 4, x.shape[-1], self.features),
                        self.param_dtype)
    bias = (self.param('bias', self.bias_init, (self.features,), self.param_dtype)
            if self.use_bias else None)
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    form = conv_form(x.shape[-1], self.features, 4, self.impl)
    if form == 'gemm':
      y = conv_transpose2x_gemm(x, kernel)
    else:  # 'xla' or 'split', for the 3x3 kernel with 4 * features outputs
      y = depth_to_space(conv2d(x, subpixel_kernel(kernel), 1, impl=form), 2)
    if bias is None:
      return y
    # The bias is added in float32: its gradient sums over every output pixel, a reduction
    # that bfloat16 would truncate (measured: 16 instead of 260 on a 28x28 output).
    return (y.astype(jnp.float32) + bias.astype(jnp.float32)).astype(y.dtype)
