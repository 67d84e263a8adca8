"""Every loss against a closed form or a hand-computed value."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from genvision_jax import losses


def test_kl_of_standard_normal_to_itself_is_zero():
  kl = losses.kl_to_standard_normal(jnp.zeros((3, 5)), jnp.zeros((3, 5)))
  chex.assert_shape(kl, (3,))
  np.testing.assert_allclose(kl, 0.0, atol=1e-7)


def test_kl_known_value():
  # KL(N(1, 4) || N(0, 1)) = 1/2 (4 + 1 - 1 - log 4) = 2 - log 2, per dimension.
  mean = jnp.ones((2, 3))
  logvar = jnp.full((2, 3), math.log(4.0))
  expected = 3 * (2.0 - math.log(2.0))
  np.testing.assert_allclose(losses.kl_to_standard_normal(mean, logvar), [expected] * 2,
                             rtol=1e-6)


def test_general_gaussian_kl_matches_closed_form_and_special_case():
  # KL(N(m1, s1^2) || N(m2, s2^2)) = log(s2/s1) + (s1^2 + (m1-m2)^2) / (2 s2^2) - 1/2.
  m1, s1, m2, s2 = 0.3, 0.5, -1.0, 2.0
  expected = math.log(s2 / s1) + (s1**2 + (m1 - m2)**2) / (2 * s2**2) - 0.5
  kl = losses.gaussian_kl(jnp.full((1, 1), m1), jnp.full((1, 1), 2 * math.log(s1)),
                          jnp.full((1, 1), m2), jnp.full((1, 1), 2 * math.log(s2)))
  np.testing.assert_allclose(kl, [expected], rtol=1e-6)
  rng = np.random.default_rng(0)
  mean, logvar = rng.normal(size=(4, 6)), rng.normal(size=(4, 6))
  np.testing.assert_allclose(
      losses.gaussian_kl(mean, logvar, np.zeros_like(mean), np.zeros_like(logvar)),
      losses.kl_to_standard_normal(mean, logvar), rtol=1e-5)


def test_bernoulli_log_likelihood_known_cases():
  # p = sigmoid(log 3) = 0.75: log p(1) = log 0.75, log p(0) = log 0.25; logits 0 -> log 0.5.
  logits = jnp.array([[math.log(3.0), math.log(3.0), 0.0]])
  targets = jnp.array([[1.0, 0.0, 1.0]])
  expected = math.log(0.75) + math.log(0.25) + math.log(0.5)
  np.testing.assert_allclose(losses.bernoulli_log_likelihood(logits, targets), [expected],
                             rtol=1e-6)
  # Stable for huge logits: a confident right answer costs ~0, a wrong one ~|logit|.
  big = jnp.array([[100.0, -100.0]])
  np.testing.assert_allclose(losses.bernoulli_log_likelihood(big, jnp.array([[1.0, 0.0]])),
                             [0.0], atol=1e-6)
  np.testing.assert_allclose(losses.bernoulli_log_likelihood(big, jnp.array([[0.0, 1.0]])),
                             [-200.0], rtol=1e-6)


def test_gaussian_log_likelihood_matches_scipy():
  rng = np.random.default_rng(1)
  x, mean, logvar = rng.normal(size=(3, 2, 2, 1)), rng.normal(size=(3, 2, 2, 1)), rng.normal(
      size=(3, 2, 2, 1))
  expected = stats.norm.logpdf(x, mean, np.exp(0.5 * logvar)).reshape(3, -1).sum(-1)
  np.testing.assert_allclose(losses.gaussian_log_likelihood(x, mean, logvar), expected,
                             rtol=1e-5)


def test_reparameterize_moments_and_gradient():
  mean, logvar = jnp.full((200_000, 1), 2.0), jnp.full((200_000, 1), math.log(9.0))
  z = losses.reparameterize(jax.random.key(0), mean, logvar)
  assert abs(float(z.mean()) - 2.0) < 0.03
  assert abs(float(z.std()) - 3.0) < 0.03
  # dz/dmean = 1 per sample.
  g = jax.grad(lambda m: losses.reparameterize(jax.random.key(0), m, logvar).sum())(mean)
  np.testing.assert_allclose(g, 1.0)


def test_elbo_with_beta():
  log_lik, kl = jnp.array([-10.0, -20.0]), jnp.array([2.0, 3.0])
  np.testing.assert_allclose(losses.elbo(log_lik, kl), [-12.0, -23.0])
  np.testing.assert_allclose(losses.elbo(log_lik, kl, beta=4.0), [-18.0, -32.0])


@pytest.mark.parametrize('name', ['minimax', 'non_saturating'])
def test_gan_discriminator_loss_hand_values(name):
  fn = losses.GAN_OBJECTIVES[name]
  # D(x) = sigmoid(0) = 1/2 on both: loss log 2 on each side.
  out = fn(jnp.zeros(4), jnp.zeros(4))
  chex.assert_shape([out.d_real, out.d_fake, out.g], (4,))
  np.testing.assert_allclose(out.d_real + out.d_fake, 2 * math.log(2.0), rtol=1e-6)
  # D(x) = 0.75 on real, D(G(z)) = 0.25 on fake: -log 0.75 - log(1 - 0.25).
  out = fn(jnp.array([math.log(3.0)]), jnp.array([-math.log(3.0)]))
  np.testing.assert_allclose(out.d_real, [-math.log(0.75)], rtol=1e-6)
  np.testing.assert_allclose(out.d_fake, [-math.log(0.75)], rtol=1e-6)


def test_gan_generator_losses_hand_values():
  fake = jnp.array([-math.log(3.0)])  # D(G(z)) = 0.25
  np.testing.assert_allclose(losses.minimax(None, fake).g, [math.log(0.75)], rtol=1e-6)
  np.testing.assert_allclose(losses.non_saturating(None, fake).g, [-math.log(0.25)], rtol=1e-6)


def test_saturating_vs_non_saturating_generator_gradients():
  """At D(G(z)) -> 0 the minimax G gradient vanishes, the non-saturating one does not; both
  push the fake logit up (negative gradient of the loss)."""
  fake = jnp.array([-12.0, -3.0, 0.0])  # D(G(z)) ~ 6e-6, 0.047, 0.5
  g_mm = jax.grad(lambda l: losses.minimax(None, l).g.sum())(fake)
  g_ns = jax.grad(lambda l: losses.non_saturating(None, l).g.sum())(fake)
  d = jax.nn.sigmoid(fake)
  np.testing.assert_allclose(g_mm, -d, rtol=1e-5)       # d/dl log(1 - sigmoid(l))
  np.testing.assert_allclose(g_ns, -(1 - d), rtol=1e-5)  # d/dl -log sigmoid(l)
  assert np.all(g_mm < 0) and np.all(g_ns < 0)
  assert abs(float(g_mm[0])) < 1e-5 and abs(float(g_ns[0])) > 0.999
  # At D(G(z)) = 1/2 they agree.
  np.testing.assert_allclose(g_mm[2], g_ns[2], rtol=1e-6)


def test_discriminator_gradient_signs():
  """D's loss decreases by raising real logits and lowering fake ones."""
  fn = losses.non_saturating
  g_real = jax.grad(lambda r: fn(r, jnp.zeros(2)).d_real.sum())(jnp.zeros(2))
  g_fake = jax.grad(lambda f: fn(jnp.zeros(2), f).d_fake.sum())(jnp.zeros(2))
  np.testing.assert_allclose(g_real, -0.5)
  np.testing.assert_allclose(g_fake, 0.5)


def test_discretized_gaussian_matches_scipy_cdf_differences():
  """log P(x) = log(Phi((x + w/2 - m)/s) - Phi((x - w/2 - m)/s)) with w = 2/255, and the edge
  bins extended to -inf / +inf, against scipy.stats.norm (float64) on a few values: the VAE's
  8-bit likelihood and the diffusion bound's L_0 are this one function."""
  w = 2.0 / 255
  levels = np.array([0, 1, 77, 128, 200, 254, 255])
  x = (levels / 127.5 - 1.0).astype(np.float32)
  mean = np.array([-0.9, -1.2, -0.4, 0.3, 0.55, 0.99, 0.2], np.float32)
  log_scale = np.array([-2.0, -3.0, -4.5, -1.0, -5.0, -3.5, 0.0], np.float32)
  s, m, xd = np.exp(log_scale.astype(np.float64)), mean.astype(np.float64), x.astype(np.float64)
  upper, lower = stats.norm.cdf(xd + w / 2, m, s), stats.norm.cdf(xd - w / 2, m, s)
  p = np.where(levels == 0, upper, np.where(levels == 255, 1.0 - lower, upper - lower))
  got = jax.vmap(lambda a, b, c: losses.discretized_gaussian_log_likelihood(
      a[None, None], b[None, None], c[None, None])[0])(x, mean, log_scale)
  np.testing.assert_allclose(got, np.log(p), rtol=2e-4, atol=1e-5)
  # Summed over the non-batch axes: a [1, 7] image is the sum of the seven terms.
  np.testing.assert_allclose(
      losses.discretized_gaussian_log_likelihood(x[None], mean[None], log_scale[None]),
      [np.log(p).sum()], rtol=2e-4)
