"""pix2pix (Isola et al. 2017): image-to-image translation with a conditional GAN.

Each step turns the real minibatch into (input x, target y) pairs with the configured task
(`genvision_jax.tasks`, keyed by (seed, step) like the data order), then

  D update:  objective(D(x, y), D(x, G(x)))          D sees the channel-concatenation of the
                                                      input and a real or generated output
  G update:  gan_weight * objective_G(D(x, G(x))) + l1_weight * |G(x) - y|_1

with the objectives of the GAN loss table (`pix2pix.loss`, default the paper's
non-saturating one) and pix2pix's weights (gan 1, L1 100), Adam 2e-4 / 0.5. G is the U-Net of
`models/pix2pix.py` whose only noise is dropout, active at test time too; D is the PatchGAN
(`model.d_layers`: 3 is the 70x70 PatchGAN at 256 px; sized to the image here). With
`pix2pix.gan_weight = 0` no discriminator is trained: the L1-only U-Net of the paper's
ablation. The state keeps an EMA of G's weights, as the other methods do.
"""

import jax
import jax.numpy as jnp
import ml_collections
import optax

from genvision_jax import losses
from genvision_jax import tasks
from genvision_jax.methods import common
from genvision_jax.methods import i2i
from genvision_jax.methods.gan import GANState
from genvision_jax.models import layers
from genvision_jax.models import patchgan
from genvision_jax.models import pix2pix as pix2pix_models


# pix2pix's state is the GAN's (two networks, two optimizers, G's EMA, update counters);
# `began_k` stays 0.
Pix2PixState = GANState


class Pix2PixMethod(i2i.ImageToImage):
  """create_state / train_step / translate for pix2pix, configured by `config.model`,
  `config.task`, `config.pix2pix` and `config.optim.{g,d}`."""

  minibatches_per_step = None  # batch['image'] is [B, H, W, C]

  def __init__(self, config, image_shape, num_classes=0):
    del num_classes  # the input image is the condition
    self.config = config
    self.set_task(config, image_shape)
    size = self.image_shape[0]
    m, p = config.model, config.pix2pix
    dtype = jnp.dtype(config.train.compute_dtype)
    self.generator = pix2pix_models.UNetGenerator(  # the image, or its chroma (keep_luma)
        channels=self.output_shape[-1], width=m.g_width, depth=m.depth, dropout=m.dropout,
        norm=m.g_norm, dtype=dtype)
    self.discriminator = patchgan.PatchDiscriminator(
        image_size=size, width=m.d_width, norm=m.d_norm, layers=m.d_layers, dtype=dtype)
    self.objective = losses.GAN_OBJECTIVES[p.loss]
    self.gan_weight = float(p.gan_weight)
    self.l1_weight = float(p.l1_weight)
    self.ema_decay = float(config.train.ema_decay)
    self.ema_start = int(config.train.ema_start)
    self.g_tx = common.make_optimizer(config.optim.g)
    self.d_tx = common.make_optimizer(config.optim.d)

  def create_state(self, rng, example_batch=None) -> Pix2PixState:
    del example_batch
    g_rng, d_rng, drop_rng, state_rng = jax.random.split(rng, 4)
    x = jnp.zeros((1, *self.input_shape))
    g_vars = self.generator.init({'params': g_rng, 'dropout': drop_rng}, x, train=False)
    d_vars = self.discriminator.init(d_rng, self._pair(x, jnp.zeros((1, *self.image_shape))),
                                     train=False)
    g_params, d_params = g_vars['params'], d_vars['params']
    return Pix2PixState(
        step=jnp.zeros((), jnp.int32), g_params=g_params, d_params=d_params,
        g_batch_stats=g_vars.get('batch_stats', {}), d_batch_stats=d_vars.get('batch_stats', {}),
        g_opt_state=self.g_tx.init(g_params), d_opt_state=self.d_tx.init(d_params),
        ema_params=g_params, d_updates=jnp.zeros((), jnp.int32),
        g_updates=jnp.zeros((), jnp.int32), rng=state_rng, began_k=jnp.zeros((), jnp.float32))

  # -- pieces --------------------------------------------------------------------------------

  @staticmethod
  def _pair(x, y):
    """What D sees: input and output stacked on the channel axis."""
    return jnp.concatenate([x, y], axis=-1)

  def _generate_train(self, g_params, g_batch_stats, x, rng):
    out, mutated = self.generator.apply(
        {'params': g_params, 'batch_stats': g_batch_stats}, x, train=True,
        rngs={'dropout': rng}, mutable=['batch_stats'])
    return self.network_to_image(out, x), mutated.get('batch_stats', {})

  def _discriminate_train(self, d_params, d_batch_stats, x, y):
    logits, mutated = self.discriminator.apply(
        {'params': d_params, 'batch_stats': d_batch_stats}, self._pair(x, y), train=True,
        mutable=['batch_stats'])
    return logits, mutated.get('batch_stats', {})

  def _d_update(self, state: Pix2PixState, x, y, fake):
    def loss_fn(d_params):
      real_logits, bs = self._discriminate_train(d_params, state.d_batch_stats, x, y)
      fake_logits, bs = self._discriminate_train(d_params, bs, x, fake)
      terms = self.objective(real_logits, fake_logits)
      return jnp.mean(terms.d_real) + jnp.mean(terms.d_fake), (bs, real_logits, fake_logits)

    (loss, (bs, real_logits, fake_logits)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(state.d_params)
    updates, opt_state = self.d_tx.update(grads, state.d_opt_state, state.d_params)
    state = state.replace(d_params=optax.apply_updates(state.d_params, updates),
                          d_opt_state=opt_state, d_batch_stats=bs,
                          d_updates=state.d_updates + 1)
    return state, {'d_loss': loss, 'd_real_logit': jnp.mean(real_logits),
                   'd_fake_logit': jnp.mean(fake_logits),
                   'd_grad_norm': common.global_norm(grads)}

  def _g_update(self, state: Pix2PixState, x, y, rng):
    def loss_fn(g_params):
      fake, g_bs = self._generate_train(g_params, state.g_batch_stats, x, rng)
      l1 = jnp.mean(jnp.abs(fake - y))
      adversarial = jnp.zeros(())
      if self.gan_weight > 0:
        logits, _ = self._discriminate_train(state.d_params, state.d_batch_stats, x, fake)
        adversarial = jnp.mean(self.objective(None, logits).g)
      loss = self.gan_weight * adversarial + self.l1_weight * l1
      return loss, (g_bs, l1, adversarial)

    (loss, (g_bs, l1, adversarial)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(state.g_params)
    updates, opt_state = self.g_tx.update(grads, state.g_opt_state, state.g_params)
    g_params = optax.apply_updates(state.g_params, updates)
    ema = common.ema_update(state.ema_params, g_params, state.step, self.ema_decay,
                            self.ema_start)
    state = state.replace(g_params=g_params, g_opt_state=opt_state, g_batch_stats=g_bs,
                          ema_params=ema, g_updates=state.g_updates + 1)
    metrics = {'g_loss': loss, 'l1': l1, 'g_grad_norm': common.global_norm(grads)}
    if self.gan_weight > 0:
      metrics['g_adversarial'] = adversarial
    return state, metrics

  # -- the step ------------------------------------------------------------------------------

  def train_step(self, state: Pix2PixState, batch):
    """batch['image']: [B, H, W, C]: one D update (unless gan_weight = 0), then one G update,
    on the pairs made from this minibatch."""
    images = batch['image']
    if images.ndim != 4:
      raise ValueError(f'pix2pix batches are [B, H, W, C]; got {images.shape}')
    task_rng, drop_rng = jax.random.split(jax.random.fold_in(state.rng, state.step))
    pair = self.pairs(images, task_rng)
    x, y = pair['input'], pair['target']
    metrics = {}
    if self.gan_weight > 0:
      fake, _ = self._generate_train(state.g_params, state.g_batch_stats, x, drop_rng)
      state, metrics = self._d_update(state, x, y, jax.lax.stop_gradient(fake))
    state, g_metrics = self._g_update(state, x, y, drop_rng)
    metrics.update(g_metrics)
    metrics['loss'] = metrics['g_loss'] + metrics.get('d_loss', 0.0)
    return state.replace(step=state.step + 1), metrics

  # -- sampling ------------------------------------------------------------------------------

  def translate(self, state: Pix2PixState, inputs, rng, use_ema: bool = True,
                stochastic: bool = True):
    """G(inputs) in [-1, 1] (BatchNorm with running statistics; dropout drawn from rng unless
    stochastic=False)."""
    params = state.ema_params if use_ema else state.g_params
    out = self.generator.apply({'params': params, 'batch_stats': state.g_batch_stats}, inputs,
                               train=False, stochastic=stochastic, rngs={'dropout': rng})
    if self.keep_luma:  # the input's luma and G's chroma, clipped to the RGB cube
      return jnp.clip(self.network_to_image(out, inputs), -1.0, 1.0)
    return out

  # -- config (owned by the method: `configs.method_config` / `validate` / `from_dict` call
  # -- these) --------------------------------------------------------------------------------

  # section -> {field: value reproducing runs written before it existed}
  LATER_DEFAULTS = {'task': {'keep_luma': False, 'noise': 'gaussian', 'mask_prob': 0.25}}
  RESUMABLE_FIELDS = ()  # fields besides configs.RESUMABLE_FIELDS a resumed run may change

  @staticmethod
  def default_sections() -> dict:
    """The sections this method owns, at their defaults (pix2pix: U-Net G, PatchGAN D,
    non-saturating loss + 100 L1, Adam 2e-4 / 0.5; super-resolution x4)."""
    return {
        'task': tasks.default_config(),
        'model': ml_collections.ConfigDict(dict(
            g_width=64,        # channels of G's first encoder layer (doubling to 8x)
            depth=0,           # G's stride-2 levels; 0: as many as halve the image evenly
            dropout=0.5,       # G's dropout (its noise), innermost 3 decoder layers
            g_norm='batch',    # 'batch', 'layer' or 'none'
            d_width=64,        # channels of D's first layer
            d_layers=2,        # PatchGAN stride-2 layers: receptive field 34 px (3: 70 px)
            d_norm='batch',    # 'batch', 'layer' or 'none'
        )),
        'pix2pix': ml_collections.ConfigDict(dict(
            loss='non_saturating',  # the GAN objective: see losses.GAN_OBJECTIVES
            gan_weight=1.0,         # 0: the L1-only U-Net (no discriminator)
            l1_weight=100.0,        # lambda of the L1 term
        )),
        'optim': ml_collections.ConfigDict(dict(
            g=common.optimizer_config('adam', learning_rate=2e-4, b1=0.5, b2=0.999),
            d=common.optimizer_config('adam', learning_rate=2e-4, b1=0.5, b2=0.999),
        )),
    }

  @staticmethod
  def validate_config(config, check) -> None:
    """The `task`, `model`, `pix2pix` and `optim.{g,d}` fields."""
    m, p, need = config.model, config.pix2pix, check.need
    tasks.validate(config, check)
    check.positive_int('model.g_width', m.g_width)
    check.positive_int('model.d_width', m.d_width)
    check.positive_int('model.d_layers', m.d_layers)
    need(isinstance(m.depth, int) and m.depth >= 0, f'model.depth must be an integer >= 0 '
         f'(0 = from the image size; got {m.depth!r})')
    size = config.data.image_size
    if isinstance(m.depth, int) and m.depth > 0 and isinstance(size, int):
      need(size % 2**m.depth == 0, f'model.depth={m.depth} halves data.image_size={size} '
           'unevenly; use fewer levels or 0 (as many as fit)')
    if isinstance(m.d_layers, int) and isinstance(size, int):
      need(size % 2**m.d_layers == 0, f'model.d_layers={m.d_layers} halves '
           f'data.image_size={size} too often; use fewer layers')
    need(0.0 <= m.dropout < 1.0, f'model.dropout must be in [0, 1) (got {m.dropout!r})')
    for key in ('g_norm', 'd_norm'):
      need(m[key] in layers.NORMS, f'model.{key} must be one of {layers.NORMS} '
           f'(got {m[key]!r})')
    objectives = sorted(k for k in losses.GAN_OBJECTIVES if k != 'began')
    need(p.loss in objectives, f'pix2pix.loss must be one of {objectives} (got {p.loss!r})')
    need(p.gan_weight >= 0, f'pix2pix.gan_weight must be >= 0 (got {p.gan_weight!r})')
    need(p.l1_weight >= 0, f'pix2pix.l1_weight must be >= 0 (got {p.l1_weight!r})')
    need(p.gan_weight > 0 or p.l1_weight > 0, 'pix2pix.gan_weight and pix2pix.l1_weight are '
         'both 0: nothing to train')
    if config.task.name == 'super_resolution':
      need(config.task.upsample_input, 'pix2pix maps an image to one of the same size: use '
           '--config.task.upsample_input=True for super-resolution')
    check.optimizer('optim.g', config.optim.g)
    check.optimizer('optim.d', config.optim.d)
