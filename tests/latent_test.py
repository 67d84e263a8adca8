"""Latent interpolation and arithmetic."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genvision_jax import latent


def test_lerp_and_slerp_endpoints_and_midpoints():
  z0 = jnp.array([[1.0, 0.0, 0.0]])
  z1 = jnp.array([[0.0, 1.0, 0.0]])
  for mode in latent.MODES:
    path = latent.interpolate(z0, z1, 5, mode)
    chex.assert_shape(path, (5, 3))
    np.testing.assert_allclose(path[0], z0[0], atol=1e-6)
    np.testing.assert_allclose(path[-1], z1[0], atol=1e-6)
  np.testing.assert_allclose(latent.interpolate(z0, z1, 3, 'lerp')[1], [0.5, 0.5, 0.0])
  # slerp stays on the unit circle: the midpoint is (1, 1) / sqrt(2), lerp's has norm 0.71.
  mid = latent.interpolate(z0, z1, 3, 'slerp')[1]
  np.testing.assert_allclose(mid, [2**-0.5, 2**-0.5, 0.0], atol=1e-6)


def test_slerp_keeps_typical_norms_of_gaussian_latents():
  z0, z1 = jax.random.normal(jax.random.key(0), (2, 4, 100))
  norms = jnp.linalg.norm(latent.interpolate(z0, z1, 9, 'slerp').reshape(4, 9, 100), axis=-1)
  expected = jnp.linspace(0, 1, 9)[None] * (jnp.linalg.norm(z1, axis=-1)[:, None] -
                                            jnp.linalg.norm(z0, axis=-1)[:, None])
  np.testing.assert_allclose(norms, jnp.linalg.norm(z0, axis=-1)[:, None] + expected, rtol=1e-4)
  lerp_mid = jnp.linalg.norm(latent.interpolate(z0, z1, 9, 'lerp').reshape(4, 9, 100)[:, 4], -1)
  assert float(jnp.mean(lerp_mid)) < 0.8 * float(jnp.mean(norms[:, 4]))  # lerp's norm dip


def test_slerp_of_parallel_vectors_is_lerp():
  z0 = jnp.array([[1.0, 2.0]])
  path = latent.interpolate(z0, 3 * z0, 4, 'slerp')
  np.testing.assert_allclose(path, latent.interpolate(z0, 3 * z0, 4, 'lerp'), rtol=1e-5)


def test_arithmetic():
  a, b, c = jnp.ones((2, 3)), 2 * jnp.ones((2, 3)), 5 * jnp.ones((2, 3))
  np.testing.assert_allclose(latent.arithmetic(a, b, c), 4.0)
  with pytest.raises(ValueError, match='unknown interpolation'):
    latent.interpolate(a, b, 3, 'cubic')
