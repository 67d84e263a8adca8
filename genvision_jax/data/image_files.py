"""Single image files a user hands the package (a style image, a content photo): read with
Pillow in any mode — grey, palette and CMYK images are converted to RGB, transparency is
composited on white — and resized so that the longer side has a given length (aspect kept)."""

import os

import numpy as np

from genvision_jax.data.pipeline import DatasetError

MIN_SIDE = 32  # the feature networks' pyramids and strides need this many pixels


def read_rgb(path: str, longer_side: int | None = None, what: str = 'image') -> np.ndarray:
  """The image file at `path` as uint8 [H, W, 3]; resized (bicubic) so that max(H, W) =
  `longer_side` when given. A missing or unreadable file, or one whose shorter side would fall
  below MIN_SIDE pixels, is a DatasetError naming `what` and the fix."""
  from PIL import Image, ImageOps, UnidentifiedImageError  # pylint: disable=g-import-not-at-top
  if not path or not os.path.isfile(path):
    raise DatasetError(f'the {what} {path!r} does not exist; name an image file')
  try:
    with Image.open(path) as im:
      im.load()
      im = ImageOps.exif_transpose(im)  # a phone photo's orientation tag
      if im.mode in ('I;16', 'I;16B', 'I;16L', 'I', 'F'):  # 16-bit / 32-bit grey: to 8 bit
        a = np.asarray(im, np.float64)
        top = 65535.0 if im.mode.startswith('I;16') else max(float(a.max()), 1.0)
        if im.mode == 'F' and a.max() <= 1.0:
          top = 1.0
        im = Image.fromarray(np.clip(np.round(a / top * 255.0), 0, 255).astype(np.uint8), 'L')
      if im.mode in ('P', 'PA') or 'transparency' in im.info:
        im = im.convert('RGBA')
      if im.mode in ('RGBA', 'LA'):
        background = Image.new('RGBA', im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, im.convert('RGBA'))
      im = im.convert('RGB')
      w, h = im.size
      if longer_side:
        scale = longer_side / max(w, h)
        new = (max(1, round(w * scale)), max(1, round(h * scale)))
      else:
        new = (w, h)
      if min(new) < MIN_SIDE:
        raise DatasetError(f'the {what} {path} is {w}x{h}: resized to a longer side of '
                           f'{longer_side or max(w, h)} px its shorter side would be {min(new)} '
                           f'px; the networks need >= {MIN_SIDE} px (use a less elongated '
                           'image or a larger size)')
      if new != (w, h):
        im = im.resize(new, Image.Resampling.BICUBIC)
      return np.asarray(im, np.uint8)
  except (UnidentifiedImageError, OSError) as e:
    raise DatasetError(f'the {what} {path} is not an image Pillow can read ({e}); use a PNG '
                       'or JPEG') from None
