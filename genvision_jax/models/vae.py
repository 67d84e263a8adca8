"""Variational autoencoders (Kingma & Welling 2014): Gaussian encoder q(z|x), decoder p(x|z).

The modules return distribution parameters only; sampling (reparameterization) and the ELBO
live in `genvision_jax.losses`. `likelihood` selects the decoder output: 'bernoulli' gives
per-pixel logits, 'gaussian' a per-pixel mean and a learned per-channel log-variance.
"""

import flax.linen as nn
import jax.numpy as jnp

from genvision_jax.models.layers import upsampling_plan

LIKELIHOODS = ('bernoulli', 'gaussian')


class ConvEncoder(nn.Module):
  """x [B, S, S, C] -> (mean, logvar) [B, latent]; strided 4x4 convs then dense."""
  latent_dim: int
  width: int = 32
  hidden: int = 256

  @nn.compact
  def __call__(self, x):
    stages, _ = upsampling_plan(x.shape[1])
    h = x
    for i in range(stages):
      h = nn.relu(nn.Conv(self.width * 2**i, (4, 4), strides=(2, 2), padding='SAME')(h))
    h = nn.relu(nn.Dense(self.hidden)(h.reshape(x.shape[0], -1)))
    return nn.Dense(self.latent_dim, name='mean')(h), nn.Dense(self.latent_dim, name='logvar')(h)


class ConvDecoder(nn.Module):
  """z [B, latent] -> output [B, S, S, C] (logits or mean); mirror of ConvEncoder."""
  image_size: int
  channels: int
  width: int = 32
  hidden: int = 256

  @nn.compact
  def __call__(self, z):
    stages, base = upsampling_plan(self.image_size)
    features = self.width * 2**(stages - 1)
    h = nn.relu(nn.Dense(self.hidden)(z))
    h = nn.relu(nn.Dense(base * base * features)(h)).reshape(z.shape[0], base, base, features)
    for _ in range(stages - 1):
      features //= 2
      h = nn.relu(nn.ConvTranspose(features, (4, 4), strides=(2, 2), padding='SAME')(h))
    return nn.ConvTranspose(self.channels, (4, 4), strides=(2, 2), padding='SAME')(h)


class MLPEncoder(nn.Module):
  """Kingma & Welling's MLP encoder: flattened x -> tanh hidden layer -> (mean, logvar)."""
  latent_dim: int
  hidden: int = 500

  @nn.compact
  def __call__(self, x):
    h = nn.tanh(nn.Dense(self.hidden)(x.reshape(x.shape[0], -1)))
    return nn.Dense(self.latent_dim, name='mean')(h), nn.Dense(self.latent_dim, name='logvar')(h)


class MLPDecoder(nn.Module):
  """Kingma & Welling's MLP decoder: z -> tanh hidden layer -> per-pixel output."""
  image_size: int
  channels: int
  hidden: int = 500

  @nn.compact
  def __call__(self, z):
    h = nn.tanh(nn.Dense(self.hidden)(z))
    out = nn.Dense(self.image_size * self.image_size * self.channels)(h)
    return out.reshape(z.shape[0], self.image_size, self.image_size, self.channels)


class VAE(nn.Module):
  """Encoder and decoder under one parameter tree.

  `encode(x) -> (mean, logvar)`; `decode(z) -> dict` with 'logits' (Bernoulli) or 'mean' and
  'logvar' (Gaussian); `__call__(x, z)` runs both (used for initialization).
  """
  image_size: int
  channels: int
  latent_dim: int = 16
  architecture: str = 'conv'  # 'conv' or 'mlp'
  width: int = 32
  hidden: int = 256
  likelihood: str = 'bernoulli'

  def setup(self):
    if self.architecture == 'conv':
      self.encoder = ConvEncoder(self.latent_dim, self.width, self.hidden)
      self.decoder = ConvDecoder(self.image_size, self.channels, self.width, self.hidden)
    elif self.architecture == 'mlp':
      self.encoder = MLPEncoder(self.latent_dim, self.hidden)
      self.decoder = MLPDecoder(self.image_size, self.channels, self.hidden)
    else:
      raise ValueError(f"unknown VAE architecture '{self.architecture}'; use 'conv' or 'mlp'")
    if self.likelihood == 'gaussian':
      self.obs_logvar = self.param('obs_logvar', nn.initializers.zeros, (self.channels,))
    elif self.likelihood != 'bernoulli':
      raise ValueError(f"unknown likelihood '{self.likelihood}'; use one of {LIKELIHOODS}")

  def encode(self, x):
    return self.encoder(x)

  def decode(self, z):
    out = self.decoder(z)
    if self.likelihood == 'bernoulli':
      return {'logits': out}
    return {'mean': out, 'logvar': jnp.broadcast_to(self.obs_logvar, out.shape)}

  def __call__(self, x, z):
    return self.encode(x), self.decode(z)
