"""Variational autoencoders (Kingma & Welling 2014): Gaussian encoder q(z|x), decoder p(x|z).

The modules return distribution parameters only; sampling (reparameterization) and the ELBO
live in `genvision_jax.losses`. `likelihood` selects the decoder output: 'bernoulli' gives
per-pixel logits, 'gaussian' a per-pixel mean and a learned per-channel log-variance,
'discretized_gaussian' a per-pixel mean and a per-pixel log-scale (clipped below at
MIN_LOG_SCALE, as PixelCNN++ does) for the 256-bin likelihood of 8-bit data.
"""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from genvision_jax.models.layers import Conv, UpConv2x, upsampling_plan

LIKELIHOODS = ('bernoulli', 'gaussian', 'discretized_gaussian')
MIN_LOG_SCALE = -7.0  # scale e^-7 ~ 1e-3 already puts ~all mass in one 2/255-wide bin


def _gaussian_head(latent_dim, dtype, h):
  """(mean, logvar) of q(z|x), in float32."""
  mean = nn.Dense(latent_dim, dtype=dtype, name='mean')(h)
  logvar = nn.Dense(latent_dim, dtype=dtype, name='logvar')(h)
  return mean.astype(jnp.float32), logvar.astype(jnp.float32)


def conv_features(x, width: int, hidden: int, dtype):
  """Strided 4x4 ReLU convs (width doubling per stage) then ReLU Dense(hidden): [B, hidden].
  Call it inside a compact module: the layers are that module's (Conv_0, ..., Dense_0)."""
  stages, _ = upsampling_plan(x.shape[1])
  h = x
  for i in range(stages):
    h = nn.relu(Conv(width * 2**i, 4, strides=2, dtype=dtype)(h))
  return nn.relu(nn.Dense(hidden, dtype=dtype)(h.reshape(x.shape[0], -1)))


class ConvEncoder(nn.Module):
  """x [B, S, S, C] -> (mean, logvar) [B, latent]; strided 4x4 convs then dense."""
  latent_dim: int
  width: int = 32
  hidden: int = 256
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    return _gaussian_head(self.latent_dim, self.dtype,
                          conv_features(x, self.width, self.hidden, self.dtype))


class ConvDecoder(nn.Module):
  """z [B, latent] -> output [B, S, S, C] (logits or mean); mirror of ConvEncoder."""
  image_size: int
  channels: int
  width: int = 32
  hidden: int = 256
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, z):
    stages, base = upsampling_plan(self.image_size)
    features = self.width * 2**(stages - 1)
    h = nn.relu(nn.Dense(self.hidden, dtype=self.dtype)(z))
    h = nn.relu(nn.Dense(base * base * features, dtype=self.dtype)(h))
    h = h.reshape(z.shape[0], base, base, features)
    for _ in range(stages - 1):
      features //= 2
      h = nn.relu(UpConv2x(features, dtype=self.dtype)(h))
    return UpConv2x(self.channels, dtype=self.dtype)(h).astype(jnp.float32)


class MLPEncoder(nn.Module):
  """Kingma & Welling's MLP encoder: flattened x -> tanh hidden layer -> (mean, logvar)."""
  latent_dim: int
  hidden: int = 500
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    h = nn.tanh(nn.Dense(self.hidden, dtype=self.dtype)(x.reshape(x.shape[0], -1)))
    return _gaussian_head(self.latent_dim, self.dtype, h)


class MLPDecoder(nn.Module):
  """Kingma & Welling's MLP decoder: z -> tanh hidden layer -> per-pixel output."""
  image_size: int
  channels: int
  hidden: int = 500
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, z):
    h = nn.tanh(nn.Dense(self.hidden, dtype=self.dtype)(z))
    out = nn.Dense(self.image_size * self.image_size * self.channels, dtype=self.dtype)(h)
    out = out.reshape(z.shape[0], self.image_size, self.image_size, self.channels)
    return out.astype(jnp.float32)


class VAE(nn.Module):
  """Encoder and decoder under one parameter tree.

  `encode(x) -> (mean, logvar)`; `decode(z) -> dict` with 'logits' (Bernoulli), 'mean' and
  'logvar' (Gaussian) or 'mean' and 'log_scale' (discretized Gaussian); `__call__(x, z)` runs
  both (used for initialization).
  """
  image_size: int
  channels: int
  latent_dim: int = 16
  architecture: str = 'conv'  # 'conv' or 'mlp'
  width: int = 32
  hidden: int = 256
  likelihood: str = 'bernoulli'
  dtype: Any = jnp.float32  # compute dtype; parameters and outputs stay float32

  def setup(self):
    # The discretized Gaussian's decoder outputs a mean and a log-scale per pixel.
    out_channels = self.channels * (2 if self.likelihood == 'discretized_gaussian' else 1)
    if self.architecture == 'conv':
      self.encoder = ConvEncoder(self.latent_dim, self.width, self.hidden, self.dtype)
      self.decoder = ConvDecoder(self.image_size, out_channels, self.width, self.hidden,
                                 self.dtype)
    elif self.architecture == 'mlp':
      self.encoder = MLPEncoder(self.latent_dim, self.hidden, self.dtype)
      self.decoder = MLPDecoder(self.image_size, out_channels, self.hidden, self.dtype)
    else:
      raise ValueError(f"unknown VAE architecture '{self.architecture}'; use 'conv' or 'mlp'")
    if self.likelihood == 'gaussian':
      self.obs_logvar = self.param('obs_logvar', nn.initializers.zeros, (self.channels,))
    elif self.likelihood not in LIKELIHOODS:
      raise ValueError(f"unknown likelihood '{self.likelihood}'; use one of {LIKELIHOODS}")

  def encode(self, x):
    return self.encoder(x)

  def decode(self, z):
    out = self.decoder(z)
    if self.likelihood == 'bernoulli':
      return {'logits': out}
    if self.likelihood == 'discretized_gaussian':
      mean, log_scale = jnp.split(out, 2, axis=-1)
      return {'mean': mean, 'log_scale': jnp.maximum(log_scale, MIN_LOG_SCALE)}
    return {'mean': out, 'logvar': jnp.broadcast_to(self.obs_logvar, out.shape)}

  def __call__(self, x, z):
    return self.encode(x), self.decode(z)
