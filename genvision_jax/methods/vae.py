"""VAE and beta-VAE trained by the reparameterized ELBO (Kingma & Welling 2014).

The likelihood p(x | z) (`model.likelihood`) must be a likelihood of the data it is given
(`data.binarize`), so that the IWAE bound is a bound on log p(x) of something:

  'bernoulli'             binary images, made from the 8-bit ones by `data.binarize`:
                          'dynamic'  a fresh Bernoulli draw of every pixel, on with probability
                                     (x + 1) / 2, each time an image is seen (the protocol of
                                     binarized-MNIST log-likelihoods, e.g. Burda et al. 2016);
                                     randomness from fold_in(state.rng, step).
                          'static'   one fixed draw per image: the same rule with the draw keyed
                                     by (STATIC_BINARIZATION_SEED, the image's content), so each
                                     image has one binarization whatever batch it comes in.
  'discretized_gaussian'  8-bit images (data.binarize='none'): a Gaussian per pixel integrated
                          over the pixel's 2/255-wide bin of [-1, 1], edge bins to +-inf (the
                          decoder term L_0 of the diffusion bound, `losses.
                          discretized_gaussian_log_likelihood`), so IWAE bits/dim are on the
                          scale of diffusion bits/dim.
  'gaussian'              a density on [-1, 1] (not a probability of 8-bit data: no bits/dim).
  'bernoulli_grey'        only for run directories written before `data.binarize` existed: the
                          cross-entropy of grey levels they were trained with (not a likelihood;
                          `configs.from_dict` renames their 'bernoulli' to it; new configs are
                          refused by `configs.validate`).

Binary images are represented in [-1, 1] as {-1, 1}; the Bernoulli target is (x + 1) / 2.
"""

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from genvision_jax import losses
from genvision_jax.methods import common
from genvision_jax.models import VAE


STATIC_BINARIZATION_SEED = 0
_BINARIZE_SALT = 0x62696e  # 'bin': the dynamic draw's key, apart from the latent noise's
# likelihood -> (the model's decoder output, whether it is a probability of discrete data)
LIKELIHOODS = {'bernoulli': ('bernoulli', True), 'discretized_gaussian':
               ('discretized_gaussian', True), 'gaussian': ('gaussian', False),
               'bernoulli_grey': ('bernoulli', False)}


def binarize_dynamic(rng, images):
  """Images in [-1, 1] -> {-1, 1}: pixel on with probability (x + 1) / 2, one draw per pixel."""
  on = jax.random.uniform(rng, images.shape) < (images + 1.0) / 2.0
  return jnp.where(on, 1.0, -1.0).astype(images.dtype)


def binarize_static(images, seed: int):
  """One fixed binarization of each image: `binarize_dynamic` with the draw keyed by `seed`
  and a hash of the image's 256 levels, so an image binarizes the same in any batch, any
  step and any split (two images share a draw only on a 32-bit hash collision)."""
  flat = images.reshape(images.shape[0], -1)
  levels = jnp.round((flat + 1.0) * 127.5).astype(jnp.uint32)
  weights = jax.random.bits(jax.random.key(seed), flat.shape[1:], jnp.uint32) | 1
  hashes = jnp.sum(levels * weights, axis=-1, dtype=jnp.uint32)  # wraps modulo 2^32
  base = jax.random.fold_in(jax.random.key(seed), _BINARIZE_SALT)
  return jax.vmap(lambda h, x: binarize_dynamic(jax.random.fold_in(base, h), x))(hashes, images)


@flax.struct.dataclass
class VAEState:
  step: jax.Array
  params: dict
  opt_state: optax.OptState
  rng: jax.Array


class VAEMethod:
  """create_state / train_step / generate for (beta-)VAEs, configured by `config.model`,
  `config.vae.beta` and `config.optim`."""

  minibatches_per_step = None  # one [B, H, W, C] minibatch per step

  def __init__(self, config, image_shape, num_classes=0):
    del num_classes
    m = config.model
    self.config = config
    self.image_shape = tuple(image_shape)
    self.latent_dim = m.latent_dim
    self.likelihood = m.likelihood
    self.binarize = config.data.get('binarize', 'none')
    self.beta = float(config.vae.beta)
    self.model = VAE(image_size=image_shape[0], channels=image_shape[-1],
                     latent_dim=m.latent_dim, architecture=m.architecture, width=m.width,
                     hidden=m.hidden, likelihood=LIKELIHOODS[m.likelihood][0],
                     dtype=jnp.dtype(config.train.compute_dtype))
    self.tx = common.make_optimizer(config.optim)

  def create_state(self, rng, example_batch=None) -> VAEState:
    del example_batch
    init_rng, state_rng = jax.random.split(rng)
    x = jnp.zeros((1, *self.image_shape), jnp.float32)
    z = jnp.zeros((1, self.latent_dim), jnp.float32)
    params = self.model.init(init_rng, x, z)['params']
    return VAEState(step=jnp.zeros((), jnp.int32), params=params,
                    opt_state=self.tx.init(params), rng=state_rng)

  def binarized(self, images, rng):
    """The training images the likelihood models: `data.binarize` applied (rng: the step's)."""
    if self.binarize == 'dynamic':
      return binarize_dynamic(jax.random.fold_in(rng, _BINARIZE_SALT), images)
    if self.binarize == 'static':
      return binarize_static(images, STATIC_BINARIZATION_SEED)
    return images

  def likelihood_data(self, images, seed: int):
    """(test images as the likelihood sees them, protocol): reproducible given `seed`.

    Dynamic binarization draws one binarization of each test image keyed by `seed` and the
    image (`binarize_static(images, seed)`), static binarization uses the training rule, 8-bit
    data is unchanged. `protocol['discrete']` says whether log p(x) is a probability of
    discrete data (so -log2 p(x) / D is bits/dim); a density or the legacy grey-level
    cross-entropy is not."""
    binarize_seed = {'dynamic': seed, 'static': STATIC_BINARIZATION_SEED}.get(self.binarize)
    if binarize_seed is not None:
      images = binarize_static(jnp.asarray(images), binarize_seed)
    protocol = {'likelihood': self.likelihood, 'binarize': self.binarize,
                'binarize_seed': binarize_seed,
                'discrete': LIKELIHOODS[self.likelihood][1]}
    return images, protocol

  def log_likelihood(self, decoded, images):
    """log p(x | z) per example for images in [-1, 1] (binary {-1, 1} for 'bernoulli')."""
    if 'logits' in decoded:
      return losses.bernoulli_log_likelihood(decoded['logits'], (images + 1.0) / 2.0)
    if 'log_scale' in decoded:
      return losses.discretized_gaussian_log_likelihood(images, decoded['mean'],
                                                        decoded['log_scale'])
    return losses.gaussian_log_likelihood(images, decoded['mean'], decoded['logvar'])

  def elbo_terms(self, params, images, rng):
    """Per-example log-likelihood, KL and beta-ELBO of one reparameterized sample."""
    mean, logvar = self.model.apply({'params': params}, images, method=VAE.encode)
    z = losses.reparameterize(rng, mean, logvar)
    decoded = self.model.apply({'params': params}, z, method=VAE.decode)
    log_lik = self.log_likelihood(decoded, images)
    kl = losses.kl_to_standard_normal(mean, logvar)
    return log_lik, kl, losses.elbo(log_lik, kl, self.beta)

  def train_step(self, state: VAEState, batch):
    rng = jax.random.fold_in(state.rng, state.step)
    images = self.binarized(batch['image'], rng)

    def loss_fn(params):
      log_lik, kl, objective = self.elbo_terms(params, images, rng)
      return -jnp.mean(objective), (log_lik, kl)

    (loss, (log_lik, kl)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = self.tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    num_dims = images[0].size
    neg_elbo = -(log_lik - kl)  # the beta = 1 bound, whatever beta trains
    metrics = {
        'loss': loss,
        'recon': -jnp.mean(log_lik),
        'kl': jnp.mean(kl),
        'neg_elbo': jnp.mean(neg_elbo),
        'bits_per_dim': jnp.mean(neg_elbo) / (num_dims * jnp.log(2.0)),
        'grad_norm': common.global_norm(grads),
        'param_norm': common.global_norm(params),
    }
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics

  def decode_mean(self, params, z):
    """Mean of p(x | z) in [-1, 1]."""
    decoded = self.model.apply({'params': params}, z, method=VAE.decode)
    if 'logits' in decoded:
      return jax.nn.sigmoid(decoded['logits']) * 2.0 - 1.0
    return jnp.clip(decoded['mean'], -1.0, 1.0)

  def generate(self, state: VAEState, rng, num: int, **conditioning):
    """num images from the prior: z ~ N(0, I), x = E[p(x | z)], in [-1, 1]."""
    if conditioning:
      raise ValueError(f'the VAE is unconditional; got {sorted(conditioning)}')
    z = jax.random.normal(rng, (num, self.latent_dim))
    return self.decode(state, z)

  def decode(self, state: VAEState, z):
    """Mean of p(x | z) in [-1, 1] for given latents [N, latent_dim]."""
    return self.decode_mean(state.params, z)

  def encode(self, state: VAEState, images):
    """The posterior q(z | x) of images [N, H, W, C] in [-1, 1]: (mean, logvar), each
    [N, latent_dim]. The mean is an image's code (`latent.encode`). Grey levels go in as they
    are: for a Bernoulli model trained on binarized digits they are the binarizations' mean."""
    return self.model.apply({'params': state.params}, images, method=VAE.encode)

  # The encoder as a feature extractor (`genvision_jax.finetune`): the posterior mean.

  def encoder_params(self, params):
    return params['encoder']

  def encoder_features(self, encoder_params, images):
    """The posterior mean [N, latent_dim] of images from the encoder's parameters alone."""
    return self.model.apply({'params': {'encoder': encoder_params}}, images,
                            method=lambda mdl, x: mdl.encoder(x))[0]

  def log_importance_weights(self, state: VAEState, images, rng, num_samples: int):
    """log w_i = log p(x | z_i) + log p(z_i) - log q(z_i | x) for z_i ~ q(z | x), i < k:
    [B, k] log-weights of the importance-weighted bound (Burda et al. 2016), in nats.
    `evaluation.metrics.iwae_bound` turns them into log p(x) >= log mean_i w_i; with k = 1
    their mean is the ELBO (beta = 1)."""
    mean, logvar = self.model.apply({'params': state.params}, images, method=VAE.encode)

    def one(key):
      z = losses.reparameterize(key, mean, logvar)
      decoded = self.model.apply({'params': state.params}, z, method=VAE.decode)
      zeros = jnp.zeros_like(z)
      return (self.log_likelihood(decoded, images)
              + losses.gaussian_log_likelihood(z, zeros, zeros)
              - losses.gaussian_log_likelihood(z, mean, logvar))

    return jax.vmap(one, out_axes=1)(jax.random.split(rng, num_samples))

  # -- config (owned by the method: `configs.method_config` / `validate` / `from_dict` call
  # -- these) --------------------------------------------------------------------------------

  @staticmethod
  def default_sections() -> dict:
    """The sections this method owns, at their defaults (a convolutional VAE; its Bernoulli
    likelihood needs binary data: set data.binarize, or use the discretized Gaussian)."""
    return {
        'model': ml_collections.ConfigDict(dict(
            architecture='conv',     # 'conv' or 'mlp'
            latent_dim=16,
            width=32,                # channels of the first conv layer (doubles per stage)
            hidden=256,              # dense layer between convs and the latent
            likelihood='bernoulli',  # 'bernoulli' (binary data), 'discretized_gaussian' (8-bit
                                     # data, 256 bins) or 'gaussian' (a density on [-1, 1])
        )),
        'vae': ml_collections.ConfigDict(dict(beta=1.0)),  # beta-VAE weight of the KL term
        'optim': common.optimizer_config('adam', learning_rate=1e-3),
    }


  BINARIZES = True  # models binary images: data.binarize applies (configs.validate)
  RESUMABLE_FIELDS = ()  # fields besides configs.RESUMABLE_FIELDS a resumed run may change
  LATER_DEFAULTS = {}  # section -> {field: value reproducing runs written before it existed}

  @staticmethod
  def upgrade_config(d: dict, config) -> None:
    """VAE runs written before `data.binarize` existed trained the Bernoulli likelihood on grey
    levels: they load as likelihood 'bernoulli_grey' (same network, same sampling; refused for
    training by `validate_config`) with data.binarize='none'."""
    if 'binarize' not in d.get('data', {}) and config.model.get('likelihood') == 'bernoulli':
      config.model.likelihood = 'bernoulli_grey'

  @staticmethod
  def validate_config(config, check) -> None:
    """The `model`, `vae` and `optim` fields (check: methods.common.ConfigChecks)."""
    from genvision_jax.models import vae as vae_models  # pylint: disable=g-import-not-at-top
    m, need = config.model, check.need
    check.positive_int('model.latent_dim', m.latent_dim)
    check.positive_int('model.width', m.width)
    check.positive_int('model.hidden', m.hidden)
    need(m.architecture in ('conv', 'mlp'),
         f"model.architecture must be 'conv' or 'mlp' (got {m.architecture!r})")
    need(m.likelihood in vae_models.LIKELIHOODS,
         f'model.likelihood must be one of {vae_models.LIKELIHOODS} (got {m.likelihood!r})')
    need(config.vae.beta >= 0, f'vae.beta must be >= 0 (got {config.vae.beta!r})')
    check.optimizer('optim', config.optim)
    # The likelihood is a likelihood of the data it gets: Bernoulli on binary images, the
    # others on 8-bit ones.
    mode, likelihood = config.data.get('binarize', 'none'), m.likelihood
    if likelihood == 'bernoulli_grey':
      need(False, "model.likelihood='bernoulli_grey' (the grey-level cross-entropy) only loads "
           'VAE run directories written before data.binarize existed; train with '
           '--config.model.likelihood=bernoulli --config.data.binarize=dynamic')
    elif likelihood == 'bernoulli':
      need(mode != 'none', "model.likelihood='bernoulli' is a likelihood of binary images, but "
           "data.binarize='none' gives it 8-bit grey levels; use --config.data.binarize=dynamic "
           '(or static), or --config.model.likelihood=discretized_gaussian for 8-bit data')
    elif mode != 'none':
      need(False, f'data.binarize={mode!r} makes binary images, but model.likelihood='
           f"{likelihood!r} models 8-bit levels; use --config.model.likelihood=bernoulli, or "
           '--config.data.binarize=none')
