"""Latent-space tools: linear and spherical interpolation and vector arithmetic.

Pure functions on latent arrays; decode the results with a method's `decode(state, z)` (GAN
generator or VAE decoder) and lay them out with `viz.save_image_grid(..., ncol=steps)`.
"""

import jax
import jax.numpy as jnp

MODES = ('lerp', 'slerp')


def lerp(z0, z1, t):
  """(1 - t) z0 + t z1, broadcasting t [..., 1] over the latent axis."""
  return (1.0 - t) * z0 + t * z1


def slerp(z0, z1, t, eps: float = 1e-6):
  """Spherical interpolation (Shoemake 1985; White 2016 for GAN latents): along the great
  circle between the directions of z0 and z1, with the norm interpolated linearly. Falls back
  to lerp for (anti)parallel endpoints."""
  n0 = jnp.linalg.norm(z0, axis=-1, keepdims=True)
  n1 = jnp.linalg.norm(z1, axis=-1, keepdims=True)
  cos = jnp.clip(jnp.sum(z0 * z1, axis=-1, keepdims=True) / (n0 * n1 + eps), -1.0, 1.0)
  omega = jnp.arccos(cos)
  sin = jnp.sin(omega)
  safe = sin > eps
  s = jnp.where(safe, sin, 1.0)
  w0 = jnp.where(safe, jnp.sin((1.0 - t) * omega) / s, 1.0 - t)
  w1 = jnp.where(safe, jnp.sin(t * omega) / s, t)
  direction = w0 * z0 / (n0 + eps) + w1 * z1 / (n1 + eps)
  direction = direction / (jnp.linalg.norm(direction, axis=-1, keepdims=True) + eps)
  return direction * lerp(n0, n1, t)


def interpolate(z0, z1, steps: int, mode: str = 'slerp'):
  """Paths from z0 [R, D] to z1 [R, D] in `steps` points: [R * steps, D], row by row."""
  if mode not in MODES:
    raise ValueError(f"unknown interpolation '{mode}'; use one of {MODES}")
  t = jnp.linspace(0.0, 1.0, steps)[None, :, None]
  fn = slerp if mode == 'slerp' else lerp
  path = fn(z0[:, None, :], z1[:, None, :], t)
  return path.reshape(-1, z0.shape[-1])


def arithmetic(a, b, c):
  """a - b + c (e.g. 'smiling woman' - 'neutral woman' + 'neutral man'), row-wise."""
  return a - b + c


def interpolation_images(method, state, rng, rows: int, steps: int, mode: str = 'slerp',
                         **decode_kwargs):
  """rows strips of `steps` images decoded along paths between random N(0, I) latents."""
  k0, k1 = jax.random.split(rng)
  z0 = jax.random.normal(k0, (rows, method.latent_dim))
  z1 = jax.random.normal(k1, (rows, method.latent_dim))
  return method.decode(state, interpolate(z0, z1, steps, mode), **decode_kwargs)


def arithmetic_images(method, state, rng, rows: int, **decode_kwargs):
  """rows strips [G(a), G(b), G(c), G(a - b + c)] for random latents a, b, c."""
  a, b, c = (jax.random.normal(k, (rows, method.latent_dim)) for k in jax.random.split(rng, 3))
  z = jnp.stack([a, b, c, arithmetic(a, b, c)], axis=1).reshape(-1, method.latent_dim)
  return method.decode(state, z, **decode_kwargs)
