"""Fake-image detection and model attribution without a watermark: classifiers of an image's
source, learned (a small CNN) or on fixed spectral features (the baselines).

A source classifier maps an image to one of K sources: for detection K = 2 (real digits, the
samples of a set of generator runs); for attribution K = the number of runs (each run a
source). Both are `models/classifier.DigitClassifier` (two conv layers, 128-d features) with K
logits, trained by Adam on softmax cross-entropy, optionally through one attack per batch
(genvision_jax/attacks.py noise layers) so that it learns features that survive them.

Baselines on fixed features, fitted by scikit-learn's logistic regression:
- Durall et al. (2020): the azimuthal average of the log power spectrum — upsampling layers
  leave their trace in the high frequencies. Rings of integer radius about DC (n//2, n//2) of
  log(|F|^2 + 1e-8), F the orthonormal FFT; r = 0 .. n//2 (the partial corner rings dropped);
  each profile minus its r = 0 value.
- Frank et al. (2020): the log magnitude of the 2-D type-II orthonormal DCT, all n^2
  coefficients, standardized with the training mean and deviation.
"""

from __future__ import annotations

import json
import os
import time

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from scipy import fft as sp_fft

from genvision_jax import attacks
from genvision_jax.models.classifier import DigitClassifier
from genvision_jax.provenance import ProvenanceError

SPECTRAL = ('durall', 'frank')


# -- spectral features ---------------------------------------------------------------------------


def _grey(images) -> np.ndarray:
  x = np.asarray(images, np.float64)
  return x.mean(axis=-1) if x.ndim == 4 else x


def radial_profile(images) -> np.ndarray:
  """[N, n//2 + 1]: the mean of log(|F|^2 + 1e-8) over each ring of integer radius about DC,
  minus the ring-0 value (Durall et al.'s azimuthal average)."""
  x = _grey(images)
  n = x.shape[1]
  if x.shape[2] != n:
    raise ProvenanceError(f'spectral features need square images (got {x.shape[1:]})')
  f = np.fft.fftshift(np.fft.fft2(x, axes=(1, 2), norm='ortho'), axes=(1, 2))
  power = np.log(np.abs(f) ** 2 + 1e-8)
  i = np.arange(n) - n // 2
  ring = np.rint(np.sqrt(i[:, None] ** 2 + i[None, :] ** 2)).astype(int)
  rings = n // 2 + 1
  counts = np.bincount(ring.ravel(), minlength=ring.max() + 1)[:rings]
  sums = np.stack([np.bincount(ring.ravel(), weights=p.ravel(), minlength=ring.max() + 1)[:rings]
                   for p in power])
  profile = sums / counts
  return profile - profile[:, :1]


def dct_features(images) -> np.ndarray:
  """[N, n * n]: log |DCT-II| (orthonormal, both axes) of each image (Frank et al.)."""
  x = _grey(images)
  d = sp_fft.dctn(x, type=2, axes=(1, 2), norm='ortho')
  return np.log(np.abs(d) + 1e-12).reshape(len(x), -1)


def spectral_features(name: str, images) -> np.ndarray:
  if name == 'durall':
    return radial_profile(images)
  if name == 'frank':
    return dct_features(images)
  raise ProvenanceError(f"unknown spectral baseline '{name}'; use one of {SPECTRAL}")


def fit_spectral(name: str, images, labels):
  """A scikit-learn pipeline (standardize, multinomial L2 logistic regression) on the
  baseline's features; predict_proba gives the source probabilities."""
  from sklearn.linear_model import LogisticRegression  # pylint: disable=g-import-not-at-top
  from sklearn.pipeline import make_pipeline  # pylint: disable=g-import-not-at-top
  from sklearn.preprocessing import StandardScaler  # pylint: disable=g-import-not-at-top
  model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
  model.fit(spectral_features(name, images), np.asarray(labels))
  return model


def spectral_proba(name: str, model, images) -> np.ndarray:
  return model.predict_proba(spectral_features(name, images))


# -- the CNN source classifier ---------------------------------------------------------------------


class SourceClassifier:
  """A DigitClassifier with K logits over named sources, its params and its training record."""

  def __init__(self, sources, image_shape, params=None, info=None):
    self.sources = list(sources)
    self.image_shape = tuple(image_shape)
    self.model = DigitClassifier(num_classes=len(self.sources))
    self.params = params
    self.info = dict(info or {})
    self._apply = jax.jit(lambda p, x: self.model.apply({'params': p}, x)['logits'])

  def init(self, seed: int = 0):
    self.params = self.model.init(jax.random.key(seed),
                                  jnp.zeros((1, *self.image_shape), jnp.float32))['params']
    return self

  def logits(self, images, chunk: int = 500) -> np.ndarray:
    x = np.asarray(images, np.float32)
    if x.shape[1:] != self.image_shape:
      raise ProvenanceError(f'the classifier takes {self.image_shape} images (got {x.shape[1:]})')
    return np.concatenate([np.asarray(self._apply(self.params, x[s:s + chunk]))
                           for s in range(0, len(x), chunk)])

  def proba(self, images) -> np.ndarray:
    return np.asarray(jax.nn.softmax(self.logits(images), axis=-1))

  def fit(self, images, labels, steps: int = 2000, batch_size: int = 64, learning_rate=1e-3,
          noise=(), seed: int = 0, log_every: int = 100) -> list[dict]:
    """Adam on softmax cross-entropy over `steps` minibatches drawn with replacement per epoch
    order; `noise`: noise layers (attacks.NOISE_LAYERS), one drawn per batch (none: clean).
    Returns the loss history [{'step', 'loss', 'accuracy'}]."""
    x = np.asarray(images, np.float32)
    y = np.asarray(labels, np.int32)
    if self.params is None:
      self.init(seed)
    tx = optax.adam(learning_rate)
    opt_state = tx.init(self.params)
    model, names = self.model, tuple(noise)

    @jax.jit
    def step(params, opt_state, xb, yb, key):
      if names:
        xb = attacks.random_noise_layer(names, xb, xb, key)

      def loss_fn(p):
        logits = model.apply({'params': p}, xb)['logits']
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()
        return loss, jnp.mean(jnp.argmax(logits, -1) == yb)

      (loss, acc), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
      updates, opt_state = tx.update(grads, opt_state, params)
      return optax.apply_updates(params, updates), opt_state, loss, acc

    rng = np.random.default_rng(seed)
    key = jax.random.key(seed + 1)
    history, order, pos = [], rng.permutation(len(x)), 0
    losses, accs = [], []
    tic = time.time()
    for i in range(steps):
      if pos + batch_size > len(order):
        order, pos = rng.permutation(len(x)), 0
      idx = order[pos:pos + min(batch_size, len(order))]
      pos += batch_size
      key, sub = jax.random.split(key)
      self.params, opt_state, loss, acc = step(self.params, opt_state, x[idx], y[idx], sub)
      losses.append(float(loss))
      accs.append(float(acc))
      if (i + 1) % log_every == 0 or i + 1 == steps:
        history.append({'step': i + 1, 'loss': float(np.mean(losses)),
                        'accuracy': float(np.mean(accs))})
        losses, accs = [], []
    self.info.update({'train_steps': steps, 'batch_size': batch_size,
                      'learning_rate': learning_rate, 'noise': list(names), 'seed': seed,
                      'train_examples': int(len(x)), 'train_seconds': time.time() - tic})
    return history

  def save(self, path: str) -> None:
    flat = {'/'.join(k): np.asarray(v) for k, v in
            flax.traverse_util.flatten_dict(jax.device_get(self.params)).items()}
    info = {**self.info, 'sources': self.sources, 'image_shape': list(self.image_shape)}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + '.tmp.npz'
    np.savez_compressed(tmp, info=json.dumps(info), **flat)
    os.replace(tmp, path)

  @classmethod
  def load(cls, path: str) -> 'SourceClassifier':
    if not os.path.isfile(path):
      raise ProvenanceError(f'{path} holds no classifier: train one with `genvision detect '
                            'train` or `genvision attribute`')
    try:
      with np.load(path, allow_pickle=False) as f:
        flat = {k: f[k] for k in f.files if k != 'info'}
        info = json.loads(str(f['info']))
    except (OSError, ValueError, KeyError) as e:
      raise ProvenanceError(f'{path} is not a readable classifier file ({e}); retrain it') from None
    params = flax.traverse_util.unflatten_dict({tuple(k.split('/')): v for k, v in flat.items()})
    return cls(info['sources'], info['image_shape'], params, info)


def confusion_matrix(true, predicted, num_classes: int) -> np.ndarray:
  """[K, K] counts: row = true source, column = predicted source."""
  m = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(m, (np.asarray(true), np.asarray(predicted)), 1)
  return m
