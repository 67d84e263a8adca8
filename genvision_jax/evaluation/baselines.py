"""Classical image-to-image baselines, on the host with maintained libraries (scikit-image,
SciPy), for the pairs of `genvision_jax.tasks.degrade` (numpy arrays in [-1, 1]):

  super_resolution  'bicubic'     the low-resolution image upsampled by bicubic interpolation
                                  (`tasks.upsample_bicubic`, the model's own conditioning)
  inpainting        'biharmonic'  skimage.restoration.inpaint_biharmonic of the hole
                    'mean'        the hole filled with the mean colour of the known pixels
  uncropping        'edge'        each hidden pixel takes the nearest known pixel (edge padding
                                  for any hole; scipy.ndimage.distance_transform_edt indices)
  colorization      'grey'        the luminance as a grey RGB image
  denoising         'gaussian'    scipy.ndimage.gaussian_filter, sigma = 1 px per channel
  reconstruction    (none)        autoencoders' PCA baseline is fitted on the training split
                                  (`methods.autoencoder`, `fitted_baselines`)
"""

import numpy as np
from scipy import ndimage
from skimage import restoration

from genvision_jax import tasks

BASELINES = {
    'super_resolution': ('bicubic',),
    'inpainting': ('biharmonic', 'mean'),
    'uncropping': ('edge',),
    'colorization': ('grey',),
    'denoising': ('gaussian',),
    'reconstruction': (),  # autoencoders: PCA is fitted by the method (`fitted_baselines`)
}


def classical(task, pair: dict, name: str | None = None) -> np.ndarray:
  """The baseline `name` (default: the task's first) of a batch of pairs: [B, H, W, C]."""
  name = name or BASELINES[task.name][0]
  if name not in BASELINES[task.name]:
    raise ValueError(f'baseline {name!r} does not apply to task {task.name!r}; use one of '
                     f'{BASELINES[task.name]}')
  target = np.asarray(pair['target'], np.float32)
  b, h, w, c = target.shape
  x = np.asarray(pair['input'], np.float32)
  if name == 'bicubic':
    return x if x.shape[1] == h else np.asarray(tasks.upsample_bicubic(x, (h, w)))
  if name == 'grey':
    return np.broadcast_to(x, (b, h, w, c)).copy()
  if name == 'gaussian':
    return np.clip(ndimage.gaussian_filter(x, sigma=(0, 1, 1, 0)), -1.0, 1.0)
  image, known = x[..., :c], np.asarray(pair['known'], np.float32)
  hole = known[..., 0] < 0.5
  if name == 'mean':
    mean = (image * known).sum(axis=(1, 2), keepdims=True) / np.maximum(
        known.sum(axis=(1, 2), keepdims=True), 1.0)
    return image * known + mean * (1.0 - known)
  if name == 'biharmonic':
    return np.stack([
        restoration.inpaint_biharmonic(img, hl, channel_axis=-1) if hl.any() else img
        for img, hl in zip(image, hole)]).astype(np.float32)
  out = np.empty_like(image)  # 'edge'
  for i in range(b):
    rows, cols = ndimage.distance_transform_edt(hole[i], return_distances=False,
                                                return_indices=True)
    out[i] = image[i][rows, cols]
  return out
