"""Text-to-image diffusion (Imagen-style, Saharia et al. 2022, small): the DDPM/DDIM of
methods/diffusion.py with a U-Net that cross-attends to a text encoder's output and adds its
pooled embedding to the time embedding; the text encoder (models/text.py) trains with it.

The caption's word ids ride where a class label rides in the class-conditional model: batches
carry 'tokens' [B, L] (0 = padding); each caption is replaced by the empty (all-padding) caption
with probability `diffusion.p_uncond`, so one network learns p(x | text) and p(x), and
classifier-free guidance with scale w samples from (1 + w) out(x_t, text) - w out(x_t, empty).
`generate(state, rng, num, label=TOKENS [num, L])` — the tokens are required (a prompt is
tokenized with the run's vocabulary, data_info.json, by the caller).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from genvision_jax import models
from genvision_jax.methods import common, diffusion
from genvision_jax.models.text import TransformerTextEncoder


class TextUNet(nn.Module):
  """A text encoder and the U-Net with cross-attention: `(x, t, tokens, train)`."""
  unet: nn.Module
  text: nn.Module

  def __call__(self, x, t, tokens, train: bool = False):
    context, mask, pooled = self.text(tokens, train)
    return self.unet(x, t, None, train, context=context, context_mask=mask, pooled=pooled)


class TextDiffusionMethod(diffusion.DiffusionMethod):
  """See the module docstring; config sections `model`, `diffusion`, `optim` as diffusion's,
  plus `text` (the encoder and the vocabulary size / caption length of the data)."""

  conditioning_key = 'tokens'  # the batch entry the loop passes as `label` to generate

  def __init__(self, config, image_shape, num_classes=0):
    super().__init__(config, image_shape, 0)
    m, t = config.model, config.text
    self.max_tokens = int(t.max_tokens)
    dtype = jnp.dtype(config.train.compute_dtype)
    unet = models.DENOISERS[m.architecture](
        channels=image_shape[-1], base=m.base, channel_mults=tuple(m.channel_mults),
        num_res_blocks=m.num_res_blocks, attention_resolutions=tuple(m.attention_resolutions),
        dropout=m.dropout, num_heads=m.num_heads, num_classes=0, dtype=dtype)
    text = TransformerTextEncoder(int(t.vocab_size), self.max_tokens, int(t.width),
                                  int(t.depth), int(t.num_heads), float(t.dropout), dtype)
    self.model = TextUNet(unet, text)

  def null_tokens(self, tokens):
    return jnp.zeros_like(tokens)

  def create_state(self, rng, example_batch=None) -> diffusion.DiffusionState:
    del example_batch
    init_rng, state_rng = jax.random.split(rng)
    x = jnp.zeros((1, *self.image_shape), jnp.float32)
    t = jnp.zeros((1,), jnp.int32)
    tokens = jnp.zeros((1, self.max_tokens), jnp.int32)
    params = self.model.init(init_rng, x, t, tokens)['params']
    return diffusion.DiffusionState(step=jnp.zeros((), jnp.int32), params=params,
                                    opt_state=self.tx.init(params),
                                    ema_params=jax.tree.map(jnp.copy, params), rng=state_rng)

  def train_labels(self, batch, rng):
    """The batch's captions, each emptied with probability p_uncond."""
    return common.drop_captions(batch['tokens'], rng, self.p_uncond)

  def network_output(self, params, xt, t, labels, guidance: float):
    if guidance == 0:
      return self.model.apply({'params': params}, xt, t, labels)
    out = self.model.apply({'params': params}, jnp.concatenate([xt, xt]),
                           jnp.concatenate([t, t]),
                           jnp.concatenate([labels, self.null_tokens(labels)]))
    cond, uncond = jnp.split(out, 2)
    return diffusion.diffusion_lib.guided_output(cond, uncond, guidance)

  def _labels(self, label, num: int, rng):
    del rng
    return common.caption_tokens(label, num, self.max_tokens)

  @property
  def conditioned(self) -> bool:
    return True  # on captions: classifier-free guidance drops them

  def decode(self, state, z, labels=None, use_ema: bool = True, steps=None, guidance=None):
    if labels is None:
      raise ValueError('a text-to-image model decodes with tokens [N, max_tokens]')
    _, timesteps, _, guidance = self.sample_settings('ddim', steps, 0.0, guidance)
    x_T = z.reshape(z.shape[0], *self.image_shape).astype(jnp.float32)
    params = state.ema_params if use_ema else state.params
    return self.reverse_chain(params, x_T, None, jnp.asarray(labels, jnp.int32), 'ddim',
                              timesteps, 0.0, guidance)

  def bits_per_dim(self, state, batch, rng, use_ema: bool = True):
    params = state.ema_params if use_ema else state.params
    x0 = batch['image'].astype(jnp.float32)
    tokens = jnp.asarray(batch['tokens'], jnp.int32)
    denoise = lambda xt, t: self.denoise(params, xt, t, tokens)[0]
    return self.process.bits_per_dim(denoise, x0, rng, self.variance)

  @staticmethod
  def default_sections() -> dict:
    sections = diffusion.DiffusionMethod.default_sections()  # the U-Net sized for 28 px
    sections['diffusion'].guidance = 2.0
    sections['diffusion'].p_uncond = 0.1
    sections['text'] = common.text_encoder_section()
    return sections

  RESUMABLE_FIELDS = diffusion.DiffusionMethod.RESUMABLE_FIELDS
  LATER_DEFAULTS = diffusion.DiffusionMethod.LATER_DEFAULTS

  @staticmethod
  def validate_config(config, check) -> None:
    diffusion.DiffusionMethod.validate_config(config, check, conditioned=True)
    common.check_transformer_section(check, 'text', config.text,
                                     ('vocab_size', 'max_tokens', 'width', 'depth', 'num_heads'))
    check.need(config.diffusion.process == 'ddpm', f'text-to-image diffusion is built on the discrete ddpm '
               f'process (got diffusion.process={config.diffusion.process!r}); use '
               '--config.diffusion.process=ddpm')
    check.need(not config.model.conditional, 'model.conditional is for class labels; a '
               'text-to-image model is conditioned on its captions')
