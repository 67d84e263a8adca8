"""Latent-space tools: linear and spherical interpolation, vector arithmetic, codes of real
images, the 2-D manifold and latent traversals.

Pure functions on latent arrays; decode the results with a method's `decode(state, z)` (GAN
generator or VAE decoder) and lay them out with `viz.save_image_grid(..., ncol=steps)`. Models
with an encoder (VAE runs: `method.encode(state, x) -> (mean, logvar)`) also map real images to
codes: `encode` gives the posterior means, the code of an image. The pixel statistics that
define attribute means (ink area, stroke thickness) run on the host with numpy.
"""

import jax
import jax.numpy as jnp
import numpy as np

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


# -- codes of real images (models with an encoder) -------------------------------------------

# config.method of the runs whose models encode images (`method.encode(state, images)` ->
# (code or posterior mean, log-variance or None for a deterministic encoder))
ENCODER_RUNS = ('vae', 'autoencoder')


def has_encoder(method) -> bool:
  return callable(getattr(method, 'encode', None))


def require_encoder(method, method_name: str, what: str) -> None:
  """Refuses `what` (e.g. '--from_images') for a model that cannot encode an image."""
  if not has_encoder(method):
    raise ValueError(
        f'{what} encodes real images, but a {method_name!r} run has no encoder (its latents '
        f'are only decoded); it works on runs of {", ".join(ENCODER_RUNS)} (e.g. '
        'experiments/vae_mnist.py, beta_vae_mnist.py, vae_2d_mnist.py). Random-latent '
        'interpolation and --arithmetic without --from_* work on every run')


def encode(method, state, images):
  """Posterior means [N, latent_dim] of images [N, H, W, C] in [-1, 1]: their codes."""
  return method.encode(state, images)[0]


def posterior_in_batches(method, state, images, batch_size: int = 1000):
  """Host arrays (mean, logvar) [N, D] of `method.encode` over images [N, H, W, C], batch_size
  at a time (a whole test split need not fit in one call); logvar is None for a
  deterministic encoder (autoencoders)."""
  fn = jax.jit(method.encode)
  parts = [fn(state, images[i:i + batch_size]) for i in range(0, len(images), batch_size)]
  return tuple(None if parts[0][k] is None else np.concatenate([np.asarray(p[k]) for p in parts])
               for k in (0, 1))


def kl_per_dimension(mean, logvar):
  """KL(q(z_d | x) || N(0, 1)) per latent dimension d, averaged over examples: [D]. Dimensions
  near 0 are unused (the posterior is the prior); a beta-VAE uses fewer."""
  return jnp.mean(0.5 * (mean**2 + jnp.exp(logvar) - 1.0 - logvar), axis=0)


def image_interpolation(method, state, x0, x1, steps: int, mode: str = 'slerp'):
  """Rows x0 | D(path from E(x0) to E(x1) in `steps` points) | x1 for image pairs x0, x1
  [R, H, W, C]: [R * (steps + 2), H, W, C], row by row."""
  path = interpolate(encode(method, state, x0), encode(method, state, x1), steps, mode)
  decoded = method.decode(state, path).reshape(x0.shape[0], steps, *x0.shape[1:])
  return jnp.concatenate([x0[:, None], decoded, x1[:, None]], axis=1).reshape(
      -1, *x0.shape[1:])


def arithmetic_rows(a, b, c):
  """Codes [R * 4, D] of rows [a, b, c, a - b + c] for a [R, D] and b, c [R, D] or [D]."""
  b, c = jnp.broadcast_to(b, a.shape), jnp.broadcast_to(c, a.shape)
  return jnp.stack([a, b, c, arithmetic(a, b, c)], axis=1).reshape(-1, a.shape[-1])


# -- attributes: class labels and pixel statistics --------------------------------------------

def ink_area(images, threshold: float = 0.0) -> np.ndarray:
  """Fraction of pixels brighter than `threshold` per image [N] (images [N, H, W, C] in
  [-1, 1], light strokes on a dark ground as in MNIST)."""
  return (np.asarray(images).mean(axis=-1) > threshold).mean(axis=(1, 2))


def stroke_thickness(images, threshold: float = 0.0) -> np.ndarray:
  """Mean stroke width in pixels per image [N]: the ink area divided by the length of its
  skeleton (scikit-image's `skeletonize`), so a 1-pixel line has width 1 and a w-pixel-wide
  bar about w (its skeleton loses about w/2 pixels at each end)."""
  from skimage.morphology import skeletonize  # pylint: disable=g-import-not-at-top
  ink = np.asarray(images).mean(axis=-1) > threshold
  return np.array([i.sum() / max(int(skeletonize(i).sum()), 1) for i in ink], np.float64)


# term -> (statistic, pole): the images in the lowest / highest ATTRIBUTE_FRACTION of it
ATTRIBUTES = {'thin': ('thickness', 'low'), 'thick': ('thickness', 'high'),
              'small': ('ink', 'low'), 'large': ('ink', 'high')}
ATTRIBUTE_FRACTION = 1 / 3


def parse_terms(terms, num_classes: int) -> list[str]:
  """Three arithmetic terms a, b, c of a - b + c, each a class label (0 .. num_classes - 1)
  or an attribute of ATTRIBUTES; a bad list is a ValueError naming what is allowed."""
  allowed = [str(k) for k in range(num_classes)] + list(ATTRIBUTES)
  terms = [str(t).strip() for t in terms]
  bad = [t for t in terms if t not in allowed]
  if len(terms) != 3 or bad:
    raise ValueError(f'--terms takes three terms a,b,c of a - b + c (got {",".join(terms)!r}'
                     f'{"; unknown " + ", ".join(bad) if bad else ""}): each a class label '
                     f'(0-{num_classes - 1}) or one of {", ".join(ATTRIBUTES)} (the lowest / '
                     f'highest third of each class by stroke thickness or ink area), e.g. '
                     '--terms=3,thin,thick')
  return terms


def term_members(term: str, labels, images) -> np.ndarray:
  """Boolean mask [N] of the examples a term averages over: the class `term` (a label), or the
  lowest / highest ATTRIBUTE_FRACTION of the images by the attribute's pixel statistic, within
  each class (1s are thin and 0s thick: thresholds over all digits would make 'thin - thick'
  mostly '1 - 0'; per class, every digit contributes its thinnest and thickest third)."""
  labels = np.asarray(labels)
  if term not in ATTRIBUTES:
    return labels == int(term)
  statistic, pole = ATTRIBUTES[term]
  values = (stroke_thickness if statistic == 'thickness' else ink_area)(images)
  members = np.zeros(len(values), bool)
  for k in np.unique(labels):
    mine = labels == k
    if pole == 'low':
      members |= mine & (values <= np.quantile(values[mine], ATTRIBUTE_FRACTION))
    else:
      members |= mine & (values >= np.quantile(values[mine], 1 - ATTRIBUTE_FRACTION))
  return members


def mean_code(codes, members, term: str):
  """The mean of codes [N, D] over a boolean mask [N] (an empty mask is a ValueError)."""
  members = np.asarray(members)
  if not members.any():
    raise ValueError(f'no example of the split is in {term!r}: its mean code is undefined')
  return np.asarray(codes)[members].mean(axis=0)


def term_arithmetic(codes, labels, images, terms, rows: int):
  """Latent arithmetic on mean codes: a - b + c for the terms (a, b, c) (see `parse_terms`).

  Returns (codes [R * 4, D] of `arithmetic_rows`, members): the first row is [mean(a),
  mean(b), mean(c), mean(a) - mean(b) + mean(c)], each of the next rows - 1 starts from the
  code of one example of a instead; `members` are the three boolean masks [N] averaged over."""
  codes = np.asarray(codes)
  members = [term_members(t, labels, images) for t in terms]
  a, b, c = (mean_code(codes, m, t) for m, t in zip(members, terms))
  singles = codes[np.flatnonzero(members[0])[:rows - 1]]
  return arithmetic_rows(jnp.asarray(np.concatenate([a[None], singles])), b, c), members


# -- the 2-D manifold and traversals ----------------------------------------------------------

def quantile_grid(n: int, low: float = 0.05, high: float = 0.95) -> np.ndarray:
  """Codes [n * n, 2] of the decoded manifold of a 2-D Gaussian latent (Kingma & Welling 2014,
  Fig. 4): an even grid of n probabilities in [low, high] per axis through the inverse CDF of
  N(0, 1), so each cell holds the same prior mass. Row-major as drawn: z_1 grows to the right
  along a row, z_2 grows upward (the first row has the largest z_2), as in a scatter plot."""
  from scipy.stats import norm  # pylint: disable=g-import-not-at-top
  values = norm.ppf(np.linspace(low, high, n))
  z1, z2 = np.meshgrid(values, values[::-1])
  return np.stack([z1.ravel(), z2.ravel()], axis=-1).astype(np.float32)


def traversal_codes(base, steps: int, limit: float = 3.0, dims=None):
  """One row per latent dimension d (in `dims`' order, default all): `base` [D] with z_d set
  to `steps` values evenly in [-limit, limit]: [len(dims) * steps, D]."""
  base = jnp.asarray(base)
  dims = range(base.shape[-1]) if dims is None else dims
  values = jnp.linspace(-limit, limit, steps)
  rows = [jnp.tile(base, (steps, 1)).at[:, d].set(values) for d in dims]
  return jnp.concatenate(rows, axis=0)
