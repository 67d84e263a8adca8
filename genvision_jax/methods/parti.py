"""Autoregressive text-to-image (Parti, Yu et al. 2022, small): a transformer predicts the VQ
codes of an image left to right (raster order) from its caption; a trained VQ-VAE tokenizer
(methods/vqvae.py) turns images into codes for training and codes back into images.

The tokenizer is another run, named by its workdir (`parti.tokenizer`). The method does no I/O:
the training layer reads that run and passes it in (`frozen_runs`, training/loop.py), and its
parameters ride in the state (`PartiState.tokenizer`, never updated), so a checkpoint holds
everything generation needs.

The tokenizer never changes, so the codes of the training images are computed once when
training starts (`derived_fields`; the training layer adds them to every batch): a step then
runs the transformer only (the encoder's forward pass on a 32-canvas batch took 0.45 s on two
CPU cores beside another job, against ~0.7 s for a whole training step alone).

Training (teacher forcing): codes c_1..c_N of the image; the decoder sees BOS, c_1..c_{N-1}
and predicts every c_i with the cross-entropy (nats per code); each caption is emptied with
probability `parti.p_uncond`, so one network learns p(c | text) and p(c).

Sampling: one position per network call with a KV cache (`models/parti.py`, decode=True) in
one `lax.scan`; classifier-free guidance on the logits, (1 + w) l(text) - w l(empty) (the
conditional and unconditional halves share one batch); then temperature and top-k
(`parti.temperature`, `parti.top_k`; temperature 0 is greedy decoding).
`generate(state, rng, num, label=TOKENS [num, L])` like the text-to-image diffusion method.
"""

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from genvision_jax.data.pipeline import to_model_range
from genvision_jax.methods import common
from genvision_jax.models.parti import PartiTransformer


@flax.struct.dataclass
class PartiState:
  step: jax.Array
  params: dict
  ema_params: dict
  opt_state: optax.OptState
  rng: jax.Array
  tokenizer: object  # the tokenizer run's state without its optimizer (frozen)


def guided_logits(cond, uncond, guidance):
  """Classifier-free guidance on logits: (1 + w) cond - w uncond."""
  return (1.0 + guidance) * cond - guidance * uncond


def filter_logits(logits, temperature: float, top_k: int):
  """logits / temperature with all but the top_k largest set to -inf (top_k 0: keep all)."""
  if top_k and top_k < logits.shape[-1]:
    kth = jax.lax.top_k(logits, top_k)[0][..., -1:]
    logits = jnp.where(logits < kth, -jnp.inf, logits)
  return logits / temperature


class PartiMethod:
  """See the module docstring; config sections `model` (the image-code decoder), `text` (the
  text encoder, as in tti_diffusion), `parti` (tokenizer, caption dropout, sampling) and
  `optim`."""

  minibatches_per_step = None
  conditioning_key = 'tokens'  # the batch entry the loop passes as `label` to generate

  def __init__(self, config, image_shape, num_classes=0, frozen=None):
    del num_classes
    if not frozen or 'tokenizer' not in frozen:
      raise ValueError('the Parti method needs its tokenizer run (parti.tokenizer), which the '
                       'training layer loads (training.load_frozen_runs)')
    tok = frozen['tokenizer']
    if tuple(tok.method.image_shape) != tuple(image_shape):
      raise ValueError(f'the tokenizer run {config.parti.tokenizer} was trained on images of '
                       f'shape {tuple(tok.method.image_shape)}, the data has '
                       f'{tuple(image_shape)}; train a tokenizer on the same dataset')
    self.config = config
    self.image_shape = tuple(image_shape)
    self.tokenizer = tok.method
    self._tokenizer_state = tok.state.replace(opt_state=())
    if hasattr(tok.state, 'd_params'):  # a VQGAN tokenizer: its discriminator is not needed
      self._tokenizer_state = self._tokenizer_state.replace(d_params={}, d_opt_state=())
    self.code_shape = tuple(self.tokenizer.code_shape)
    self.num_codes = int(self.tokenizer.num_codes)
    self.num_positions = self.code_shape[0] * self.code_shape[1]
    m, t, p = config.model, config.text, config.parti
    self.max_tokens = int(t.max_tokens)
    kw = dict(vocab_size=int(t.vocab_size), max_tokens=self.max_tokens,
              num_codes=self.num_codes, num_positions=self.num_positions,
              text_width=int(t.width), text_depth=int(t.depth), width=int(m.width),
              depth=int(m.depth), num_heads=int(m.num_heads),
              dtype=jnp.dtype(config.train.compute_dtype))
    self.model = PartiTransformer(**kw, dropout=float(m.dropout))
    self.decoder = PartiTransformer(**kw, decode=True)  # sampling: KV cache, no dropout
    self.p_uncond = float(p.p_uncond)
    self.ema_decay = float(config.train.ema_decay)
    self.ema_start = int(config.train.ema_start)
    self.tx = common.make_optimizer(config.optim)

  @staticmethod
  def frozen_runs(config) -> dict:
    """{name: workdir} of the trained runs this method builds on (read by the training
    layer and passed to the constructor as `frozen`)."""
    return {'tokenizer': config.parti.tokenizer}

  @property
  def bos(self) -> int:
    return self.num_codes  # the decoder's start id (its embedding table has num_codes + 1)

  def create_state(self, rng, example_batch=None) -> PartiState:
    del example_batch
    init_rng, state_rng = jax.random.split(rng)
    tokens = jnp.zeros((1, self.max_tokens), jnp.int32)
    inputs = jnp.zeros((1, self.num_positions), jnp.int32)
    params = self.model.init(init_rng, tokens, inputs)['params']
    tokenizer = jax.tree.map(jnp.asarray, self._tokenizer_state)
    return PartiState(step=jnp.zeros((), jnp.int32), params=params,
                      ema_params=jax.tree.map(jnp.copy, params),
                      opt_state=self.tx.init(params), rng=state_rng, tokenizer=tokenizer)

  def image_codes(self, state: PartiState, images):
    """The tokenizer's codes [B, N] (raster order) of images in [-1, 1]."""
    codes = self.tokenizer.encode_codes(state.tokenizer, images.astype(jnp.float32))
    return codes.reshape(codes.shape[0], -1)

  ENCODE_CHUNK = 256  # images per compiled call of derived_fields

  def derived_fields(self, state: PartiState, arrays: dict) -> dict:
    """{'codes': int32 [N, positions]}: the tokenizer's codes of every image of the split
    (arrays['image'] uint8), computed once; train_step reads them from the batch."""
    codes = common.map_images_in_chunks(self.image_codes, state, arrays['image'],
                                        self.ENCODE_CHUNK, to_model_range)
    return {'codes': codes.astype(np.int32)}

  def teacher_inputs(self, codes):
    """BOS, c_1 .. c_{N-1}: position i predicts c_{i+1} from the codes before it."""
    bos = jnp.full((codes.shape[0], 1), self.bos, codes.dtype)
    return jnp.concatenate([bos, codes[:, :-1]], axis=1)

  def train_step(self, state: PartiState, batch):
    rng = jax.random.fold_in(state.rng, state.step)
    drop_rng, dropout_rng = jax.random.split(rng)
    if 'codes' in batch:  # derived_fields: computed once by the same tokenizer
      codes = batch['codes'].astype(jnp.int32)
    else:
      codes = jax.lax.stop_gradient(self.image_codes(state, batch['image']))
    inputs = self.teacher_inputs(codes)
    tokens = common.drop_captions(batch['tokens'], drop_rng, self.p_uncond)

    def loss_fn(params):
      logits = self.model.apply({'params': params}, tokens, inputs, train=True,
                                rngs={'dropout': dropout_rng})
      ce = optax.softmax_cross_entropy_with_integer_labels(logits, codes)
      return jnp.mean(ce), logits

    (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = self.tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    ema = common.ema_update(state.ema_params, params, state.step, self.ema_decay, self.ema_start)
    metrics = {'loss': loss, 'bits_per_code': loss / jnp.log(2.0),
               'code_accuracy': jnp.mean(jnp.argmax(logits, -1) == codes),
               'grad_norm': common.global_norm(grads)}
    return state.replace(step=state.step + 1, params=params, ema_params=ema,
                         opt_state=opt_state), metrics

  # -- sampling ------------------------------------------------------------------------------

  def sample_settings(self, guidance=None, temperature=None, top_k=None, **unknown):
    """(guidance, temperature, top_k) with config defaults; ValueError for bad values or
    settings this method does not have (e.g. a diffusion sampler)."""
    if unknown:
      raise ValueError(f'{", ".join(sorted(unknown))} do not apply to an autoregressive '
                       'text-to-image run; it takes guidance, temperature and top_k')
    p = self.config.parti
    guidance = float(p.guidance if guidance is None else guidance)
    temperature = float(p.temperature if temperature is None else temperature)
    top_k = int(p.top_k if top_k is None else top_k)
    if guidance < 0:
      raise ValueError(f'guidance must be >= 0 (got {guidance})')
    if temperature < 0:
      raise ValueError(f'temperature must be >= 0 (0: greedy; got {temperature})')
    if not 0 <= top_k <= self.num_codes:
      raise ValueError(f'top_k must be in [0, {self.num_codes}] (0: all codes; got {top_k})')
    return guidance, temperature, top_k

  def sample_codes(self, params, tokens, rng, guidance: float, temperature: float,
                   top_k: int):
    """Codes [B, N] drawn left to right with the KV cache (see the module docstring)."""
    b = tokens.shape[0]
    guided = guidance != 0
    text = jnp.concatenate([tokens, jnp.zeros_like(tokens)]) if guided else tokens
    dec = self.decoder
    context, mask, _ = dec.apply({'params': params}, text, method=dec.encode_text)
    dummy = jnp.zeros((text.shape[0], self.num_positions), jnp.int32)
    shapes = jax.eval_shape(lambda: dec.init(jax.random.key(0), text, dummy))['cache']
    cache = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

    def step(carry, key):
      cache, prev = carry
      inputs = jnp.concatenate([prev, prev]) if guided else prev
      logits, mutated = dec.apply({'params': params, 'cache': cache}, inputs[:, None],
                                  context, mask, method=dec.decode_codes, mutable=['cache'])
      logits = logits[:, 0]
      if guided:
        logits = guided_logits(*jnp.split(logits, 2), guidance)
      if temperature == 0:
        code = jnp.argmax(logits, -1).astype(jnp.int32)
      else:
        code = jax.random.categorical(key, filter_logits(logits, temperature, top_k))
        code = code.astype(jnp.int32)
      return (mutated['cache'], code), code

    start = jnp.full((b,), self.bos, jnp.int32)
    _, codes = jax.lax.scan(step, (cache, start), jax.random.split(rng, self.num_positions))
    return codes.T

  def generate(self, state: PartiState, rng, num: int, label=None, use_ema: bool = True,
               guidance: float | None = None, temperature: float | None = None,
               top_k: int | None = None):
    """num images in [-1, 1] for the captions `label` (tokens [num, L] or one [L]).
    Keyword arguments other than label are static: jit with them bound."""
    guidance, temperature, top_k = self.sample_settings(guidance, temperature, top_k)
    tokens = common.caption_tokens(label, num, self.max_tokens)
    params = state.ema_params if use_ema else state.params
    codes = self.sample_codes(params, tokens, rng, guidance, temperature, top_k)
    return self.tokenizer.decode_codes(state.tokenizer, codes.reshape(num, *self.code_shape))

  def decode(self, state: PartiState, z, **kwargs):
    """Images of codes z [N, h*w] (or [N, h, w]): the tokenizer's decoder."""
    del kwargs
    codes = jnp.asarray(z).reshape(z.shape[0], *self.code_shape).astype(jnp.int32)
    return self.tokenizer.decode_codes(state.tokenizer, codes)

  def log_likelihood(self, state: PartiState, batch, use_ema: bool = True):
    """log p(codes | caption) [B] in nats (the codes of batch['image'])."""
    params = state.ema_params if use_ema else state.params
    codes = self.image_codes(state, batch['image'])
    logits = self.model.apply({'params': params}, batch['tokens'].astype(jnp.int32),
                              self.teacher_inputs(codes))
    return -optax.softmax_cross_entropy_with_integer_labels(logits, codes).sum(-1)

  @property
  def conditioned(self) -> bool:
    return True

  @staticmethod
  def default_sections() -> dict:
    return {
        'model': ml_collections.ConfigDict(dict(width=128, depth=4, num_heads=4, dropout=0.1)),
        'text': common.text_encoder_section(),
        'parti': ml_collections.ConfigDict(dict(
            tokenizer='runs/vqvae_digits',  # workdir of a trained `vqvae` run, same dataset
            p_uncond=0.1,      # caption dropout (classifier-free guidance)
            guidance=2.0,      # w at sampling
            temperature=1.0,   # 0: greedy
            top_k=0,           # 0: sample from all codes
        )),
        'optim': common.optimizer_config('adam', learning_rate=3e-4),
    }

  RESUMABLE_FIELDS = ('parti.guidance', 'parti.temperature', 'parti.top_k')
  LATER_DEFAULTS = {}

  @staticmethod
  def validate_config(config, check) -> None:
    p = config.parti
    common.check_transformer_section(check, 'model', config.model)
    common.check_transformer_section(check, 'text', config.text,
                                     ('vocab_size', 'max_tokens', 'width', 'depth', 'num_heads'))
    check.need(isinstance(p.tokenizer, str) and bool(p.tokenizer),
               'parti.tokenizer must name the workdir of a trained vqvae run, e.g. '
               '--config.parti.tokenizer=runs/vqvae_digits (genvision train '
               '--config=experiments/tti/vqvae_digits.py --workdir=runs/vqvae_digits)')
    check.need(0.0 <= p.p_uncond < 1.0,
               f'parti.p_uncond must be in [0, 1) (got {p.p_uncond!r})')
    check.need(p.guidance >= 0, f'parti.guidance must be >= 0 (got {p.guidance!r})')
    check.need(p.temperature >= 0, f'parti.temperature must be >= 0 (got {p.temperature!r})')
    check.need(isinstance(p.top_k, int) and p.top_k >= 0,
               f'parti.top_k must be an int >= 0 (got {p.top_k!r})')
    check.optimizer('optim', config.optim)
