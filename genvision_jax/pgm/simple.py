"""A product of independent Bernoullis: p(x) = prod_d p_d^x_d (1 - p_d)^(1 - x_d).

The maximum-likelihood estimate is closed-form, p_d = mean_i x_id; Laplace smoothing adds
`alpha` pseudo-observations of each value (the MAP estimate under a Beta(1 + alpha, 1 + alpha)
prior), p_d = (sum_i x_id + alpha) / (N + 2 alpha), so no pixel has probability 0 or 1 and a
test image never has log-likelihood -inf. With intensities x in [0, 1] instead of bits the
same formula maximizes the expected log-likelihood over dynamic binarizations (each pixel on
with probability x_id): that expectation is linear in x, so the smoothed mean intensity is the
MLE of infinitely many binarizations of the training set.
"""

import jax
import jax.numpy as jnp


def bernoulli_fit(x, alpha: float = 0.0):
  """Pixel probabilities [D] of rows x [N, D] in [0, 1]: (sum_i x_id + alpha) / (N + 2 alpha)."""
  x = jnp.asarray(x, jnp.float32)
  return (jnp.sum(x, axis=0) + alpha) / (x.shape[0] + 2.0 * alpha)


def log_bernoulli(probs, x):
  """log p(x) per row: sum_d x_d log p_d + (1 - x_d) log(1 - p_d); probs broadcast against x.
  Terms with x_d = 0 (or 1) ignore log p_d (or log (1 - p_d)), so p_d = 0 or 1 is allowed where
  the data agree with it."""
  x = jnp.asarray(x, jnp.float32)
  on = jnp.where(x > 0, x * jnp.log(probs), 0.0)        # 0 * log 0 is 0, not nan
  off = jnp.where(x < 1, (1.0 - x) * jnp.log1p(-probs), 0.0)
  return jnp.sum(on + off, axis=-1)


def sample_bernoulli(rng, probs, num: int):
  """num rows [num, D] of bits (float32 0/1) drawn from the product of Bernoullis `probs`."""
  return (jax.random.uniform(rng, (num, *probs.shape)) < probs).astype(jnp.float32)
