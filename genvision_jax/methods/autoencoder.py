"""Autoencoders (the notes' first model family): deep, denoising, sparse and k-sparse.

An autoencoder is an image-to-image method (`i2i.ImageToImage`) whose task is
`reconstruction` (the input is the image) or `denoising` (the denoising autoencoder, Vincent
et al. 2008: the input is corrupted by `task.noise` = 'gaussian', 'masking' or 'flip', the
target is the clean image), so `genvision evaluate` measures reconstructions on the test split
with the image-to-image protocol (per-image MSE, PSNR, SSIM, the digit classifier's accuracy on the
reconstructions, Fréchet distance) beside PCA with the same code size, fitted on the training
split (`fitted_baselines`, scikit-learn), and `genvision compare` runs the paired bootstrap.

The code (`models/autoencoder.py`, `model.code_dim`: under- or overcomplete) is shaped by
`ae.sparsity`:
  'none'      the plain code.
  'l1'        + `ae.l1_weight` * mean over examples of sum_j |code_j| in the loss (the sparse
              autoencoder with an L1 penalty on the code).
  'k_sparse'  only the `ae.k` largest code units of each example are kept, the others set to
              0, in training and at test time, so gradients flow only through the kept units
              (Makhzani & Frey 2014; their test-time alpha*k is not used).
Reconstruction (`ae.reconstruction`): 'mse' (squared error of the decoder's mean in [-1, 1]) or
'bernoulli' (the cross-entropy of per-pixel logits with the grey level (x + 1) / 2 as the
target probability: a reconstruction loss, not a likelihood of 8-bit data).

An autoencoder has no prior to sample from: `generate` is refused; `encode` / `decode` give and
take codes (`genvision encode` / `decode`), and `genvision finetune` trains a classifier on
the encoder (`genvision_jax.finetune`).
"""

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from genvision_jax import tasks
from genvision_jax.methods import common, i2i
from genvision_jax.models import autoencoder as ae_models

SPARSITY = ('none', 'l1', 'k_sparse')
RECONSTRUCTIONS = ('mse', 'bernoulli')
AE_TASKS = ('reconstruction', 'denoising')


@flax.struct.dataclass
class AEState:
  step: jax.Array
  params: dict
  opt_state: optax.OptState
  rng: jax.Array


def k_sparse(code, k: int):
  """Keeps the k largest entries of each row of code [B, D] and zeroes the rest: the kept
  set is a constant of the forward pass, so gradients flow through the kept entries only.
  Ties at the k-th value are broken by index (exactly k entries are kept)."""
  _, idx = jax.lax.top_k(code, k)
  mask = jnp.sum(jax.nn.one_hot(idx, code.shape[-1], dtype=code.dtype), axis=-2)
  return code * jax.lax.stop_gradient(mask)


class AutoencoderMethod(i2i.ImageToImage):
  """create_state / train_step / translate / encode / decode of deterministic autoencoders,
  configured by `config.model`, `config.ae`, `config.task` and `config.optim`."""

  minibatches_per_step = None  # one [B, H, W, C] minibatch per step

  def __init__(self, config, image_shape, num_classes=0):
    del num_classes
    self.config = config
    self.set_task(config, image_shape)
    m, a = config.model, config.ae
    self.code_dim = int(m.code_dim)
    self.latent_dim = self.code_dim  # `genvision decode` / interpolation
    self.sparsity, self.k, self.l1_weight = a.sparsity, int(a.k), float(a.l1_weight)
    self.reconstruction = a.reconstruction
    self.model = ae_models.Autoencoder(
        image_size=self.image_shape[0], channels=self.image_shape[-1], code_dim=self.code_dim,
        architecture=m.architecture, hidden=tuple(m.hidden), width=m.width,
        dtype=jnp.dtype(config.train.compute_dtype))
    self.tx = common.make_optimizer(config.optim)

  def create_state(self, rng, example_batch=None) -> AEState:
    del example_batch
    init_rng, state_rng = jax.random.split(rng)
    params = self.model.init(init_rng, jnp.zeros((1, *self.image_shape), jnp.float32))['params']
    return AEState(step=jnp.zeros((), jnp.int32), params=params,
                   opt_state=self.tx.init(params), rng=state_rng)

  # -- the maps ------------------------------------------------------------------------------

  def codes(self, params, x):
    """The code of inputs x [B, H, W, C] (k-sparse when configured): [B, code_dim]."""
    code = self.model.apply({'params': params}, x, method=ae_models.Autoencoder.encode)
    return k_sparse(code, self.k) if self.sparsity == 'k_sparse' else code

  def _decode_raw(self, params, code):
    return self.model.apply({'params': params}, code, method=ae_models.Autoencoder.decode)

  def to_image(self, raw):
    """Decoder output -> image in [-1, 1] (the mean, or 2 sigmoid(logits) - 1)."""
    if self.reconstruction == 'bernoulli':
      return 2.0 * jax.nn.sigmoid(raw) - 1.0
    return jnp.clip(raw, -1.0, 1.0)

  # -- training ------------------------------------------------------------------------------

  def batch_loss(self, params, batch, rng):
    """(per-example loss, per-example reconstruction error, code) of one minibatch."""
    pair = self.pairs(batch['image'].astype(jnp.float32), rng)
    x, target = pair['input'], pair['target']
    code = self.codes(params, x)
    raw = self._decode_raw(params, code)
    if self.reconstruction == 'bernoulli':
      err = optax.sigmoid_binary_cross_entropy(raw, (target + 1.0) / 2.0)
    else:
      err = (raw - target) ** 2
    recon = jnp.sum(err, axis=(1, 2, 3))  # per image, summed over pixels
    loss = recon
    if self.sparsity == 'l1':
      loss = loss + self.l1_weight * jnp.sum(jnp.abs(code), axis=-1)
    return loss, recon, code

  def train_step(self, state: AEState, batch):
    rng = jax.random.fold_in(state.rng, state.step)

    def loss_fn(params):
      loss, recon, code = self.batch_loss(params, batch, rng)
      return jnp.mean(loss), (recon, code)

    (loss, (recon, code)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = self.tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {
        'loss': loss,
        'recon': jnp.mean(recon),
        'code_l1': jnp.mean(jnp.sum(jnp.abs(code), axis=-1)),
        'code_active': jnp.mean(jnp.sum(jnp.abs(code) > 1e-6, axis=-1)),  # units != 0
        'grad_norm': common.global_norm(grads),
    }
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics

  # -- using a trained autoencoder -----------------------------------------------------------

  def translate(self, state: AEState, inputs, rng=None, use_ema: bool = True):
    """Reconstructions in [-1, 1] of task inputs [N, H, W, C] (deterministic; no EMA)."""
    del rng, use_ema
    return self.to_image(self._decode_raw(state.params, self.codes(state.params, inputs)))

  def encode(self, state: AEState, images):
    """(codes [N, code_dim], None) of images in [-1, 1] (k-sparse when configured): the
    `latent` interface of encoders, whose second entry is a VAE's posterior log-variance
    (None: the code is deterministic)."""
    return self.codes(state.params, images), None

  def decode(self, state: AEState, z):
    """Images in [-1, 1] of codes z [N, code_dim]."""
    return self.to_image(self._decode_raw(state.params, z))

  def generate(self, state, rng, num: int, **kwargs):
    del state, rng, num, kwargs
    raise ValueError('an autoencoder has no prior to sample from: `genvision evaluate` '
                     'reconstructs the test split, `genvision encode` / `decode` map images '
                     'to codes and back; for samples train a VAE (experiments/vae_mnist.py)')

  # The encoder as a feature extractor (`genvision_jax.finetune`).

  def encoder_params(self, params):
    return params['encoder']

  def encoder_features(self, encoder_params, images):
    """The code of clean images [N, H, W, C] from the encoder's parameters alone."""
    code = self.model.apply({'params': {'encoder': encoder_params}}, images,
                            method=ae_models.Autoencoder.encode)
    return k_sparse(code, self.k) if self.sparsity == 'k_sparse' else code

  def fitted_baselines(self, train_images) -> dict:
    """{'pca': outputs(pairs)}: PCA with the code size (scikit-learn, fitted on the clean
    training images, flattened, in [-1, 1]); a pair's input is projected onto the principal
    subspace and mapped back (for the denoising task: the noisy input's projection)."""
    from sklearn.decomposition import PCA  # pylint: disable=g-import-not-at-top
    flat = np.asarray(train_images, np.float64).reshape(len(train_images), -1)
    k = min(self.code_dim, *flat.shape)
    pca = PCA(n_components=k, svd_solver='covariance_eigh').fit(flat)  # exact

    def outputs(pairs):
      x = np.asarray(pairs['input'], np.float64).reshape(len(pairs['input']), -1)
      out = pca.inverse_transform(pca.transform(x))
      return np.clip(out, -1.0, 1.0).reshape(pairs['target'].shape).astype(np.float32)

    return {'pca': outputs}

  # -- config (owned by the method) ----------------------------------------------------------

  LATER_DEFAULTS = {}  # section -> {field: value reproducing runs written before it existed}

  @staticmethod
  def default_sections() -> dict:
    """A deep MLP autoencoder (784 - 512 - 256 - 32), squared error, no noise, no sparsity."""
    task = tasks.default_config()
    task.name = 'reconstruction'
    return {
        'model': ml_collections.ConfigDict(dict(
            architecture='mlp',   # 'mlp', 'linear' or 'conv' (models/autoencoder.py)
            code_dim=32,          # code size: below 784 undercomplete, above overcomplete
            hidden=(512, 256),    # mlp: encoder widths (the decoder mirrors them); conv: the
                                  # first entry is the dense layer's width
            width=32,             # conv: channels of the first conv layer
        )),
        'ae': ml_collections.ConfigDict(dict(
            reconstruction='mse',  # 'mse' or 'bernoulli'
            sparsity='none',       # 'none', 'l1' or 'k_sparse'
            l1_weight=0.1,         # sparsity='l1': weight of sum |code| (per image)
            k=10,                  # sparsity='k_sparse': code units kept per example
        )),
        'task': task,
        'optim': common.optimizer_config('adam', learning_rate=1e-3),
    }

  @staticmethod
  def validate_config(config, check) -> None:
    """The `model`, `ae`, `task` and `optim` fields (check: methods.common.ConfigChecks)."""
    m, a, need = config.model, config.ae, check.need
    need(m.architecture in ae_models.ARCHITECTURES,
         f'model.architecture must be one of {ae_models.ARCHITECTURES} (got '
         f'{m.architecture!r})')
    check.positive_int('model.code_dim', m.code_dim)
    check.positive_int('model.width', m.width)
    need(all(isinstance(h, int) and h > 0 for h in m.hidden),
         f'model.hidden must be positive integer widths (got {m.hidden!r})')
    need(a.reconstruction in RECONSTRUCTIONS,
         f'ae.reconstruction must be one of {RECONSTRUCTIONS} (got {a.reconstruction!r})')
    need(a.sparsity in SPARSITY, f'ae.sparsity must be one of {SPARSITY} (got '
         f'{a.sparsity!r})')
    if a.sparsity == 'k_sparse':
      need(isinstance(a.k, int) and 1 <= a.k <= m.code_dim,
           f'ae.k must be an integer in [1, model.code_dim={m.code_dim}] (got {a.k!r})')
    if a.sparsity == 'l1':
      need(a.l1_weight > 0, f'ae.l1_weight must be > 0 (got {a.l1_weight!r})')
    need(config.task.name in AE_TASKS, f'an autoencoder reconstructs: task.name must be one of '
         f'{AE_TASKS} (got {config.task.name!r}); the denoising autoencoder is '
         '--config.task.name=denoising with --config.task.noise=gaussian|masking|flip')
    tasks.validate(config, check)
    check.optimizer('optim', config.optim)
