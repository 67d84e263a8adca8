"""Progressive growing of GANs (Karras et al. 2018), for image sizes base * 2**k.

Both networks are built for the final resolution but run at a *stage* s (resolution
base * 2**s, e.g. 4, 8, 16, 32 for 32 px images): the generator stops after block s and
converts its features to pixels with `to_rgb_s`; the discriminator starts at block s with
`from_rgb_s`. While a new block fades in, `alpha` in [0, 1] blends it with the previous
stage's path:

  G(z; s, alpha) = (1 - alpha) * upsample(to_rgb_{s-1}(h_{s-1})) + alpha * to_rgb_s(h_s)
  D(x; s, alpha) = D_{<s}((1 - alpha) * from_rgb_{s-1}(avgpool(x)) + alpha * block_s(from_rgb_s(x)))

so alpha = 0 is exactly the lower-resolution network (upsampled) and alpha = 1 exactly the
higher one (`alpha=None` skips the blend: the stabilization phase). The blend is written as
(1 - a) * low + a * high, which gives each end bit-exactly.

As in the paper: nearest-neighbour upsampling and 3x3 convolutions with LeakyReLU (0.2) and
pixelwise feature normalization in G; average-pool downsampling, no normalization, and a
minibatch-standard-deviation feature in D's last block; equalized learning rate (weights drawn
from N(0, 1) and scaled at run time by He's constant sqrt(2 / fan_in)). G's output is linear
(no tanh); the method clips generated images to [-1, 1] for display. Stage and alpha are
arguments of `__call__`; the parameters of every stage exist from initialization on, so the
parameter tree does not change while the networks grow.

Note: the minibatch-stddev feature makes each output depend (weakly) on the whole batch,
which the paper accepts together with its WGAN-GP penalty; so does this implementation.
"""

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from genvision_jax.models.layers import conv2d, upsampling_plan

_SQRT2 = math.sqrt(2.0)


def num_stages(image_size: int) -> int:
  """Stages of a network grown to `image_size` (32 -> 4: 4, 8, 16, 32 px)."""
  return upsampling_plan(image_size)[0] + 1


def stage_resolution(image_size: int, stage: int) -> int:
  stages, base = upsampling_plan(image_size)
  del stages
  return base * 2**stage


def stage_widths(width: int, image_size: int, max_width: int = 256) -> list[int]:
  """Channels per stage: `width` at the final resolution, doubling towards the base
  (capped at `max_width`)."""
  n = num_stages(image_size)
  return [min(width * 2**(n - 1 - s), max_width) for s in range(n)]


def upsample2x(x):
  """Nearest-neighbour 2x upsampling, NHWC."""
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def downsample(x, factor: int = 2):
  """Average pooling by `factor` (non-overlapping), NHWC."""
  if factor == 1:
    return x
  b, h, w, c = x.shape
  return x.reshape(b, h // factor, factor, w // factor, factor, c).mean(axis=(2, 4))


def pixel_norm(x, eps: float = 1e-8):
  """Each pixel's feature vector scaled to unit root-mean-square (Karras et al. 4.2)."""
  return x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + eps)


def minibatch_stddev(x, group_size: int = 4):
  """Appends one feature map: the standard deviation of each feature over a group of
  examples, averaged over features and pixels (Karras et al. 3)."""
  b, h, w, c = x.shape
  g = math.gcd(b, group_size)
  y = x.astype(jnp.float32).reshape(g, b // g, h, w, c)
  y = jnp.sqrt(jnp.var(y, axis=0) + 1e-8)                     # [b/g, h, w, c]
  y = jnp.mean(y, axis=(1, 2, 3))                             # [b/g]
  y = jnp.tile(y, g)[:, None, None, None]                     # example i of group -> y[i % (b/g)]
  y = jnp.broadcast_to(y, (b, h, w, 1)).astype(x.dtype)
  return jnp.concatenate([x, y], axis=-1)


def _lerp(low, high, alpha):
  if alpha is None:
    return high
  alpha = jnp.asarray(alpha, high.dtype)
  return (1 - alpha) * low + alpha * high


class EqualizedConv(nn.Module):
  """'SAME' k x k convolution with the equalized learning rate: kernel ~ N(0, 1) scaled by
  gain / sqrt(fan_in) at every call."""
  features: int
  kernel_size: int = 3
  gain: float = _SQRT2
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    k, c_in = self.kernel_size, x.shape[-1]
    kernel = self.param('kernel', nn.initializers.normal(1.0), (k, k, c_in, self.features))
    bias = self.param('bias', nn.initializers.zeros, (self.features,))
    scale = self.gain / math.sqrt(k * k * c_in)
    y = conv2d(x.astype(self.dtype), (kernel * scale).astype(self.dtype), 1)
    return y + bias.astype(self.dtype)


class EqualizedDense(nn.Module):
  """Dense layer with the equalized learning rate."""
  features: int
  gain: float = _SQRT2
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    kernel = self.param('kernel', nn.initializers.normal(1.0), (x.shape[-1], self.features))
    bias = self.param('bias', nn.initializers.zeros, (self.features,))
    scale = self.gain / math.sqrt(x.shape[-1])
    return x.astype(self.dtype) @ (kernel * scale).astype(self.dtype) + bias.astype(self.dtype)


class Generator(nn.Module):
  """z [B, latent] -> images [B, r, r, C] at stage s's resolution r (float32, linear output).

  `stage=None` is the final stage. `labels` is accepted for the interface of the GAN method
  and must be None (unconditional).
  """
  image_size: int = 32
  channels: int = 1
  width: int = 16
  max_width: int = 256
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, z, labels=None, train: bool = True, stage: int | None = None,
               alpha=None):
    del train  # no BatchNorm, no dropout
    if labels is not None:
      raise ValueError('the progressive generator is unconditional')
    n = num_stages(self.image_size)
    stage = n - 1 if stage is None else stage
    widths = stage_widths(self.width, self.image_size, self.max_width)
    _, base = upsampling_plan(self.image_size)
    lrelu = lambda x: nn.leaky_relu(x, 0.2)
    to_rgb = [EqualizedConv(self.channels, 1, gain=1.0, dtype=self.dtype, name=f'to_rgb_{s}')
              for s in range(n)]

    h = pixel_norm(z.astype(self.dtype))
    h = EqualizedDense(base * base * widths[0], gain=_SQRT2 / 4, dtype=self.dtype,
                       name='block_0_dense')(h).reshape(z.shape[0], base, base, widths[0])
    h = pixel_norm(lrelu(h))
    h = pixel_norm(lrelu(EqualizedConv(widths[0], dtype=self.dtype, name='block_0_conv')(h)))
    prev = h
    for s in range(1, stage + 1):
      prev = h
      h = upsample2x(h)
      h = pixel_norm(lrelu(EqualizedConv(widths[s], dtype=self.dtype, name=f'block_{s}_conv0')(h)))
      h = pixel_norm(lrelu(EqualizedConv(widths[s], dtype=self.dtype, name=f'block_{s}_conv1')(h)))
    if self.is_initializing():  # create every stage's parameters, whatever the stage
      for s in range(stage + 1, n):
        h_s = jnp.zeros((1, base * 2**s, base * 2**s, widths[s - 1]), self.dtype)
        EqualizedConv(widths[s], dtype=self.dtype, name=f'block_{s}_conv0')(h_s)
        EqualizedConv(widths[s], dtype=self.dtype, name=f'block_{s}_conv1')(
            jnp.zeros((*h_s.shape[:3], widths[s]), self.dtype))
      for s in range(n):
        to_rgb[s](jnp.zeros((1, 1, 1, widths[s]), self.dtype))
    rgb = to_rgb[stage](h)
    if stage > 0 and alpha is not None:
      rgb = _lerp(upsample2x(to_rgb[stage - 1](prev)), rgb, alpha)
    return rgb.astype(jnp.float32)


class Discriminator(nn.Module):
  """images [B, r, r, C] at stage s's resolution -> logits [B] (float32).

  `norm` and `spectral_norm` exist for the GAN method's interface; this discriminator has no
  normalization layers ('none', False).
  """
  image_size: int = 32
  width: int = 16
  max_width: int = 256
  norm: str = 'none'
  spectral_norm: bool = False
  mbstd_group: int = 4
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, labels=None, train: bool = True, stage: int | None = None,
               alpha=None):
    del train
    if labels is not None:
      raise ValueError('the progressive discriminator is unconditional')
    if self.norm != 'none' or self.spectral_norm:
      raise ValueError('the progressive discriminator has no normalization layers: use '
                       "model.d_norm='none' and model.d_spectral_norm=False")
    n = num_stages(self.image_size)
    stage = n - 1 if stage is None else stage
    widths = stage_widths(self.width, self.image_size, self.max_width)
    lrelu = lambda x: nn.leaky_relu(x, 0.2)
    from_rgb = [EqualizedConv(widths[s], 1, dtype=self.dtype, name=f'from_rgb_{s}')
                for s in range(n)]

    def block(s, h):
      h = lrelu(EqualizedConv(widths[s], dtype=self.dtype, name=f'block_{s}_conv0')(h))
      h = lrelu(EqualizedConv(widths[s - 1], dtype=self.dtype, name=f'block_{s}_conv1')(h))
      return downsample(h)

    x = x.astype(self.dtype)
    if self.is_initializing():  # create every stage's parameters, whatever the stage
      for s in range(n):
        if s != stage:
          from_rgb[s](jnp.zeros((1, 1, 1, x.shape[-1]), self.dtype))
      for s in range(stage + 1, n):
        res = x.shape[1] * 2**(s - stage)
        block(s, jnp.zeros((1, res, res, widths[s]), self.dtype))
    h = lrelu(from_rgb[stage](x))
    if stage > 0:
      h = block(stage, h)
      if alpha is not None:
        h = _lerp(lrelu(from_rgb[stage - 1](downsample(x))), h, alpha)
    for s in range(stage - 1, 0, -1):
      h = block(s, h)
    h = minibatch_stddev(h, self.mbstd_group)
    h = lrelu(EqualizedConv(widths[0], dtype=self.dtype, name='block_0_conv')(h))
    h = lrelu(EqualizedDense(widths[0], dtype=self.dtype, name='block_0_dense')(
        h.reshape(h.shape[0], -1)))
    return EqualizedDense(1, gain=1.0, dtype=self.dtype, name='logit')(h)[:, 0].astype(
        jnp.float32)
