"""Tree-Ring watermarks (Wen et al. 2023): a key written into the Fourier transform of a
diffusion model's initial noise x_T, read back by DDIM inversion. No training.

Conventions (adapted from the reference `optim_utils.py` to small pixel-space images):
- F(x) = fftshift(fft2(x, norm='ortho')) over the spatial axes of one channel, so DC sits at
  (n//2, n//2) and N(0, 1) noise has coefficients with independent N(0, 1/2) real and
  imaginary parts (DC real N(0, 1)).
- The key lives in the disc of radius r about DC. The disc is its own point reflection, so the
  keys are Hermitian (conjugate-symmetric) and the watermarked x_T is real *exactly*, with
  F(x_T) equal to the key on the disc (the reference takes `.real` of a non-Hermitian pattern
  and never writes its key exactly).
- Patterns: 'rand' (the transform of a seeded N(0, 1) image: the key is itself noise-like, so
  x_T stays N(0, I)), 'zeros' (the low frequencies removed), 'ring' (a real constant per
  integer radius, drawn N(0, 1/2)).
- Detection: the L1 distance between the key and F(x_T_hat) on the disc (lower = watermarked),
  and a p-value: on half the disc (one of each conjugate pair) plus DC's real part, the 2M + 1
  independent coordinates y against the key k, s^2 estimated from the coefficients outside the
  disc (which the key does not touch), eta = ||(y - k)/s||^2 ~ chi'^2(2M + 1, ||k/s||^2) if the
  image is not watermarked; p = P(chi'^2 <= eta).
"""

import jax
import jax.numpy as jnp
import numpy as np

from genvision_jax.provenance import ProvenanceError, statistics

PATTERNS = ('rand', 'ring', 'zeros')


def fourier(x):
  """Centred orthonormal 2-D FFT over axes (1, 2) of [N, H, W] arrays."""
  return jnp.fft.fftshift(jnp.fft.fft2(x, axes=(1, 2), norm='ortho'), axes=(1, 2))


def inverse_fourier(f):
  return jnp.fft.ifft2(jnp.fft.ifftshift(f, axes=(1, 2)), axes=(1, 2), norm='ortho')


def _centred_grid(n: int):
  i = np.arange(n) - n // 2
  return i[:, None], i[None, :]


def disc_mask(n: int, radius: int) -> np.ndarray:
  """[n, n] bool: the frequencies within `radius` of DC (at n//2, n//2 after fftshift)."""
  if not 0 < radius < n / 2:
    raise ProvenanceError(f'the Tree-Ring radius must be in [1, {(n - 1) // 2}] for {n}x{n} images '
                     f'(got {radius})')
  y, x = _centred_grid(n)
  return (y**2 + x**2) <= radius**2


def half_disc(n: int, radius: int) -> np.ndarray:
  """One frequency of each conjugate pair in the disc, DC excluded: (ky > 0) or (ky = 0, kx > 0)."""
  y, x = _centred_grid(n)
  return disc_mask(n, radius) & ((y > 0) | ((y == 0) & (x > 0)))


def make_key(n: int, radius: int, pattern: str = 'rand', seed: int = 0) -> np.ndarray:
  """[n, n] complex128 Hermitian key pattern, zero outside the disc."""
  if pattern not in PATTERNS:
    raise ProvenanceError(f"unknown Tree-Ring pattern '{pattern}'; use one of {PATTERNS}")
  mask = disc_mask(n, radius)
  rng = np.random.default_rng(seed)
  if pattern == 'rand':
    noise = rng.standard_normal((n, n))
    key = np.fft.fftshift(np.fft.fft2(noise, norm='ortho'))
  elif pattern == 'zeros':
    key = np.zeros((n, n), np.complex128)
  else:
    y, x = _centred_grid(n)
    ring = np.ceil(np.sqrt(y**2 + x**2)).astype(int)
    values = rng.normal(0.0, np.sqrt(0.5), radius + 1)
    values[0] = values[1]  # DC takes ring 1's value, as in the reference
    key = values[np.minimum(ring, radius)].astype(np.complex128)
  return np.where(mask, key, 0.0)


def inject(x_T, key, radius: int, channel: int = -1):
  """x_T [N, H, W, C] with channel `channel`'s transform set to the key on the disc."""
  n = x_T.shape[1]
  if x_T.shape[2] != n:
    raise ProvenanceError(f'Tree-Ring needs square images (got {x_T.shape[1]}x{x_T.shape[2]})')
  mask = jnp.asarray(disc_mask(n, radius))
  c = channel % x_T.shape[-1]
  f = fourier(x_T[..., c].astype(jnp.float32))
  f = jnp.where(mask, jnp.asarray(key, f.dtype), f)
  return x_T.at[..., c].set(jnp.real(inverse_fourier(f)).astype(x_T.dtype))


def score(x_T_hat, key, radius: int, channel: int = -1) -> dict[str, np.ndarray]:
  """Per image: 'l1' (mean |F - key| on the disc; low = watermarked), 'eta', 'p_value'
  (non-central chi^2, left tail), 'df', 'sigma2' (the null variance per coordinate)."""
  x = np.asarray(x_T_hat, np.float64)
  n = x.shape[1]
  c = channel % x.shape[-1]
  f = np.asarray(np.fft.fftshift(np.fft.fft2(x[..., c], axes=(1, 2), norm='ortho'), axes=(1, 2)))
  key = np.asarray(key, np.complex128)
  mask, half = disc_mask(n, radius), half_disc(n, radius)
  l1 = np.abs(f - key)[:, mask].mean(axis=1)
  # the null variance of Re and Im, from the coefficients the key does not touch (self-conjugate
  # frequencies, whose imaginary part is 0, are left out)
  y, xg = _centred_grid(n)
  self_conj = ((y == 0) | (2 * y == -n)) & ((xg == 0) | (2 * xg == -n))
  outside = ~mask & ~self_conj
  sigma2 = (np.abs(f[:, outside])**2).mean(axis=1) / 2.0
  dc = (n // 2, n // 2)
  diff = f[:, half] - key[half]
  eta = ((diff.real**2 + diff.imag**2).sum(axis=1) / sigma2
         + (f[:, dc[0], dc[1]].real - key[dc].real)**2 / (2.0 * sigma2))
  nc = ((np.abs(key[half])**2).sum() / sigma2 + key[dc].real**2 / (2.0 * sigma2))
  df = 2 * int(half.sum()) + 1
  p = statistics.ncx2_p_value(eta, df, nc)
  return {'l1': l1, 'eta': eta, 'p_value': p, 'df': df, 'sigma2': sigma2}


def watermarked_noise(rng, num: int, image_shape, key, radius: int, channel: int = -1):
  """num initial noises x_T ~ N(0, I) of image_shape carrying the key."""
  x_T = jax.random.normal(rng, (num, *image_shape), jnp.float32)
  return inject(x_T, key, radius, channel)
