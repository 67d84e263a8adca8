"""Fast style transfer (Johnson, Alahi & Fei-Fei 2016): a feed-forward network trained once per
style with the perceptual losses of Gatys et al., so that stylizing a new image is one forward
pass instead of hundreds of optimizer steps.

For each batch of content images x (the offline colour photo patches), y = T(x) and

  loss = content_weight * content_loss(F_c(y), F_c(x))
         + style_weight * sum_l w_l style_layer_loss(F_l(y), Gram_l(style image))
         + tv_weight * total_variation(y)

(losses.py; the same terms as genvision_jax/style.py) in the feature maps of a network of
genvision_jax.features (`style.features`, default the random-filter network that needs no
weights; `vgg19`/`vgg16` with `style.weights`). The feature network's variables and the style
Gram matrices are constants of the compiled step: fine for the random filters (1.2 MB); with
VGG-19 they are ~80 MB of constants (slow compiles; measure before relying on it). T is models/transformer_net.py.

The style image (`style.image`, any file Pillow reads) and the feature network are read by the
training layer, not here (methods do no I/O): a new run reads the image from its path and keeps
a PNG copy in RUN/frozen/style.png, which every later use of the run reads instead (moving or
editing the original changes nothing). The feature network is only needed to train: a trained
run stylizes without it (`genvision stylize --workdir=RUN --content=C.png`); `genvision
evaluate` scores with it again (style_eval.py).
"""

import os

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from genvision_jax import losses
from genvision_jax.style import DEFAULT_STYLE_WEIGHTS, default_style_weight
from genvision_jax.methods import common
from genvision_jax.models.transformer_net import NORMS, TransformerNet

def default_style_image() -> str:
  """scikit-image's immunohistochemistry photo (`skimage.data.immunohistochemistry`, a file
  inside the installed package): the offline default style, a stained-tissue texture that is
  none of the photo_patches photos."""
  import skimage.data  # pylint: disable=g-import-not-at-top
  return os.path.join(os.path.dirname(skimage.data.__file__), 'ihc.png')


@flax.struct.dataclass
class FastStyleState:
  step: jax.Array
  params: dict
  opt_state: optax.OptState
  rng: jax.Array


class FastStyleMethod:
  """create_state / train_step / stylize of Johnson et al.'s network for one style."""

  minibatches_per_step = None

  def __init__(self, config, image_shape, num_classes=0, frozen=None):
    del num_classes
    self.config = config
    self.image_shape = tuple(image_shape)
    if self.image_shape[-1] != 3:
      raise ValueError(f'fast style transfer trains on colour images; {config.data.name} has '
                       f'{self.image_shape[-1]} channel(s) (use photo_patches/64)')
    m, s = config.model, config.style
    self.model = TransformerNet(width=int(m.width), res_blocks=int(m.res_blocks), norm=m.norm,
                                residual=bool(m.residual))
    self.tx = common.make_optimizer(config.optim)
    frozen = frozen or {}
    if 'style' not in frozen:
      raise ValueError('fast_style needs its style image, which the training layer reads '
                       '(training.load_frozen_runs)')
    self.style_image = jnp.asarray(frozen['style'].image)
    self.net = frozen.get('features')  # None when a trained run is loaded to stylize
    self.content_weight = float(s.content_weight)
    self.style_weight = float(s.style_weight if s.style_weight is not None
                              else default_style_weight(s.features))
    self.tv_weight = float(s.tv_weight)
    if self.net is not None:
      spec = self.net.spec
      self.content_layer = s.content_layer or spec.content_layer
      self.style_layers = tuple(s.style_layers) or spec.style_layers
      self.net.check_layers((self.content_layer, *self.style_layers))
      maps = self.net.maps(self.net.variables, self.style_image[None], self.style_layers)
      self.style_grams = {l: losses.gram_matrix(maps[l])[0] for l in self.style_layers}

  def create_state(self, rng, example_batch=None) -> FastStyleState:
    del example_batch
    init_rng, state_rng = jax.random.split(rng)
    params = self.model.init(init_rng, jnp.zeros((1, *self.image_shape), jnp.float32))['params']
    return FastStyleState(step=jnp.zeros((), jnp.int32), params=params,
                          opt_state=self.tx.init(params), rng=state_rng)

  def loss_terms(self, params, x):
    """Per-example (total, {content, style, tv}) of content images x [B, H, W, 3]."""
    return self.output_terms(self.model.apply({'params': params}, x), x)

  def output_terms(self, y, x):
    """Per-example (total, {content, style, tv}) of outputs y for content images x (y = x:
    the unchanged images, the evaluation's baseline)."""
    if self.net is None:
      raise ValueError('this fast_style method was loaded without its feature network (a '
                       'trained run loaded to stylize); train through `genvision train`')
    layers = tuple(dict.fromkeys((self.content_layer, *self.style_layers)))
    variables = self.net.variables
    fy = self.net.maps(variables, y, layers)
    fx = jax.lax.stop_gradient(self.net.maps(variables, x, (self.content_layer,)))
    c = losses.content_loss(fy[self.content_layer], fx[self.content_layer])
    w = 1.0 / len(self.style_layers)
    s = sum(w * losses.style_layer_loss(fy[l], self.style_grams[l]) for l in self.style_layers)
    tv = losses.total_variation(y)
    total = self.content_weight * c + self.style_weight * s + self.tv_weight * tv
    return total, {'content': c, 'style': s, 'tv': tv}

  def train_step(self, state: FastStyleState, batch):
    x = batch['image'].astype(jnp.float32)

    def loss_fn(params):
      total, terms = self.loss_terms(params, x)
      return jnp.mean(total), terms

    (loss, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = self.tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {'loss': loss, **{k: jnp.mean(v) for k, v in terms.items()},
               'grad_norm': common.global_norm(grads)}
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics

  def stylize(self, state: FastStyleState, images):
    """Stylized images [N, H, W, 3] in [-1, 1] of images [N, H, W, 3] in [-1, 1] (any size)."""
    return self.model.apply({'params': state.params}, images)

  def grid_from_data(self, images, num: int):
    """The training loop's sample grid: rows content | stylized for the first num // 2."""
    rows = jnp.asarray(images[:max(1, num // 2)])

    def grid(state, rng):
      del rng
      out = jnp.stack([rows, self.stylize(state, rows)], 1)
      return out.reshape(-1, *self.image_shape)
    return grid, 2

  def generate(self, state, rng, num: int, **kwargs):
    del state, rng, num, kwargs
    raise ValueError('a fast style-transfer network stylizes images, it does not sample from '
                     'noise: `genvision stylize --workdir=RUN --content=C.png --out=O.png`')

  # -- config (owned by the method) ----------------------------------------------------------

  # Runs made before the norm/residual options used instance norm and a plain output.
  LATER_DEFAULTS = {'model': {'norm': 'instance', 'residual': False}}
  RESUMABLE_FIELDS = ('style.weights',)  # the same network's weight file, moved

  @staticmethod
  def frozen_images(config) -> dict:
    """{name: (path, longer side)} of the image files the method needs (read by the training layer)."""
    return {'style': (config.style.image, int(config.style.size))}

  @staticmethod
  def frozen_features(config) -> dict:
    """{name: (feature network, weights)} the method trains with (loaded by the training
    layer for training only)."""
    return {'features': (config.style.features, config.style.weights or None)}

  @staticmethod
  def default_sections() -> dict:
    return {
        'model': ml_collections.ConfigDict(dict(
            width=32, res_blocks=5,
            norm='none',      # 'instance' (Johnson et al.'s released code) or 'none'
            residual=True,    # output tanh(atanh(x) + r(x)): starts at the identity
        )),
        'style': ml_collections.ConfigDict(dict(
            image=default_style_image(),  # the style image file
            size=128,             # its longer side in pixels when its Gram matrices are taken
            features='random',    # genvision_jax.features network with feature maps
            weights='',           # its weight file ('' = its environment variable)
            content_weight=1.0,
            style_weight=ml_collections.config_dict.placeholder(float),  # None: the network's
                                  # default (style.DEFAULT_STYLE_WEIGHTS)
            tv_weight=1e-2,
            content_layer='',     # '' = the network's default
            style_layers=(),      # () = the network's default
        )),
        # 1e-3 (Johnson et al.'s) diverged without normalization (saturated white at 1e4)
        'optim': common.optimizer_config('adam', learning_rate=3e-4),
    }

  @staticmethod
  def validate_config(config, check) -> None:
    m, s, need = config.model, config.style, check.need
    check.positive_int('model.width', m.width)
    need(isinstance(m.res_blocks, int) and m.res_blocks >= 0,
         f'model.res_blocks must be an integer >= 0 (got {m.res_blocks!r})')
    need(m.norm in NORMS, f'model.norm must be one of {", ".join(NORMS)} (got {m.norm!r})')
    need(isinstance(m.residual, bool), f'model.residual must be True or False (got '
         f'{m.residual!r})')
    need(bool(s.image), 'style.image must name the style image file, e.g. '
         '--config.style.image=style.png')
    need(isinstance(s.size, int) and s.size >= 32, f'style.size must be an integer >= 32 (the '
         f'feature networks need 32 px; got {s.size!r})')
    from genvision_jax import features  # pylint: disable=g-import-not-at-top
    names = [n for n in features.names() if n in DEFAULT_STYLE_WEIGHTS]
    need(s.features in names, f'style.features must be one of {names} (networks with feature '
         f'maps; got {s.features!r})')
    if s.features in names:
      spec = features.spec(s.features)
      unknown = [l for l in (s.content_layer, *s.style_layers) if l and l not in spec.layers]
      need(not unknown, f'style.content_layer / style.style_layers: {s.features} has no layer '
           f'{", ".join(unknown)}; its layers: {", ".join(spec.layers)}')
    for name in ('content_weight', 'style_weight', 'tv_weight'):
      v = s[name]
      if v is None and name == 'style_weight':
        continue
      need(isinstance(v, (int, float)) and np.isfinite(v) and v >= 0,
           f'style.{name} must be a finite number >= 0 (got {v!r})')
    check.optimizer('optim', config.optim)
