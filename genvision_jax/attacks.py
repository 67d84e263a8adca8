"""Image attacks against watermarks and detectors: what happens to an image between the model
and the person who checks it. Images are [N, H, W, C] in [-1, 1].

Every attack is `apply(name, images, strength, seed)` (numpy in, numpy out, same shape):

  jpeg        Pillow JPEG at quality `strength` (1-95), per image, 8-bit round trip
  noise       + N(0, strength^2) in [0, 1] units (Tree-Ring's std 0.1), clipped
  blur        Gaussian blur of std `strength` pixels (dm-pix, kernel 2 ceil(3 sigma) + 1)
  resize      down by the factor `strength` (bilinear) and back up
  crop        keep the central square of area fraction `strength`, resized back up (bilinear)
  brightness  multiply [0, 1] intensities by `strength`, clipped
  regen       regeneration: noise to the diffusion level t = strength * T and denoise by
              deterministic DDIM (needs a diffusion run; see `regenerate`)

STRENGTHS lists the default sweep of each attack, from mild to strong.
"""

import io

import dm_pix
import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

ATTACKS = ('none', 'jpeg', 'noise', 'blur', 'resize', 'crop', 'brightness', 'regen')
STRENGTHS = {
    'none': (0.0,),
    'jpeg': (90, 70, 50, 30, 10),
    'noise': (0.02, 0.05, 0.1, 0.2),
    'blur': (0.5, 1.0, 1.5, 2.0),
    'resize': (0.75, 0.5, 0.375, 0.25),
    'crop': (0.9, 0.75, 0.5, 0.35),
    'brightness': (1.2, 1.5, 2.0, 3.0),
    'regen': (0.1, 0.2, 0.3, 0.5),
}
STRENGTH_LABELS = {'none': '', 'jpeg': 'quality', 'noise': 'std ([0, 1] units)',
                   'blur': 'sigma (px)', 'resize': 'scale', 'crop': 'kept area',
                   'brightness': 'factor', 'regen': 't / T'}


def to_uint8(images) -> np.ndarray:
  """[-1, 1] floats -> uint8 (round to nearest)."""
  x = (np.clip(np.asarray(images, np.float64), -1.0, 1.0) + 1.0) * 127.5
  return np.round(x).astype(np.uint8)


def from_uint8(images) -> np.ndarray:
  return np.asarray(images, np.float32) / 127.5 - 1.0


def jpeg(images, quality: int) -> np.ndarray:
  """Each image through Pillow's JPEG encoder and decoder at `quality`."""
  quality = int(quality)
  if not 1 <= quality <= 100:
    raise ValueError(f'JPEG quality must be in [1, 100] (got {quality})')
  pixels = to_uint8(images)
  out = np.empty_like(pixels)
  for i, img in enumerate(pixels):
    grey = img.shape[-1] == 1
    pil = Image.fromarray(img[..., 0] if grey else img, 'L' if grey else 'RGB')
    buf = io.BytesIO()
    pil.save(buf, format='JPEG', quality=quality)
    dec = np.asarray(Image.open(io.BytesIO(buf.getvalue())))
    out[i] = dec[..., None] if grey else dec
  return from_uint8(out)


def _resize(x, shape):
  return jax.image.resize(x, (x.shape[0], *shape, x.shape[-1]), 'bilinear', antialias=True)


def blur(images, sigma: float) -> np.ndarray:
  if sigma <= 0:
    return np.asarray(images, np.float32)
  size = 2 * int(np.ceil(3 * sigma)) + 1
  x = jnp.asarray(images, jnp.float32)
  out = jax.vmap(lambda im: dm_pix.gaussian_blur(im, sigma, size, padding='SAME'))(x)
  return np.asarray(out)


def resize(images, scale: float) -> np.ndarray:
  x = jnp.asarray(images, jnp.float32)
  h, w = x.shape[1:3]
  small = (max(1, int(round(h * scale))), max(1, int(round(w * scale))))
  if small == (h, w):
    return np.asarray(x)
  return np.asarray(jnp.clip(_resize(_resize(x, small), (h, w)), -1.0, 1.0))


def crop(images, area: float) -> np.ndarray:
  if not 0 < area <= 1:
    raise ValueError(f'crop keeps an area fraction in (0, 1] (got {area})')
  x = jnp.asarray(images, jnp.float32)
  h, w = x.shape[1:3]
  ch, cw = max(1, int(round(h * np.sqrt(area)))), max(1, int(round(w * np.sqrt(area))))
  if (ch, cw) == (h, w):
    return np.asarray(x)
  top, left = (h - ch) // 2, (w - cw) // 2
  return np.asarray(jnp.clip(_resize(x[:, top:top + ch, left:left + cw], (h, w)), -1.0, 1.0))


def noise(images, std: float, seed: int = 0) -> np.ndarray:
  x = np.asarray(images, np.float32)
  z = np.random.default_rng(seed).standard_normal(x.shape).astype(np.float32)
  return np.clip(x + 2.0 * std * z, -1.0, 1.0)


def brightness(images, factor: float) -> np.ndarray:
  x = (np.asarray(images, np.float32) + 1.0) / 2.0
  return np.clip(x * factor, 0.0, 1.0) * 2.0 - 1.0


def regenerate(method, state, images, level: float, seed: int = 0, steps: int | None = None):
  """The regeneration attack (Zhao et al. 2023): q(x_t | x_0) at t = level * (T - 1), then
  deterministic DDIM from t down to the data with the diffusion run (method, state)."""
  T = method.num_timesteps
  t_star = int(round(level * (T - 1)))
  _, timesteps, _, _ = method.sample_settings('ddim', steps, 0.0, 0.0)
  timesteps = np.asarray([t for t in timesteps if t < t_star] or [0], np.int32)
  timesteps = np.concatenate([[t_star], timesteps]).astype(np.int32)
  x0 = jnp.asarray(images, jnp.float32)
  labels = (jnp.full((x0.shape[0],), method.null_label, jnp.int32) if method.num_classes
            else None)

  @jax.jit
  def run(params, x0, key):
    eps = jax.random.normal(key, x0.shape)
    xt = method.process.q_sample(x0, jnp.full((x0.shape[0],), t_star), eps)
    return method.reverse_chain(params, xt, None, labels, 'ddim', timesteps, 0.0, 0.0)

  return np.asarray(run(state.ema_params, x0, jax.random.PRNGKey(seed)))


def apply(name: str, images, strength, seed: int = 0, regen=None) -> np.ndarray:
  """One attack at one strength; regen = (method, state) of a diffusion run for 'regen'."""
  if name == 'none':
    return np.asarray(images, np.float32)
  if name == 'jpeg':
    return jpeg(images, strength)
  if name == 'noise':
    return noise(images, strength, seed)
  if name == 'blur':
    return blur(images, strength)
  if name == 'resize':
    return resize(images, strength)
  if name == 'crop':
    return crop(images, strength)
  if name == 'brightness':
    return brightness(images, strength)
  if name == 'regen':
    if regen is None:
      raise ValueError('the regeneration attack needs a diffusion run (--regen_run)')
    return regenerate(*regen, images, strength, seed)
  raise ValueError(f"unknown attack '{name}'; use one of {ATTACKS}")


# -- differentiable versions: the noise layers a learned watermark trains through ---------------
# Each maps (watermarked [N, H, W, C], cover [N, H, W, C], rng) -> attacked images of the same
# shape, inside jit; strengths are drawn per batch from the ranges below (HiDDeN, Zhu et al. 2018;
# Stable Signature's HiddenAug). JPEG is straight-through: the real Pillow codec forward (through
# jax.pure_callback), the identity backward.

NOISE_LAYERS = ('identity', 'quantize', 'dropout', 'cropout', 'crop', 'resize', 'blur', 'noise',
                'brightness', 'jpeg')


def _straight_through(x, y):
  """y forward, the identity's gradient backward."""
  return x + jax.lax.stop_gradient(y - x)


def jpeg_straight_through(x, quality: int = 50):
  """Real JPEG at `quality` forward (host Pillow via pure_callback), identity gradient."""
  shape = jax.ShapeDtypeStruct(x.shape, jnp.float32)
  coded = jax.pure_callback(lambda a: jpeg(np.asarray(a), quality).astype(np.float32), shape,
                            jax.lax.stop_gradient(jnp.clip(x, -1.0, 1.0)))
  return _straight_through(x, coded)


def quantize_straight_through(x):
  """The 8-bit round trip of a saved PNG, straight-through."""
  q = jnp.round((jnp.clip(x, -1.0, 1.0) + 1.0) * 127.5) / 127.5 - 1.0
  return _straight_through(x, q)


def _box(rng, n: int, h: int, w: int, low: float, high: float):
  """[n, h, w, 1] masks of one random axis-aligned box per image with area in [low, high]."""
  k1, k2, k3 = jax.random.split(rng, 3)
  area = jax.random.uniform(k1, (n, 1, 1, 1), minval=low, maxval=high)
  side = jnp.sqrt(area)
  bh, bw = side * h, side * w
  top = jax.random.uniform(k2, (n, 1, 1, 1)) * (h - bh)
  left = jax.random.uniform(k3, (n, 1, 1, 1)) * (w - bw)
  ys = jnp.arange(h).reshape(1, h, 1, 1)
  xs = jnp.arange(w).reshape(1, 1, w, 1)
  return ((ys >= top) & (ys < top + bh) & (xs >= left) & (xs < left + bw)).astype(jnp.float32)


def noise_layer(name: str, x, cover, rng):
  """One named noise layer (NOISE_LAYERS) on watermarked images x with their covers."""
  n, h, w, _ = x.shape
  if name == 'identity':
    return x
  if name == 'quantize':
    return quantize_straight_through(x)
  if name == 'dropout':  # keep a random fraction of watermarked pixels, the rest from the cover
    k1, k2 = jax.random.split(rng)
    keep = jax.random.uniform(k1, (n, 1, 1, 1), minval=0.3, maxval=0.7)
    m = (jax.random.uniform(k2, (n, h, w, 1)) < keep).astype(x.dtype)
    return m * x + (1 - m) * cover
  if name == 'cropout':  # a box of the watermarked image in the cover
    m = _box(rng, n, h, w, 0.3, 0.5)
    return m * x + (1 - m) * cover
  if name == 'crop':  # only a box survives (black elsewhere: shapes stay static)
    m = _box(rng, n, h, w, 0.25, 0.5)
    return m * x + (1 - m) * -1.0
  if name == 'resize':
    small = jax.image.resize(x, (n, max(1, int(h * 0.6)), max(1, int(w * 0.6)), x.shape[-1]),
                             'bilinear', antialias=True)
    return jax.image.resize(small, x.shape, 'bilinear')
  if name == 'blur':
    sigma = jax.random.uniform(rng, (), minval=0.5, maxval=1.0)
    return jax.vmap(lambda im: dm_pix.gaussian_blur(im, sigma, 5, padding='SAME'))(x)
  if name == 'noise':
    k1, k2 = jax.random.split(rng)
    std = jax.random.uniform(k1, (n, 1, 1, 1), maxval=0.1)
    return x + 2.0 * std * jax.random.normal(k2, x.shape)
  if name == 'brightness':
    f = jax.random.uniform(rng, (n, 1, 1, 1), minval=0.7, maxval=1.3)
    return jnp.clip((x + 1.0) * f, 0.0, 2.0) - 1.0
  if name == 'jpeg':
    return jpeg_straight_through(x, 50)
  raise ValueError(f"unknown noise layer '{name}'; use one of {NOISE_LAYERS}")


def random_noise_layer(names, x, cover, rng):
  """One of the named noise layers, drawn uniformly per call (per batch), inside jit."""
  k_pick, k_apply = jax.random.split(rng)
  branches = [lambda a, c, r, name=name: noise_layer(name, a, c, r) for name in names]
  index = jax.random.randint(k_pick, (), 0, len(names))
  return jax.lax.switch(index, branches, x, cover, k_apply)
