"""The simple generative models of the notes, trained by the shared loop: a product of
Bernoullis (closed-form MLE with Laplace smoothing), a mixture of Bernoullis and a Gaussian
mixture (diagonal or full covariance) fitted by EM (`genvision_jax/pgm/`).

`model.family`:
  'bernoulli'          binary digits; one step computes the smoothed MLE from the batch.
                       data.binarize='dynamic' fits the mean intensity (the MLE of infinitely
                       many dynamic binarizations, pgm/simple.py), 'static' one binarization.
  'bernoulli_mixture'  binary digits, data.binarize='static' (EM needs one fixed data set):
                       each training step is one EM iteration.
  'gmm'                8-bit digits (data.binarize='none'), uniformly dequantized once: a
                       training image x (256 levels, spacing w = 2/255 in [-1, 1]) becomes
                       y = x + w u, u ~ U(-1/2, 1/2)^D drawn with the key of (DEQUANTIZATION_SEED,
                       the image's content), so EM sees the same y at every step. Each
                       training step is one EM iteration.

Each step of an EM family is one full E- and M-step on its batch: the experiments set
`train.batch_size` to the training split's size (4,500 offline digits), so each step is exact
EM on the whole split (the loop's epoch order only permutes it). A smaller batch makes each
step EM on a random subset, whose log-likelihood trace need not rise. The first step
initializes from its batch (`pgm.mixtures.*_init`). Logged per step: `log_likelihood` and
`objective` (log-likelihood + log-prior / N) of the parameters entering the step, in nats per
image of the training split as the model sees it; EM never lowers `objective`.

Test likelihoods (`genvision likelihoods`, `evaluation/likelihoods.py`) use `likelihood_data`
and `test_log_likelihoods`: binary models on the test digits binarized once with the key of
(seed, content) (`vae.binarize_static`, the VAE's protocol), the GMM on the 8-bit test digits
(the discretized likelihood and the uniform-dequantization bound, see there).
"""

import math

import flax
import jax
import jax.numpy as jnp
import ml_collections

from genvision_jax import losses
from genvision_jax.methods import vae
from genvision_jax.pgm import mixtures
from genvision_jax.pgm import simple

FAMILIES = ('bernoulli', 'bernoulli_mixture', 'gmm')
BIN_WIDTH = 2.0 / 255  # spacing of the 256 levels of 8-bit images in [-1, 1]
DEQUANTIZATION_SEED = 0
_DEQUANTIZE_SALT = 0x646571  # 'deq'


def content_keys(images, seed: int):
  """One key per image from `seed` and a hash of its 256 levels, so an image gets the same
  key in any batch, step or split (two images share a key only on a 32-bit hash collision)."""
  flat = images.reshape(images.shape[0], -1)
  levels = jnp.round((flat + 1.0) * 127.5).astype(jnp.uint32)
  weights = jax.random.bits(jax.random.key(seed), flat.shape[1:], jnp.uint32) | 1
  hashes = jnp.sum(levels * weights, axis=-1, dtype=jnp.uint32)  # wraps modulo 2^32
  base = jax.random.fold_in(jax.random.key(seed), _DEQUANTIZE_SALT)
  return jax.vmap(lambda h: jax.random.fold_in(base, h))(hashes)


def dequantize(images, seed: int):
  """8-bit images in [-1, 1] -> y = x + w u, u ~ U(-1/2, 1/2) per pixel, keyed per image by
  (seed, content): a fixed uniform dequantization."""
  keys = content_keys(images, seed)
  u = jax.vmap(lambda k: jax.random.uniform(k, images.shape[1:], minval=-0.5, maxval=0.5))(keys)
  return images + BIN_WIDTH * u


@flax.struct.dataclass
class SimpleState:
  step: jax.Array
  params: dict
  rng: jax.Array


class SimpleMethod:
  """create_state / train_step / generate for the families of `model.family`."""

  minibatches_per_step = None
  BINARIZES = True  # data.binarize applies (configs.validate)
  RESUMABLE_FIELDS = ()
  LATER_DEFAULTS = {}

  def __init__(self, config, image_shape, num_classes=0):
    del num_classes
    m = config.model
    self.config = config
    self.image_shape = tuple(image_shape)
    self.dim = int(math.prod(self.image_shape))
    self.family = m.family
    self.components = m.components
    self.covariance = m.covariance
    self.alpha = float(m.alpha)
    self.reg = float(m.reg_covar)
    self.binarize = config.data.get('binarize', 'none')

  # -- data as the model sees it ----------------------------------------------------------------

  def rows(self, images):
    """Training images [B, H, W, C] in [-1, 1] -> rows [B, D]: bits or intensities in [0, 1]
    for the Bernoulli families, fixed dequantized values for the GMM."""
    if self.family == 'gmm':
      x = dequantize(images, DEQUANTIZATION_SEED)
    elif self.binarize == 'static':
      x = (vae.binarize_static(images, vae.STATIC_BINARIZATION_SEED) + 1.0) / 2.0
    else:  # 'dynamic' (the Bernoulli product only): intensities, see the module docstring
      x = (images + 1.0) / 2.0
    return x.reshape(x.shape[0], -1).astype(jnp.float32)

  def likelihood_data(self, images, seed: int):
    """(test images as rows the likelihood sees, protocol): binary families get one
    binarization of each image keyed by (seed, content) (`vae.binarize_static`, as the VAE's
    `likelihood_data`); the GMM gets the 8-bit images."""
    images = jnp.asarray(images)
    if self.family == 'gmm':
      protocol = {'likelihood': f'gmm_{self.covariance}', 'data': '8-bit', 'binarize': 'none'}
      x = images
    else:
      x = (vae.binarize_static(images, seed) + 1.0) / 2.0
      protocol = {'likelihood': self.family, 'data': 'binarized', 'binarize': 'static',
                  'binarize_seed': seed, 'trained_on': self.binarize}
    return x.reshape(x.shape[0], -1), protocol

  # -- state and step -------------------------------------------------------------------------

  def _placeholder_params(self):
    k, d = self.components, self.dim
    if self.family == 'bernoulli':
      return {'probs': jnp.full((d,), 0.5)}
    log_w = jnp.full((k,), -math.log(k))
    if self.family == 'bernoulli_mixture':
      return {'log_weights': log_w, 'probs': jnp.full((k, d), 0.5)}
    cov = jnp.ones((k, d)) if self.covariance == 'diag' else jnp.broadcast_to(jnp.eye(d),
                                                                             (k, d, d))
    return {'log_weights': log_w, 'means': jnp.zeros((k, d)), 'covariances': cov}

  def create_state(self, rng, example_batch=None) -> SimpleState:
    """Placeholder parameters of the right shapes; the first step initializes from data."""
    del example_batch
    return SimpleState(step=jnp.zeros((), jnp.int32), params=self._placeholder_params(),
                       rng=rng)

  def init_params(self, rng, x):
    if self.family == 'bernoulli_mixture':
      return mixtures.bernoulli_mixture_init(rng, x, self.components)
    return mixtures.gmm_init(rng, x, self.components, self.reg, self.covariance)

  def em_step(self, params, x):
    if self.family == 'bernoulli_mixture':
      return mixtures.bernoulli_mixture_em_step(params, x, self.alpha)
    return mixtures.gmm_em_step(params, x, self.reg, self.covariance)

  def train_step(self, state: SimpleState, batch):
    x = self.rows(batch['image'])
    if self.family == 'bernoulli':
      params = {'probs': simple.bernoulli_fit(x, self.alpha)}
      log_lik = jnp.mean(simple.log_bernoulli(params['probs'], x))
      p = params['probs']
      prior = self.alpha * jnp.sum(jnp.log(p) + jnp.log1p(-p)) if self.alpha else 0.0
      stats = {'log_likelihood': log_lik, 'objective': log_lik + prior / x.shape[0]}
    else:
      rng = jax.random.fold_in(state.rng, state.step)
      start = jax.lax.cond(state.step == 0, lambda: self.init_params(rng, x),
                           lambda: state.params)
      params, stats = self.em_step(start, x)
    metrics = dict(stats)
    metrics['loss'] = -stats['objective']  # what the step minimizes (the progress line shows it)
    metrics['nll'] = -stats['log_likelihood']
    return state.replace(step=state.step + 1, params=params), metrics

  # -- sampling and test likelihoods ------------------------------------------------------------

  def generate(self, state: SimpleState, rng, num: int, **conditioning):
    """num samples in [-1, 1]: bits as {-1, 1} for the binary families, GMM draws clipped."""
    if conditioning:
      raise ValueError(f'the simple models are unconditional; got {sorted(conditioning)}')
    p = state.params
    if self.family == 'bernoulli':
      x = simple.sample_bernoulli(rng, p['probs'], num) * 2.0 - 1.0
    elif self.family == 'bernoulli_mixture':
      x = mixtures.bernoulli_mixture_sample(rng, p, num) * 2.0 - 1.0
    else:
      x = jnp.clip(mixtures.gmm_sample(rng, p, num, self.covariance), -1.0, 1.0)
    return x.reshape(num, *self.image_shape)

  def test_log_likelihoods(self, state: SimpleState, x, rng) -> dict:
    """Per-row log-likelihoods [N] in nats of rows from `likelihood_data`, by name:

    binary families: 'exact' log p(x) of the binarized digits.
    GMM: 'dequantized' = log p(x + w u) + D log w with u ~ U(-1/2, 1/2)^D drawn from `rng`,
      an unbiased estimate of a lower bound on log P(x) (Theis et al. 2016: the density's
      mass over the pixel's bin is >= exp E_u log p); for a diagonal covariance also
      'discretized' = the exact log-probability of the 8-bit digits under the mixture of
      per-pixel Gaussians integrated over the 256 bins (edge bins to +-inf,
      `losses.discretized_gaussian_log_likelihood`, as the VAE's and diffusion's decoders).
    """
    p = state.params
    if self.family == 'bernoulli':
      return {'exact': simple.log_bernoulli(p['probs'], x)}
    if self.family == 'bernoulli_mixture':
      return {'exact': mixtures.bernoulli_mixture_log_prob(p, x)}
    y = x + BIN_WIDTH * jax.random.uniform(rng, x.shape, minval=-0.5, maxval=0.5)
    out = {'dequantized': mixtures.gmm_log_prob(p, y, self.covariance)
                          + x.shape[1] * math.log(BIN_WIDTH)}
    if self.covariance == 'diag':
      log_scale = 0.5 * jnp.log(p['covariances'])
      per_component = jax.vmap(
          lambda m, s: losses.discretized_gaussian_log_likelihood(x, m, s, BIN_WIDTH),
          out_axes=1)(p['means'], log_scale)
      out['discretized'] = jax.scipy.special.logsumexp(p['log_weights'] + per_component, axis=1)
    return out

  # -- config ---------------------------------------------------------------------------------

  @staticmethod
  def default_sections() -> dict:
    return {'model': ml_collections.ConfigDict(dict(
        family='gmm',  # 'bernoulli', 'bernoulli_mixture' or 'gmm' (gmm: valid with the default
                       # data.binarize='none'; the binary models need a binarization)
        components=50,               # mixture components (not used by 'bernoulli')
        covariance='diag',           # GMM: 'diag' or 'full'
        alpha=1.0,                   # Laplace smoothing of the Bernoulli probabilities
        reg_covar=1e-4,              # GMM: ~ variance added to the diagonal (mixtures.py)
    ))}

  @staticmethod
  def validate_config(config, check) -> None:
    m, need = config.model, check.need
    need(m.family in FAMILIES, f'model.family must be one of {FAMILIES} (got {m.family!r})')
    check.positive_int('model.components', m.components)
    need(m.covariance in mixtures.COVARIANCES, f'model.covariance must be one of '
         f'{mixtures.COVARIANCES} (got {m.covariance!r})')
    need(isinstance(m.alpha, (int, float)) and m.alpha >= 0,
         f'model.alpha (Laplace smoothing) must be >= 0 (got {m.alpha!r})')
    need(isinstance(m.reg_covar, (int, float)) and m.reg_covar > 0,
         f'model.reg_covar must be > 0 (got {m.reg_covar!r})')
    mode = config.data.get('binarize', 'none')
    if m.family == 'gmm':
      need(mode == 'none', f"data.binarize={mode!r}: the Gaussian mixture models the 8-bit "
           "digits (uniformly dequantized); use --config.data.binarize=none")
    elif m.family == 'bernoulli_mixture':
      need(mode == 'static', f"data.binarize={mode!r}: EM fits one fixed data set, so the "
           "mixture of Bernoullis needs one binarization of each digit; use "
           "--config.data.binarize=static")
    else:
      need(mode != 'none', "data.binarize='none': the product of Bernoullis models binary "
           'digits; use --config.data.binarize=dynamic (the mean intensity) or static')
