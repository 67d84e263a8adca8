"""Pieces shared by the methods: optimizers from configs, EMA, norms, config checks."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

OPTIMIZERS = ('adam', 'adamw', 'rmsprop', 'sgd')


def optimizer_config(name='adam', learning_rate=1e-3, b1=0.9,
                     b2=0.999) -> ml_collections.ConfigDict:
  """An optimizer block (see make_optimizer); `configs.optimizer` is this."""
  return ml_collections.ConfigDict(dict(
      name=name, learning_rate=learning_rate, b1=b1, b2=b2, weight_decay=0.0, grad_clip=0.0,
      warmup_steps=0))


def make_optimizer(cfg) -> optax.GradientTransformation:
  """An optax optimizer from a config block with fields name, learning_rate, b1, b2,
  weight_decay, grad_clip (0 = none) and warmup_steps (linear warm-up from 0)."""
  lr = cfg.learning_rate
  if cfg.get('warmup_steps', 0):
    lr = optax.linear_schedule(0.0, cfg.learning_rate, cfg.warmup_steps)
  if cfg.name == 'adam':
    opt = optax.adam(lr, b1=cfg.b1, b2=cfg.b2)
  elif cfg.name == 'adamw':
    opt = optax.adamw(lr, b1=cfg.b1, b2=cfg.b2, weight_decay=cfg.weight_decay)
  elif cfg.name == 'rmsprop':
    opt = optax.rmsprop(lr, decay=cfg.b2)
  elif cfg.name == 'sgd':
    opt = optax.sgd(lr, momentum=cfg.b1 or None)
  else:
    raise ValueError(f"unknown optimizer '{cfg.name}'; use one of {OPTIMIZERS}")
  if cfg.get('grad_clip', 0):
    opt = optax.chain(optax.clip_by_global_norm(cfg.grad_clip), opt)
  return opt


def ema_decay_at(step, decay: float, start: int = 0):
  """The decay used at `step`: 0 before `start` (the EMA copies the parameters), then
  min(decay, (1 + n) / (10 + n)) with n = step - start, so that a short run's average is not
  dominated by the initial weights (the warm-up of tf.train.ExponentialMovingAverage)."""
  n = jnp.asarray(step - start, jnp.float32)
  return jnp.where(n >= 0, jnp.minimum(decay, (1.0 + n) / (10.0 + n)), 0.0)


def ema_update(ema, params, step, decay: float, start: int = 0):
  """ema <- d * ema + (1 - d) * params with d = ema_decay_at(step, decay, start)."""
  d = ema_decay_at(step, decay, start)
  return jax.tree.map(lambda e, p: d * e + (1.0 - d) * p, ema, params)


def caption_tokens(label, num: int, max_tokens: int) -> jax.Array:
  """The captions of a text-to-image `generate`: tokens [num, max_tokens] int32 from `label`
  ([num, L] or one caption [L] for all); a clear error for None or a wrong shape."""
  if label is None:
    raise ValueError('a text-to-image model samples from captions: pass label=TOKENS '
                     '[num, max_tokens] (genvision sample --prompt="...")')
  tokens = jnp.asarray(label, jnp.int32)
  if tokens.ndim == 1:
    tokens = jnp.broadcast_to(tokens, (num, tokens.shape[0]))
  if tokens.shape != (num, max_tokens):
    raise ValueError(f'tokens of shape {tokens.shape}; expected ({num}, {max_tokens})')
  return tokens


def drop_captions(tokens, rng, p_uncond: float) -> jax.Array:
  """Captions [B, L] each replaced by the empty (all-padding) caption with probability
  p_uncond: the caption dropout of classifier-free guidance."""
  tokens = jnp.asarray(tokens, jnp.int32)
  drop = jax.random.bernoulli(rng, p_uncond, (tokens.shape[0], 1))
  return jnp.where(drop, 0, tokens)


def text_encoder_section() -> ml_collections.ConfigDict:
  """The `text` config section of the text-to-image methods (models/text.py's encoder)."""
  return ml_collections.ConfigDict(dict(
      vocab_size=25,    # words of the dataset's vocabulary (digit_scenes: 25, with <pad>)
      max_tokens=16,    # caption length in word ids (the dataset's 'tokens' length)
      width=64, depth=2, num_heads=4, dropout=0.0))


def check_transformer_section(check, name: str, section, keys=('width', 'depth',
                                                                'num_heads')) -> None:
  """Positive `keys`, heads dividing the width, dropout in [0, 1) of a transformer section."""
  for key in keys:
    check.positive_int(f'{name}.{key}', section[key])
  w, h = section.width, section.num_heads
  check.need(isinstance(w, int) and isinstance(h, int) and h > 0 and w % h == 0,
             f'{name}.num_heads={h} must divide {name}.width={w}')
  check.need(0.0 <= section.dropout < 1.0,
             f'{name}.dropout must be in [0, 1) (got {section.dropout!r})')


def global_norm(tree) -> jax.Array:
  """sqrt of the sum of squares of every leaf (optax.tree.norm; optax.global_norm is
  deprecated)."""
  return optax.tree.norm(tree)


class ConfigChecks:
  """Collects the errors of a config; `configs.validate` raises them all as one ConfigError.

  A method checks its own sections in `validate_config(config, check)` with these helpers.
  """

  def __init__(self):
    self.errors: list[str] = []

  def need(self, cond, msg: str) -> None:
    if not cond:
      self.errors.append(msg)

  def positive_int(self, path: str, value) -> None:
    self.need(isinstance(value, int) and not isinstance(value, bool) and value > 0,
              f'{path} must be a positive integer (got {value!r})')

  def optimizer(self, path: str, o) -> None:
    """An optimizer block (see make_optimizer) at `path`, e.g. 'optim.g'."""
    need = self.need
    need(o.name in OPTIMIZERS, f'{path}.name must be one of {OPTIMIZERS} (got {o.name!r})')
    need(o.learning_rate > 0, f'{path}.learning_rate must be > 0 (got {o.learning_rate!r})')
    need(0.0 <= o.b1 < 1.0, f'{path}.b1 must be in [0, 1) (got {o.b1!r})')
    need(0.0 <= o.b2 < 1.0, f'{path}.b2 must be in [0, 1) (got {o.b2!r})')
    need(o.grad_clip >= 0, f'{path}.grad_clip must be >= 0 (got {o.grad_clip!r})')
    need(o.warmup_steps >= 0, f'{path}.warmup_steps must be >= 0 (got {o.warmup_steps!r})')


def map_images_in_chunks(fn, state, images_uint8, chunk: int, to_model_range) -> np.ndarray:
  """fn(state, images in [-1, 1]) over uint8 images [N, H, W, C] in compiled chunks of one size
  (the last chunk padded with its final image), as one host array: a method's per-example
  `derived_fields` computed once (Parti's codes, latent diffusion's codes)."""
  chunk = min(chunk, len(images_uint8))
  compiled = jax.jit(fn)
  parts = []
  for start in range(0, len(images_uint8), chunk):
    part = images_uint8[start:start + chunk]
    padded = np.concatenate([part, np.repeat(part[-1:], chunk - len(part), 0)])
    parts.append(np.asarray(compiled(state, to_model_range(padded)))[:len(part)])
  return np.concatenate(parts)
