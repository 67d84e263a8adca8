"""Stable Signature (Fernandez et al. 2023) for the package's GANs and VAEs: fine-tune a trained
generator (a GAN's EMA generator, a VAE's decoder) so that every image it makes carries a fixed
n-bit key that a frozen HiDDeN extractor reads — a watermark in the weights, not added after.

Frozen runs (the training layer loads them, as Parti's tokenizer): `signature.generator` (a
'gan' or 'vae' run) and `signature.extractor` (a 'hidden' run on images of the same shape).
The tuned parameters G' start as the generator's; the original G stays as the reference. Per
step, fresh latents z (and uniform labels for a conditional GAN):
  loss = BCE(temperature * extractor(G'(z)), key) + image_weight * mean (G'(z) - G(z))^2
(Stable Signature's message loss with its temperature 10; the mean squared error replaces its
Watson-VGG perceptual loss, which needs pretrained VGG weights). BatchNorm keeps G's running
statistics (only weights are tuned). The run's `generate` / `decode` are the generator
method's with G' in place of G, so `genvision sample` and `evaluate` work on it unchanged.
"""

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from genvision_jax.methods import common

TUNED_FIELD = {'gan': 'ema_params', 'vae': 'params'}  # the generator weights `decode` uses


def key_bits(num_bits: int, key_seed: int) -> np.ndarray:
  """The key of `signature.key_seed`: [n] bits in {0, 1} (provenance.bits.key_bits uses this
  draw for every bit watermark)."""
  return np.random.default_rng(key_seed).integers(0, 2, num_bits).astype(np.int32)


@flax.struct.dataclass
class SignatureState:
  step: jax.Array
  params: dict         # G': the tuned generator weights
  opt_state: optax.OptState
  rng: jax.Array
  generator: object    # the generator run's state (frozen; its tuned field is G)
  extractor: object    # the HiDDeN run's state without its optimizer (frozen)


class SignatureMethod:
  """See the module docstring; config sections `signature` and `optim`."""

  minibatches_per_step = None
  LATER_DEFAULTS = {}

  def __init__(self, config, image_shape, num_classes=0, frozen=None):
    del num_classes
    if not frozen or set(frozen) != {'generator', 'extractor'}:
      raise ValueError('the signature method needs its generator and extractor runs '
                       '(signature.generator, signature.extractor), which the training layer '
                       'loads (training.load_frozen_runs)')
    gen, ext = frozen['generator'], frozen['extractor']
    if gen.config.method not in TUNED_FIELD:
      raise ValueError(f'Stable Signature tunes a GAN generator or a VAE decoder; '
                       f'{config.signature.generator} holds a {gen.config.method!r} run')
    if ext.config.method != 'hidden':
      raise ValueError(f'signature.extractor must be a HiDDeN run (method hidden); '
                       f'{config.signature.extractor} holds a {ext.config.method!r} run')
    if tuple(gen.method.image_shape) != tuple(ext.method.image_shape):
      raise ValueError(f'the generator makes {tuple(gen.method.image_shape)} images, the '
                       f'extractor reads {tuple(ext.method.image_shape)}: train a HiDDeN run on '
                       "the generator's data")
    self.config = config
    self.generator = gen.method
    self.extractor = ext.method
    self.field = TUNED_FIELD[gen.config.method]
    self.image_shape = tuple(gen.method.image_shape)
    self.num_classes = int(getattr(gen.method, 'num_classes', 0) or 0)
    self.latent_dim = int(gen.method.latent_dim)
    self._generator_state = gen.state
    self._extractor_state = ext.state.replace(opt_state=())
    s = config.signature
    self.key = jnp.asarray(key_bits(self.extractor.num_bits, int(s.key_seed)), jnp.float32)
    self.temperature = float(s.temperature)
    self.image_weight = float(s.image_weight)
    self.tx = common.make_optimizer(config.optim)

  @staticmethod
  def frozen_runs(config) -> dict:
    return {'generator': config.signature.generator, 'extractor': config.signature.extractor}

  def create_state(self, rng, example_batch=None) -> SignatureState:
    del example_batch
    generator = jax.tree.map(jnp.asarray, self._generator_state)
    params = jax.tree.map(jnp.copy, getattr(generator, self.field))
    return SignatureState(step=jnp.zeros((), jnp.int32), params=params,
                          opt_state=self.tx.init(params), rng=rng, generator=generator,
                          extractor=jax.tree.map(jnp.asarray, self._extractor_state))

  def _tuned(self, state: SignatureState, params=None):
    """The generator run's state with G' in place of G."""
    return state.generator.replace(**{self.field: state.params if params is None else params})

  def _latents(self, rng, num: int):
    z_rng, l_rng = jax.random.split(rng)
    latents = getattr(self.generator, 'latents', None)
    z = latents(z_rng, num) if latents else jax.random.normal(z_rng, (num, self.latent_dim))
    labels = (jax.random.randint(l_rng, (num,), 0, self.num_classes) if self.num_classes
              else None)
    return z, labels

  def _decode(self, generator_state, z, labels):
    if labels is None:
      return self.generator.decode(generator_state, z)
    return self.generator.decode(generator_state, z, labels=labels)

  def train_step(self, state: SignatureState, batch):
    rng = jax.random.fold_in(state.rng, state.step)
    z, labels = self._latents(rng, batch['image'].shape[0])
    reference = jax.lax.stop_gradient(self._decode(state.generator, z, labels))

    def loss_fn(params):
      images = self._decode(self._tuned(state, params), z, labels)
      logits = self.extractor.extract(state.extractor, images)
      key = jnp.broadcast_to(self.key, logits.shape)
      message = jnp.mean(optax.sigmoid_binary_cross_entropy(self.temperature * logits, key))
      image = jnp.mean((images - reference) ** 2)
      return message + self.image_weight * image, (message, image, logits)

    (loss, (message, image, logits)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.params)
    updates, opt_state = self.tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {'loss': loss, 'message_loss': message, 'image_loss': image,
               'psnr': 10.0 * jnp.log10(4.0 / jnp.maximum(image, 1e-12)),
               'bit_accuracy': jnp.mean((logits > 0) == (self.key > 0.5)),
               'grad_norm': common.global_norm(grads)}
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics

  def generate(self, state: SignatureState, rng, num: int, **kwargs):
    """The tuned generator's samples (the generator method's generate with G')."""
    return self.generator.generate(self._tuned(state), rng, num, **kwargs)

  def decode(self, state: SignatureState, z, **kwargs):
    return self.generator.decode(self._tuned(state), z, **kwargs)

  @staticmethod
  def default_sections() -> dict:
    return {
        'signature': ml_collections.ConfigDict(dict(
            generator='runs/dcgan',     # workdir of the trained 'gan' or 'vae' run to tune
            extractor='runs/hidden32',  # workdir of the trained 'hidden' run reading the key
            key_seed=0,         # the key: bits drawn from this seed (written to config.json)
            temperature=10.0,   # Stable Signature's scale of the extractor's logits
            image_weight=1.0,   # weight of the mean squared error to the original images
        )),
        'optim': common.optimizer_config('adam', learning_rate=5e-4),
    }

  @staticmethod
  def validate_config(config, check) -> None:
    s, need = config.signature, check.need
    need(isinstance(s.generator, str) and bool(s.generator), 'signature.generator must name '
         'the workdir of a trained GAN or VAE run (--config.signature.generator=RUN)')
    need(isinstance(s.extractor, str) and bool(s.extractor), 'signature.extractor must name '
         'the workdir of a trained HiDDeN run (--config.signature.extractor=RUN; genvision train '
         '--config=experiments/provenance/hidden_mnist.py --workdir=RUN)')
    need(s.temperature > 0, f'signature.temperature must be > 0 (got {s.temperature!r})')
    need(s.image_weight >= 0, f'signature.image_weight must be >= 0 (got {s.image_weight!r})')
    need(isinstance(s.key_seed, int), f'signature.key_seed must be an integer (got '
         f'{s.key_seed!r})')
    check.optimizer('optim', config.optim)
