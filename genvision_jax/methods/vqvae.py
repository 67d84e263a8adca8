"""The VQ-VAE image tokenizer (van den Oord et al. 2017) of the autoregressive text-to-image
model: trained to reconstruct, its codes are the "image tokens" the Parti-style transformer
predicts.

Loss per image: reconstruction (`vq.reconstruction`: 'mse' or 'l1', mean over pixels) +
codebook loss ||sg(z_e) - e||^2 (unless the codebook is an EMA) + `vq.beta` * commitment
||z_e - sg(e)||^2 (losses.py). With `vq.codebook = 'ema'` the codebook follows exponential
moving averages of the encoder outputs assigned to each code (Razavi et al. 2019):
N_k <- d N_k + (1 - d) n_k, m_k <- d m_k + (1 - d) sum_{z -> k} z, e_k = m_k / N~_k with
Laplace-smoothed N~ (`ema_codebook_update`). With `vq.init = 'data'` the codebook starts as K
distinct encoder outputs of the first batch (what k-means++ seeding and Jukebox do): a codebook
drawn far from the encoder's outputs loses all but a handful of codes in the first steps.
Dead codes (EMA codebook: fewer than `vq.dead_threshold` assignments per step on average since
the last check) are restarted every `vq.restart_every` steps at distinct random encoder outputs
of the batch. Logged: codebook usage (fraction of codes used in the batch), perplexity,
the dead-code count, reconstruction and VQ losses.

VQGAN option (Esser et al. 2021; `vq.adversarial_weight > 0`): a PatchGAN (models/patchgan.py,
LayerNorm) learns to tell images from reconstructions with `vq.gan_loss` (hinge, as VQGAN),
and the decoder's loss gains lambda * L_G from step `vq.adversarial_start`, with the adaptive
lambda = ||grad_W L_rec|| / (||grad_W L_G|| + 1e-4) at the decoder's last layer W (clipped to
[0, 1e4]) times the weight, or the weight alone without `vq.adaptive_weight`. VQGAN's LPIPS
perceptual term needs pretrained VGG weights, which this package never downloads: it is left
out. The state is then a `VQGANState` (the discriminator and its optimizer besides).
"""

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from genvision_jax import losses
from genvision_jax.methods import common
from genvision_jax.models import patchgan
from genvision_jax.models import vqvae as vq_models

CODEBOOKS = ('ema', 'loss')
RECONSTRUCTIONS = ('mse', 'l1')
INITS = ('data', 'uniform')


@flax.struct.dataclass
class VQState:
  step: jax.Array
  params: dict
  vq: dict           # EMA codebook and statistics ({} with a learned codebook)
  opt_state: optax.OptState
  rng: jax.Array


@flax.struct.dataclass
class VQGANState(VQState):
  """The VQGAN option's state: a VQ-VAE's plus the PatchGAN discriminator and its optimizer."""
  d_params: dict = None
  d_opt_state: optax.OptState = None


def ema_codebook_update(stats: dict, z_e, one_hot, decay: float, eps: float = 1e-5) -> dict:
  """One EMA step of the codebook statistics from encoder outputs z_e [..., D] and their
  assignments one_hot [..., K]; returns the new {'cluster_size', 'embed_sum', 'codebook'}."""
  z = z_e.reshape(-1, z_e.shape[-1])
  a = one_hot.reshape(-1, one_hot.shape[-1])
  size = decay * stats['cluster_size'] + (1 - decay) * a.sum(0)
  embed_sum = decay * stats['embed_sum'] + (1 - decay) * (a.T @ z)
  n = size.sum()
  smoothed = (size + eps) / (n + size.shape[0] * eps) * n
  return {'cluster_size': size, 'embed_sum': embed_sum, 'codebook': embed_sum / smoothed[:, None]}


def distinct_rows(rng, z_e, num: int):
  """`num` encoder outputs [num, D] drawn without replacement from z_e [..., D] (with
  replacement only if there are fewer positions than `num`)."""
  z = z_e.reshape(-1, z_e.shape[-1])
  index = jax.random.choice(rng, z.shape[0], (num,), replace=z.shape[0] < num)
  return z[index]


def restart_dead_codes(stats: dict, z_e, rng, threshold: float,
                       steps: int = 1) -> tuple[dict, jax.Array]:
  """Codes with fewer than `threshold` assignments per step over the last `steps` steps
  (`stats['window_usage']`) get a distinct random encoder output of the batch as their vector
  (and EMA usage 1); the window restarts at zero. Returns (stats, number of dead codes)."""
  dead = stats['window_usage'] < threshold * steps
  pick = distinct_rows(rng, z_e, dead.shape[0])
  codebook = jnp.where(dead[:, None], pick, stats['codebook'])
  size = jnp.where(dead, 1.0, stats['cluster_size'])
  return {'cluster_size': size, 'embed_sum': codebook * size[:, None], 'codebook': codebook,
          'window_usage': jnp.zeros_like(stats['window_usage'])}, dead.sum()


class VQVAEMethod:
  """create_state / train_step / translate (reconstruct) / encode_codes / decode_codes."""

  minibatches_per_step = None

  def __init__(self, config, image_shape, num_classes=0):
    del num_classes
    m, v = config.model, config.vq
    self.config = config
    self.image_shape = tuple(image_shape)
    self.ema = v.codebook == 'ema'
    self.beta, self.decay = float(v.beta), float(v.decay)
    self.reconstruction = v.reconstruction
    self.restart_every, self.dead_threshold = int(v.restart_every), float(v.dead_threshold)
    self.data_init = v.init == 'data'
    self.model = vq_models.VQVAE(channels=image_shape[-1], num_codes=m.num_codes,
                                 code_dim=m.code_dim, width=m.width, downsamples=m.downsamples,
                                 ema=self.ema, dtype=jnp.dtype(config.train.compute_dtype))
    self.tx = common.make_optimizer(config.optim)
    f = 2**int(m.downsamples)
    self.code_shape = (image_shape[0] // f, image_shape[1] // f)
    self.num_codes = int(m.num_codes)
    # The VQGAN option (Esser et al. 2021): a PatchGAN on reconstructions vs images, its
    # generator term added to the decoder's loss with the adaptive weight.
    self.adversarial_weight = float(v.adversarial_weight)
    self.adversarial_start = int(v.adversarial_start)
    self.adaptive_weight = bool(v.adaptive_weight)
    if self.adversarial_weight > 0:
      self.discriminator = patchgan.PatchDiscriminator(
          image_size=image_shape[0], width=m.d_width, norm='layer', layers=m.d_layers,
          dtype=jnp.dtype(config.train.compute_dtype))
      self.objective = losses.GAN_OBJECTIVES[v.gan_loss]
      self.d_tx = common.make_optimizer(config.d_optim)

  def create_state(self, rng, example_batch=None) -> VQState:
    del example_batch
    init_rng, state_rng = jax.random.split(rng)
    variables = self.model.init(init_rng, jnp.zeros((1, *self.image_shape), jnp.float32))
    params = variables['params']
    vq = dict(variables.get('vq', {}).get('quantizer', {}))
    fields = dict(step=jnp.zeros((), jnp.int32), params=params, vq=vq,
                  opt_state=self.tx.init(params), rng=state_rng)
    if self.adversarial_weight <= 0:
      return VQState(**fields)
    d_params = self.discriminator.init(jax.random.fold_in(init_rng, 1),
                                       jnp.zeros((1, *self.image_shape)), train=False)['params']
    return VQGANState(**fields, d_params=d_params, d_opt_state=self.d_tx.init(d_params))

  def _variables(self, params, vq):
    return {'params': params, **({'vq': {'quantizer': vq}} if self.ema else {})}

  def _data_init(self, state: VQState, x, rng) -> VQState:
    """The codebook as K distinct encoder outputs of this batch (EMA usage 1 each)."""
    z_e = self.model.apply(self._variables(state.params, state.vq), x,
                           method=vq_models.VQVAE.encoder_outputs)
    pick = distinct_rows(rng, z_e, self.num_codes)
    if self.ema:
      vq = {**state.vq, 'codebook': pick, 'embed_sum': pick,
            'cluster_size': jnp.ones_like(state.vq['cluster_size'])}
      return state.replace(vq=vq)
    params = {**state.params, 'quantizer': {**state.params['quantizer'], 'codebook': pick}}
    return state.replace(params=params)

  def train_step(self, state: VQState, batch):
    rng = jax.random.fold_in(state.rng, state.step)
    x = batch['image'].astype(jnp.float32)
    if self.data_init:
      init_rng = jax.random.fold_in(rng, 1)
      state = jax.lax.cond(state.step == 0, lambda s: self._data_init(s, x, init_rng),
                           lambda s: s, state)

    gan = self.adversarial_weight > 0
    on = (state.step >= self.adversarial_start).astype(jnp.float32) if gan else 0.0
    lam = self._adaptive_lambda(state, x) if gan else jnp.zeros(())

    def loss_fn(params):
      out = self.model.apply(self._variables(params, state.vq), x)
      recon = self._reconstruction_error(out, x)
      commit = losses.vq_commitment_loss(out['z_e'], out['e'])
      codebook = (jnp.zeros_like(commit) if self.ema
                  else losses.vq_codebook_loss(out['z_e'], out['e']))
      loss = recon + codebook + self.beta * commit
      adversarial = jnp.zeros(())
      if gan:
        adversarial = self._generator_term(state.d_params, out['reconstruction'])
        loss = loss + on * lam * adversarial
      return jnp.mean(loss), (out, recon, commit, codebook, adversarial)

    (loss, (out, recon, commit, codebook, adversarial)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(state.params)
    updates, opt_state = self.tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    vq, dead = state.vq, jnp.zeros((), jnp.int32)
    if self.ema:
      z_e = jax.lax.stop_gradient(out['z_e'])
      counts = out['one_hot'].reshape(-1, self.num_codes).sum(0)
      vq = {**ema_codebook_update(vq, z_e, out['one_hot'], self.decay),
            'window_usage': vq['window_usage'] + counts}
      if self.restart_every:
        restarted, n_dead = restart_dead_codes(vq, z_e, rng, self.dead_threshold,
                                               self.restart_every)
        due = (state.step + 1) % self.restart_every == 0
        vq = jax.tree.map(lambda a, b: jnp.where(due, a, b), restarted, vq)
        dead = jnp.where(due, n_dead, 0)
    usage = jnp.mean(jnp.max(out['one_hot'].reshape(-1, self.num_codes), axis=0))
    metrics = {'loss': loss, 'reconstruction': jnp.mean(recon), 'commitment': jnp.mean(commit),
               'codebook_loss': jnp.mean(codebook),
               'perplexity': losses.codebook_perplexity(out['one_hot']),
               'codebook_usage': usage, 'dead_codes_restarted': dead,
               'grad_norm': common.global_norm(grads)}
    if gan:
      fake = jax.lax.stop_gradient(out['reconstruction'])
      state, d_metrics = self._d_update(state, x, fake, on)
      metrics.update(d_metrics, g_adversarial=adversarial, adaptive_weight=lam)
    return state.replace(step=state.step + 1, params=params, vq=vq, opt_state=opt_state,
                         rng=state.rng), metrics

  # -- the VQGAN option ----------------------------------------------------------------------

  def _reconstruction_error(self, out, x):
    err = out['reconstruction'] - x
    return jnp.mean(err**2 if self.reconstruction == 'mse' else jnp.abs(err), axis=(1, 2, 3))

  def _generator_term(self, d_params, images):
    logits = self.discriminator.apply({'params': d_params}, images, train=True)
    return jnp.mean(self.objective(None, logits).g)

  @staticmethod
  def last_decoder_kernel(tree):
    """The kernel of the decoder's output convolution (its last Conv) in a params-like tree."""
    dec = tree['decoder']
    last = max((k for k in dec if k.startswith('Conv_')), key=lambda k: int(k.split('_')[1]))
    return dec[last]['kernel']

  def _adaptive_lambda(self, state: VQGANState, x):
    """Esser et al.'s weight of the adversarial term: ||grad_W L_rec|| / (||grad_W L_G|| +
    1e-4) at the decoder's last layer W, clipped to [0, 1e4], times vq.adversarial_weight; a
    constant vq.adversarial_weight without vq.adaptive_weight. No gradient flows through it."""
    if not self.adaptive_weight:
      return jnp.asarray(self.adversarial_weight, jnp.float32)

    def term(params, which):
      out = self.model.apply(self._variables(params, state.vq), x)
      if which == 'rec':
        return jnp.mean(self._reconstruction_error(out, x))
      return self._generator_term(state.d_params, out['reconstruction'])

    g_rec = self.last_decoder_kernel(jax.grad(term)(state.params, 'rec'))
    g_gan = self.last_decoder_kernel(jax.grad(term)(state.params, 'gan'))
    lam = jnp.linalg.norm(g_rec) / (jnp.linalg.norm(g_gan) + 1e-4)
    return jax.lax.stop_gradient(jnp.clip(lam, 0.0, 1e4) * self.adversarial_weight)

  def _d_update(self, state: VQGANState, x, fake, on):
    """One discriminator step on images vs reconstructions (zero loss before
    vq.adversarial_start, so Adam leaves D where it was)."""
    def loss_fn(d_params):
      real = self.discriminator.apply({'params': d_params}, x, train=True)
      fake_logits = self.discriminator.apply({'params': d_params}, fake, train=True)
      terms = self.objective(real, fake_logits)
      return on * (jnp.mean(terms.d_real) + jnp.mean(terms.d_fake)), (real, fake_logits)

    (d_loss, (real, fake_logits)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state.d_params)
    updates, d_opt_state = self.d_tx.update(grads, state.d_opt_state, state.d_params)
    state = state.replace(d_params=optax.apply_updates(state.d_params, updates),
                          d_opt_state=d_opt_state)
    return state, {'d_loss': d_loss, 'd_real_logit': jnp.mean(real),
                   'd_fake_logit': jnp.mean(fake_logits)}

  # -- the maps ------------------------------------------------------------------------------

  def encode_codes(self, state: VQState, images):
    """Codes [B, h, w] int32 of images in [-1, 1]."""
    return self.model.apply(self._variables(state.params, state.vq), images,
                            method=vq_models.VQVAE.encode)

  def decode_codes(self, state: VQState, codes):
    return self.model.apply(self._variables(state.params, state.vq), codes,
                            method=vq_models.VQVAE.decode_codes)

  def reconstruct(self, state: VQState, images):
    return self.decode_codes(state, self.encode_codes(state, images))

  def generate(self, state, rng, num: int, **kwargs):
    """Samples of the codebook's uniform prior (what a tokenizer alone can generate): a grid
    of random codes decoded; the transformer of the Parti method is the real prior."""
    del kwargs
    codes = jax.random.randint(rng, (num, *self.code_shape), 0, self.num_codes)
    return self.decode_codes(state, codes)

  def decode(self, state, z, **kwargs):
    del kwargs
    return self.decode_codes(state, z.reshape(z.shape[0], *self.code_shape).astype(jnp.int32))

  @staticmethod
  def default_sections() -> dict:
    return {
        'model': ml_collections.ConfigDict(dict(
            num_codes=256,   # K
            code_dim=32,     # D
            width=64,
            downsamples=2,   # 32 x 64 canvases -> 8 x 16 = 128 codes
            d_width=32,      # VQGAN option: PatchGAN width and stride-2 layers
            d_layers=2,
        )),
        'vq': ml_collections.ConfigDict(dict(
            codebook='ema',         # 'ema' (Razavi et al.) or 'loss' (the codebook loss)
            decay=0.99,             # EMA decay
            beta=0.25,              # commitment weight
            reconstruction='mse',   # 'mse' or 'l1'
            restart_every=100,      # steps between dead-code restarts (0: never; EMA only)
            dead_threshold=1.0,     # mean assignments per step (since the last restart
                                    # check) below which a code is dead
            init='data',            # 'data': K distinct encoder outputs of the first batch;
                                    # 'uniform': U(-1/K, 1/K) (van den Oord et al.)
            adversarial_weight=0.0,  # > 0: VQGAN (PatchGAN + adversarial decoder loss)
            adversarial_start=0,     # step at which the adversarial terms switch on
            adaptive_weight=True,    # Esser et al.'s gradient-norm ratio times the weight
            gan_loss='hinge',        # the GAN objective: see losses.GAN_OBJECTIVES
        )),
        'optim': common.optimizer_config('adam', learning_rate=3e-4),
        'd_optim': common.optimizer_config('adam', learning_rate=3e-4, b1=0.5, b2=0.9),
    }

  RESUMABLE_FIELDS = ()
  # The VQGAN option came after the first tokenizer runs: those are plain VQ-VAEs.
  LATER_DEFAULTS = {
      'model': {'d_width': 32, 'd_layers': 2},
      'vq': {'adversarial_weight': 0.0, 'adversarial_start': 0, 'adaptive_weight': True,
             'gan_loss': 'hinge'},
      'd_optim': dict(common.optimizer_config('adam', learning_rate=3e-4, b1=0.5, b2=0.9)),
  }

  @staticmethod
  def validate_config(config, check) -> None:
    m, v = config.model, config.vq
    for key in ('num_codes', 'code_dim', 'width', 'downsamples'):
      check.positive_int(f'model.{key}', m[key])
    size = config.data.image_size
    if isinstance(m.downsamples, int) and isinstance(size, int) and m.downsamples > 0:
      check.need(size % 2**m.downsamples == 0, f'model.downsamples={m.downsamples} halves '
                 f'data.image_size={size} that many times, which does not divide it')
    check.need(v.codebook in CODEBOOKS, f'vq.codebook must be one of {CODEBOOKS} '
               f'(got {v.codebook!r})')
    check.need(v.reconstruction in RECONSTRUCTIONS, f'vq.reconstruction must be one of '
               f'{RECONSTRUCTIONS} (got {v.reconstruction!r})')
    check.need(0.0 < v.decay < 1.0, f'vq.decay must be in (0, 1) (got {v.decay!r})')
    check.need(v.beta >= 0, f'vq.beta must be >= 0 (got {v.beta!r})')
    check.need(isinstance(v.restart_every, int) and v.restart_every >= 0,
               f'vq.restart_every must be >= 0 (got {v.restart_every!r})')
    check.need(v.dead_threshold >= 0, f'vq.dead_threshold must be >= 0 '
               f'(got {v.dead_threshold!r})')
    check.need(v.init in INITS, f'vq.init must be one of {INITS} (got {v.init!r})')
    check.need(v.adversarial_weight >= 0, f'vq.adversarial_weight must be >= 0 '
               f'(got {v.adversarial_weight!r})')
    check.need(isinstance(v.adversarial_start, int) and v.adversarial_start >= 0,
               f'vq.adversarial_start must be an int >= 0 (got {v.adversarial_start!r})')
    objectives = sorted(k for k in losses.GAN_OBJECTIVES if k != 'began')
    check.need(v.gan_loss in objectives, f'vq.gan_loss must be one of {objectives} '
               f'(got {v.gan_loss!r})')
    for key in ('d_width', 'd_layers'):
      check.positive_int(f'model.{key}', m[key])
    check.optimizer('optim', config.optim)
    check.optimizer('d_optim', config.d_optim)
