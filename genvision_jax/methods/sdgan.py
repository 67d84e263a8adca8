"""SD-GAN (Donahue et al. 2018): semantically decomposed latents z = [z_I, z_O].

The identity part z_I is shared by images of one identity and the observation part z_O varies
between them. The discriminator judges *pairs* of images (stacked on the channel axis): real
pairs show one identity twice (here: two digits of the same class, paired inside each real
minibatch), fake pairs are G([z_I, z_O1]), G([z_I, z_O2]) with a shared z_I. Everything else —
the objectives, d_steps, optimizers, EMA — is the GAN method's (Algorithm 1 of the notes).
"""

import jax
import jax.numpy as jnp

from genvision_jax.methods.gan import GANMethod, GANState


def same_label_partners(labels, rng):
  """For each example, the index of another example with the same label in the batch (chosen
  at random; the example itself when it is the only one of its class)."""
  n = labels.shape[0]
  same = (labels[:, None] == labels[None, :]) & ~jnp.eye(n, dtype=bool)
  scores = jnp.where(same, jax.random.uniform(rng, (n, n)), -1.0)
  partner = jnp.argmax(scores, axis=1)
  return jnp.where(jnp.any(same, axis=1), partner, jnp.arange(n))


class SDGANMethod(GANMethod):
  """GAN whose latent splits into identity (`sdgan.identity_dim`) and observation parts."""

  def __init__(self, config, image_shape, num_classes=0):
    super().__init__(config, image_shape, num_classes)
    if num_classes < 1:
      raise ValueError('SD-GAN pairs real images of one identity: it needs class labels')
    self.identity_dim = int(config.sdgan.identity_dim)
    h, w, c = self.image_shape
    self.d_input_shape = (h, w, 2 * c)

  def paired_latents(self, rng, num_pairs: int):
    """[2 * num_pairs, latent] latents: pair i = rows i and num_pairs + i, same z_I."""
    k_id, k_obs = jax.random.split(rng)
    z_id = jax.random.normal(k_id, (num_pairs, self.identity_dim))
    z_obs = jax.random.normal(k_obs, (2, num_pairs, self.latent_dim - self.identity_dim))
    return jnp.concatenate([jnp.tile(z_id, (2, 1)), z_obs.reshape(2 * num_pairs, -1)], axis=1)

  def _fake_pairs(self, g_params, g_batch_stats, rng, batch_size):
    z = self.paired_latents(rng, batch_size)
    images, g_bs = self._generate_train(g_params, g_batch_stats, z)
    return jnp.concatenate([images[:batch_size], images[batch_size:]], axis=-1), g_bs

  def d_inputs(self, state: GANState, real, labels, rng):
    pair_rng, fake_rng = jax.random.split(rng)
    partner = real[same_label_partners(labels, pair_rng)]
    fake, _ = self._fake_pairs(state.g_params, state.g_batch_stats, fake_rng, real.shape[0])
    return jnp.concatenate([real, partner], axis=-1), jax.lax.stop_gradient(fake)

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
    z_id = jnp.repeat(jax.random.normal(k_id, (rows, self.identity_dim)), cols, axis=0)[:num]
    z_obs = jax.random.normal(k_obs, (num, self.latent_dim - self.identity_dim))
    return self.decode(state, jnp.concatenate([z_id, z_obs], axis=1), use_ema=use_ema)

  # -- config (owned by the method; GANMethod.LATER_DEFAULTS are inherited) ----------------

  @staticmethod
  def validate_config(config, check) -> None:
    """The `sdgan` fields, then every GAN field."""
    m, need = config.model, check.need
    check.positive_int('sdgan.identity_dim', config.sdgan.identity_dim)
    need(config.sdgan.identity_dim < m.latent_dim, 'sdgan.identity_dim must be smaller than '
         f'model.latent_dim={m.latent_dim} (the rest is the observation part)')
    need(not m.get('conditional', False), 'SD-GAN is not class-conditional: drop '
         'model.conditional (labels only pair the real images)')
    GANMethod.validate_config(config, check)
