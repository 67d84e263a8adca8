"""Image-to-image tasks as data: degradation operators that turn an image batch into
(input, target) pairs.

Each task is a pure jax function of (images, rng) with images NHWC in [-1, 1] (the model
range of `data.to_model_range`); the caller keys rng by (seed, step) for training batches and
by (seed, example index) for evaluation, so a pair is the same whenever it is drawn again.
`degrade(task, images, rng)` returns

  input   [B, h, w, c_in]  what the model sees (its channels: `input_channels`)
  target  [B, H, W, C]     the clean images
  known   [B, H, W, 1]     1 where the input shows the target's pixel as it is (inpainting,
                           uncropping), else absent
  low     [B, H/f, W/f, C] super-resolution only: the low-resolution image itself (the
                           measurement y = A x of `methods.prior_guidance`), else absent

Tasks (`task.name`, with their `task.*` fields at `default_config()`):
  super_resolution  downsample by `factor` (2 or 4) with `downsample`: 'area' (the mean of each
                    factor x factor block) or 'bicubic' (anti-aliased, `jax.image.resize`).
                    With `upsample_input` (default) the model sees the low-resolution image
                    upsampled back to H x W by bicubic interpolation (SR3's conditioning, and
                    the bicubic baseline itself); else the h x w image.
  inpainting        a hole given by `mask`: 'center' (a centred box of `hole_fraction` of each
                    side), 'boxes' (`num_boxes` random boxes, sides up to `hole_fraction`) or
                    'strokes' (free-form: `num_strokes` random polylines of `stroke_vertices`
                    vertices, `stroke_width` px wide). The input is the image with the hole set
                    to 0 (mid-grey) and the known-pixel mask as one more channel.
  uncropping        outpainting: `uncrop='border'` keeps the centre and hides a border of
                    `border_fraction` of each side; 'half' hides one half, the side drawn per
                    image (left, right, top, bottom). Input as for inpainting.
  colorization      luminance in (Rec. 601 luma Y' = 0.299 R + 0.587 G + 0.114 B of the RGB
                    image, one channel), colour out; needs 3-channel images. With `keep_luma`
                    the models produce only the chroma (`chroma`: Cb, Cr scaled to [-1, 1]) and
                    the output is `compose_luma_chroma(input, chroma)`, so it has the input's
                    luma exactly (up to clipping to the RGB cube), as in Zhang et al.'s and the
                    pix2pix paper's Lab colorization.
  denoising         `noise='gaussian'`: x + `noise_std` * N(0, I) in [-1, 1] units (not
                    clipped); `noise='masking'` (Vincent et al.'s masking noise): each pixel
                    set to -1 (black, the digits' background) with probability `mask_prob`;
                    `noise='flip'` (binary salt-and-pepper, the MRF denoising of pgm/mrf.py):
                    the image binarized at 0 and each pixel flipped with probability
                    `flip_prob`.
  reconstruction    the image itself (autoencoders: `methods/autoencoder.py`).
"""

import jax
import jax.numpy as jnp
import ml_collections

TASKS = ('super_resolution', 'inpainting', 'uncropping', 'colorization', 'denoising',
         'reconstruction')
NOISES = ('gaussian', 'masking', 'flip')
DOWNSAMPLERS = ('area', 'bicubic')
MASKS = ('center', 'boxes', 'strokes')
UNCROPS = ('border', 'half')
LUMA_601 = (0.299, 0.587, 0.114)


def default_config() -> ml_collections.ConfigDict:
  """The `task` section at its defaults (see the module docstring for each field)."""
  return ml_collections.ConfigDict(dict(
      name='super_resolution',
      factor=4,                 # super_resolution: 2 or 4
      downsample='area',        # super_resolution: 'area' or 'bicubic'
      upsample_input=True,      # super_resolution: the model sees the image upsampled to H x W
      mask='center',            # inpainting: 'center', 'boxes' or 'strokes'
      hole_fraction=0.5,        # inpainting: side of the centre box / largest random box
      num_boxes=3,              # inpainting, mask='boxes'
      num_strokes=2,            # inpainting, mask='strokes'
      stroke_vertices=4,        # inpainting, mask='strokes': vertices per polyline
      stroke_width=3.0,         # inpainting, mask='strokes': brush width in pixels
      uncrop='border',          # uncropping: 'border' or 'half'
      border_fraction=0.25,     # uncropping, 'border': hidden width per side / side length
      noise='gaussian',         # denoising: 'gaussian' or 'masking'
      noise_std=0.5,            # denoising, gaussian: sigma in [-1, 1] units
      mask_prob=0.25,           # denoising, masking: probability that a pixel is dropped
      flip_prob=0.1,            # denoising, flip: probability that a binarized pixel flips
      keep_luma=False,          # colorization: predict chroma only, keep the input's luma
  ))


def validate(config, check) -> None:
  """The `task` section (check: methods.common.ConfigChecks); needs config.data for sizes."""
  t, need = config.task, check.need
  size, name = config.data.image_size, t.name
  need(name in TASKS, f'task.name must be one of {TASKS} (got {name!r})')
  if name == 'super_resolution':
    need(t.factor in (2, 4), f'task.factor must be 2 or 4 (got {t.factor!r})')
    need(t.downsample in DOWNSAMPLERS,
         f'task.downsample must be one of {DOWNSAMPLERS} (got {t.downsample!r})')
    if isinstance(size, int) and t.factor in (2, 4):
      need(size % t.factor == 0, f'task.factor={t.factor} must divide data.image_size={size}')
  if name == 'inpainting':
    need(t.mask in MASKS, f'task.mask must be one of {MASKS} (got {t.mask!r})')
    need(0 < t.hole_fraction < 1, f'task.hole_fraction must be in (0, 1) (got '
         f'{t.hole_fraction!r})')
    if t.mask == 'boxes':
      check.positive_int('task.num_boxes', t.num_boxes)
    if t.mask == 'strokes':
      check.positive_int('task.num_strokes', t.num_strokes)
      need(isinstance(t.stroke_vertices, int) and t.stroke_vertices >= 2,
           f'task.stroke_vertices must be an integer >= 2 (got {t.stroke_vertices!r})')
      need(t.stroke_width > 0, f'task.stroke_width must be > 0 (got {t.stroke_width!r})')
  if name == 'uncropping':
    need(t.uncrop in UNCROPS, f'task.uncrop must be one of {UNCROPS} (got {t.uncrop!r})')
    need(0 < t.border_fraction < 0.5, 'task.border_fraction must be in (0, 0.5) (got '
         f'{t.border_fraction!r})')
  if name == 'denoising':
    need(t.noise in NOISES, f'task.noise must be one of {NOISES} (got {t.noise!r})')
    if t.noise == 'gaussian':
      need(t.noise_std > 0, f'task.noise_std must be > 0 (got {t.noise_std!r})')
    elif t.noise == 'masking':
      need(0 < t.mask_prob < 1, f'task.mask_prob must be in (0, 1) (got {t.mask_prob!r})')
    else:
      need(0 < t.flip_prob < 0.5, f'task.flip_prob must be in (0, 0.5) (got {t.flip_prob!r})')
  need(isinstance(t.keep_luma, bool), f'task.keep_luma must be True or False (got '
       f'{t.keep_luma!r})')
  need(not t.keep_luma or name == 'colorization', 'task.keep_luma applies to colorization '
       f'only (task.name={name!r}): use --config.task.keep_luma=False')


def check_channels(task, channels: int) -> None:
  """Raises ValueError when the task cannot work on images with `channels` channels."""
  if task.name == 'colorization' and channels != 3:
    raise ValueError(f'task.name=colorization needs RGB images (3 channels), but the data have '
                     f'{channels}; use a colour dataset, e.g. --config.data.name=photo_patches/32')


def input_channels(task, channels: int) -> int:
  """Channels of the model's input for images with `channels` channels."""
  if task.name == 'colorization':
    return 1
  if task.name in ('inpainting', 'uncropping'):
    return channels + 1  # the image with its hole, and the known-pixel mask
  return channels


def output_channels(task, channels: int) -> int:
  """Channels the network produces for images with `channels` channels: 2 (chroma) for
  colorization with `keep_luma`, else the images' own."""
  return 2 if task.name == 'colorization' and task.get('keep_luma', False) else channels


def input_size(task, size: int) -> int:
  """Height (= width) of the model's input for `size` px images."""
  if task.name == 'super_resolution' and not task.upsample_input:
    return size // task.factor
  return size


# -- the operators ---------------------------------------------------------------------------


def downsample(images, factor: int, method: str):
  """[B, H, W, C] -> [B, H/f, W/f, C]: block means ('area') or anti-aliased bicubic."""
  b, h, w, c = images.shape
  if method == 'area':
    return images.reshape(b, h // factor, factor, w // factor, factor, c).mean(axis=(2, 4))
  return jax.image.resize(images, (b, h // factor, w // factor, c), 'bicubic', antialias=True)


def upsample_bicubic(images, size: tuple[int, int]):
  """[B, h, w, C] -> [B, *size, C] by bicubic interpolation, clipped to [-1, 1]."""
  b, _, _, c = images.shape
  return jnp.clip(jax.image.resize(images, (b, *size, c), 'bicubic'), -1.0, 1.0)


# Cb = (B - Y') / 1.772 and Cr = (R - Y') / 1.402 (ITU-R BT.601 YCbCr without offsets): in
# [-1, 1] for RGB in [-1, 1], 0 for grey pixels.
_CB_SCALE = 2.0 * (1.0 - LUMA_601[2])
_CR_SCALE = 2.0 * (1.0 - LUMA_601[0])


def chroma(images):
  """BT.601 chroma of RGB images in [-1, 1]: [B, H, W, 3] -> [B, H, W, 2] (Cb, Cr) in [-1, 1]."""
  y = luminance(images)
  return jnp.concatenate([(images[..., 2:3] - y) / _CB_SCALE,
                          (images[..., 0:1] - y) / _CR_SCALE], axis=-1)


def compose_luma_chroma(luma, chroma_):
  """The RGB image of luma [.., 1] and chroma [.., 2] (the inverse of (`luminance`,
  `chroma`)); its luma is `luma` exactly, whatever the chroma. Not clipped."""
  r = luma + _CR_SCALE * chroma_[..., 1:2]
  b = luma + _CB_SCALE * chroma_[..., 0:1]
  g = (luma - LUMA_601[0] * r - LUMA_601[2] * b) / LUMA_601[1]
  return jnp.concatenate([r, g, b], axis=-1)


def luminance(images):
  """Rec. 601 luma of RGB images in [-1, 1]: [B, H, W, 3] -> [B, H, W, 1] in [-1, 1]."""
  return jnp.tensordot(images, jnp.asarray(LUMA_601, images.dtype), axes=1)[..., None]


def _grid(h: int, w: int):
  rows = jnp.arange(h, dtype=jnp.float32)[:, None] + 0.5
  cols = jnp.arange(w, dtype=jnp.float32)[None, :] + 0.5
  return rows, cols


def center_hole(h: int, w: int, fraction: float):
  """[H, W] 1 inside the centred box of round(fraction * side) pixels per side."""
  bh, bw = round(fraction * h), round(fraction * w)
  top, left = (h - bh) // 2, (w - bw) // 2
  rows, cols = jnp.arange(h)[:, None], jnp.arange(w)[None, :]
  return ((rows >= top) & (rows < top + bh) & (cols >= left) & (cols < left + bw)).astype(
      jnp.float32)


def box_holes(rng, h: int, w: int, num: int, fraction: float):
  """[H, W] union of `num` boxes with sides uniform in [fraction/4, fraction] of the image's
  and positions uniform inside it."""
  size_rng, pos_rng = jax.random.split(rng)
  sides = jax.random.uniform(size_rng, (num, 2), minval=fraction / 4, maxval=fraction)
  sides = sides * jnp.asarray([h, w], jnp.float32)
  corner = jax.random.uniform(pos_rng, (num, 2)) * (jnp.asarray([h, w], jnp.float32) - sides)
  rows, cols = _grid(h, w)
  inside = ((rows[None] >= corner[:, 0, None, None]) &
            (rows[None] < corner[:, 0, None, None] + sides[:, 0, None, None]) &
            (cols[None] >= corner[:, 1, None, None]) &
            (cols[None] < corner[:, 1, None, None] + sides[:, 1, None, None]))
  return jnp.any(inside, axis=0).astype(jnp.float32)


def stroke_holes(rng, h: int, w: int, num: int, vertices: int, width: float):
  """[H, W] free-form strokes: `num` polylines through `vertices` uniform random points,
  every pixel centre within width/2 of a segment is in the hole."""
  points = jax.random.uniform(rng, (num, vertices, 2)) * jnp.asarray([h, w], jnp.float32)
  a, b = points[:, :-1].reshape(-1, 2), points[:, 1:].reshape(-1, 2)  # segments [S, 2]
  rows, cols = _grid(h, w)
  p = jnp.stack(jnp.broadcast_arrays(rows, cols), axis=-1)[:, :, None, :]  # [H, W, 1, 2]
  ab = b - a
  t = jnp.clip(jnp.sum((p - a) * ab, -1) / jnp.maximum(jnp.sum(ab * ab, -1), 1e-6), 0.0, 1.0)
  dist = jnp.linalg.norm(p - (a + t[..., None] * ab), axis=-1)  # [H, W, S]
  return (jnp.min(dist, axis=-1) <= width / 2).astype(jnp.float32)


def border_hole(h: int, w: int, fraction: float):
  """[H, W] 1 on the border: round(fraction * side) pixels on each side."""
  bh, bw = round(fraction * h), round(fraction * w)
  rows, cols = jnp.arange(h)[:, None], jnp.arange(w)[None, :]
  inside = (rows >= bh) & (rows < h - bh) & (cols >= bw) & (cols < w - bw)
  return 1.0 - inside.astype(jnp.float32)


def half_hole(side, h: int, w: int):
  """[H, W] 1 on one half: side 0 left, 1 right, 2 top, 3 bottom (a traced int)."""
  rows, cols = jnp.arange(h)[:, None], jnp.arange(w)[None, :]
  halves = jnp.stack([jnp.broadcast_to(cols < w // 2, (h, w)),
                      jnp.broadcast_to(cols >= w - w // 2, (h, w)),
                      jnp.broadcast_to(rows < h // 2, (h, w)),
                      jnp.broadcast_to(rows >= h - h // 2, (h, w))])
  return halves[side].astype(jnp.float32)


def holes(task, rng, batch: int, h: int, w: int):
  """[B, H, W, 1] 1 = hidden pixel, for inpainting and uncropping."""
  keys = jax.random.split(rng, batch)
  if task.name == 'uncropping':
    if task.uncrop == 'border':
      hole = jnp.broadcast_to(border_hole(h, w, task.border_fraction), (batch, h, w))
    else:
      sides = jax.vmap(lambda k: jax.random.randint(k, (), 0, 4))(keys)
      hole = jax.vmap(lambda s: half_hole(s, h, w))(sides)
  elif task.mask == 'center':
    hole = jnp.broadcast_to(center_hole(h, w, task.hole_fraction), (batch, h, w))
  elif task.mask == 'boxes':
    hole = jax.vmap(lambda k: box_holes(k, h, w, task.num_boxes, task.hole_fraction))(keys)
  else:
    hole = jax.vmap(lambda k: stroke_holes(k, h, w, task.num_strokes, task.stroke_vertices,
                                           task.stroke_width))(keys)
  return hole[..., None]


def degrade(task, images, rng) -> dict:
  """The (input, target[, known]) pair of `images` for `task` (see the module docstring)."""
  images = jnp.asarray(images, jnp.float32)
  b, h, w, _ = images.shape
  out = {'target': images}
  if task.name == 'super_resolution':
    low = downsample(images, task.factor, task.downsample)
    out['input'] = upsample_bicubic(low, (h, w)) if task.upsample_input else low
    out['low'] = low
  elif task.name in ('inpainting', 'uncropping'):
    known = 1.0 - holes(task, rng, b, h, w)
    out['input'] = jnp.concatenate([images * known, known], axis=-1)
    out['known'] = known
  elif task.name == 'colorization':
    check_channels(task, images.shape[-1])
    out['input'] = luminance(images)
  elif task.name == 'denoising':
    out['input'] = corrupt(task, images, rng)
  elif task.name == 'reconstruction':
    out['input'] = images
  else:
    raise ValueError(f'unknown task {task.name!r}; use one of {TASKS}')
  return out


def degrade_examples(task, images, seed: int, first_index: int = 0) -> dict:
  """`degrade` with one key per example, fold_in(key(seed), index) for indices first_index,
  first_index + 1, ...: an evaluation pair depends on its example only, not on the batching."""
  images = jnp.asarray(images, jnp.float32)
  keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(seed), i))(
      first_index + jnp.arange(images.shape[0]))
  pairs = jax.vmap(lambda x, k: degrade(task, x[None], k))(images, keys)
  return jax.tree.map(lambda v: v[:, 0], pairs)


def corrupt(task, images, rng):
  """The denoising task's corruption of `images` (task.noise: gaussian, masking or flip)."""
  if task.get('noise', 'gaussian') == 'flip':
    flip = jax.random.bernoulli(rng, task.flip_prob, images.shape)
    binary = jnp.where(images > 0, 1.0, -1.0)
    return jnp.where(flip, -binary, binary)
  if task.get('noise', 'gaussian') == 'masking':
    drop = jax.random.bernoulli(rng, task.mask_prob, images.shape[:3] + (1,))
    return jnp.where(drop, -1.0, images)
  return images + task.noise_std * jax.random.normal(rng, images.shape)


# Named task settings the experiments use as variants (`experiments/i2i/*.py:inpainting`).
PRESETS = {
    'sr4': dict(name='super_resolution', factor=4, downsample='area'),
    'inpainting': dict(name='inpainting', mask='center', hole_fraction=0.5),
    'uncropping': dict(name='uncropping', uncrop='border', border_fraction=0.25),
    'colorization': dict(name='colorization'),
}


def apply_preset(task, variants) -> None:
  """Updates `task` with the first of `variants` that names a preset (none: unchanged)."""
  for v in variants:
    if v in PRESETS:
      task.update(PRESETS[v])
      return
