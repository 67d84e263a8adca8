"""Every loss of the package as a pure function on arrays.

Conventions: inputs carry a leading batch axis; functions return per-example values (shape
[B]) and the method's step reduces them (mean over the batch). Log-likelihoods and KL terms
are summed over all non-batch axes, in nats.

Contents: the VAE pieces (reparameterization, diagonal-Gaussian KL, Bernoulli and Gaussian
log-likelihoods, the ELBO with beta) and the GAN objective table, one signature for all:
`objective(real_logits, fake_logits) -> GANLoss(d_real, d_fake, g)`, chosen by name from
`GAN_OBJECTIVES` (`config.gan.loss`), with the discriminator penalties of `GAN_PENALTIES`
(`config.gan.penalty`): WGAN-GP = 'wgan' + 'gradient', DRAGAN = 'minimax' + 'dragan'.
Diffusion: the simple losses of `DIFFUSION_LOSSES` (`config.diffusion.loss`) and the
discretized Gaussian decoder likelihood of the variational bound (`genvision_jax.diffusion`).
"""

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy import special

LOG_2PI = math.log(2 * math.pi)


def _sum_except_batch(x):
  return jnp.sum(x.reshape(x.shape[0], -1), axis=-1)


# ----------------------------------------------------------------------------------------------
# VAE


def reparameterize(rng, mean, logvar):
  """z = mean + sigma * eps, eps ~ N(0, I): a sample of N(mean, exp(logvar)) that is
  differentiable in mean and logvar."""
  eps = jax.random.normal(rng, mean.shape, mean.dtype)
  return mean + jnp.exp(0.5 * logvar) * eps


def gaussian_kl(mean1, logvar1, mean2, logvar2):
  """KL(N(mean1, exp(logvar1)) || N(mean2, exp(logvar2))) for diagonal Gaussians, per example."""
  kl = 0.5 * (logvar2 - logvar1 + (jnp.exp(logvar1) + (mean1 - mean2)**2) * jnp.exp(-logvar2)
              - 1.0)
  return _sum_except_batch(kl)


def kl_to_standard_normal(mean, logvar):
  """KL(N(mean, diag(exp(logvar))) || N(0, I)) = 1/2 sum(mean^2 + exp(logvar) - 1 - logvar)."""
  return _sum_except_batch(0.5 * (mean**2 + jnp.exp(logvar) - 1.0 - logvar))


def bernoulli_log_likelihood(logits, targets):
  """log Bernoulli(targets | sigmoid(logits)) summed per example; targets in [0, 1].

  Computed stably as targets * logits - softplus(logits). For targets strictly between 0 and 1
  (grey levels) this is the usual cross-entropy used for MNIST VAEs.
  """
  return _sum_except_batch(targets * logits - jax.nn.softplus(logits))


def gaussian_log_likelihood(x, mean, logvar):
  """log N(x | mean, diag(exp(logvar))) summed per example."""
  return _sum_except_batch(-0.5 * (LOG_2PI + logvar + (x - mean)**2 * jnp.exp(-logvar)))


def elbo(log_likelihood, kl, beta=1.0):
  """Per-example (beta-)ELBO: E_q[log p(x|z)] - beta * KL(q(z|x) || p(z)).

  beta = 1 is the VAE bound on log p(x); beta > 1 is the beta-VAE objective of Higgins et al.
  """
  return log_likelihood - beta * kl


# ----------------------------------------------------------------------------------------------
# GAN objectives: D maximizes its objective, written here as losses to minimize.


class GANLoss(NamedTuple):
  """Per-example loss terms. Discriminator loss = mean(d_real) + mean(d_fake)."""
  d_real: jax.Array  # discriminator loss on real examples, [B]
  d_fake: jax.Array  # discriminator loss on generated examples, [B]
  g: jax.Array       # generator loss, [B]


def minimax(real_logits, fake_logits) -> GANLoss:
  """Goodfellow et al.'s zero-sum game, D(x) = sigmoid(logit).

  D: -log D(x) - log(1 - D(G(z))); G minimizes log(1 - D(G(z))) = -softplus(fake_logit), which
  saturates (zero gradient) when D confidently rejects the samples, D(G(z)) -> 0.
  """
  d_real = None if real_logits is None else jax.nn.softplus(-real_logits)
  return GANLoss(d_real, jax.nn.softplus(fake_logits), -jax.nn.softplus(fake_logits))


def non_saturating(real_logits, fake_logits) -> GANLoss:
  """Same discriminator as `minimax`; G minimizes -log D(G(z)) = softplus(-fake_logit), whose
  gradient is largest exactly when D(G(z)) -> 0."""
  d_real = None if real_logits is None else jax.nn.softplus(-real_logits)
  return GANLoss(d_real, jax.nn.softplus(fake_logits), jax.nn.softplus(-fake_logits))


def wgan(real_logits, fake_logits) -> GANLoss:
  """Wasserstein GAN (Arjovsky et al. 2017): the critic maximizes E[D(x)] - E[D(G(z))] over
  1-Lipschitz functions (weight clipping or a gradient penalty enforces it); G minimizes
  -E[D(G(z))]."""
  d_real = None if real_logits is None else -real_logits
  return GANLoss(d_real, fake_logits, -fake_logits)


def lsgan(real_logits, fake_logits) -> GANLoss:
  """Least squares GAN (Mao et al. 2017, targets 0/1): D minimizes (D(x) - 1)^2 + D(G(z))^2,
  G minimizes (D(G(z)) - 1)^2. (The notes' table prints the signs wrongly; these are the
  paper's, and Lucic et al.'s, losses.)"""
  d_real = None if real_logits is None else (real_logits - 1.0)**2
  return GANLoss(d_real, fake_logits**2, (fake_logits - 1.0)**2)


def hinge(real_logits, fake_logits) -> GANLoss:
  """Hinge loss (Lim & Ye 2017; Miyato et al. 2018): D minimizes relu(1 - D(x)) +
  relu(1 + D(G(z))); G minimizes -D(G(z))."""
  d_real = None if real_logits is None else jax.nn.relu(1.0 - real_logits)
  return GANLoss(d_real, jax.nn.relu(1.0 + fake_logits), -fake_logits)


BEGAN_ENERGIES = ('l1', 'mse', 'l2')


def reconstruction_energy(x, reconstruction, kind: str = 'l1'):
  """BEGAN's energy of an autoencoder discriminator, per example [B]: 'l1' the mean of
  |x - AE(x)| over pixels (the paper, eta = 1); 'mse' the mean of (x - AE(x))^2 (the paper's
  eta = 2); 'l2' the Euclidean norm ||x - AE(x)||_2 over all pixels."""
  diff = (x.astype(jnp.float32) - reconstruction.astype(jnp.float32)).reshape(x.shape[0], -1)
  if kind == 'l1':
    return jnp.mean(jnp.abs(diff), axis=-1)
  if kind == 'mse':
    return jnp.mean(diff**2, axis=-1)
  if kind == 'l2':
    return jnp.sqrt(jnp.sum(diff**2, axis=-1) + 1e-12)
  raise ValueError(f'unknown BEGAN energy {kind!r}; use one of {BEGAN_ENERGIES}')


def began(real_energy, fake_energy, k=0.0) -> GANLoss:
  """BEGAN (Berthelot et al. 2017) on autoencoder energies L(.): D minimizes
  L(x) - k_t L(G(z)), G minimizes L(G(z)). k_t follows `began_k_update`."""
  d_real = None if real_energy is None else real_energy
  return GANLoss(d_real, -k * fake_energy, fake_energy)


def began_k_update(k, real_energy_mean, fake_energy_mean, gamma: float, lambda_k: float):
  """Proportional control of the equilibrium E[L(G(z))] = gamma E[L(x)]:
  k <- clip(k + lambda_k (gamma L(x) - L(G(z))), 0, 1)."""
  return jnp.clip(k + lambda_k * (gamma * real_energy_mean - fake_energy_mean), 0.0, 1.0)


def began_convergence(real_energy_mean, fake_energy_mean, gamma: float):
  """M_global = L(x) + |gamma L(x) - L(G(z))|: falls as training converges."""
  return real_energy_mean + jnp.abs(gamma * real_energy_mean - fake_energy_mean)


# ----------------------------------------------------------------------------------------------
# Penalties on the discriminator (added to its loss as weight * mean(penalty)). `critic` maps
# images [B, ...] to raw outputs [B] (logits, never probabilities).


def _input_grad_norm(critic, x):
  """Per-example L2 norm of d critic(x) / dx over all non-batch axes."""
  grads = jax.grad(lambda v: jnp.sum(critic(v)))(x)
  return jnp.sqrt(jnp.sum(grads.reshape(x.shape[0], -1)**2, axis=-1) + 1e-12)


def _per_example_uniform(rng, x):
  """One U(0, 1) draw per example, shaped [B, 1, ..., 1] to broadcast over x."""
  return jax.random.uniform(rng, (x.shape[0],) + (1,) * (x.ndim - 1), jnp.float32)


def _as_weights(alpha, x):
  """Given per-example weights [B] -> [B, 1, ..., 1] float32."""
  return jnp.asarray(alpha, jnp.float32).reshape((x.shape[0],) + (1,) * (x.ndim - 1))


def gradient_penalty(critic, real, fake, rng, alpha=None):
  """WGAN-GP (Gulrajani et al. 2017): (||grad D(x_hat)||_2 - 1)^2 at x_hat = a x + (1 - a) x~,
  one a ~ U(0, 1) per example. Per example; computed in float32.

  alpha: optional fixed weights a [B] (tests); None draws them from rng.
  """
  real, fake = real.astype(jnp.float32), fake.astype(jnp.float32)
  alpha = _per_example_uniform(rng, real) if alpha is None else _as_weights(alpha, real)
  x_hat = alpha * real + (1.0 - alpha) * fake
  return (_input_grad_norm(critic, x_hat) - 1.0)**2


def dragan_penalty(critic, real, fake, rng, c: float = 0.5, alpha=None, noise=None):
  """DRAGAN (Kodali et al. 2017): (||grad D(x~)||_2 - 1)^2 at points x~ = x + a delta between
  the real data x and its perturbation x_hat = x + delta, with

    delta = c * std(x) * eps,  eps ~ N(0, I),  a ~ U(0, 1) per example,  c = 0.5,

  std(x) being the standard deviation of the whole real minibatch (a scalar).

  Which variant, and why: the notes' table (x_hat ~ p_d + N(0, c)) and the paper's
  regularizer E_{x, delta ~ N(0, cI)} (||grad D(x + delta)|| - k)^2 perturb the data with
  Gaussian noise, so eps is Gaussian, symmetric around the data manifold. The authors'
  reference code (DRAGAN.ipynb) scales the noise by 0.5 * std(x), which makes c a fraction of
  the data's spread and so independent of the pixel range, and penalizes at random points of
  the segment between x and x_hat rather than at x_hat alone, so the whole neighbourhood of the
  data, not only a shell around it, is kept 1-Lipschitz; both are kept here. Not kept: that
  code's noise is uniform on [0, 1), which shifts every pixel upwards, a one-sided
  perturbation neither the paper nor the notes describe.

  alpha, noise: optional fixed a [B] and eps [B, ...] (tests); None draws them from rng
  (alpha from the first key of `jax.random.split(rng)`, eps from the second).
  """
  del fake
  real = real.astype(jnp.float32)
  alpha_rng, noise_rng = jax.random.split(rng)
  alpha = _per_example_uniform(alpha_rng, real) if alpha is None else _as_weights(alpha, real)
  if noise is None:
    noise = jax.random.normal(noise_rng, real.shape, jnp.float32)
  delta = c * jnp.std(real) * noise
  return (_input_grad_norm(critic, real + alpha * delta) - 1.0)**2


def r1_penalty(critic, real, fake=None, rng=None):
  """R1 (Mescheder et al. 2018): 1/2 ||grad D(x)||^2 on real data."""
  del fake, rng
  return 0.5 * _input_grad_norm(critic, real.astype(jnp.float32))**2


def drift_penalty(real_logits):
  """Progressive growing's drift term (Karras et al. 2018, sec. A.1): D(x)^2 per example on
  real data, added to the critic's loss as eps_drift * E[D(x)^2] (eps_drift = 0.001) so that
  the WGAN critic's outputs, which the loss fixes only up to a constant, stay near zero."""
  return real_logits.reshape(real_logits.shape[0], -1).mean(axis=-1)**2


# config.gan.loss -> objective(real_logits, fake_logits) -> GANLoss. The generator step passes
# real_logits=None: no generator term of the table reads the real data's outputs.
GAN_OBJECTIVES: dict[str, Callable[..., GANLoss]] = {
    'minimax': minimax,
    'non_saturating': non_saturating,
    'wgan': wgan,
    'lsgan': lsgan,
    'hinge': hinge,
    # Needs model.discriminator='began' (an autoencoder); its "logits" are energies.
    'began': began,
}

# config.gan.penalty -> penalty(critic, real, fake, rng) -> [B]; 'none' adds nothing.
GAN_PENALTIES = {
    'none': None,
    'gradient': gradient_penalty,   # WGAN-GP: on interpolates of real and fake
    'dragan': dragan_penalty,       # between real data and its perturbation
    'r1': r1_penalty,               # on real data
}


# ----------------------------------------------------------------------------------------------
# Diffusion


def diffusion_mse(prediction, target):
  """Ho et al.'s L_simple per example: mean over pixels of (target - prediction)^2, where the
  target is the noise eps (or v) that produced x_t."""
  d = prediction.astype(jnp.float32) - target.astype(jnp.float32)
  return jnp.mean(d.reshape(d.shape[0], -1)**2, axis=-1)


def diffusion_l1(prediction, target):
  """Mean over pixels of |target - prediction| per example (the L1 variant of L_simple)."""
  d = prediction.astype(jnp.float32) - target.astype(jnp.float32)
  return jnp.mean(jnp.abs(d.reshape(d.shape[0], -1)), axis=-1)


# config.diffusion.loss -> loss(prediction, target) -> [B]
DIFFUSION_LOSSES: dict[str, Callable[..., jax.Array]] = {
    'mse': diffusion_mse,
    'l1': diffusion_l1,
}


def discretized_gaussian_log_likelihood(x, mean, log_scale, bin_width: float = 2.0 / 255):
  """log P(x) summed per example for data x on 256 levels in [-1, 1] under a Gaussian
  N(mean, exp(log_scale)^2) discretized to the bins (Ho et al. 2020, eq. 13):
  P(x) = Phi((x + w/2 - mean) / s) - Phi((x - w/2 - mean) / s) with bin width w = 2/255,
  the lowest bin extended to -inf (x < -0.999: Phi(...) alone) and the highest to +inf
  (x > 0.999: 1 - Phi(...)). Uses the exact normal CDF (the tanh approximation of Ho et al.'s
  code differs by ~1e-3 nats); probabilities are floored at 1e-12.
  """
  centered = x - mean
  inv_scale = jnp.exp(-log_scale)
  upper = inv_scale * (centered + 0.5 * bin_width)
  lower = inv_scale * (centered - 0.5 * bin_width)
  log_cdf_upper = special.log_ndtr(upper)                 # log Phi(upper)
  log_one_minus_cdf_lower = special.log_ndtr(-lower)      # log (1 - Phi(lower))
  # Phi(upper) - Phi(lower), computed on the side of the mean where it does not cancel.
  delta = jnp.where(lower > 0, special.ndtr(-lower) - special.ndtr(-upper),
                    special.ndtr(upper) - special.ndtr(lower))
  log_delta = jnp.log(jnp.maximum(delta, 1e-12))
  log_probs = jnp.where(x < -0.999, log_cdf_upper,
                        jnp.where(x > 0.999, log_one_minus_cdf_lower, log_delta))
  log_probs = jnp.maximum(log_probs, math.log(1e-12))
  return _sum_except_batch(log_probs)


# ----------------------------------------------------------------------------------------------
# Vector quantization (VQ-VAE, van den Oord et al. 2017)


def vq_codebook_loss(z_e, e):
  """||sg(z_e) - e||^2 per example (mean over positions and dimensions): moves the chosen
  codebook vectors toward the encoder outputs (unused when the codebook is an EMA)."""
  return jnp.mean((jax.lax.stop_gradient(z_e) - e) ** 2, axis=tuple(range(1, z_e.ndim)))


def vq_commitment_loss(z_e, e):
  """||z_e - sg(e)||^2 per example: keeps the encoder committed to its codes (weighted by
  beta, 0.25 in the paper)."""
  return jnp.mean((z_e - jax.lax.stop_gradient(e)) ** 2, axis=tuple(range(1, z_e.ndim)))


def codebook_perplexity(one_hot):
  """exp(entropy) of the average code usage over all positions of `one_hot` [..., K]: K when
  every code is used equally, 1 when one code takes everything."""
  p = jnp.mean(one_hot.reshape(-1, one_hot.shape[-1]), axis=0)
  return jnp.exp(-jnp.sum(p * jnp.log(p + 1e-10)))


# ----------------------------------------------------------------------------------------------
# Style transfer (Gatys, Ecker & Bethge 2016; Johnson, Alahi & Fei-Fei 2016)


def gram_matrix(features):
  """G = F^T F / M per example for feature maps [B, H, W, N] (M = H W positions): [B, N, N],
  the channel correlations that describe a style (Gatys et al.'s G^l divided by M_l)."""
  b, h, w, n = features.shape
  f = features.reshape(b, h * w, n)
  return jnp.einsum('bmi,bmj->bij', f, f, precision=jax.lax.Precision.HIGHEST) / (h * w)


def style_layer_loss(features, target_gram):
  """Gatys et al.'s E_l = sum((G^l - A^l)^2) / (4 N_l^2 M_l^2) per example, with G^l and A^l
  their unnormalized Gram matrices of the image and of the style image; written with
  `gram_matrix` (already divided by M_l) it is sum((G - A)^2) / (4 N_l^2). `target_gram`:
  [N, N] or [B, N, N]."""
  n = features.shape[-1]
  diff = gram_matrix(features) - target_gram
  return jnp.sum(diff**2, axis=(1, 2)) / (4.0 * n * n)


def content_loss(features, target):
  """(1/2) mean((F - P)^2) per example: Gatys et al.'s content loss (their 1/2 sum) divided by
  the number of feature entries, so its weight does not depend on the image size."""
  return 0.5 * jnp.mean((features - target)**2, axis=tuple(range(1, features.ndim)))


def total_variation(images):
  """Mean absolute difference of vertically and horizontally adjacent pixels per example
  (anisotropic total variation, normalized by the number of differences)."""
  dy = jnp.abs(images[:, 1:] - images[:, :-1])
  dx = jnp.abs(images[:, :, 1:] - images[:, :, :-1])
  axes = tuple(range(1, images.ndim))
  return jnp.mean(dy, axis=axes) + jnp.mean(dx, axis=axes)
