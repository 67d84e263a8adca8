"""Deterministic autoencoders: encoder x -> code, decoder code -> image (no losses here; the
sparsity constraints and reconstruction losses live in `methods/autoencoder.py`).

Architectures (`Autoencoder.architecture`):
  'mlp'     the deep autoencoder: flattened x -> ReLU layers of `hidden` widths -> linear code;
            the decoder mirrors it (Hinton & Salakhutdinov 2006, with ReLU instead of RBM
            pre-training).
  'linear'  one linear map each way (x -> W x + b -> W' code + b'): trained on the squared
            error it spans PCA's subspace (Baldi & Hornik 1989), the check of the tests.
  'conv'    the VAE's convolutional encoder recipe (strided 4x4 convs, a dense layer) ending in
            a linear code, and the VAE's convolutional decoder.
The decoder returns raw outputs: the mean image (squared error) or per-pixel logits
(Bernoulli cross-entropy); the method maps them to [-1, 1].
"""

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from genvision_jax.models.vae import ConvDecoder, conv_features

ARCHITECTURES = ('mlp', 'linear', 'conv')


class MLPCodeEncoder(nn.Module):
  """Flattened x -> ReLU(Dense) for each width of `hidden` -> linear code [B, code_dim]."""
  code_dim: int
  hidden: Sequence[int] = (512, 256)
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    h = x.reshape(x.shape[0], -1)
    for width in self.hidden:
      h = nn.relu(nn.Dense(width, dtype=self.dtype)(h))
    return nn.Dense(self.code_dim, dtype=self.dtype, name='code')(h).astype(jnp.float32)


class MLPCodeDecoder(nn.Module):
  """Code -> ReLU(Dense) for each width of `hidden` -> image-shaped raw output."""
  image_size: int
  channels: int
  hidden: Sequence[int] = (256, 512)
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, z):
    h = z
    for width in self.hidden:
      h = nn.relu(nn.Dense(width, dtype=self.dtype)(h))
    out = nn.Dense(self.image_size * self.image_size * self.channels, dtype=self.dtype,
                   name='pixels')(h)
    return out.reshape(z.shape[0], self.image_size, self.image_size,
                       self.channels).astype(jnp.float32)


class ConvCodeEncoder(nn.Module):
  """x [B, S, S, C] -> strided 4x4 ReLU convs (width doubling) -> ReLU Dense(hidden) -> code."""
  code_dim: int
  width: int = 32
  hidden: int = 256
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    h = conv_features(x, self.width, self.hidden, self.dtype)
    return nn.Dense(self.code_dim, dtype=self.dtype, name='code')(h).astype(jnp.float32)


class Autoencoder(nn.Module):
  """Encoder and decoder under one parameter tree ({'encoder': ..., 'decoder': ...}).

  `encode(x) -> code [B, code_dim]`; `decode(code) -> raw output [B, S, S, C]`;
  `__call__(x)` runs both (initialization).
  """
  image_size: int
  channels: int
  code_dim: int = 32
  architecture: str = 'mlp'
  hidden: Sequence[int] = (512, 256)  # mlp: encoder widths (the decoder mirrors them)
  width: int = 32                     # conv: channels of the first conv layer
  dtype: Any = jnp.float32

  def setup(self):
    if self.architecture in ('mlp', 'linear'):
      hidden = tuple(self.hidden) if self.architecture == 'mlp' else ()
      self.encoder = MLPCodeEncoder(self.code_dim, hidden, self.dtype)
      self.decoder = MLPCodeDecoder(self.image_size, self.channels, hidden[::-1], self.dtype)
    elif self.architecture == 'conv':
      dense = int(self.hidden[0]) if self.hidden else 256
      self.encoder = ConvCodeEncoder(self.code_dim, self.width, dense, self.dtype)
      self.decoder = ConvDecoder(self.image_size, self.channels, self.width, dense, self.dtype)
    else:
      raise ValueError(f'unknown autoencoder architecture {self.architecture!r}; use one of '
                       f'{ARCHITECTURES}')

  def encode(self, x):
    return self.encoder(x)

  def decode(self, code):
    return self.decoder(code)

  def __call__(self, x):
    return self.decode(self.encode(x))
