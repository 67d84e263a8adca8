"""The VQ-VAE image tokenizer (van den Oord et al. 2017) of the autoregressive text-to-image
model (Parti's ViT-VQGAN plays this role there; a convolutional VQ-VAE/VQGAN here).

  encode:  x [B, H, W, C] -> z_e [B, H/f, W/f, D]          (conv encoder, f = 2**downsamples)
  quantize z_e -> nearest codebook vector e_k per position (codes [B, H/f, W/f] int32)
  decode:  z_q -> x_hat [B, H, W, C] (linear output; decode_codes clips it to [-1, 1])

`VectorQuantizer` holds the codebook [K, D] (a parameter when it is learned by the codebook
loss; with EMA updates it lives in the 'vq' collection with the EMA cluster sizes and sums,
which the method updates, Razavi et al. 2019) and returns the straight-through output
z_q = z_e + stop_gradient(e - z_e), so the decoder's gradient reaches the encoder unchanged.
The losses (codebook ||sg(z_e) - e||^2, commitment ||z_e - sg(e)||^2) are in losses.py.
"""

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from genvision_jax.models.layers import Conv


def nearest_codes(z, codebook):
  """Indices [...] of the codebook rows [K, D] nearest (squared L2) to each z [..., D]."""
  d = (jnp.sum(z * z, -1, keepdims=True) - 2 * z @ codebook.T
       + jnp.sum(codebook * codebook, -1))
  return jnp.argmin(d, axis=-1).astype(jnp.int32)


class VectorQuantizer(nn.Module):
  """See the module docstring. Returns {'z_q' (straight-through), 'e' (the chosen codebook
  vectors, carrying the codebook's gradient), 'codes', 'one_hot'}."""
  num_codes: int
  code_dim: int
  ema: bool = False

  def setup(self):
    if self.ema:  # the codebook and the EMA statistics the method updates (Razavi et al. 2019)
      self._codebook = self.variable('vq', 'codebook', lambda: jax.random.uniform(
          self.make_rng('params'), (self.num_codes, self.code_dim), jnp.float32,
          -1.0 / self.num_codes, 1.0 / self.num_codes))
      # usage 1 each at the start: an unused code keeps its vector (embed_sum / usage).
      self.cluster_size = self.variable('vq', 'cluster_size', jnp.ones, (self.num_codes,))
      self.embed_sum = self.variable('vq', 'embed_sum', lambda: self._codebook.value.copy())
      # assignments per code since the last dead-code check (the method resets it)
      self.window_usage = self.variable('vq', 'window_usage', jnp.zeros, (self.num_codes,))
    else:
      self._codebook = self.param(
          'codebook', nn.initializers.variance_scaling(1.0, 'fan_in', 'uniform'),
          (self.num_codes, self.code_dim))

  def codebook(self):
    return self._codebook.value if self.ema else self._codebook

  def __call__(self, z_e):
    codebook = self.codebook()
    codes = nearest_codes(jax.lax.stop_gradient(z_e), codebook)
    e = jnp.take(codebook, codes, axis=0)
    z_q = z_e + jax.lax.stop_gradient(e - z_e)
    return {'z_q': z_q, 'e': e, 'codes': codes,
            'one_hot': jax.nn.one_hot(codes, self.num_codes, dtype=jnp.float32)}

  def lookup(self, codes):
    """Codebook vectors [..., D] of integer codes [...]."""
    return jnp.take(self.codebook(), codes, axis=0)


def _norm(channels: int, dtype) -> nn.GroupNorm:
  return nn.GroupNorm(math.gcd(channels, 32), dtype=dtype)


class VQResBlock(nn.Module):
  """x + conv(silu(GN(conv(silu(GN(x)))))) (VQGAN's block, Esser et al. 2021)."""
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]
    h = Conv(c, 3, dtype=self.dtype)(nn.silu(_norm(c, self.dtype)(x)))
    return x + Conv(c, 3, dtype=self.dtype)(nn.silu(_norm(c, self.dtype)(h)))


class ConvVQEncoder(nn.Module):
  """conv -> `downsamples` x (res block, stride-2 conv) -> 2 res blocks -> GN, SiLU, 1x1 conv.

  GroupNorm + SiLU as in VQGAN: with bare ReLUs the whole encoder died within 100 steps on
  the digit canvases (mostly background), leaving a constant z_e and a blank reconstruction."""
  width: int = 64
  code_dim: int = 32
  downsamples: int = 2
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    h = Conv(self.width, 3, dtype=self.dtype)(x.astype(self.dtype))
    for i in range(self.downsamples):
      h = VQResBlock(self.dtype)(h)
      h = Conv(self.width * 2**i, 4, strides=2, dtype=self.dtype)(h)
    for _ in range(2):
      h = VQResBlock(self.dtype)(h)
    h = nn.silu(_norm(h.shape[-1], self.dtype)(h))
    return Conv(self.code_dim, 1, dtype=self.dtype)(h).astype(jnp.float32)


class ConvVQDecoder(nn.Module):
  """conv -> 2 res blocks -> `downsamples` x (nearest 2x, conv, res block) -> GN, SiLU, conv.
  The output is linear (no tanh: a saturated tanh stops the gradient of an all-background
  start); `decode_codes` clips it to [-1, 1]."""
  channels: int
  width: int = 64
  downsamples: int = 2
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, z):
    h = Conv(self.width * 2**(self.downsamples - 1), 3, dtype=self.dtype)(z.astype(self.dtype))
    for _ in range(2):
      h = VQResBlock(self.dtype)(h)
    for i in reversed(range(self.downsamples)):
      h = jnp.repeat(jnp.repeat(h, 2, axis=1), 2, axis=2)
      h = Conv(self.width * 2**max(i - 1, 0), 3, dtype=self.dtype)(h)
      h = VQResBlock(self.dtype)(h)
    h = nn.silu(_norm(h.shape[-1], self.dtype)(h))
    return Conv(self.channels, 3, dtype=self.dtype)(h).astype(jnp.float32)


class VQVAE(nn.Module):
  """Encoder, quantizer and decoder. `__call__(x)` -> dict of z_e, z_q, e, codes, one_hot and
  the reconstruction; `encode(x)` -> codes; `decode_codes(codes)` -> images."""
  channels: int
  num_codes: int = 256
  code_dim: int = 32
  width: int = 64
  downsamples: int = 2
  ema: bool = False
  dtype: Any = jnp.float32

  def setup(self):
    self.encoder = ConvVQEncoder(self.width, self.code_dim, self.downsamples, self.dtype)
    self.quantizer = VectorQuantizer(self.num_codes, self.code_dim, self.ema)
    self.decoder = ConvVQDecoder(self.channels, self.width, self.downsamples, self.dtype)

  def __call__(self, x):
    z_e = self.encoder(x)
    q = self.quantizer(z_e)
    return {'z_e': z_e, **q, 'reconstruction': self.decoder(q['z_q'])}

  def encode(self, x):
    return self.quantizer(self.encoder(x))['codes']

  def encoder_outputs(self, x):
    """The continuous z_e [B, h, w, D] before quantization."""
    return self.encoder(x)

  def decode_codes(self, codes):
    """Images in [-1, 1] of integer codes [B, h, w]."""
    return jnp.clip(self.decoder(self.quantizer.lookup(codes)), -1.0, 1.0)
