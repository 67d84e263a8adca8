"""HiDDeN (Zhu et al. 2018): a post-hoc n-bit watermark for the images of any generator — an
encoder hides a message in an image as a bounded residual, a decoder reads it back after the
image went through a noise layer of attacks.

Per step, for cover images x (the data) and random messages m in {-1, +1}^n:
  x_w = clip(x + strength * enc(x, m), -1, 1)       (|x_w - x| <= strength per pixel)
  y   = noise(x_w, x)                               one noise layer per batch (`hidden.noise`,
                                                    genvision_jax/attacks.py; JPEG straight-through)
  loss = BCE(dec(y), (m + 1) / 2) + image_weight * ramp * mean (x_w - x)^2
as HiDDeN's message and image losses (its adversarial image term is left out, as in the Stable
Signature re-implementation). A curriculum: for the first `hidden.warmup_steps` steps the
noise layer is the identity and ramp = 0 (with the image loss and the attacks from the start the
residual collapses to zero before the decoder can read anything: bit accuracy stayed at 0.50
over 200 steps); then the attacks are on and ramp grows linearly to 1 over as many steps. The
strength follows the same ramp from `hidden.start_strength` down to `strength` (geometrically):
at the full model's strength 0.1 from step 0 the message is too faint for the 6-layer decoder
to find it — bit accuracy 0.49 and a loss of ln 2 after 200 steps (as after 400 in a full run) —
while at 0.5 it read 99.8 % of the 32 bits by step 200. Embedding after training uses
`strength`. Logged: the loss terms, the strength, the bit accuracy after the noise layer and
without it, and the PSNR of x_w against x.
"""

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from genvision_jax import attacks
from genvision_jax.methods import common
from genvision_jax.models import watermark as wm_models


@flax.struct.dataclass
class HiddenState:
  step: jax.Array
  params: dict       # {'encoder': ..., 'decoder': ...}
  opt_state: optax.OptState
  rng: jax.Array


class HiddenMethod:
  """create_state / train_step / embed / extract of the HiDDeN watermark (`config.model`,
  `config.hidden`, `config.optim`)."""

  minibatches_per_step = None
  LATER_DEFAULTS = {'hidden': {'start_strength': 0.0}}  # runs before the curriculum: none

  def __init__(self, config, image_shape, num_classes=0):
    del num_classes
    self.config = config
    self.image_shape = tuple(image_shape)
    m, h = config.model, config.hidden
    self.num_bits = int(m.num_bits)
    self.strength = float(h.strength)
    self.start_strength = float(h.start_strength)
    self.image_weight = float(h.image_weight)
    self.noise = tuple(h.noise)
    self.warmup_steps = int(h.warmup_steps)
    self.encoder = wm_models.HiddenEncoder(self.num_bits, self.image_shape[-1], int(m.width),
                                           int(m.encoder_depth))
    self.decoder = wm_models.HiddenDecoder(self.num_bits, int(m.width), int(m.decoder_depth),
                                           readout=m.readout)
    self.tx = common.make_optimizer(config.optim)

  def create_state(self, rng, example_batch=None) -> HiddenState:
    del example_batch
    k_enc, k_dec, state_rng = jax.random.split(rng, 3)
    x = jnp.zeros((1, *self.image_shape), jnp.float32)
    params = {'encoder': self.encoder.init(k_enc, x, jnp.ones((1, self.num_bits)))['params'],
              'decoder': self.decoder.init(k_dec, x)['params']}
    return HiddenState(step=jnp.zeros((), jnp.int32), params=params,
                       opt_state=self.tx.init(params), rng=state_rng)

  # -- the maps ------------------------------------------------------------------------------

  def _embed(self, params, images, bits, strength=None):
    residual = self.encoder.apply({'params': params['encoder']}, images, bits)
    strength = self.strength if strength is None else strength
    return jnp.clip(images + strength * residual, -1.0, 1.0)

  def _logits(self, params, images):
    return self.decoder.apply({'params': params['decoder']}, images)

  def embed(self, state: HiddenState, images, bits):
    """Watermarked images [N, H, W, C] in [-1, 1] carrying bits [N, n] (or [n]) in {0, 1}."""
    bits = jnp.broadcast_to(jnp.asarray(bits, jnp.float32), (images.shape[0], self.num_bits))
    return self._embed(state.params, jnp.asarray(images, jnp.float32), 2.0 * bits - 1.0)

  def extract(self, state: HiddenState, images):
    """Bit logits [N, n] of images (logit > 0 reads 1)."""
    return self._logits(state.params, jnp.asarray(images, jnp.float32))

  # -- training ------------------------------------------------------------------------------

  def ramp(self, step):
    """The image loss's share of its weight at `step`: 0 during the warm-up, then linear to 1."""
    if self.warmup_steps == 0:
      return jnp.ones(())
    return jnp.clip((step - self.warmup_steps) / self.warmup_steps, 0.0, 1.0)

  def strength_at(self, step):
    """The training strength at `step`: start_strength during the warm-up, then geometrically
    down to `strength` as `ramp` goes to 1 (`strength` throughout if start_strength <= it)."""
    if step is None or self.start_strength <= self.strength:
      return jnp.asarray(self.strength, jnp.float32)
    return self.strength * (self.start_strength / self.strength) ** (1.0 - self.ramp(step))

  def batch_loss(self, params, images, rng, step=None):
    k_bits, k_noise = jax.random.split(rng)
    bits = jax.random.bernoulli(k_bits, 0.5, (images.shape[0], self.num_bits))
    signs = 2.0 * bits.astype(jnp.float32) - 1.0
    strength = self.strength_at(step)
    marked = self._embed(params, images, signs, strength)
    attacked = attacks.random_noise_layer(self.noise, marked, images, k_noise)
    ramp = jnp.ones(())
    if step is not None and self.warmup_steps:
      attacked = jnp.where(step < self.warmup_steps, marked, attacked)
      ramp = self.ramp(step)
    logits = self._logits(params, attacked)
    message = jnp.mean(optax.sigmoid_binary_cross_entropy(logits, bits.astype(jnp.float32)))
    image = jnp.mean((marked - images) ** 2)
    aux = {'message_loss': message, 'image_loss': image, 'image_weight': self.image_weight * ramp,
           'strength': strength,
           'bit_accuracy': jnp.mean((logits > 0) == bits),
           'psnr': 10.0 * jnp.log10(4.0 / jnp.maximum(image, 1e-12)),
           'marked': marked, 'bits': bits}
    return message + self.image_weight * ramp * image, aux

  def train_step(self, state: HiddenState, batch):
    rng = jax.random.fold_in(state.rng, state.step)
    images = batch['image'].astype(jnp.float32)
    (loss, aux), grads = jax.value_and_grad(self.batch_loss, has_aux=True)(
        state.params, images, rng, state.step)
    updates, opt_state = self.tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    clean = self._logits(state.params, jax.lax.stop_gradient(aux['marked'])) > 0
    metrics = {'loss': loss, 'grad_norm': common.global_norm(grads),
               'bit_accuracy_clean': jnp.mean(clean == aux['bits']),
               **{k: v for k, v in aux.items() if k not in ('marked', 'bits')}}
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics

  # -- the training loop's sample grid: cover | watermarked | 10 x |difference| ---------------

  def watermark_grid(self, state, rng, images):
    del rng
    bits = jax.random.bernoulli(jax.random.key(0), 0.5, (images.shape[0], self.num_bits))
    marked = self.embed(state, images, bits)
    diff = jnp.clip(10.0 * jnp.abs(marked - images), 0.0, 2.0) - 1.0
    return jnp.stack([images, marked, diff], 1).reshape(-1, *self.image_shape)

  def grid_from_data(self, images, num: int):
    rows = max(1, num // 3)
    return (lambda state, rng: self.watermark_grid(state, rng, jnp.asarray(images[:rows]))), 3

  def generate(self, state, rng, num: int, **kwargs):
    del state, rng, num, kwargs
    raise ValueError('a HiDDeN run watermarks images, it does not generate them: '
                     '`genvision watermark embed --scheme=hidden --workdir=RUN --run=GENERATOR` '
                     'watermarks the samples of a generator run')

  # -- config --------------------------------------------------------------------------------

  @staticmethod
  def default_sections() -> dict:
    return {
        'model': ml_collections.ConfigDict(dict(
            num_bits=32,        # message length n
            width=32,           # channels of every block
            encoder_depth=3,    # blocks on the image before the message joins
            decoder_depth=5,    # blocks before the n-channel block and pooling
            readout='dense',    # 'mean': global average pooling (HiDDeN); 'dense': by position
        )),
        'hidden': ml_collections.ConfigDict(dict(
            strength=0.1,       # residual scale in [-1, 1] units (12.75 of 255 levels at most)
            image_weight=0.7,   # HiDDeN's weight of the image loss
            noise=attacks.NOISE_LAYERS,  # one drawn per batch
            warmup_steps=1000,  # identity noise and no image loss, then both ramped in
            start_strength=0.5,  # strength in the warm-up, then down to `strength` with the
                                 # ramp (0: `strength` throughout)
        )),
        'optim': common.optimizer_config('adam', learning_rate=1e-3),
    }

  @staticmethod
  def validate_config(config, check) -> None:
    m, h, need = config.model, config.hidden, check.need
    for key in ('num_bits', 'width', 'encoder_depth', 'decoder_depth'):
      check.positive_int(f'model.{key}', m[key])
    need(0 < h.strength <= 1, f'hidden.strength must be in (0, 1] (got {h.strength!r})')
    need(0 <= h.start_strength <= 1, f'hidden.start_strength must be in [0, 1] (0: no '
         f'curriculum; got {h.start_strength!r})')
    need(isinstance(h.warmup_steps, int) and h.warmup_steps >= 0,
         f'hidden.warmup_steps must be an integer >= 0 (got {h.warmup_steps!r})')
    need(h.image_weight >= 0, f'hidden.image_weight must be >= 0 (got {h.image_weight!r})')
    unknown = [n for n in h.noise if n not in attacks.NOISE_LAYERS]
    need(len(h.noise) > 0 and not unknown,
         f'hidden.noise must name noise layers of {attacks.NOISE_LAYERS} (unknown: {unknown})')
    need(m.readout in ('mean', 'dense'), f"model.readout must be 'mean' or 'dense' (got "
         f'{m.readout!r})')
    check.optimizer('optim', config.optim)
