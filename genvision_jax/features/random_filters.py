"""A shallow multi-scale network with random filters: the feature network that needs no weights.

Ustyuzhaninov, Brendel, Gatys & Bethge (2017), "What does it take to generate natural
textures?", showed that a single convolutional layer of random filters at several scales
(theirs: 128 filters each of sizes 3, 5, 7, 11, 15, 23, 37 and 55 px, ReLU, no pooling) is
enough for Gram-matrix texture synthesis of a quality near VGG-19's on many textures. This
network keeps their design — one layer, random filters, ReLU, several scales — but reaches the
large scales through an image pyramid instead of 55 x 55 kernels, which costs ~160x fewer
multiply-adds (33 kernel taps per pixel against 5,352): scale s applies `filters` random `kernel` x `kernel` filters to the image
average-pooled by 2^s, so scale s sees ~kernel * 2^s pixels (5, 10, 20, 40, 80, 160 px with the
defaults).

Weights are drawn from `seed` with numpy (the same on every machine, no file): each filter is
Gaussian, has zero mean over all its entries (a flat grey area gives no response; a coloured
one does) and unit L2 norm; biases are zero. Inputs are images in [-1, 1] (grey repeated to
RGB).

What to expect (see the README's style-transfer section): Gram matrices of random filters
capture colour and local texture statistics (brush strokes, grain, repeated marks) but not
object parts, so stylized images keep the content's layout and take the style's palette and
fine texture; VGG-19's deeper layers (relu4_1, relu5_1) transfer larger motifs. The content
term uses one of the finer scales (`CONTENT_LAYER`), which keeps edges but not semantics.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from genvision_jax.features import batching

NAME = 'random'
SEED = 0
SCALES = 6
FILTERS = 128
KERNEL = 5
LAYERS = tuple(f'scale{s}' for s in range(SCALES))
CONTENT_LAYER = 'scale1'
STYLE_LAYERS = LAYERS

MIN_SIZE = 2**(SCALES - 1)  # the coarsest scale averages 32 x 32 blocks
_HIGHEST = jax.lax.Precision.HIGHEST


def random_filters(seed: int = SEED, scales: int = SCALES, filters: int = FILTERS,
                   kernel: int = KERNEL, channels: int = 3) -> dict:
  """The network's parameters {'scale{s}': {'kernel': [k, k, C, F]}}: zero-mean unit-norm
  Gaussian filters drawn with numpy's default_rng(seed)."""
  rng = np.random.default_rng(seed)
  params = {}
  for s in range(scales):
    w = rng.standard_normal((filters, kernel * kernel * channels))
    w -= w.mean(axis=1, keepdims=True)
    w /= np.linalg.norm(w, axis=1, keepdims=True)
    params[f'scale{s}'] = {'kernel': w.reshape(filters, kernel, kernel, channels)
                           .transpose(1, 2, 3, 0).astype(np.float32)}
  return {'params': params}


def pyramid_level(x, s: int):
  """x [N, H, W, C] average-pooled by 2^s (non-overlapping blocks from the top left; a
  remainder row or column is dropped, as VALID pooling does). Halved s times by reshape and
  mean, which differentiates cheaply (XLA spent minutes constant-folding the transpose of a
  32 x 32 `avg_pool` window)."""
  for _ in range(s):
    n, h, w, c = x.shape
    x = x[:, :h - h % 2, :w - w % 2]
    x = x.reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))
  return x


class RandomFilterNet(nn.Module):
  """images [N, H, W, 3] in [-1, 1] -> {'scale{s}': ReLU feature maps [N, H/2^s, W/2^s, F]}
  for the requested `outputs` (default: all scales)."""
  scales: int = SCALES
  filters: int = FILTERS
  kernel: int = KERNEL

  @nn.compact
  def __call__(self, x, outputs=None):
    wanted = tuple(outputs) if outputs is not None else tuple(
        f'scale{s}' for s in range(self.scales))
    coarsest = 2**max(int(name[len('scale'):]) for name in wanted)
    if min(x.shape[1:3]) < coarsest:
      raise ValueError(f'the random-filter network needs images of at least {coarsest} px for '
                       f'its scales {", ".join(wanted)} (the coarsest averages {coarsest} x '
                       f'{coarsest} blocks); got {x.shape[1]} x {x.shape[2]}')
    out = {}
    for s in range(self.scales):
      name = f'scale{s}'
      conv = nn.Conv(self.filters, (self.kernel, self.kernel), padding='SAME', use_bias=False,
                     precision=_HIGHEST, name=name)
      if name in wanted:  # a scale nobody asked for is not computed
        out[name] = nn.relu(conv(pyramid_level(x, s)))
    return out


def _to_rgb(images):
  return jnp.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images


class RandomFilterFeatures:
  """The registry's extractor: images [N, H, W, C] in [-1, 1] -> {'features': [N, scales x
  filters]}, each scale's ReLU maps averaged over positions (a texture summary usable for a
  Fréchet distance; no logits); images below MIN_SIZE px are enlarged to it first. `maps(variables, images, layers)` is the differentiable path
  for style transfer and perceptual losses."""

  layers = LAYERS
  content_layer = CONTENT_LAYER
  style_layers = STYLE_LAYERS

  def __init__(self, seed: int = SEED, batch_size: int = 100):
    self.seed = seed
    self.variables = jax.device_put(random_filters(seed))
    self.batch_size = batch_size
    self.fingerprint = (f'random_filters:seed={seed}:scales={SCALES}:filters={FILTERS}:'
                        f'kernel={KERNEL}')
    self._batch_fn = jax.jit(self._vector)

  @staticmethod
  def maps(variables, images, layers=None):
    """Feature maps of images [N, H, W, C] in [-1, 1] (pure jax; differentiable)."""
    return RandomFilterNet().apply(variables, _to_rgb(images), outputs=layers)

  def _vector(self, variables, images):
    n, h, w, c = images.shape
    if min(h, w) < MIN_SIZE:  # e.g. 28 px digits: enlarged (bilinear) to the coarsest scale's
      f = MIN_SIZE / min(h, w)
      images = jax.image.resize(images, (n, round(h * f), round(w * f), c), 'bilinear')
    maps = self.maps(variables, images)
    return jnp.concatenate([maps[k].mean(axis=(1, 2)) for k in LAYERS], axis=-1)

  def __call__(self, images) -> dict[str, np.ndarray]:
    return batching.batched(self._batch_fn, self.variables, np.asarray(images, np.float32),
                            self.batch_size, {'features': SCALES * FILTERS})
