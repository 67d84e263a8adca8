"""SD-GAN (Donahue et al. 2018): semantically decomposed latents z = [z_I, z_O].

The identity part z_I is shared by images of one identity and the observation part z_O varies
between them. The discriminator judges *pairs* of images (stacked on the channel axis): real
pairs show one identity twice, fake pairs are G([z_I, z_O1]), G([z_I, z_O2]) with a shared
z_I. Everything else — the objectives, d_steps, optimizers, EMA — is the GAN method's
(Algorithm 1 of the notes).

Identity on digits: the datasets here have no person or object identities, only classes, so
an "identity" is a digit class: a real pair is two *different* images of one class, drawn
without replacement inside each real minibatch (`same_identity_pairs`), and z_I should fix the
class while z_O varies the writing. `genvision_jax.evaluation.identity` measures how well it
does (`genvision evaluate --metrics=identity`).

Latents: z_I and z_O ~ Uniform[-1, 1] (`sdgan.latent_distribution='uniform'`), as in the
paper; 'normal' (N(0, I)) is what run directories written before the option existed used.
"""

import jax
import jax.numpy as jnp

from genvision_jax.methods.gan import GANMethod, GANState

LATENT_DISTRIBUTIONS = ('uniform', 'normal')


def same_identity_pairs(labels, rng):
  """Real pairs of one minibatch: index arrays (first, second) [B] with labels[first] ==
  labels[second] and first != second everywhere — two different images of one identity.

  Example i is the first member of pair i when another example shares its label; its partner
  is drawn uniformly among those. An example alone with its class in the minibatch cannot be
  paired without repeating it: pair i then takes a random example of a class that has two or
  more members instead. Needs some class with two members: guaranteed when the minibatch is
  larger than the number of classes (checked by `SDGANMethod`).
  """
  n = labels.shape[0]
  first_rng, second_rng = jax.random.split(rng)
  same = (labels[:, None] == labels[None, :]) & ~jnp.eye(n, dtype=bool)
  pairable = jnp.any(same, axis=1)
  substitute = jnp.argmax(jnp.where(pairable[None, :], jax.random.uniform(first_rng, (n, n)),
                                    -1.0), axis=1)
  first = jnp.where(pairable, jnp.arange(n), substitute)
  others = same[first]  # row i: the other examples of first[i]'s class
  second = jnp.argmax(jnp.where(others, jax.random.uniform(second_rng, (n, n)), -1.0), axis=1)
  return first, second


class SDGANMethod(GANMethod):
  """GAN whose latent splits into identity (`sdgan.identity_dim`) and observation parts."""

  def __init__(self, config, image_shape, num_classes=0):
    super().__init__(config, image_shape, num_classes)
    if num_classes < 1:
      raise ValueError('SD-GAN pairs real images of one identity: it needs class labels')
    if config.train.batch_size <= num_classes:
      raise ValueError(f'SD-GAN pairs two different images of one class inside each '
                       f'minibatch: train.batch_size={config.train.batch_size} must exceed the '
                       f'{num_classes} classes')
    self.identity_dim = int(config.sdgan.identity_dim)
    self.latent_distribution = config.sdgan.get('latent_distribution', 'normal')
    if self.latent_distribution not in LATENT_DISTRIBUTIONS:
      raise ValueError(f'sdgan.latent_distribution must be one of {LATENT_DISTRIBUTIONS} '
                       f'(got {self.latent_distribution!r})')
    h, w, c = self.image_shape
    self.d_input_shape = (h, w, 2 * c)

  def _latent(self, rng, shape):
    """Latent coordinates: U[-1, 1] (the paper's) or N(0, 1), by `sdgan.latent_distribution`."""
    if self.latent_distribution == 'uniform':
      return jax.random.uniform(rng, shape, jnp.float32, -1.0, 1.0)
    return jax.random.normal(rng, shape, jnp.float32)

  def paired_latents(self, rng, num_pairs: int, shared_identity: bool = True):
    """[2 * num_pairs, latent] latents: pair i = rows i and num_pairs + i, with the same z_I
    (shared_identity=False draws each row's z_I independently: the baseline of
    `evaluation.identity`)."""
    k_id, k_obs = jax.random.split(rng)
    if shared_identity:
      z_id = jnp.tile(self._latent(k_id, (num_pairs, self.identity_dim)), (2, 1))
    else:
      z_id = self._latent(k_id, (2 * num_pairs, self.identity_dim))
    z_obs = self._latent(k_obs, (2 * num_pairs, self.latent_dim - self.identity_dim))
    return jnp.concatenate([z_id, z_obs], axis=1)

  def _fake_pairs(self, g_params, g_batch_stats, rng, batch_size):
    z = self.paired_latents(rng, batch_size)
    images, g_bs = self._generate_train(g_params, g_batch_stats, z)
    return jnp.concatenate([images[:batch_size], images[batch_size:]], axis=-1), g_bs

  def d_inputs(self, state: GANState, real, labels, rng):
    pair_rng, fake_rng = jax.random.split(rng)
    first, second = same_identity_pairs(labels, pair_rng)
    fake, _ = self._fake_pairs(state.g_params, state.g_batch_stats, fake_rng, real.shape[0])
    return jnp.concatenate([real[first], real[second]], axis=-1), jax.lax.stop_gradient(fake)

  def g_inputs(self, g_params, g_batch_stats, rng, batch_size: int, labels):
    del labels
    return self._fake_pairs(g_params, g_batch_stats, rng, batch_size)

  def sample_labels(self, rng, num: int):
    return None  # labels only pair the real data; G and D are not class-conditional

  def generate(self, state: GANState, rng, num: int, use_ema: bool = True, label=None):
    """num images in rows of one identity: row r shares z_I, each column draws its own z_O."""
    if label is not None:
      raise ValueError('SD-GAN samples identities, not labels')
    cols = max(1, int(round(num**0.5)))
    rows = -(-num // cols)
    k_id, k_obs = jax.random.split(rng)
    z_id = jnp.repeat(self._latent(k_id, (rows, self.identity_dim)), cols, axis=0)[:num]
    z_obs = self._latent(k_obs, (num, self.latent_dim - self.identity_dim))
    return self.decode(state, jnp.concatenate([z_id, z_obs], axis=1), use_ema=use_ema)

  # -- config (owned by the method; GANMethod.LATER_DEFAULTS are extended) -----------------

  # Runs written before the option existed drew Gaussian latents.
  LATER_DEFAULTS = {**GANMethod.LATER_DEFAULTS, 'sdgan': dict(latent_distribution='normal')}

  @staticmethod
  def validate_config(config, check) -> None:
    """The `sdgan` fields, then every GAN field."""
    m, need = config.model, check.need
    check.positive_int('sdgan.identity_dim', config.sdgan.identity_dim)
    need(config.sdgan.identity_dim < m.latent_dim, 'sdgan.identity_dim must be smaller than '
         f'model.latent_dim={m.latent_dim} (the rest is the observation part)')
    need(config.sdgan.latent_distribution in ('uniform', 'normal'), 'sdgan.latent_distribution '
         f"must be 'uniform' (U[-1, 1], the paper's) or 'normal' "
         f'(got {config.sdgan.latent_distribution!r})')
    need(not m.get('conditional', False), 'SD-GAN is not class-conditional: drop '
         'model.conditional (labels only pair the real images)')
    GANMethod.validate_config(config, check)
