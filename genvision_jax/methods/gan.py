"""GANs trained by Algorithm 1 of Goodfellow et al. (2014).

One `train_step` runs `config.train.d_steps` discriminator updates, each on its own real
minibatch and fresh noise, then one generator update, all in one compiled function. Each
network has its own optax optimizer and its own BatchNorm statistics: D's statistics change
only in D updates and G's only in G updates. Discriminators may return one logit per image
or per patch (PatchGAN): the objectives are elementwise and reduced by the mean. The state keeps an EMA of the generator weights
and counters of the D and G updates made.
"""

import functools

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from genvision_jax import losses
from genvision_jax.methods import common
from genvision_jax import models


def began_lr_factor(count, every: int, factor: float):
  """The multiplier of BEGAN's learning rate after `count` updates: factor**(count // every).
  The paper halves the rate when M_global stalls; a fixed step staircase is its reproducible
  stand-in (carpedm20/BEGAN-tensorflow halves every `lr_update_step` steps). Adam's update is
  linear in the rate, so scaling it scales the rate."""
  return jnp.asarray(factor, jnp.float32)**(count // every).astype(jnp.float32)


def _per_example(logits):
  """[B] logits, or [B, h, w] patch logits averaged per example (PatchGAN)."""
  return logits.reshape(logits.shape[0], -1).mean(axis=-1)


@flax.struct.dataclass
class GANState:
  step: jax.Array
  g_params: dict
  d_params: dict
  g_batch_stats: dict
  d_batch_stats: dict
  g_opt_state: optax.OptState
  d_opt_state: optax.OptState
  ema_params: dict
  d_updates: jax.Array
  g_updates: jax.Array
  rng: jax.Array
  began_k: jax.Array  # BEGAN's k_t (stays 0 for other objectives)


class GANMethod:
  """create_state / train_step / generate for GANs, configured by `config.model`,
  `config.gan`, `config.optim.{g,d}` and `config.train.{d_steps,ema_decay,ema_start}`."""

  def __init__(self, config, image_shape, num_classes=0):
    m = config.model
    # Class-conditional when model.conditional: labels go into G and D.
    self.num_classes = int(num_classes) if m.get('conditional', False) else 0
    if m.get('conditional', False) and self.num_classes < 1:
      raise ValueError('model.conditional needs a labelled dataset (num_classes > 0)')
    self.config = config
    self.image_shape = tuple(image_shape)
    self.latent_dim = m.latent_dim
    self.d_input_shape = self.image_shape  # what D sees (SD-GAN: image pairs)
    self.d_steps = int(config.train.d_steps)
    self.minibatches_per_step = self.d_steps  # batch['image'] is [d_steps, B, H, W, C]
    self.ema_decay = float(config.train.ema_decay)
    self.ema_start = int(config.train.ema_start)
    self.objective = losses.GAN_OBJECTIVES[config.gan.loss]
    self.penalty = losses.GAN_PENALTIES[config.gan.penalty]
    self.penalty_weight = float(config.gan.penalty_weight)
    self.clip_value = float(config.gan.clip_value)  # WGAN weight clipping (0: off)
    self.drift_weight = 0.0  # eps_drift of E[D(x)^2] (progressive growing sets it)
    # BEGAN: the discriminator is an autoencoder and its outputs are reconstruction energies.
    self.began = config.gan.loss == 'began'
    self.began_gamma = float(config.gan.get('began_gamma', 0.5))
    self.began_lambda_k = float(config.gan.get('began_lambda_k', 0.001))
    self.began_energy = config.gan.get('began_energy', 'l1')
    # BEGAN draws z ~ Uniform[-1, 1] (the paper, and the InfoGAN-style networks); the package's
    # first, DCGAN-shaped autoencoder kept N(0, I), so that its run directories sample alike.
    self.began_arch = m.get('began_arch', 'dcgan')
    self.uniform_latents = self.began and self.began_arch != 'dcgan'
    dtype = jnp.dtype(config.train.compute_dtype)
    cond = {} if not self.num_classes else {'num_classes': self.num_classes}
    g_extra = {'norm': m.g_norm} if m.generator in ('dcgan', 'infogan') else {}
    if m.generator == 'began':
      g_extra = {'output': m.get('began_g_output', 'tanh'),
                 'init_value': float(m.get('began_g_init', 0.0))}
    self.generator = models.GENERATORS[m.generator](
        image_size=image_shape[0], channels=image_shape[-1], width=m.g_width, dtype=dtype,
        **g_extra, **cond, **({'conditioning': m.g_conditioning} if cond else {}))
    d_extra = {'layers': m.d_layers} if m.discriminator == 'patchgan' else {}
    d_class = models.DISCRIMINATORS[m.discriminator]
    if m.discriminator == 'began':
      d_class = models.BEGAN_AUTOENCODERS[self.began_arch]
      d_extra = {'hidden': m.get('began_hidden', 64)}
    self.discriminator = d_class(
        image_size=image_shape[0], width=m.d_width, norm=m.d_norm, dtype=dtype,
        spectral_norm=m.d_spectral_norm, **d_extra,
        **cond, **({'conditioning': m.d_conditioning} if cond else {}))
    self.g_tx = common.make_optimizer(config.optim.g)
    self.d_tx = common.make_optimizer(config.optim.d)
    decay_every = int(config.gan.get('began_lr_decay_steps', 0)) if self.began else 0
    if decay_every:  # BEGAN's learning-rate decay, as a fixed staircase (see began_lr_factor)
      decay = optax.scale_by_schedule(functools.partial(
          began_lr_factor, every=decay_every,
          factor=float(config.gan.get('began_lr_decay_factor', 0.5))))
      self.g_tx = optax.chain(self.g_tx, decay)
      self.d_tx = optax.chain(self.d_tx, decay)

  def create_state(self, rng, example_batch=None) -> GANState:
    del example_batch
    g_rng, d_rng, state_rng = jax.random.split(rng, 3)
    labels = jnp.zeros((1,), jnp.int32) if self.num_classes else None
    g_vars = self.generator.init(g_rng, jnp.zeros((1, self.latent_dim)), labels, train=False)
    d_vars = self.discriminator.init(d_rng, jnp.zeros((1, *self.d_input_shape)), labels,
                                     train=False)
    g_params, d_params = g_vars['params'], d_vars['params']
    return GANState(
        step=jnp.zeros((), jnp.int32),
        g_params=g_params, d_params=d_params,
        g_batch_stats=g_vars.get('batch_stats', {}), d_batch_stats=d_vars.get('batch_stats', {}),
        g_opt_state=self.g_tx.init(g_params), d_opt_state=self.d_tx.init(d_params),
        ema_params=g_params,
        d_updates=jnp.zeros((), jnp.int32), g_updates=jnp.zeros((), jnp.int32),
        rng=state_rng, began_k=jnp.zeros((), jnp.float32))

  # -- pieces --------------------------------------------------------------------------------

  def _generate_train(self, g_params, g_batch_stats, z, labels=None):
    """G in training mode; returns images and G's updated batch statistics."""
    images, mutated = self.generator.apply(
        {'params': g_params, 'batch_stats': g_batch_stats}, z, labels, train=True,
        mutable=['batch_stats'])
    return images, mutated.get('batch_stats', {})

  def _discriminate_train(self, d_params, d_batch_stats, images, labels=None):
    """D's outputs in training mode (logits; BEGAN: reconstruction energies) and its
    updated batch statistics."""
    logits, mutated = self.discriminator.apply(
        {'params': d_params, 'batch_stats': d_batch_stats}, images, labels, train=True,
        mutable=['batch_stats'])
    if self.began:
      logits = losses.reconstruction_energy(images, logits, self.began_energy)
    return logits, mutated.get('batch_stats', {})

  def _d_update(self, state: GANState, real, rng, labels=None):
    """One discriminator update on one real minibatch and fresh noise. A conditional GAN
    generates its fakes for the real batch's labels."""
    z_rng, penalty_rng = jax.random.split(rng)
    real, fake = self.d_inputs(state, real, labels, z_rng)
    labels = labels if self.num_classes else None  # D is conditioned only in a cGAN

    def loss_fn(d_params):
      real_logits, bs = self._discriminate_train(d_params, state.d_batch_stats, real, labels)
      fake_logits, bs = self._discriminate_train(d_params, bs, fake, labels)
      extra = {'k': state.began_k} if self.began else {}
      terms = self.objective(real_logits, fake_logits, **extra)
      loss = jnp.mean(terms.d_real) + jnp.mean(terms.d_fake)
      if self.drift_weight > 0:
        loss = loss + self.drift_weight * jnp.mean(losses.drift_penalty(real_logits))
      penalty = jnp.zeros(())
      if self.penalty is not None:  # validated: no BatchNorm in D, so bs plays no part
        critic = lambda x: _per_example(self._discriminate_train(d_params, bs, x, labels)[0])
        penalty = jnp.mean(self.penalty(critic, real, fake, penalty_rng))
      return loss + self.penalty_weight * penalty, (bs, terms, real_logits, fake_logits,
                                                    penalty)

    (loss, (bs, terms, real_logits, fake_logits, penalty)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(state.d_params)
    updates, opt_state = self.d_tx.update(grads, state.d_opt_state, state.d_params)
    d_params = optax.apply_updates(state.d_params, updates)
    if self.clip_value > 0:
      d_params = jax.tree.map(lambda p: jnp.clip(p, -self.clip_value, self.clip_value), d_params)
    state = state.replace(d_params=d_params, d_opt_state=opt_state, d_batch_stats=bs,
                          d_updates=state.d_updates + 1)
    metrics = {
        'd_loss': loss, 'd_loss_real': jnp.mean(terms.d_real),
        'd_loss_fake': jnp.mean(terms.d_fake),
        'd_real_logit': jnp.mean(real_logits), 'd_fake_logit': jnp.mean(fake_logits),
        'd_grad_norm': common.global_norm(grads),
    }
    if self.penalty is not None:
      metrics['d_penalty'] = penalty
    if self.drift_weight > 0:
      metrics['d_drift'] = jnp.mean(losses.drift_penalty(real_logits))
    return state, metrics

  def _g_update(self, state: GANState, batch_size: int, rng):
    """One generator update; D runs in training mode but its statistics are not kept."""
    z_rng, label_rng = jax.random.split(rng)
    labels = self.sample_labels(label_rng, batch_size)

    def loss_fn(g_params):
      fake, g_bs = self.g_inputs(g_params, state.g_batch_stats, z_rng, batch_size, labels)
      fake_logits, _ = self._discriminate_train(state.d_params, state.d_batch_stats, fake,
                                                labels)
      loss = jnp.mean(self.objective(None, fake_logits).g)
      return loss, g_bs

    (loss, g_bs), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.g_params)
    updates, opt_state = self.g_tx.update(grads, state.g_opt_state, state.g_params)
    g_params = optax.apply_updates(state.g_params, updates)
    ema = common.ema_update(state.ema_params, g_params, state.step, self.ema_decay,
                            self.ema_start)
    state = state.replace(g_params=g_params, g_opt_state=opt_state, g_batch_stats=g_bs,
                          ema_params=ema, g_updates=state.g_updates + 1)
    return state, {'g_loss': loss, 'g_grad_norm': common.global_norm(grads)}

  def _began_control(self, state: GANState, real_energy, fake_energy):
    """k_{t+1} = clip(k_t + lambda_k (gamma L(x) - L(G(z_G))), 0, 1) and M_global, as in
    Berthelot et al. (2017), eq. 4 and section 3.4.1: L(x) is the D step's mean real energy
    and L(G(z_G)) the generator step's mean fake energy (its loss), not that of the D step's
    noise."""
    k = losses.began_k_update(state.began_k, real_energy, fake_energy, self.began_gamma,
                              self.began_lambda_k)
    m_global = losses.began_convergence(real_energy, fake_energy, self.began_gamma)
    return state.replace(began_k=k), {'began_k': k, 'began_m_global': m_global}

  def latents(self, rng, num: int):
    """z [num, latent_dim]: Uniform[-1, 1] for BEGAN's paper architecture, else N(0, I)."""
    if self.uniform_latents:
      return jax.random.uniform(rng, (num, self.latent_dim), minval=-1.0, maxval=1.0)
    return jax.random.normal(rng, (num, self.latent_dim))

  def d_inputs(self, state: GANState, real, labels, rng):
    """(real, fake) inputs of a D update: the real minibatch and G(z) for fresh noise."""
    z = self.latents(rng, real.shape[0])
    labels = labels if self.num_classes else None
    fake, _ = self._generate_train(state.g_params, state.g_batch_stats, z, labels)
    return real, jax.lax.stop_gradient(fake)

  def g_inputs(self, g_params, g_batch_stats, rng, batch_size: int, labels):
    """(fake inputs of D, G's new batch statistics) for a G update."""
    z = self.latents(rng, batch_size)
    return self._generate_train(g_params, g_batch_stats, z, labels)

  # -- the step ------------------------------------------------------------------------------

  def train_step(self, state: GANState, batch):
    """batch['image']: [d_steps, B, H, W, C]. d_steps D updates, then one G update."""
    real = batch['image']
    if real.ndim != 5 or real.shape[0] != self.d_steps:
      raise ValueError(f'GAN batches are [d_steps={self.d_steps}, B, H, W, C]; got {real.shape}')
    rng = jax.random.fold_in(state.rng, state.step)
    keys = jax.random.split(rng, self.d_steps + 1)
    d_metrics = []
    labels = batch.get('label')
    for i in range(self.d_steps):  # static and small: unrolled
      state, m = self._d_update(state, real[i], keys[i],
                                None if labels is None else labels[i])
      d_metrics.append(m)
    state, g_metrics = self._g_update(state, real.shape[1], keys[-1])
    metrics = jax.tree.map(lambda *xs: jnp.mean(jnp.stack(xs)), *d_metrics)
    metrics.update(g_metrics)
    if self.began:
      state, began_metrics = self._began_control(state, metrics['d_loss_real'],
                                                 metrics['g_loss'])
      metrics.update(began_metrics)
    metrics['loss'] = metrics['d_loss'] + metrics['g_loss']
    return state.replace(step=state.step + 1), metrics

  def sample_labels(self, rng, num: int):
    """Uniform class labels [num] for a conditional GAN; None otherwise."""
    if not self.num_classes:
      return None
    return jax.random.randint(rng, (num,), 0, self.num_classes)

  def generate(self, state: GANState, rng, num: int, use_ema: bool = True, label=None):
    """num images G(z) (z from `latents`) in [-1, 1]; BatchNorm uses its running statistics.

    label: for a conditional GAN, one class for all images, or an array of num labels;
      None draws them uniformly.
    """
    z_rng, label_rng = jax.random.split(rng)
    if not self.num_classes:
      if label is not None:
        raise ValueError('this GAN is unconditional: it takes no label '
                         '(train with --config.model.conditional=True)')
      labels = None
    elif label is None:
      labels = self.sample_labels(label_rng, num)
    else:
      labels = jnp.broadcast_to(jnp.asarray(label, jnp.int32), (num,))
    z = self.latents(z_rng, num)
    return self.decode(state, z, use_ema=use_ema, labels=labels)

  def decode(self, state: GANState, z, use_ema: bool = True, labels=None):
    """G(z) in [-1, 1] for given latents [N, latent_dim] (labels [N] if conditional)."""
    params = state.ema_params if use_ema else state.g_params
    return self.generator.apply({'params': params, 'batch_stats': state.g_batch_stats}, z,
                                labels, train=False)

  # -- config (owned by the method: `configs.method_config` / `validate` / `from_dict` call
  # -- these) --------------------------------------------------------------------------------

  @staticmethod
  def default_sections() -> dict:
    """The sections this method owns, at their defaults (DCGAN, Radford et al.: the
    non-saturating loss, Adam 2e-4 / 0.5)."""
    return {
        'model': ml_collections.ConfigDict(dict(
            generator='dcgan',
            discriminator='dcgan',
            latent_dim=100,
            g_width=64,        # channels of G's last hidden layer (doubles towards z)
            d_width=64,        # channels of D's first layer (doubles per stage)
            g_norm='batch',    # 'batch' or 'none' (G's normalization; cbn conditioning needs it)
            d_norm='batch',    # 'batch', 'layer' or 'none'
            d_spectral_norm=False,        # spectral normalization of every D layer
            d_layers=2,                   # PatchGAN only: stride-2 layers (receptive field)
            conditional=False,            # class-conditional G and D (labelled data)
            g_conditioning='embedding',   # 'embedding' (concatenated to z) or 'cbn'
            d_conditioning='projection',  # 'projection' or 'concat' (one-hot planes)
            # BEGAN (gan.loss='began', experiments/gan/began_mnist.py sets the paper's):
            began_arch='dcgan',      # autoencoder D: 'infogan', 'paper' (ELU, 3x3 pairs) or
                                     # 'dcgan'-shaped (models/began.py)
            began_hidden=64,         # h: the autoencoder's embedding size
            began_g_output='tanh',   # 'paper' G's output: 'linear' (paper) or 'tanh'
            began_g_init=0.0,        # the value the 'paper' G's output starts near
        )),
        'gan': ml_collections.ConfigDict(dict(
            loss='non_saturating',  # see losses.GAN_OBJECTIVES
            penalty='none',         # none, gradient (WGAN-GP), dragan, r1; needs d_norm != batch
            penalty_weight=10.0,
            clip_value=0.0,         # WGAN weight clipping of D's parameters (0 = off)
            began_gamma=0.5,        # BEGAN: equilibrium E[L(G(z))] = gamma E[L(x)]
            began_lambda_k=0.001,   # BEGAN: gain of the k_t control
            began_energy='l1',      # BEGAN: L(v) per example, 'l1', 'mse' or 'l2' (losses)
            began_lr_decay_steps=0,     # BEGAN: halve (x factor) both lrs every this many steps
            began_lr_decay_factor=0.5,
        )),
        'optim': ml_collections.ConfigDict(dict(
            g=common.optimizer_config('adam', learning_rate=2e-4, b1=0.5, b2=0.999),
            d=common.optimizer_config('adam', learning_rate=2e-4, b1=0.5, b2=0.999),
        )),
    }


  # Fields added after the first release, with the values that reproduce older runs: a run
  # directory written before a field existed still loads.
  RESUMABLE_FIELDS = ()  # fields besides configs.RESUMABLE_FIELDS a resumed run may change
  LATER_DEFAULTS = {
      'gan': dict(penalty='none', penalty_weight=10.0, clip_value=0.0, began_gamma=0.5,
                  began_lambda_k=0.001, began_lr_decay_steps=0, began_lr_decay_factor=0.5,
                  began_energy='l1'),
      'model': dict(g_norm='batch', conditional=False, g_conditioning='embedding',
                    d_conditioning='projection', d_spectral_norm=False, d_layers=2,
                    began_arch='dcgan', began_hidden=64, began_g_output='tanh',
                    began_g_init=0.0),
  }

  @staticmethod
  def validate_config(config, check) -> None:
    """The `model`, `gan` and `optim.{g,d}` fields (check: methods.common.ConfigChecks)."""
    m, g, need = config.model, config.gan, check.need
    check.positive_int('model.latent_dim', m.latent_dim)
    check.positive_int('model.g_width', m.g_width)
    check.positive_int('model.d_width', m.d_width)
    need(m.generator in models.GENERATORS,
         f'model.generator must be one of {sorted(models.GENERATORS)} (got {m.generator!r})')
    need(m.discriminator in models.DISCRIMINATORS, 'model.discriminator must be one of '
         f'{sorted(models.DISCRIMINATORS)} (got {m.discriminator!r})')
    need(m.d_norm in models.layers.NORMS, 'model.d_norm must be one of '
         f'{models.layers.NORMS} '
         f'(got {m.d_norm!r})')
    g_norm = m.get('g_norm', 'batch')
    need(g_norm in ('batch', 'none'), f"model.g_norm must be 'batch' or 'none' (got {g_norm!r})")
    need(g_norm == 'batch' or m.generator in ('dcgan', 'infogan'), 'model.g_norm applies to '
         f"the DCGAN and InfoGAN generators only (model.generator={m.generator!r} has its own "
         'normalization)')
    need(m.generator != 'infogan' or not m.get('conditional', False),
         "model.generator='infogan' is unconditional; use model.generator='dcgan' for a cGAN")
    need(m.generator != 'infogan' or config.data.image_size % 4 == 0,
         "model.generator='infogan' starts at a quarter of the image size, so data.image_size "
         f'must be a multiple of 4 (got {config.data.image_size})')
    need(not (g_norm == 'none' and m.get('conditional', False) and m.g_conditioning == 'cbn'),
         "model.g_conditioning='cbn' is conditional BatchNorm: it needs model.g_norm='batch' "
         "(or use --config.model.g_conditioning=embedding)")
    check.positive_int('model.d_layers', m.d_layers)
    need(m.discriminator != 'patchgan' or not m.get('conditional', False),
         'model.discriminator=patchgan is unconditional; drop model.conditional')
    size = config.data.image_size
    if m.discriminator == 'patchgan' and isinstance(m.d_layers, int) and m.d_layers > 0:
      need(size % 2**m.d_layers == 0, f'model.d_layers={m.d_layers} halves '
           f'data.image_size={size} too often; use fewer layers')
    if m.get('conditional', False):
      need(m.g_conditioning in models.dcgan.G_CONDITIONING, 'model.g_conditioning must be one '
           f'of {models.dcgan.G_CONDITIONING} (got {m.g_conditioning!r})')
      need(m.d_conditioning in models.dcgan.D_CONDITIONING, 'model.d_conditioning must be one '
           f'of {models.dcgan.D_CONDITIONING} (got {m.d_conditioning!r})')
    need(g.loss in losses.GAN_OBJECTIVES, 'gan.loss must be one of '
         f'{sorted(losses.GAN_OBJECTIVES)} (got {g.loss!r})')
    need(g.penalty in losses.GAN_PENALTIES, 'gan.penalty must be one of '
         f'{sorted(losses.GAN_PENALTIES)} (got {g.penalty!r})')
    need(g.penalty_weight >= 0, f'gan.penalty_weight must be >= 0 (got {g.penalty_weight!r})')
    need(g.clip_value >= 0, f'gan.clip_value must be >= 0 (0 = no clipping; got '
         f'{g.clip_value!r})')
    need((g.loss == 'began') == (m.discriminator == 'began'),
         "gan.loss='began' and model.discriminator='began' (an autoencoder) go together "
         f'(got gan.loss={g.loss!r}, model.discriminator={m.discriminator!r})')
    need(0 < g.began_gamma <= 1, f'gan.began_gamma must be in (0, 1] (got {g.began_gamma!r})')
    need(g.began_lambda_k >= 0, f'gan.began_lambda_k must be >= 0 (got {g.began_lambda_k!r})')
    if g.loss == 'began':
      arch, decay = m.get('began_arch', 'dcgan'), g.get('began_lr_decay_steps', 0)
      need(arch in models.BEGAN_AUTOENCODERS, 'model.began_arch must be one of '
           f'{sorted(models.BEGAN_AUTOENCODERS)} (got {arch!r})')
      check.positive_int('model.began_hidden', m.get('began_hidden', 64))
      need(m.get('began_g_output', 'tanh') in ('linear', 'tanh'), "model.began_g_output must be "
           f"'linear' or 'tanh' (got {m.get('began_g_output')!r})")
      need(-1 < m.get('began_g_init', 0.0) < 1, 'model.began_g_init (the value the generator '
           f"starts near) must be in (-1, 1) (got {m.get('began_g_init')!r})")
      need(isinstance(decay, int) and decay >= 0, 'gan.began_lr_decay_steps must be an integer '
           f'>= 0 (0 = no decay; got {decay!r})')
      need(0 < g.get('began_lr_decay_factor', 0.5) <= 1, 'gan.began_lr_decay_factor must be in '
           f"(0, 1] (got {g.get('began_lr_decay_factor')!r})")
      need(arch != 'infogan' or config.data.image_size % 2 == 0, "model.began_arch='infogan' "
           f'halves the image once: data.image_size must be even (got {config.data.image_size})')
      need(arch == 'dcgan' or not m.d_spectral_norm, f"model.began_arch='{arch}' has no "
           'spectral normalization; drop model.d_spectral_norm')
      need(g.get('began_energy', 'l1') in losses.BEGAN_ENERGIES, 'gan.began_energy must be '
           f"one of {losses.BEGAN_ENERGIES} (got {g.get('began_energy')!r})")
    need(g.penalty == 'none' or m.d_norm != 'batch',
         f"gan.penalty='{g.penalty}' with model.d_norm='batch': a gradient penalty is per "
         'example, but BatchNorm makes each output depend on the whole batch; use '
         '--config.model.d_norm=layer (or none)')
    check.optimizer('optim.g', config.optim.g)
    check.optimizer('optim.d', config.optim.d)
