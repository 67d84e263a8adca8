"""VGG-16 and VGG-19 (Simonyan & Zisserman 2015) in flax linen with torchvision's layer layout,
their weights and their input pipeline.

`VGG(depth)` is torchvision's `vgg16()` / `vgg19()` (no batch norm), inference only:
`features` = 3x3 convolutions (padding 1) each followed by a ReLU, in five blocks of 2, 2, 3, 3, 3
(VGG-16) or 2, 2, 4, 4, 4 (VGG-19) convolutions of 64, 128, 256, 512, 512 channels, each block
ending in a 2x2 stride-2 max pool; `avgpool` = AdaptiveAvgPool2d((7, 7)) with PyTorch's exact
windows (`adaptive_avg_pool2d`); `classifier` = Linear(25088, 4096), ReLU, Dropout,
Linear(4096, 4096), ReLU, Dropout, Linear(4096, 1000) (dropout is the identity at inference).
It returns any of its named layers (`LAYER_NAMES`), and computes nothing after the last one
asked for: style transfer on relu4_1 does not run block 5.

Names of the layers: `conv{b}_{i}` (the i-th convolution of block b, before its ReLU),
`relu{b}_{i}` (after it), `pool{b}` (the block's max pool), b = 1..5, then with the top
`fc6`, `relu6`, `fc7`, `relu7` and `logits`. `CONTENT_LAYER` and `STYLE_LAYERS` are the layers
of Gatys et al.'s style transfer.

Inputs are NHWC float32 normalized as torchvision's ImageNet models expect (`imagenet_normalize`:
[0, 1], then (x - mean) / std per channel). `VGGFeatures` runs the network over any number of
images in batches under one jit compile (fc7 features and logits, e.g. for perceptual or
classifier-based metrics), and gives differentiable feature maps (`VGGFeatures.maps`, e.g. for
style transfer and perceptual losses).

Weights: torchvision's `vgg16-397923af.pth` / `vgg19-dcbb9e9d.pth` (`WEIGHTS_URLS`), given by
path (or `GENVISION_VGG16_WEIGHTS` / `GENVISION_VGG19_WEIGHTS`) and never downloaded. A .pth is
read with `torch.load(weights_only=True)` (no pickled code runs); without PyTorch, convert it
once to .npz where torch is installed:

    python -m genvision_jax.features.vgg convert vgg16-397923af.pth vgg16.npz

Layout: images are NHWC; convolution kernels are HWIO (PyTorch's OIHW transposed by the
loader); Dense kernels are [in, out] (PyTorch's Linear weight transposed). Variable names follow
torchvision's state dict, with '_' for the index dot: `features_0/kernel` is
`features.0.weight`, `classifier_6/bias` is `classifier.6.bias`. fc6 keeps PyTorch's input
order: the network transposes the pooled [N, 7, 7, 512] map to NCHW before flattening it, as
`torch.flatten` sees it, so the loader transposes the fc6 weight like any other Linear weight and
never permutes its rows.
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
from genvision_jax.features.inception import resize_bilinear

WEIGHTS_URLS = {16: 'https://download.pytorch.org/models/vgg16-397923af.pth',
                19: 'https://download.pytorch.org/models/vgg19-dcbb9e9d.pth'}
WEIGHTS_FILENAMES = {depth: url.rsplit('/', 1)[1] for depth, url in WEIGHTS_URLS.items()}
WEIGHTS_SIZES_MB = {16: 528, 19: 548}
# Where `VGGFeatures(depth)` looks when no path is given.
WEIGHTS_ENVS = {16: 'GENVISION_VGG16_WEIGHTS', 19: 'GENVISION_VGG19_WEIGHTS'}
DEPTHS = (16, 19)

# torchvision's `cfgs['D']` (vgg16) and `cfgs['E']` (vgg19): channels of each 3x3 convolution,
# 'M' for a 2x2 stride-2 max pool.
CONFIGS = {
    16: (64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512, 'M', 512, 512, 512, 'M'),
    19: (64, 64, 'M', 128, 128, 'M', 256, 256, 256, 256, 'M', 512, 512, 512, 512, 'M',
         512, 512, 512, 512, 'M'),
}
AVGPOOL_SIZE = (7, 7)
FC_DIM = 4096
NUM_CLASSES = 1000
# torchvision's ImageNet normalization (transforms.Normalize of its VGG weights).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

CONTENT_LAYER = 'relu4_2'
STYLE_LAYERS = ('relu1_1', 'relu2_1', 'relu3_1', 'relu4_1', 'relu5_1')
TOP_LAYER_NAMES = ('fc6', 'relu6', 'fc7', 'relu7', 'logits')

_HIGHEST = jax.lax.Precision.HIGHEST  # no TF32/bf16 passes on accelerators: a metric network


class VGGWeightsError(ValueError):
  """Weights that cannot be used: unreadable, or not torchvision's vgg16 / vgg19 state dict."""


class WeightsNotFoundError(FileNotFoundError):
  """torchvision's VGG weight file is missing (it is never downloaded at run time)."""


def _check_depth(depth) -> int:
  if depth not in CONFIGS:
    raise ValueError(f'VGG depth must be one of {DEPTHS}, got {depth!r}')
  return int(depth)


@functools.lru_cache(maxsize=None)
def _layer_plan(depth: int) -> tuple[tuple[str, str, str | None, int], ...]:
  """(layer name, kind, flax module name or None, output features) in the network's order;
  kind is 'conv', 'relu', 'pool' or 'dense'. Module names carry torchvision's indices into
  `features` and `classifier` (ReLU, max pool and dropout take an index but have no weights)."""
  plan = []
  index, block, conv = 0, 1, 1
  for v in CONFIGS[_check_depth(depth)]:
    if v == 'M':
      plan.append((f'pool{block}', 'pool', None, 0))
      index, block, conv = index + 1, block + 1, 1
    else:
      plan.append((f'conv{block}_{conv}', 'conv', f'features_{index}', v))
      plan.append((f'relu{block}_{conv}', 'relu', None, v))
      index, conv = index + 2, conv + 1
  # classifier: 0 Linear, 1 ReLU, 2 Dropout, 3 Linear, 4 ReLU, 5 Dropout, 6 Linear.
  plan += [('fc6', 'dense', 'classifier_0', FC_DIM), ('relu6', 'relu', None, FC_DIM),
           ('fc7', 'dense', 'classifier_3', FC_DIM), ('relu7', 'relu', None, FC_DIM),
           ('logits', 'dense', 'classifier_6', NUM_CLASSES)]
  return tuple(plan)


# Every exposed layer name, in the network's order.
LAYER_NAMES = {depth: tuple(layer[0] for layer in _layer_plan(depth)) for depth in DEPTHS}
FEATURE_LAYER_NAMES = {depth: names[:-len(TOP_LAYER_NAMES)]
                       for depth, names in LAYER_NAMES.items()}


def _adaptive_pool_matrix(in_size: int, out_size: int) -> np.ndarray:
  """[out_size, in_size] averaging weights of PyTorch's adaptive average pool along one axis:
  output i averages inputs floor(i * in / out) to ceil((i + 1) * in / out) - 1."""
  m = np.zeros((out_size, in_size), np.float32)
  for i in range(out_size):
    start = (i * in_size) // out_size
    end = -(-((i + 1) * in_size) // out_size)
    m[i, start:end] = 1.0 / (end - start)
  return m


def adaptive_avg_pool2d(x, output_size: int | tuple[int, int] = AVGPOOL_SIZE):
  """PyTorch's `F.adaptive_avg_pool2d` on NHWC: [N, H, W, C] -> [N, oh, ow, C].

  Output (i, j) is the mean of rows floor(i H / oh) .. ceil((i + 1) H / oh) - 1 and columns
  likewise: the windows of neighbouring outputs may overlap, and an input smaller than the
  output is replicated (a 1x1 map becomes oh x ow copies). Equal sizes are the identity.
  """
  oh, ow = (output_size, output_size) if isinstance(output_size, int) else output_size
  _, h, w, _ = x.shape
  if (h, w) == (oh, ow):
    return x
  x = jnp.einsum('ih,nhwc->niwc', _adaptive_pool_matrix(h, oh), x, precision=_HIGHEST)
  return jnp.einsum('jw,niwc->nijc', _adaptive_pool_matrix(w, ow), x, precision=_HIGHEST)


def _check_outputs(depth: int, outputs, include_top: bool) -> tuple[str, ...]:
  names = LAYER_NAMES[depth]
  if outputs is None:
    outputs = (names[-1] if include_top else 'pool5',)
  elif isinstance(outputs, str):
    outputs = (outputs,)
  outputs = tuple(outputs)
  if not outputs:
    raise ValueError('outputs is empty: name at least one layer of ' + ', '.join(names))
  unknown = [o for o in outputs if o not in names]
  if unknown:
    raise ValueError(f'unknown VGG-{depth} layer(s) {unknown}; the layers are: '
                     + ', '.join(names))
  top = [o for o in outputs if o in TOP_LAYER_NAMES]
  if top and not include_top:
    raise ValueError(f'layer(s) {top} belong to the classifier, but include_top=False')
  return outputs


class VGG(nn.Module):
  """torchvision's vgg16 (`depth=16`) or vgg19 (`depth=19`), inference only.

      out = VGG(16).apply(variables, x, outputs=('relu4_2', 'logits'))

  `x`: [N, H, W, 3] float32, already ImageNet-normalized (`imagenet_normalize`); 224x224 for
  the ImageNet classifier, any size of at least 32x32 for the feature maps (pool5 smaller than
  7x7 is replicated by the adaptive pool, as in PyTorch). `outputs`: layer names of
  `LAYER_NAMES[depth]` (default: 'logits', or 'pool5' when `include_top=False`); returns
  {name: array} for those, NHWC maps and [N, D] vectors. Layers after the last one asked for are
  not computed, and need no variables. `include_top=False` is the convolutional network alone
  (classifier layers may not be asked for). Variables: {'params': ...}, from
  `load_torchvision_weights` or `load_state_dict_arrays`.
  """
  depth: int

  @nn.compact
  def __call__(self, x, outputs: Sequence[str] | str | None = None, include_top: bool = True):
    plan = _layer_plan(self.depth)
    outputs = _check_outputs(self.depth, outputs, include_top)
    if x.ndim != 4 or x.shape[-1] != 3:
      raise ValueError(f'expected images [N, H, W, 3] (NHWC), got shape {x.shape}')
    last = max(LAYER_NAMES[self.depth].index(o) for o in outputs)
    result = {}
    for name, kind, module, features in plan[:last + 1]:
      if kind == 'conv':
        x = nn.Conv(features, (3, 3), padding=((1, 1), (1, 1)), precision=_HIGHEST,
                    name=module)(x)
      elif kind == 'relu':
        x = nn.relu(x)
      elif kind == 'pool':
        x = nn.max_pool(x, (2, 2), strides=(2, 2))  # floor mode: an odd last row is dropped
      else:
        if name == 'fc6':
          x = adaptive_avg_pool2d(x, AVGPOOL_SIZE)
          # torch.flatten of the NCHW map: channel-major, the order fc6's weight expects.
          x = jnp.transpose(x, (0, 3, 1, 2)).reshape(x.shape[0], -1)
        x = nn.Dense(features, precision=_HIGHEST, name=module)(x)
      if name in outputs:
        result[name] = x
    return result


# --- preprocessing -------------------------------------------------------------------------


def imagenet_normalize(images, value_range: tuple[float, float] = (-1.0, 1.0)):
  """Images [N, H, W, 1 or 3] with values in `value_range` -> the network input [N, H, W, 3]:
  mapped to [0, 1], then (x - mean) / std per channel with torchvision's ImageNet
  `IMAGENET_MEAN` and `IMAGENET_STD` (its `transforms.Normalize`). Grey images (C = 1) are
  repeated to 3 channels. `value_range` is the images' (black, white): (-1, 1), this
  repository's convention, by default; (0, 1) torchvision's; (0, 255) for uint8 images.
  No resizing. Pure jax (differentiable)."""
  images = jnp.asarray(images).astype(jnp.float32)
  if images.ndim != 4 or images.shape[-1] not in (1, 3):
    raise ValueError(f'expected images [N, H, W, 1 or 3] (NHWC), got shape {images.shape}')
  low, high = value_range
  if not high > low:
    raise ValueError(f'value_range must be (low, high) with high > low, got {value_range}')
  if images.shape[-1] == 1:
    images = jnp.repeat(images, 3, axis=-1)
  x = (images - low) / (high - low)
  return (x - jnp.asarray(IMAGENET_MEAN, jnp.float32)) / jnp.asarray(IMAGENET_STD, jnp.float32)


# --- weights -------------------------------------------------------------------------------

_LEAF_TO_TORCH = {'kernel': 'weight', 'bias': 'bias'}


def _torch_name(path: tuple[str, ...]) -> str:
  """('params', 'features_0', 'kernel') -> 'features.0.weight'."""
  _, module, leaf = path
  sequential, index = module.rsplit('_', 1)
  return f'{sequential}.{index}.{_LEAF_TO_TORCH[leaf]}'


@functools.lru_cache(maxsize=None)
def _variable_paths(depth: int) -> dict[str, tuple[tuple[str, ...], tuple[int, ...]]]:
  """torchvision name -> (flax variable path, flax shape), in the network's order."""
  shapes = jax.eval_shape(functools.partial(VGG(_check_depth(depth)).init, outputs='logits'),
                          jax.random.key(0),
                          jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32))
  flat = traverse_util.flatten_dict(jax.tree.map(lambda s: tuple(s.shape), shapes,
                                                 is_leaf=lambda s: hasattr(s, 'shape')))
  order = {module: i for i, (_, _, module, _) in enumerate(_layer_plan(depth)) if module}
  paths = sorted(flat, key=lambda p: (order[p[1]], p[2] != 'kernel'))
  return {_torch_name(path): (path, flat[path]) for path in paths}


def torchvision_state_dict_shapes(depth: int, include_top: bool = True
                                  ) -> dict[str, tuple[int, ...]]:
  """Name -> shape (PyTorch layout) of every tensor of torchvision's vgg16 / vgg19 state dict,
  in order (`features.0.weight`, `features.0.bias`, ..., `classifier.6.bias`); without the
  `classifier.*` tensors when `include_top=False`."""
  out = {}
  for name, (path, shape) in _variable_paths(_check_depth(depth)).items():
    if not include_top and name.startswith('classifier.'):
      continue
    out[name] = weights_io.torch_shape(shape) if path[-1] == 'kernel' else shape
  return out


def _problems(state_dict: Mapping[str, Any], depth: int, require_top: bool) -> list[str]:
  """What keeps `state_dict` from being torchvision's VGG-`depth` (empty if nothing)."""
  expected = torchvision_state_dict_shapes(depth)
  if not require_top and not any(k.startswith('classifier.') for k in state_dict):
    expected = torchvision_state_dict_shapes(depth, include_top=False)
  missing = [k for k in expected if k not in state_dict]
  unexpected = [k for k in state_dict if k not in expected]
  wrong = [f'{k} {tuple(np.shape(state_dict[k]))} (expected {expected[k]})' for k in expected
           if k in state_dict and tuple(np.shape(state_dict[k])) != expected[k]]
  problems = []
  if missing:
    problems.append(f'{len(missing)} missing: {weights_io.summarize(missing)}')
  if unexpected:
    problems.append(f'{len(unexpected)} unexpected: {weights_io.summarize(unexpected)}')
  if wrong:
    problems.append(f'{len(wrong)} with the wrong shape: {weights_io.summarize(wrong)}')
  return problems


def load_state_dict_arrays(state_dict: Mapping[str, Any], depth: int,
                           require_top: bool = True) -> dict[str, Any]:
  """torchvision-named arrays of vgg16 / vgg19 -> flax variables of `VGG(depth)`.

  `state_dict` maps names such as 'features.0.weight' to arrays (numpy, or anything
  `np.asarray` takes) in PyTorch layout. Every tensor must be present with its exact shape and
  no other key may appear; otherwise `VGGWeightsError` lists the missing, unexpected and
  mis-shaped keys. With `require_top=False` a state dict of the convolutional part alone
  (only `features.*`, enough for `include_top=False`) is accepted too; a classifier, if any, must
  still be complete. Returns {'params': ...} of float32 numpy arrays.
  """
  depth = _check_depth(depth)
  problems = _problems(state_dict, depth, require_top)
  if problems:
    other = 19 if depth == 16 else 16
    hint = (f' (they are VGG-{other}\'s: use depth={other})'
            if not _problems(state_dict, other, require_top) else '')
    top = '' if require_top else ' (classifier optional)'
    raise VGGWeightsError(
        f"these weights are not torchvision's vgg{depth} state dict{top} "
        f'({WEIGHTS_FILENAMES[depth]}){hint}: ' + '; '.join(problems))
  flat = {}
  for name, (path, _) in _variable_paths(depth).items():
    if name in state_dict:
      array = np.asarray(state_dict[name], dtype=np.float32)
      flat[path] = weights_io.kernel_from_torch(array) if path[-1] == 'kernel' else array
  return traverse_util.unflatten_dict(flat)


def infer_depth(state_dict: Mapping[str, Any]) -> int:
  """16 or 19, from the last convolution's index in a torchvision VGG state dict."""
  if 'features.34.weight' in state_dict:
    return 19
  if 'features.28.weight' in state_dict:
    return 16
  raise VGGWeightsError('cannot tell VGG-16 from VGG-19: the tensors hold neither '
                        "'features.28.weight' nor 'features.34.weight' (names seen: "
                        f'{weights_io.summarize(list(state_dict))})')


def _missing_weights_message(path: str | None, depth: int | None) -> str:
  depths = (depth,) if depth is not None else DEPTHS
  network = f'VGG-{depth}' if depth is not None else 'VGG'
  where = (f"torchvision's {network} weights were not found at '{path}'." if path else
           f"No path to torchvision's {network} weights was given.")
  files = ' or '.join(f'{WEIGHTS_FILENAMES[d]} ({WEIGHTS_SIZES_MB[d]} MB) from\n'
                      f'  {WEIGHTS_URLS[d]}\n' for d in depths)
  envs = ' / '.join(f'{WEIGHTS_ENVS[d]}=PATH' for d in depths)
  d = depths[0]
  return (f'{where} They are never downloaded at run time. Download {files}'
          'and pass the file with --weights / --feature_weights on the command line, '
          f'VGGFeatures({d}, weights_path=PATH) in Python, or set the environment variable '
          f'{envs}. Without PyTorch installed, convert the file once where it is: python -m '
          f'genvision_jax.features.vgg convert {WEIGHTS_FILENAMES[d]} vgg{d}.npz')


def read_state_dict(path: str | os.PathLike, depth: int | None = None) -> dict[str, np.ndarray]:
  """The raw name -> numpy array dict of a weight file: a PyTorch .pth/.pt state dict (read
  with `torch.load(weights_only=True)`: no pickled code runs; needs torch) or an .npz
  (`np.load(allow_pickle=False)`). No renaming or checking (see `load_state_dict_arrays`).
  Raises `WeightsNotFoundError` (with the download URL of VGG-`depth`, or of both) if the file
  does not exist, `VGGWeightsError` if it cannot be read."""
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise WeightsNotFoundError(_missing_weights_message(path, depth))
  d = depth or 16
  return weights_io.read_arrays(
      path, VGGWeightsError, 'python -m genvision_jax.features.vgg convert '
      f'{os.path.basename(path)} vgg{d}.npz')


def load_torchvision_weights(path: str | os.PathLike, depth: int, *,
                             require_top: bool = True) -> dict[str, Any]:
  """Flax variables of `VGG(depth)` from torchvision's weight file (vgg16-397923af.pth /
  vgg19-dcbb9e9d.pth, or an .npz conversion), given by path. `require_top=False` also accepts
  a file of the convolutional part alone (see `load_state_dict_arrays`).

  Raises `WeightsNotFoundError` (a FileNotFoundError, naming the URL) when the file is missing,
  and `VGGWeightsError` when it cannot be read or is not that network.
  """
  return load_state_dict_arrays(read_state_dict(path, depth), depth, require_top)


def convert_to_npz(pth_path: str | os.PathLike, npz_path: str | os.PathLike,
                   depth: int | None = None) -> int:
  """Converts torchvision's vgg16 / vgg19 .pth (or a features-only state dict) into an .npz
  (PyTorch names and layout, float32) that `load_torchvision_weights` reads without torch.
  Checks the tensors first; `depth` is inferred from them when not given. Returns the depth."""
  state = read_state_dict(pth_path, depth)
  depth = infer_depth(state) if depth is None else _check_depth(depth)
  load_state_dict_arrays(state, depth, require_top=False)  # raises on anything else
  np.savez(npz_path, **{k: np.asarray(v, np.float32) for k, v in state.items()})
  return depth


def resolve_weights_path(weights_path: str | os.PathLike | None, depth: int) -> str:
  """`weights_path`, else the environment variable GENVISION_VGG16_WEIGHTS /
  GENVISION_VGG19_WEIGHTS; raises `WeightsNotFoundError` with where to get the file if neither
  names an existing file."""
  depth = _check_depth(depth)
  path = weights_path if weights_path is not None else os.environ.get(WEIGHTS_ENVS[depth]) or None
  if path is None or not os.path.isfile(path):
    raise WeightsNotFoundError(_missing_weights_message(None if path is None else str(path),
                                                        depth))
  return os.fspath(path)


# --- batched features ----------------------------------------------------------------------


class VGGFeatures:
  """fc7 features and logits of torchvision's VGG for any number of images, and differentiable
  feature maps.

      vgg = VGGFeatures(16, 'vgg16-397923af.pth')
      out = vgg(images)        # images [N, H, W, 1 or 3] in [-1, 1]
      out['fc7']               # [N, 4096] float32 numpy: relu7, fc7 after its ReLU
      out['logits']            # [N, 1000] float32 numpy (ImageNet classes)
      maps = vgg.maps(vgg.variables, images, vgg_lib.STYLE_LAYERS)   # jax, differentiable

  `__call__` normalizes the images (`imagenet_normalize`), resizes them to `image_size` x
  `image_size` bilinearly without antialiasing (`inception.resize_bilinear`, PyTorch's
  `F.interpolate(mode='bilinear', align_corners=False)`; not torchvision's Resize(256) +
  CenterCrop(224) evaluation transform: the whole image is kept, its aspect ratio is not) and
  runs `VGG` in batches of `batch_size` (the last one zero-padded, also when there are fewer
  images than `batch_size`), one jit compile per input image shape. A 224x224 image costs
  ~31 GFLOP (VGG-16) / ~39 GFLOP (VGG-19).

  `maps(variables, images, layers)` is pure jax: images in `value_range` at their own size
  (normalization inside, no resize) -> {layer: map}; jit or differentiate it as needed.

  `variables` (e.g. from `load_state_dict_arrays`) replaces the weight file. With
  `include_top=False` a features-only weight file is accepted, `layers` has no classifier
  layers, and `__call__` (which needs the classifier) raises.
  """

  def __init__(self, depth: int, weights_path: str | os.PathLike | None = None, *,
               variables: Mapping[str, Any] | None = None, batch_size: int = 32,
               image_size: int = 224, include_top: bool = True,
               value_range: tuple[float, float] = (-1.0, 1.0)):
    self.depth = _check_depth(depth)
    if batch_size < 1:
      raise ValueError(f'batch_size must be positive, got {batch_size}')
    if image_size < 32:
      raise ValueError(f'image_size must be at least 32 (five 2x2 max pools), got {image_size}')
    if variables is None:
      variables = load_torchvision_weights(resolve_weights_path(weights_path, depth), depth,
                                           require_top=include_top)
    self.variables = jax.device_put(variables)
    self.include_top = include_top
    self.layers = LAYER_NAMES[self.depth] if include_top else FEATURE_LAYER_NAMES[self.depth]
    self.batch_size = batch_size
    self.image_size = image_size
    self.value_range = tuple(value_range)
    self.network = VGG(self.depth)
    self.num_compiles = 0  # traces of the batch function (one per input image shape)
    self._batch_fn = jax.jit(self._features)

  def network_input(self, images):
    """What `__call__` gives `VGG` for images [N, H, W, C]: [N, S, S, 3], normalized."""
    x = imagenet_normalize(images, self.value_range)
    if x.shape[1:3] != (self.image_size, self.image_size):  # (same size: the identity)
      x = resize_bilinear(x, self.image_size)
    return x

  def _features(self, variables, images):
    self.num_compiles += 1
    out = self.network.apply(variables, self.network_input(images), outputs=('relu7', 'logits'))
    return {'fc7': out['relu7'], 'logits': out['logits']}

  def maps(self, variables: Mapping[str, Any], images, layers: Sequence[str] | str
           ) -> dict[str, jax.Array]:
    """{layer: feature map} of `images` [N, H, W, 1 or 3] (values in `value_range`, any size of
    at least 32x32, not resized) for the layer names `layers` of `self.layers`. Pure jax: the
    network stops after the last layer asked for."""
    return self.network.apply(variables, imagenet_normalize(images, self.value_range),
                              outputs=layers, include_top=self.include_top)

  def __call__(self, images) -> dict[str, np.ndarray]:
    """images [N, H, W, C] (C = 1 or 3, values in `value_range`) -> {'fc7': [N, 4096] (after
    its ReLU), 'logits': [N, 1000]}, float32 numpy."""
    if not self.include_top:
      raise ValueError('VGGFeatures(include_top=False) has no classifier: use maps() for the '
                       'convolutional layers, or load weights with the classifier')
    return batching.batched(self._batch_fn, self.variables, images, self.batch_size,
                            {'fc7': FC_DIM, 'logits': NUM_CLASSES})


def main(argv: Sequence[str] | None = None) -> int:
  """`python -m genvision_jax.features.vgg convert IN.pth OUT.npz [--depth 16|19]`."""
  parser = argparse.ArgumentParser(
      prog='python -m genvision_jax.features.vgg',
      description="Tools for torchvision's VGG-16 / VGG-19 weights.")
  commands = parser.add_subparsers(dest='command', required=True)
  convert = commands.add_parser(
      'convert', help='convert the .pth (needs torch) into an .npz usable without torch')
  convert.add_argument('pth', help='torchvision weight file (' +
                       ' or '.join(WEIGHTS_FILENAMES.values()) + ')')
  convert.add_argument('npz', help='output .npz')
  convert.add_argument('--depth', type=int, choices=DEPTHS, default=None,
                       help='16 or 19 (default: inferred from the tensors)')
  args = parser.parse_args(argv)
  try:
    depth = convert_to_npz(args.pth, args.npz, args.depth)
  except (VGGWeightsError, WeightsNotFoundError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  print(f'wrote {args.npz} (VGG-{depth})')
  return 0


if __name__ == '__main__':
  sys.exit(main())
