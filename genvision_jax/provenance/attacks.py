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
