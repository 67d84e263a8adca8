"""Neural style transfer by optimization (Gatys, Ecker & Bethge 2016), pure jax.

The pixels of an image x are optimized for

  content_weight * content_loss(F_c(x), F_c(content))                 one layer c
  + style_weight * sum_l w_l style_layer_loss(F_l(x), Gram(F_l(style))) several layers l
  + tv_weight * total_variation(x)

(losses.py) in the feature maps of a network of genvision_jax.features (`Extractor.maps`), with
optax's Adam or L-BFGS (zoom line search), from the content image or from noise. The whole
optimization is jit-compiled: `lax.scan` over `log_every` iterations per call, so the driver
can report the losses between calls (one compile for the chunk length).

Colour preservation (Gatys et al. 2017, "Controlling perceptual factors", luminance-only
transfer): content and style are converted to YIQ, the style's luminance is matched to the
content's mean and standard deviation, the transfer runs on luminance alone, and the result's
luminance is combined with the content's I and Q (its colours).

Images are [H, W, 3] in [-1, 1]; the result is clipped to [-1, 1].
"""

import dataclasses
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from genvision_jax import losses

OPTIMIZERS = ('adam', 'lbfgs')
# Default style weights (content weight 1) per feature network. random: chosen on the offline
# photos (astronaut in the style of scikit-image's ihc.png, 128 px, L-BFGS 300 steps): 1e4 only
# tints the content image, 1e6 paints the style's palette and cell texture over it with the
# face still readable; 1e5 between them (README, Style transfer). The style loss falls ~500x in
# every case: the random filters' Gram matrices are easier to match than VGG's.
# vgg: derived, not tuned (no weights here): Gatys et al.'s alpha/beta = 1e-3 with their summed
# content loss becomes 1e3 / (512 * (256/8)^2) ~ 2e-3 with the mean content loss at 256 px,
# times ~58^2 because torchvision's input normalization (/ std) shrinks ReLU activations ~58x
# relative to Caffe's 0-255 inputs (content loss ~58^-2, style loss ~58^-4).
DEFAULT_STYLE_WEIGHTS = {'random': 1e5, 'vgg16': 5.0, 'vgg19': 5.0}
INITS = ('content', 'noise')

# RGB <-> YIQ (NTSC), on images in [-1, 1]: Y stays in [-1, 1] (its row sums to 1).
_RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114],
                        [0.595716, -0.274453, -0.321263],
                        [0.211456, -0.522591, 0.311135]], np.float32)
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ).astype(np.float32)


class StyleError(ValueError):
  """Settings of a style transfer that cannot be used."""


@dataclasses.dataclass(frozen=True)
class Settings:
  steps: int = 300
  content_weight: float = 1.0
  style_weight: float | None = None  # None: DEFAULT_STYLE_WEIGHTS of the network
  tv_weight: float = 1e-2
  optimizer: str = 'lbfgs'
  learning_rate: float = 0.02      # Adam, in [-1, 1] pixel units
  init: str = 'content'
  content_layer: str = ''          # '' = the network's default
  style_layers: tuple[str, ...] = ()
  preserve_color: bool = False
  seed: int = 0
  log_every: int = 50

  def check(self) -> 'Settings':
    if self.steps < 1:
      raise StyleError(f'steps={self.steps}: use at least 1')
    if self.optimizer not in OPTIMIZERS:
      raise StyleError(f'optimizer={self.optimizer!r}: use one of {", ".join(OPTIMIZERS)}')
    if self.init not in INITS:
      raise StyleError(f'init={self.init!r}: use one of {", ".join(INITS)}')
    for name in ('content_weight', 'style_weight', 'tv_weight'):
      v = getattr(self, name)
      if v is None and name == 'style_weight':
        continue
      if not np.isfinite(v) or v < 0:
        raise StyleError(f'{name}={v}: use a finite number >= 0')
    if not (np.isfinite(self.learning_rate) and self.learning_rate > 0):
      raise StyleError(f'learning_rate={self.learning_rate}: use a positive number')
    if self.log_every < 1:
      raise StyleError(f'log_every={self.log_every}: use at least 1')
    return self


def rgb_to_yiq(images):
  return images @ _RGB_TO_YIQ.T


def yiq_to_rgb(images):
  return images @ _YIQ_TO_RGB.T


def match_luminance(style_y, content_y):
  """The style's luminance shifted and scaled to the content's mean and standard deviation."""
  s_mu, s_sd = jnp.mean(style_y), jnp.std(style_y)
  c_mu, c_sd = jnp.mean(content_y), jnp.std(content_y)
  return (style_y - s_mu) * (c_sd / jnp.maximum(s_sd, 1e-6)) + c_mu


def objective(maps_fn: Callable, content_layer: str, style_layers: Sequence[str],
              settings: Settings):
  """fn(x [1, H, W, C], variables, content_target, style_grams) -> (total loss, {content, style,
  tv}); the network's variables and the targets are arguments, not compiled-in constants."""
  layers = tuple(dict.fromkeys((content_layer, *style_layers)))
  w_layer = 1.0 / len(style_layers)  # Gatys et al.'s equal layer weights w_l

  def fn(x, variables, content_target, style_grams):
    maps = maps_fn(variables, x, layers)
    c = losses.content_loss(maps[content_layer], content_target)[0]
    s = sum(w_layer * losses.style_layer_loss(maps[l], style_grams[l])[0] for l in style_layers)
    tv = losses.total_variation(x)[0]
    total = (settings.content_weight * c + settings.style_weight * s
             + settings.tv_weight * tv)
    return total, {'content': c, 'style': s, 'tv': tv}
  return fn


class Stylizer:
  """One style transfer problem (network, content, style, settings) with a compiled chunk of
  iterations. `run(progress)` returns (image [H, W, 3] in [-1, 1], history of per-step
  losses)."""

  def __init__(self, maps_fn: Callable, variables, content, style, settings: Settings,
               content_layer: str, style_layers: Sequence[str]):
    self.settings = settings.check()
    content = jnp.asarray(content, jnp.float32)
    style = jnp.asarray(style, jnp.float32)
    for name, im in (('content', content), ('style', style)):
      if im.ndim != 3 or im.shape[-1] != 3:
        raise StyleError(f'{name} image must be [H, W, 3]; got shape {tuple(im.shape)}')
    if settings.preserve_color:
      c_yiq, s_yiq = rgb_to_yiq(content), rgb_to_yiq(style)
      self._iq = c_yiq[..., 1:]
      content_in = c_yiq[..., :1]
      style_in = match_luminance(s_yiq[..., :1], content_in)
    else:
      content_in, style_in = content, style
    self.content_layer, self.style_layers = content_layer, tuple(style_layers)
    layers = tuple(dict.fromkeys((content_layer, *style_layers)))
    c_maps = maps_fn(variables, content_in[None], layers)
    s_maps = maps_fn(variables, style_in[None], layers)
    self.args = (variables, c_maps[content_layer],
                 {l: losses.gram_matrix(s_maps[l])[0] for l in self.style_layers})
    self.fn = objective(maps_fn, content_layer, self.style_layers, settings)
    if settings.init == 'content':
      self.x0 = content_in[None]
    else:
      noise = jax.random.uniform(jax.random.PRNGKey(settings.seed), content_in[None].shape,
                                 minval=-1.0, maxval=1.0)
      self.x0 = noise
    self.opt = (optax.adam(settings.learning_rate) if settings.optimizer == 'adam'
                else optax.lbfgs())
    self._chunks = {}

  def _chunk(self, length: int):
    if length not in self._chunks:
      fn, opt = self.fn, self.opt
      lbfgs = self.settings.optimizer == 'lbfgs'

      def run_chunk(x, opt_state, args):
        value_fn = lambda y: fn(y, *args)[0]
        value_and_grad = (optax.value_and_grad_from_state(value_fn) if lbfgs
                          else jax.value_and_grad(lambda y: fn(y, *args), has_aux=True))

        def step(carry, _):
          x, opt_state = carry
          if lbfgs:
            value, grad = value_and_grad(x, state=opt_state)
            updates, opt_state = opt.update(grad, opt_state, x, value=value, grad=grad,
                                            value_fn=value_fn)
            _, terms = fn(x, *args)  # L-BFGS's value comes from its state: terms once more
          else:
            (value, terms), grad = value_and_grad(x)
            updates, opt_state = opt.update(grad, opt_state, x)
          return (optax.apply_updates(x, updates), opt_state), {'total': value, **terms}

        return jax.lax.scan(step, (x, opt_state), None, length=length)

      self._chunks[length] = jax.jit(run_chunk)
    return self._chunks[length]

  def run(self, progress: Callable | None = None):
    s = self.settings
    x, opt_state = self.x0, self.opt.init(self.x0)
    history = {k: [] for k in ('total', 'content', 'style', 'tv')}
    done = 0
    while done < s.steps:
      length = min(s.log_every, s.steps - done)
      (x, opt_state), terms = self._chunk(length)(x, opt_state, self.args)
      terms = jax.device_get(terms)
      for k in history:
        history[k].extend(np.asarray(terms[k], np.float64).tolist())
      done += length
      if not np.isfinite(history['total'][-1]):
        raise StyleError(f'the loss became {history["total"][-1]} at step {done}: lower '
                         '--learning_rate or the loss weights')
      if progress is not None:
        progress(done, {k: v[-1] for k, v in history.items()})
    out = x[0]
    if s.preserve_color:
      out = yiq_to_rgb(jnp.concatenate([out, self._iq], axis=-1))
    return np.asarray(jnp.clip(out, -1.0, 1.0)), history


def default_style_weight(network: str) -> float:
  """The style weight used when none is given (`DEFAULT_STYLE_WEIGHTS`; 1e5 otherwise)."""
  return DEFAULT_STYLE_WEIGHTS.get(network, 1e5)


def stylize(extractor, content, style, settings: Settings = Settings(),
            progress: Callable | None = None):
  """Gatys et al. style transfer with a feature network (`genvision_jax.features.load(...)`):
  (image [H, W, 3] in [-1, 1], per-step loss history)."""
  content_layer = settings.content_layer or extractor.spec.content_layer
  style_layers = tuple(settings.style_layers) or extractor.spec.style_layers
  if not content_layer:
    raise StyleError(f'feature network {extractor.spec.name!r} exposes no feature maps; use '
                     f'one of {", ".join(DEFAULT_STYLE_WEIGHTS)}')
  extractor.check_layers((content_layer, *style_layers))
  if settings.style_weight is None:
    settings = dataclasses.replace(settings,
                                   style_weight=default_style_weight(extractor.spec.name))
  return Stylizer(extractor.maps, extractor.variables, content, style, settings, content_layer,
                  style_layers).run(progress)
