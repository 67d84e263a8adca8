"""Pretrained-feature networks behind one interface: evaluation, style transfer, perceptual
losses and detectors all ask this registry for a network by name.

  name         expects                                   vector    logits  maps  weights
  digits_cnn   grey digits, resized to 28 px             128-d     10      -     shipped (.npz)
  inception    RGB, resized to 299 px (pytorch-fid)      2048-d    1008    -     user file
  vgg16/vgg19  RGB, ImageNet-normalized, 224 px vector   fc7 4096  1000    yes   user file
  random       RGB at any size; random filters           768-d     -       yes   none (seeded)

Every network takes images [N, H, W, C] in [-1, 1] (grey images are repeated to RGB and colour
averaged to grey where the network needs it). `load(name, weights)` returns an `Extractor`:

  net = features.load('vgg19', weights='vgg19-dcbb9e9d.pth')
  net(images)                      # {'features': [N, D], 'logits': [N, K] (if the net has them)}
  net.maps(net.variables, x, ('relu1_1', 'relu4_2'))   # feature maps, pure jax (jit, grad)
  net.spec                         # the `FeatureNetwork` record below
  net.fingerprint                  # identifies the weights (cache keys of reference features)

Weights are never downloaded. A network whose file is missing raises `WeightsNotFoundError`
naming the file, where to get it, the flag and the environment variable that point at it
(`spec.weights_env`). No pickle is ever loaded: a .pth goes through
`torch.load(weights_only=True)`, or is converted once to .npz where torch is installed
(`python -m genvision_jax.features.vgg convert IN.pth OUT.npz`, same for inception).

Adding a network: write its module here (a callable extractor with `fingerprint`, and
`maps`/`variables` if it exposes layers) and one `FeatureNetwork` entry in `_REGISTRY`.
"""

import dataclasses
import hashlib
import os
from collections.abc import Callable, Mapping, Sequence

import numpy as np


class FeatureError(ValueError):
  """A feature network or layer that does not exist, or a use it does not support."""


class WeightsNotFoundError(FileNotFoundError):
  """A feature network's weight file is missing (weights are never downloaded)."""


@dataclasses.dataclass(frozen=True)
class FeatureNetwork:
  """What a feature network expects and offers."""
  name: str
  description: str
  input: str                    # size, range and channels it expects (conversion is built in)
  vector_dim: int               # dimension of 'features' (Fréchet distance, precision/recall)
  num_logits: int               # 0: no classifier head (no Inception-Score-style metrics)
  layers: tuple[str, ...]       # feature maps `maps` exposes (style/perceptual losses)
  content_layer: str | None     # defaults for style transfer (None: not offered)
  style_layers: tuple[str, ...]
  weights: str                  # how the weights are found
  weights_env: str | None       # environment variable naming the weight file
  build: Callable = dataclasses.field(repr=False, compare=False, default=None)


def _file_digest(path: str) -> str:
  h = hashlib.sha256()
  with open(path, 'rb') as f:
    for chunk in iter(lambda: f.read(1 << 20), b''):
      h.update(chunk)
  return h.hexdigest()


def _build_digits(weights, options):
  from genvision_jax.features import digits  # pylint: disable=g-import-not-at-top
  net = digits.DigitFeatures(weights or digits.WEIGHTS)
  return net, _file_digest(net.weights_path)


def _build_inception(weights, options):
  from genvision_jax.features import inception  # pylint: disable=g-import-not-at-top
  try:
    path = inception.resolve_weights_path(weights)
    net = inception.InceptionFeatures(path, resize=options.get('resize', 'pytorch_fid'))
  except inception.WeightsNotFoundError as e:
    raise WeightsNotFoundError(str(e)) from None
  except inception.InceptionWeightsError as e:  # unreadable, or not that network
    raise FeatureError(str(e)) from None
  return _Renamed(net, 'pool3'), _file_digest(path)


def _build_vgg(depth):
  def build(weights, options):
    from genvision_jax.features import vgg  # pylint: disable=g-import-not-at-top
    try:
      path = vgg.resolve_weights_path(weights, depth)
      net = vgg.VGGFeatures(depth, path)
    except vgg.WeightsNotFoundError as e:
      raise WeightsNotFoundError(str(e)) from None
    except vgg.VGGWeightsError as e:  # unreadable, or not that network
      raise FeatureError(str(e)) from None
    return _Renamed(net, 'fc7'), _file_digest(path)
  return build


def _build_random(weights, options):
  from genvision_jax.features import random_filters  # pylint: disable=g-import-not-at-top
  if weights:
    raise FeatureError('the random-filter network has no weight file (its filters come from a '
                       'fixed seed); drop the weights flag for it')
  net = random_filters.RandomFilterFeatures()
  return net, net.fingerprint


class _Renamed:
  """An extractor whose vector output is called `key`: exposes it as 'features'."""

  def __init__(self, net, key: str):
    self.net, self.key = net, key

  def __call__(self, images):
    out = self.net(images)
    return {'features': out[self.key], **{k: v for k, v in out.items() if k == 'logits'}}

  def __getattr__(self, name):
    return getattr(self.net, name)


_VGG_LAYERS = {}


def _vgg_layers(depth: int) -> tuple[str, ...]:
  if depth not in _VGG_LAYERS:
    from genvision_jax.features import vgg  # pylint: disable=g-import-not-at-top
    _VGG_LAYERS[depth] = tuple(vgg.FEATURE_LAYER_NAMES[depth])  # maps: the conv part only
  return _VGG_LAYERS[depth]


def _vgg_entry(depth: int) -> FeatureNetwork:
  url = {16: 'vgg16-397923af.pth', 19: 'vgg19-dcbb9e9d.pth'}[depth]
  return FeatureNetwork(
      name=f'vgg{depth}',
      description=f"torchvision's VGG-{depth} (ImageNet classifier, no batch norm)",
      input='RGB (grey repeated), ImageNet mean/std normalization; the vector resizes to 224 px, '
            'maps take any size',
      vector_dim=4096, num_logits=1000, layers=(),  # filled in lazily by `spec`
      content_layer='relu4_2', style_layers=('relu1_1', 'relu2_1', 'relu3_1', 'relu4_1',
                                             'relu5_1'),
      weights=f"torchvision's {url} (https://download.pytorch.org/models/{url}) or its .npz",
      weights_env=f'GENVISION_VGG{depth}_WEIGHTS', build=_build_vgg(depth))


_REGISTRY: dict[str, FeatureNetwork] = {
    'digits_cnn': FeatureNetwork(
        name='digits_cnn', description='the digit classifier trained on the offline MNIST digits',
        input='grey (colour averaged), resized to 28 px', vector_dim=128, num_logits=10,
        layers=(), content_layer=None, style_layers=(),
        weights='shipped: genvision_jax/features/weights/digits_cnn.npz', weights_env=None,
        build=_build_digits),
    'inception': FeatureNetwork(
        name='inception', description="pytorch-fid's FID Inception-v3",
        input='RGB (grey repeated), resized to 299 px', vector_dim=2048, num_logits=1008,
        layers=(), content_layer=None, style_layers=(),
        weights="pytorch-fid's pt_inception-2015-12-05-6726825d.pth or its .npz",
        weights_env='GENVISION_INCEPTION_WEIGHTS', build=_build_inception),
    'vgg16': _vgg_entry(16),
    'vgg19': _vgg_entry(19),
    'random': FeatureNetwork(
        name='random', description='a shallow multi-scale network of random filters '
        '(Ustyuzhaninov et al. 2017)', input='RGB (grey repeated), any size',
        vector_dim=768, num_logits=0,
        layers=tuple(f'scale{s}' for s in range(6)), content_layer='scale1',
        style_layers=tuple(f'scale{s}' for s in range(6)),
        weights='none: filters drawn from a fixed seed', weights_env=None, build=_build_random),
}


def names() -> tuple[str, ...]:
  """The registered feature networks."""
  return tuple(_REGISTRY)


def spec(name: str) -> FeatureNetwork:
  """The `FeatureNetwork` record of `name` (one clear error for an unknown name)."""
  if name not in _REGISTRY:
    raise FeatureError(f'unknown feature network {name!r}; registered: {", ".join(names())}')
  entry = _REGISTRY[name]
  if name.startswith('vgg') and not entry.layers:
    entry = dataclasses.replace(entry, layers=_vgg_layers(int(name[3:])))
    _REGISTRY[name] = entry
  return entry


class Extractor:
  """A loaded feature network (see the module docstring)."""

  def __init__(self, network: FeatureNetwork, impl, fingerprint: str):
    self.spec, self._impl, self.fingerprint = network, impl, fingerprint

  def __call__(self, images) -> dict[str, np.ndarray]:
    """images [N, H, W, C] in [-1, 1] -> {'features': [N, D]} (+ 'logits' [N, K])."""
    return self._impl(images)

  @property
  def variables(self):
    self._require_maps()
    return self._impl.variables

  def _require_maps(self):
    if not self.spec.layers:
      with_maps = [n for n in names() if spec(n).layers]
      raise FeatureError(f'feature network {self.spec.name!r} exposes no feature maps; use one '
                         f'of {", ".join(with_maps)}')

  def check_layers(self, layers: Sequence[str]) -> tuple[str, ...]:
    """`layers` if the network exposes all of them, else one error listing the valid names."""
    self._require_maps()
    unknown = [l for l in layers if l not in self.spec.layers]
    if unknown:
      raise FeatureError(f'{self.spec.name} has no layer(s) {", ".join(unknown)}; its layers: '
                         f'{", ".join(self.spec.layers)}')
    return tuple(layers)

  def maps(self, variables, images, layers: Sequence[str]):
    """{layer: [N, h, w, c]} for images [N, H, W, C] in [-1, 1]; pure jax (jit, grad)."""
    return self._impl.maps(variables, images, tuple(layers))


def load(name: str, weights: str | os.PathLike | None = None, **options) -> Extractor:
  """The feature network `name` with its weights: `weights` (a path), else the network's
  environment variable, else its shipped or seeded weights. `options`: network-specific
  (inception: resize='pytorch_fid' | 'clean')."""
  network = spec(name)
  weights = os.fspath(weights) if weights is not None else None
  impl, fingerprint = network.build(weights, options)
  return Extractor(network, impl, fingerprint)


def parse_weights(items: Sequence[str] | None) -> dict[str, str]:
  """`NAME=PATH` flag items (e.g. --feature_weights=vgg19=vgg19.pth) -> {name: path}."""
  out = {}
  for item in items or ():
    name, sep, path = item.partition('=')
    if not sep or not path:
      raise FeatureError(f'--feature_weights item {item!r}: write NAME=PATH, e.g. '
                         'vgg19=/path/vgg19-dcbb9e9d.pth')
    spec(name)
    out[name] = path
  return out


def weights_for(name: str, weights: Mapping[str, str] | None,
                inception_weights: str | None = None) -> str | None:
  """The weight path for `name` from a {name: path} map (+ the older --inception_weights)."""
  if name == 'inception' and inception_weights:
    return inception_weights
  return (weights or {}).get(name)
