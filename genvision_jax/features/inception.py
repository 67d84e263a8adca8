"""The Inception-v3 of pytorch-fid (the FID network) in flax linen, its weights and its input
pipeline.

`InceptionV3` is pytorch-fid's `InceptionV3(use_fid_inception=True)` (the network of
TensorFlow's FID, `inception-2015-12-05`): torchvision's Inception3 with 1008 classes and no
auxiliary head, whose Mixed_5b-d / 6b-e / 7b / 7c blocks are pytorch-fid's FIDInceptionA /
FIDInceptionC / FIDInceptionE_1 / FIDInceptionE_2 (average pools that leave the padding out of
the mean, and a max pool in the last block). Every convolution is followed by inference-mode
BatchNorm (eps 0.001) and ReLU. It returns the 2048-d pool3 features (FID, KID,
precision/recall) and the 1008 logits of the fc layer (Inception Score).

`preprocess` is pytorch-fid's input path: images to [0, 1], bilinear resize to 299x299 with
`F.interpolate(mode='bilinear', align_corners=False)` semantics (no antialiasing, also when
shrinking), then 2x - 1. `InceptionFeatures` runs both over any number of images in batches
under one jit compile. `InceptionFeatures(resize='clean')` resizes instead as clean-fid's
'clean' mode (`clean_resize`: PIL bicubic on float images, on the host).

Weights: pytorch-fid's `pt_inception-2015-12-05-6726825d.pth` (`FID_WEIGHTS_URL`), given by
path and never downloaded. A .pth is read with `torch.load(weights_only=True)` (no pickled
code runs); without PyTorch, convert it once to .npz where torch is installed:

    python -m genvision_jax.features.inception convert pt_inception-2015-12-05-6726825d.pth inception_fid.npz

Layout: images are NHWC; convolution kernels are HWIO (PyTorch's OIHW transposed by the
loader); the fc kernel is [2048, 1008] (PyTorch's Linear weight transposed). Variable names
follow PyTorch's module names (`Mixed_6b/branch7x7_2/conv/kernel` is
`Mixed_6b.branch7x7_2.conv.weight`).
"""

import argparse
import functools
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from genvision_jax.features import batching, weights_io

FID_WEIGHTS_URL = ('https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/'
                   'pt_inception-2015-12-05-6726825d.pth')
WEIGHTS_FILENAME = 'pt_inception-2015-12-05-6726825d.pth'
# Where `InceptionFeatures()` looks when no path is given.
WEIGHTS_ENV = 'GENVISION_INCEPTION_WEIGHTS'
INPUT_SIZE = 299
NUM_CLASSES = 1008
POOL3_DIM = 2048
BN_EPSILON = 1e-3  # torchvision's BasicConv2d: BatchNorm2d(eps=0.001)

_HIGHEST = jax.lax.Precision.HIGHEST  # no TF32/bf16 passes on accelerators: a metric network


class InceptionWeightsError(ValueError):
  """Weights that cannot be used: unreadable, or not pytorch-fid's FID Inception state dict."""


class WeightsNotFoundError(FileNotFoundError):
  """pytorch-fid's Inception weight file is missing (it is never downloaded at run time)."""


def _pair(v) -> tuple[int, int]:
  return (v, v) if isinstance(v, int) else tuple(v)


class BasicConv2d(nn.Module):
  """torchvision's BasicConv2d: convolution without bias, BatchNorm (running statistics,
  eps 0.001), ReLU. `padding` is PyTorch's symmetric zero padding per spatial axis."""
  features: int
  kernel_size: int | tuple[int, int]
  strides: int = 1
  padding: int | tuple[int, int] = 0

  @nn.compact
  def __call__(self, x):
    ph, pw = _pair(self.padding)
    x = nn.Conv(self.features, _pair(self.kernel_size), strides=self.strides,
                padding=((ph, ph), (pw, pw)), use_bias=False, precision=_HIGHEST, name='conv')(x)
    x = nn.BatchNorm(use_running_average=True, epsilon=BN_EPSILON, name='bn')(x)
    return nn.relu(x)


def _avg_pool_3x3(x):
  """F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False) (TensorFlow's pool)."""
  return nn.avg_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)),
                     count_include_pad=False)


def _max_pool_3x3(x, stride: int):
  padding = ((1, 1), (1, 1)) if stride == 1 else 'VALID'
  return nn.max_pool(x, (3, 3), strides=(stride, stride), padding=padding)


class FIDInceptionA(nn.Module):
  """Mixed_5b/c/d: pytorch-fid's FIDInceptionA (torchvision InceptionA, padding-free avg pool)."""
  pool_features: int

  @nn.compact
  def __call__(self, x):
    b1 = BasicConv2d(64, 1, name='branch1x1')(x)
    b5 = BasicConv2d(48, 1, name='branch5x5_1')(x)
    b5 = BasicConv2d(64, 5, padding=2, name='branch5x5_2')(b5)
    b3 = BasicConv2d(64, 1, name='branch3x3dbl_1')(x)
    b3 = BasicConv2d(96, 3, padding=1, name='branch3x3dbl_2')(b3)
    b3 = BasicConv2d(96, 3, padding=1, name='branch3x3dbl_3')(b3)
    bp = BasicConv2d(self.pool_features, 1, name='branch_pool')(_avg_pool_3x3(x))
    return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
  """Mixed_6a: torchvision's InceptionB (35x35 -> 17x17)."""

  @nn.compact
  def __call__(self, x):
    b3 = BasicConv2d(384, 3, strides=2, name='branch3x3')(x)
    bd = BasicConv2d(64, 1, name='branch3x3dbl_1')(x)
    bd = BasicConv2d(96, 3, padding=1, name='branch3x3dbl_2')(bd)
    bd = BasicConv2d(96, 3, strides=2, name='branch3x3dbl_3')(bd)
    return jnp.concatenate([b3, bd, _max_pool_3x3(x, 2)], axis=-1)


class FIDInceptionC(nn.Module):
  """Mixed_6b/c/d/e: pytorch-fid's FIDInceptionC (factorized 7x7, padding-free avg pool)."""
  channels_7x7: int

  @nn.compact
  def __call__(self, x):
    c7 = self.channels_7x7
    b1 = BasicConv2d(192, 1, name='branch1x1')(x)
    b7 = BasicConv2d(c7, 1, name='branch7x7_1')(x)
    b7 = BasicConv2d(c7, (1, 7), padding=(0, 3), name='branch7x7_2')(b7)
    b7 = BasicConv2d(192, (7, 1), padding=(3, 0), name='branch7x7_3')(b7)
    bd = BasicConv2d(c7, 1, name='branch7x7dbl_1')(x)
    bd = BasicConv2d(c7, (7, 1), padding=(3, 0), name='branch7x7dbl_2')(bd)
    bd = BasicConv2d(c7, (1, 7), padding=(0, 3), name='branch7x7dbl_3')(bd)
    bd = BasicConv2d(c7, (7, 1), padding=(3, 0), name='branch7x7dbl_4')(bd)
    bd = BasicConv2d(192, (1, 7), padding=(0, 3), name='branch7x7dbl_5')(bd)
    bp = BasicConv2d(192, 1, name='branch_pool')(_avg_pool_3x3(x))
    return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):
  """Mixed_7a: torchvision's InceptionD (17x17 -> 8x8)."""

  @nn.compact
  def __call__(self, x):
    b3 = BasicConv2d(192, 1, name='branch3x3_1')(x)
    b3 = BasicConv2d(320, 3, strides=2, name='branch3x3_2')(b3)
    b7 = BasicConv2d(192, 1, name='branch7x7x3_1')(x)
    b7 = BasicConv2d(192, (1, 7), padding=(0, 3), name='branch7x7x3_2')(b7)
    b7 = BasicConv2d(192, (7, 1), padding=(3, 0), name='branch7x7x3_3')(b7)
    b7 = BasicConv2d(192, 3, strides=2, name='branch7x7x3_4')(b7)
    return jnp.concatenate([b3, b7, _max_pool_3x3(x, 2)], axis=-1)


class FIDInceptionE(nn.Module):
  """Mixed_7b (`pool='avg'`: pytorch-fid's FIDInceptionE_1, padding-free average pool) and
  Mixed_7c (`pool='max'`: FIDInceptionE_2, the FID graph's max pool)."""
  pool: str

  @nn.compact
  def __call__(self, x):
    b1 = BasicConv2d(320, 1, name='branch1x1')(x)
    b3 = BasicConv2d(384, 1, name='branch3x3_1')(x)
    b3 = jnp.concatenate([BasicConv2d(384, (1, 3), padding=(0, 1), name='branch3x3_2a')(b3),
                          BasicConv2d(384, (3, 1), padding=(1, 0), name='branch3x3_2b')(b3)], -1)
    bd = BasicConv2d(448, 1, name='branch3x3dbl_1')(x)
    bd = BasicConv2d(384, 3, padding=1, name='branch3x3dbl_2')(bd)
    bd = jnp.concatenate([BasicConv2d(384, (1, 3), padding=(0, 1), name='branch3x3dbl_3a')(bd),
                          BasicConv2d(384, (3, 1), padding=(1, 0), name='branch3x3dbl_3b')(bd)],
                         -1)
    if self.pool == 'avg':
      pooled = _avg_pool_3x3(x)
    elif self.pool == 'max':
      pooled = _max_pool_3x3(x, 1)
    else:
      raise ValueError(f"pool must be 'avg' or 'max', got {self.pool!r}")
    bp = BasicConv2d(192, 1, name='branch_pool')(pooled)
    return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class InceptionV3(nn.Module):
  """pytorch-fid's FID Inception-v3 (`use_fid_inception=True`), inference only.

  Input: [N, 299, 299, 3] float32 in [-1, 1], as made by `preprocess` (other sizes of at least
  75x75 also run, as in PyTorch). Output: {'pool3': [N, 2048] (pytorch-fid's block 3, the
  final average pool), 'logits': [N, 1008] (the fc layer; softmax of these for the Inception
  Score)}. Variables: 'params' and 'batch_stats' (running mean/var), from
  `load_pytorch_fid_weights` or `load_state_dict_arrays`.
  """

  @nn.compact
  def __call__(self, x):
    x = BasicConv2d(32, 3, strides=2, name='Conv2d_1a_3x3')(x)
    x = BasicConv2d(32, 3, name='Conv2d_2a_3x3')(x)
    x = BasicConv2d(64, 3, padding=1, name='Conv2d_2b_3x3')(x)
    x = _max_pool_3x3(x, 2)
    x = BasicConv2d(80, 1, name='Conv2d_3b_1x1')(x)
    x = BasicConv2d(192, 3, name='Conv2d_4a_3x3')(x)
    x = _max_pool_3x3(x, 2)
    x = FIDInceptionA(32, name='Mixed_5b')(x)
    x = FIDInceptionA(64, name='Mixed_5c')(x)
    x = FIDInceptionA(64, name='Mixed_5d')(x)
    x = InceptionB(name='Mixed_6a')(x)
    for name, c7 in (('Mixed_6b', 128), ('Mixed_6c', 160), ('Mixed_6d', 160), ('Mixed_6e', 192)):
      x = FIDInceptionC(c7, name=name)(x)
    x = InceptionD(name='Mixed_7a')(x)
    x = FIDInceptionE('avg', name='Mixed_7b')(x)
    x = FIDInceptionE('max', name='Mixed_7c')(x)
    pool3 = jnp.mean(x, axis=(1, 2))
    # torchvision's Inception3 applies dropout (identity at inference) before fc.
    logits = nn.Dense(NUM_CLASSES, precision=_HIGHEST, name='fc')(pool3)
    return {'pool3': pool3, 'logits': logits}


# --- preprocessing -------------------------------------------------------------------------


def resize_bilinear(images, size: int):
  """[N, H, W, C] -> [N, size, size, C], as PyTorch's
  `F.interpolate(x, (size, size), mode='bilinear', align_corners=False)` (antialias off).

  `jax.image.resize` antialiases when shrinking by default; PyTorch does not, so
  `antialias=False`. Upsampling is the same either way. Tested against PyTorch both ways.
  """
  n, _, _, c = images.shape
  return jax.image.resize(images, (n, size, size, c), method='bilinear', antialias=False,
                          precision=_HIGHEST)


RESIZE_MODES = ('pytorch_fid', 'clean')


def clean_resize(images, value_range: tuple[float, float] = (-1.0, 1.0)) -> np.ndarray:
  """clean-fid's 'clean' resize (Parmar et al. 2022; `cleanfid.resize.make_resizer('PIL',
  False, 'bicubic', (299, 299))`): images [N, H, W, 1 or 3] with values in `value_range` are
  mapped to [0, 255] floats (no quantization), grey repeated to RGB, and each channel resized
  on its own as a PIL mode 'F' (float32) image with `Image.BICUBIC` to 299x299 (PIL filters
  with antialiasing when shrinking), then clipped to [0, 255]. Returns float32 numpy
  [N, 299, 299, 3] in [0, 255].

  clean-fid then feeds its TF-Inception torchscript (x - 128) / 128; `InceptionFeatures` feeds
  this network's (pytorch-fid's) 2 x / 255 - 1, so the features differ from clean-fid's by that
  1/256 offset and scale of the input only.
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top
  images = np.asarray(images, np.float32)
  if images.ndim != 4 or images.shape[-1] not in (1, 3):
    raise ValueError(f'expected images [N, H, W, 1 or 3] (NHWC), got shape {images.shape}')
  low, high = value_range
  if not high > low:
    raise ValueError(f'value_range must be (low, high) with high > low, got {value_range}')
  x = (images - np.float32(low)) * np.float32(255.0 / (high - low))
  if x.shape[-1] == 1:
    x = np.repeat(x, 3, axis=-1)
  out = np.empty((len(x), INPUT_SIZE, INPUT_SIZE, 3), np.float32)
  for i, image in enumerate(x):
    for c in range(3):
      channel = Image.fromarray(np.ascontiguousarray(image[:, :, c]), mode='F')
      out[i, :, :, c] = np.asarray(channel.resize((INPUT_SIZE, INPUT_SIZE), Image.BICUBIC))
  return np.clip(out, 0.0, 255.0)


def preprocess(images, value_range: tuple[float, float] = (-1.0, 1.0)):
  """Images [N, H, W, C] -> the network input [N, 299, 299, 3] in [-1, 1], as pytorch-fid.

  `value_range` is the images' (black, white): (-1, 1), this repository's convention, by
  default; (0, 1) for pytorch-fid's own convention; (0, 255) for uint8 images. The images are
  mapped to [0, 1] (pytorch-fid's input), resized to 299x299 bilinearly without antialiasing
  (`resize_bilinear`), then scaled by 2x - 1 (pytorch-fid's `normalize_input`).
  Grayscale images (C = 1) are repeated to 3 channels, which is what pytorch-fid's
  `fid_score` does to grayscale files (PIL `convert('RGB')`).
  """
  images = jnp.asarray(images).astype(jnp.float32)
  if images.ndim != 4 or images.shape[-1] not in (1, 3):
    raise ValueError(f'expected images [N, H, W, 1 or 3] (NHWC), got shape {images.shape}')
  if images.shape[-1] == 1:
    images = jnp.repeat(images, 3, axis=-1)
  low, high = value_range
  if not high > low:
    raise ValueError(f'value_range must be (low, high) with high > low, got {value_range}')
  x = (images - low) / (high - low)
  if x.shape[1:3] != (INPUT_SIZE, INPUT_SIZE):  # (bilinear to the same size is the identity)
    x = resize_bilinear(x, INPUT_SIZE)
  return 2.0 * x - 1.0


# --- weights -------------------------------------------------------------------------------

# (collection, flax leaf name) -> PyTorch tensor name suffix.
_LEAF_TO_TORCH = {
    ('params', 'kernel'): 'weight',
    ('params', 'scale'): 'weight',
    ('params', 'bias'): 'bias',
    ('batch_stats', 'mean'): 'running_mean',
    ('batch_stats', 'var'): 'running_var',
}


def _torch_name(path: tuple[str, ...]) -> str:
  collection, *modules, leaf = path
  return '.'.join([*modules, _LEAF_TO_TORCH[(collection, leaf)]])


@functools.lru_cache(maxsize=1)
def _variable_paths() -> dict[str, tuple[tuple[str, ...], tuple[int, ...]]]:
  """PyTorch name -> (flax variable path, flax shape), in the network's order."""
  shapes = jax.eval_shape(InceptionV3().init, jax.random.key(0),
                          jax.ShapeDtypeStruct((1, INPUT_SIZE, INPUT_SIZE, 3), jnp.float32))
  flat = traverse_util.flatten_dict(jax.tree.map(lambda s: tuple(s.shape), shapes,
                                                 is_leaf=lambda s: hasattr(s, 'shape')))
  return {_torch_name(path): (path, shape) for path, shape in flat.items()}


def pytorch_fid_state_dict_shapes() -> dict[str, tuple[int, ...]]:
  """Name -> shape (PyTorch layout) of every tensor of pytorch-fid's FID Inception state dict
  that the flax model uses (the BatchNorm `num_batches_tracked` counters are not used)."""
  out = {}
  for name, (path, shape) in _variable_paths().items():
    out[name] = weights_io.torch_shape(shape) if path[-1] == 'kernel' else shape
  return out


def load_state_dict_arrays(state_dict: Mapping[str, Any]) -> dict[str, Any]:
  """PyTorch-named arrays of pytorch-fid's FID Inception -> flax variables of `InceptionV3`.

  `state_dict` maps names such as 'Mixed_5b.branch1x1.conv.weight' to arrays (numpy, or
  anything `np.asarray` takes) in PyTorch layout. Keys ending in 'num_batches_tracked' are
  ignored. Every other tensor must be present with its exact shape, and no other key may
  appear; otherwise `InceptionWeightsError` lists the missing, unexpected and mis-shaped keys.
  Returns {'params': ..., 'batch_stats': ...} of float32 numpy arrays.
  """
  expected = pytorch_fid_state_dict_shapes()
  given = {k: v for k, v in state_dict.items() if not k.endswith('num_batches_tracked')}
  missing = [k for k in expected if k not in given]
  unexpected = [k for k in given if k not in expected]
  wrong = [f'{k} {tuple(np.shape(given[k]))} (expected {expected[k]})' for k in expected
           if k in given and tuple(np.shape(given[k])) != expected[k]]
  if missing or unexpected or wrong:
    problems = []
    if missing:
      problems.append(f'{len(missing)} missing: {weights_io.summarize(missing)}')
    if unexpected:
      problems.append(f'{len(unexpected)} unexpected: {weights_io.summarize(unexpected)}')
    if wrong:
      problems.append(f'{len(wrong)} with the wrong shape: {weights_io.summarize(wrong)}')
    raise InceptionWeightsError(
        "these weights are not pytorch-fid's FID Inception state dict "
        f'({WEIGHTS_FILENAME}): ' + '; '.join(problems))
  flat = {}
  for name, (path, _) in _variable_paths().items():
    array = np.asarray(given[name], dtype=np.float32)
    flat[path] = weights_io.kernel_from_torch(array) if path[-1] == 'kernel' else array
  return traverse_util.unflatten_dict(flat)


def _missing_weights_message(path: str | None) -> str:
  where = (f"pytorch-fid's Inception weights were not found at '{path}'." if path else
           "No path to pytorch-fid's Inception weights was given.")
  return (f'{where} They are never downloaded at run time. Download them once (96 MB) from\n'
          f'  {FID_WEIGHTS_URL}\n'
          f'and pass the file: InceptionFeatures(weights_path=PATH) / '
          f'load_pytorch_fid_weights(PATH), or set the environment variable {WEIGHTS_ENV}=PATH. '
          'Without PyTorch installed, convert the file once where it is: python -m '
          f'genvision_jax.features.inception convert {WEIGHTS_FILENAME} inception_fid.npz')


def read_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """The raw name -> numpy array dict of a weight file: a PyTorch .pth/.pt state dict (read
  with `torch.load(weights_only=True)`: no pickled code runs; needs torch) or an .npz
  (`np.load(allow_pickle=False)`). No renaming or checking (see `load_state_dict_arrays`).
  Raises `WeightsNotFoundError` (with the download URL) if the file does not exist."""
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise WeightsNotFoundError(_missing_weights_message(path))
  return weights_io.read_arrays(
      path, InceptionWeightsError, 'python -m genvision_jax.features.inception convert '
      f'{os.path.basename(path)} inception_fid.npz')


def load_pytorch_fid_weights(path: str | os.PathLike) -> dict[str, Any]:
  """Flax variables of `InceptionV3` from pytorch-fid's weight file
  (pt_inception-2015-12-05-6726825d.pth, or its .npz conversion), given by path.

  Raises `WeightsNotFoundError` (a FileNotFoundError, naming `FID_WEIGHTS_URL`) when the file
  is missing, and `InceptionWeightsError` when it cannot be read or is not that network.
  """
  return load_state_dict_arrays(read_state_dict(path))


def convert_to_npz(pth_path: str | os.PathLike, npz_path: str | os.PathLike) -> None:
  """Converts pytorch-fid's .pth into an .npz (PyTorch names and layout, float32) that
  `load_pytorch_fid_weights` reads without torch. Checks the tensors first."""
  state = {k: v for k, v in read_state_dict(pth_path).items()
           if not k.endswith('num_batches_tracked')}
  load_state_dict_arrays(state)  # raises on anything that is not the FID Inception
  np.savez(npz_path, **{k: np.asarray(v, np.float32) for k, v in state.items()})


def resolve_weights_path(weights_path: str | os.PathLike | None = None) -> str:
  """`weights_path`, else the environment variable GENVISION_INCEPTION_WEIGHTS; raises
  `WeightsNotFoundError` with where to get the file if neither names an existing file."""
  path = weights_path if weights_path is not None else os.environ.get(WEIGHTS_ENV) or None
  if path is None or not os.path.isfile(path):
    raise WeightsNotFoundError(_missing_weights_message(None if path is None else str(path)))
  return os.fspath(path)


# --- batched features ----------------------------------------------------------------------


class InceptionFeatures:
  """pool3 features and logits of pytorch-fid's Inception for any number of images.

      features = InceptionFeatures('pt_inception-2015-12-05-6726825d.pth')
      out = features(images)   # images [N, H, W, 1 or 3] in [-1, 1]
      out['pool3']             # [N, 2048] float32 numpy (FID, KID, precision/recall)
      out['logits']            # [N, 1008] float32 numpy (Inception Score)

  Images go through `preprocess` (resize to 299, pytorch-fid's scaling) and `InceptionV3` in
  batches of `batch_size` (the last one zero-padded, also when there are fewer images than
  `batch_size`), one jit compile per input image shape. A 299x299 image costs ~11 GFLOP
  (5.7 G multiply-adds): measured ~0.3 s per image on a shared 2-core CPU
  (`benchmarks/inception_features.py`), so 10,000 samples take the best part of an hour there.
  `variables` (e.g. from `load_state_dict_arrays`) replaces the weight file.

  `resize`: 'pytorch_fid' (default; `preprocess`, bilinear without antialiasing, inside the jit)
  or 'clean' (`clean_resize` on the host, PIL bicubic as clean-fid, then 2 x / 255 - 1).
  """

  def __init__(self, weights_path: str | os.PathLike | None = None, *,
               variables: Mapping[str, Any] | None = None, batch_size: int = 50,
               value_range: tuple[float, float] = (-1.0, 1.0), resize: str = 'pytorch_fid'):
    if batch_size < 1:
      raise ValueError(f'batch_size must be positive, got {batch_size}')
    if resize not in RESIZE_MODES:
      raise ValueError(f'resize={resize!r}: use one of {RESIZE_MODES}')
    self.resize = resize
    if variables is None:
      variables = load_pytorch_fid_weights(resolve_weights_path(weights_path))
    self.variables = jax.device_put(variables)
    self.batch_size = batch_size
    self.value_range = tuple(value_range)
    self.num_compiles = 0  # traces of the batch function (one per input image shape)
    self._batch_fn = jax.jit(self._features)

  def _host_resize(self, images):
    return clean_resize(images, self.value_range) if self.resize == 'clean' else images

  def network_input(self, images):
    """What `InceptionV3` is given for images [N, H, W, C]: [N, 299, 299, 3] in [-1, 1]."""
    return preprocess(self._host_resize(np.asarray(images)), self._device_range())

  def _device_range(self):
    return (0.0, 255.0) if self.resize == 'clean' else self.value_range

  def _features(self, variables, images):
    self.num_compiles += 1
    return InceptionV3().apply(variables, preprocess(images, self._device_range()))

  def __call__(self, images) -> dict[str, np.ndarray]:
    """images [N, H, W, C] (C = 1 or 3, values in `value_range`) -> {'pool3': [N, 2048],
    'logits': [N, 1008]}, float32 numpy."""
    return batching.batched(self._batch_fn, self.variables, images, self.batch_size,
                            {'pool3': POOL3_DIM, 'logits': NUM_CLASSES}, self._host_resize)


def main(argv: Sequence[str] | None = None) -> int:
  """`python -m genvision_jax.features.inception convert IN.pth OUT.npz`."""
  parser = argparse.ArgumentParser(
      prog='python -m genvision_jax.features.inception',
      description="Tools for pytorch-fid's Inception weights.")
  commands = parser.add_subparsers(dest='command', required=True)
  convert = commands.add_parser(
      'convert', help='convert the .pth (needs torch) into an .npz usable without torch')
  convert.add_argument('pth', help=f'pytorch-fid weight file ({WEIGHTS_FILENAME})')
  convert.add_argument('npz', help='output .npz')
  args = parser.parse_args(argv)
  try:
    convert_to_npz(args.pth, args.npz)
  except (InceptionWeightsError, WeightsNotFoundError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  print(f'wrote {args.npz}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
