"""The domain feature network for digit data: `DigitClassifier` trained on the offline default
dataset's train split, shipped as `weights/digits_cnn.npz` (with its held-out accuracy).

Metrics computed in its 128-d feature space are labelled with the network's name
(`digits_cnn`), never "FID": they are Fréchet distances etc. in *this* network's features,
comparable between runs evaluated with the same weights file, not with published FIDs.

Retrain the shipped weights (about a minute on a laptop CPU):

  python -m genvision_jax.features.digits --out genvision_jax/features/weights/digits_cnn.npz

Training: Adam 1e-3, batch 64, 20 epochs over the 4,500 training digits, each batch shifted by
up to 2 pixels at random (so the features do not hinge on exact centring); reports the accuracy
on the 500 held-out test digits and stores it in the weights file.
"""

import argparse
import json
import os
import time

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from genvision_jax.models.classifier import DigitClassifier

NAME = 'digits_cnn'
WEIGHTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'weights', 'digits_cnn.npz')
IMAGE_SIZE = 28


class DigitFeatures:
  """Callable: images [N, H, W, C] in [-1, 1] -> {'features': [N, 128], 'logits': [N, 10]}.

  Images of another size are resized (bilinear) to 28 x 28 and colour images averaged to grey,
  so it also accepts e.g. 32 px padded digits. Runs in jitted batches of `batch_size`.
  """

  name = NAME

  def __init__(self, weights_path: str = WEIGHTS, batch_size: int = 500):
    self.weights_path = weights_path
    self.params, self.info = load_weights(weights_path)
    self.model = DigitClassifier(num_classes=int(self.info['num_classes']))
    self.batch_size = batch_size
    self._apply = jax.jit(lambda p, x: self.model.apply({'params': p}, _prepare(x)))

  def __call__(self, images) -> dict[str, np.ndarray]:
    images = np.asarray(images, np.float32)
    if images.ndim != 4:
      raise ValueError(f'images must be [N, H, W, C]; got shape {images.shape}')
    out = {'features': [], 'logits': []}
    for i in range(0, len(images), self.batch_size):
      chunk = images[i:i + self.batch_size]
      pad = self.batch_size - len(chunk)  # one compiled shape for every batch
      if pad and len(images) > self.batch_size:
        chunk = np.concatenate([chunk, np.zeros((pad, *chunk.shape[1:]), chunk.dtype)])
      res = jax.device_get(self._apply(self.params, chunk))
      for k in out:
        out[k].append(np.asarray(res[k])[:len(chunk) - (pad if len(images) > self.batch_size
                                                         else 0)])
    return {k: np.concatenate(v) for k, v in out.items()}


def _prepare(x):
  if x.shape[-1] != 1:
    x = jnp.mean(x, axis=-1, keepdims=True)
  if x.shape[1:3] != (IMAGE_SIZE, IMAGE_SIZE):
    x = jax.image.resize(x, (x.shape[0], IMAGE_SIZE, IMAGE_SIZE, 1), 'bilinear')
  return x


def load_weights(path: str = WEIGHTS):
  """(params, info) from a weights file written by `train`."""
  if not os.path.exists(path):
    raise FileNotFoundError(
        f'digit classifier weights {path} not found; retrain them with `python -m '
        f'genvision_jax.features.digits --out {path}`')
  with np.load(path, allow_pickle=False) as f:
    flat = {k: f[k] for k in f.files if k != 'info'}
    info = json.loads(str(f['info']))
  params = flax.traverse_util.unflatten_dict({tuple(k.split('/')): v for k, v in flat.items()})
  return params, info


def _shift(rng, images, max_shift: int = 2):
  """Each image translated by up to `max_shift` pixels (background -1 fills in)."""
  b, h, w, _ = images.shape
  padded = jnp.pad(images, ((0, 0), (max_shift,) * 2, (max_shift,) * 2, (0, 0)),
                   constant_values=-1.0)
  offsets = jax.random.randint(rng, (b, 2), 0, 2 * max_shift + 1)
  crop = lambda img, o: jax.lax.dynamic_slice(img, (o[0], o[1], 0), (h, w, img.shape[-1]))
  return jax.vmap(crop)(padded, offsets)


def train(out: str = WEIGHTS, epochs: int = 20, batch_size: int = 64, seed: int = 0,
          data_dir: str | None = None, verbose: bool = True) -> dict:
  """Trains the classifier on the default dataset's train split; writes `out`; returns info."""
  from genvision_jax import data as data_lib  # pylint: disable=g-import-not-at-top
  train_split = data_lib.load_split(data_lib.DEFAULT_DATASET, 'train', IMAGE_SIZE, data_dir)
  test_split = data_lib.load_split(data_lib.DEFAULT_DATASET, 'test', IMAGE_SIZE, data_dir)
  tr, te = train_split.arrays(), test_split.arrays()
  x_train, y_train = data_lib.to_model_range(tr['image']), tr['label']
  x_test, y_test = data_lib.to_model_range(te['image']), te['label']
  model = DigitClassifier(num_classes=train_split.num_classes)
  params = model.init(jax.random.key(seed), x_train[:1])['params']
  tx = optax.adam(1e-3)
  opt_state = tx.init(params)

  @jax.jit
  def step(params, opt_state, x, y, rng):
    def loss_fn(p):
      logits = model.apply({'params': p}, _shift(rng, x))['logits']
      return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  predict = jax.jit(lambda p, x: jnp.argmax(model.apply({'params': p}, x)['logits'], -1))
  rng = np.random.default_rng(seed)
  key = jax.random.key(seed + 1)
  tic = time.time()
  for epoch in range(epochs):
    order = rng.permutation(len(x_train))
    losses = []
    for i in range(0, len(order) - batch_size + 1, batch_size):
      idx = order[i:i + batch_size]
      key, sub = jax.random.split(key)
      params, opt_state, loss = step(params, opt_state, x_train[idx], y_train[idx], sub)
      losses.append(float(loss))
    if verbose and (epoch + 1) % 5 == 0:
      acc = float(np.mean(np.asarray(predict(params, x_test)) == y_test))
      print(f'epoch {epoch + 1}: loss {np.mean(losses):.4f}, test accuracy {acc:.4f}',
            flush=True)
  train_acc = float(np.mean(np.asarray(predict(params, x_train)) == y_train))
  test_acc = float(np.mean(np.asarray(predict(params, x_test)) == y_test))
  info = {'name': NAME, 'num_classes': train_split.num_classes,
          'dataset': data_lib.DEFAULT_DATASET, 'train_examples': len(x_train),
          'test_examples': len(x_test), 'train_accuracy': train_acc, 'test_accuracy': test_acc,
          'epochs': epochs, 'batch_size': batch_size, 'seed': seed,
          'train_seconds': round(time.time() - tic, 1)}
  flat = {'/'.join(k): np.asarray(v) for k, v in
          flax.traverse_util.flatten_dict(jax.device_get(params)).items()}
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  np.savez_compressed(out, info=json.dumps(info), **flat)
  if verbose:
    print(json.dumps(info, indent=1))
  return info


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--out', default=WEIGHTS)
  parser.add_argument('--epochs', type=int, default=20)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--data_dir', default=None)
  args = parser.parse_args(argv)
  train(args.out, epochs=args.epochs, seed=args.seed, data_dir=args.data_dir)


if __name__ == '__main__':
  main()
