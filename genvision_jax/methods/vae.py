"""VAE and beta-VAE trained by the reparameterized ELBO (Kingma & Welling 2014).

Data in [-1, 1] is mapped to [0, 1] for the Bernoulli likelihood (grey levels as Bernoulli
means, the usual MNIST practice); the Gaussian likelihood models [-1, 1] directly.
"""

import flax
import jax
import jax.numpy as jnp
import optax

from genvision_jax import losses
from genvision_jax.methods import common
from genvision_jax.models import VAE


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
    self.beta = float(config.vae.beta)
    self.model = VAE(image_size=image_shape[0], channels=image_shape[-1],
                     latent_dim=m.latent_dim, architecture=m.architecture, width=m.width,
                     hidden=m.hidden, likelihood=m.likelihood,
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

  def log_likelihood(self, decoded, images):
    """log p(x | z) per example for images in [-1, 1]."""
    if self.likelihood == 'bernoulli':
      return losses.bernoulli_log_likelihood(decoded['logits'], (images + 1.0) / 2.0)
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
    images = batch['image']

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
    if self.likelihood == 'bernoulli':
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

  # -- config (owned by the method: `configs.validate` / `configs.from_dict` call these) ----

  LATER_DEFAULTS = {}  # section -> {field: value reproducing runs written before it existed}

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
