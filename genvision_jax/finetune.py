"""Semi-supervised use of a trained encoder (the notes' "what is the autoencoder good for"):
a classifier head on the encoder of an autoencoder / denoising AE / VAE run, trained on N
labelled digits, against the same network from random initialization.

Protocol (`label_efficiency`): for each N and seed s, a class-balanced subset of N labelled
training images (`balanced_subset`, N / classes per class, drawn with seed s) — the
pre-training saw the whole training split *without* labels — trains the network
features(encoder(x)) -> Dense(classes) with Adam for `steps` minibatches of min(N,
batch_size) (drawn with seed s) on the cross-entropy ('finetune': encoder and head trained
together), or 'linear': a linear probe of the frozen features (scikit-learn's
LogisticRegression, L2 C = 1, on the features standardized on the labelled subset). The
pre-trained network starts
from the run's encoder; the baseline from the method's own initialization (seed s), with the
same subset, minibatches and head initialization. Accuracy is measured on the held-out test
split; the seeds' accuracies give each arm's mean and t-interval
(`significance.seed_summary`) and Welch's test of pre-trained vs scratch (`welch_test`).

A method supports this when it defines `encoder_params(params)` (the trainable subtree) and
`encoder_features(encoder_params, images) -> [N, D]` (autoencoders, VAEs: the posterior mean).
"""

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from genvision_jax.evaluation import significance as S

MODES = ('finetune', 'linear')


def balanced_subset(labels, n: int, seed: int, num_classes: int | None = None) -> np.ndarray:
  """Indices of n examples, n // C of each of the C classes plus the remainder on classes drawn
  at random (one more each), each class's examples drawn without replacement (seeded).
  Refused when n < C or a class has too few examples."""
  labels = np.asarray(labels)
  num_classes = int(num_classes or labels.max() + 1)
  if n < num_classes:
    raise ValueError(f'{n} labels cannot cover {num_classes} classes: use --labels >= '
                     f'{num_classes}')
  rng = np.random.default_rng(seed)
  per_class = np.full(num_classes, n // num_classes)
  per_class[rng.choice(num_classes, n % num_classes, replace=False)] += 1
  out = []
  for c in range(num_classes):
    pool = np.flatnonzero(labels == c)
    if len(pool) < per_class[c]:
      raise ValueError(f'class {c} has {len(pool)} training examples, fewer than the '
                       f'{per_class[c]} that {n} balanced labels need')
    out.append(rng.choice(pool, per_class[c], replace=False))
  return np.sort(np.concatenate(out))


def _init_head(rng, dim: int, num_classes: int) -> dict:
  # LeCun-normal kernel (flax's Dense default), zero bias.
  return {'kernel': jax.random.normal(rng, (dim, num_classes)) / np.sqrt(dim),
          'bias': jnp.zeros((num_classes,))}


def make_trainer(method, learning_rate: float):
  """(fit, predict): fit(encoder_params, head, images [N,...], labels [N], batch_indices
  [steps, batch]) -> (encoder_params, head), one jitted lax.scan over the steps."""
  tx = optax.adam(learning_rate)

  def logits(params, x):
    enc, head = params
    return method.encoder_features(enc, x) @ head['kernel'] + head['bias']

  def loss_fn(params, x, y):
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits(params, x), y))

  @jax.jit
  def fit(enc, head, images, labels, batch_indices):
    params = (enc, head)

    def step(carry, idx):
      params, opt_state = carry
      grads = jax.grad(loss_fn)(params, images[idx], labels[idx])
      updates, opt_state = tx.update(grads, opt_state, params)
      return (optax.apply_updates(params, updates), opt_state), None

    (params, _), _ = jax.lax.scan(step, (params, tx.init(params)), batch_indices)
    return params

  predict = jax.jit(lambda params, x: jnp.argmax(logits(params, x), -1))
  return fit, predict


def accuracy(predict, params, images, labels, chunk: int = 500) -> float:
  preds = np.concatenate([np.asarray(predict(params, images[i:i + chunk]))
                          for i in range(0, len(images), chunk)])
  return float(np.mean(preds == np.asarray(labels)))


def linear_probe(features_fn, enc, images, labels, subset, test_images, test_labels,
                 chunk: int = 500) -> float:
  """Test accuracy of a logistic regression (scikit-learn) on frozen features of the
  labelled subset, standardized with the subset's statistics."""
  from sklearn.linear_model import LogisticRegression  # pylint: disable=g-import-not-at-top
  from sklearn.pipeline import make_pipeline  # pylint: disable=g-import-not-at-top
  from sklearn.preprocessing import StandardScaler  # pylint: disable=g-import-not-at-top
  feats = lambda x: np.concatenate([np.asarray(features_fn(enc, x[i:i + chunk]), np.float64)
                                    for i in range(0, len(x), chunk)])
  clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000))
  clf.fit(feats(images[subset]), np.asarray(labels)[subset])
  return float(np.mean(clf.predict(feats(test_images)) == np.asarray(test_labels)))


def label_efficiency(method, state, train: dict, test: dict, labels=(10, 100, 1000),
                     seeds: int = 5, steps: int = 300, batch_size: int = 64,
                     learning_rate: float = 1e-3, mode: str = 'finetune', say=print) -> dict:
  """The protocol of the module docstring. train / test: {'image': [N, H, W, C] in [-1, 1],
  'label': [N]}. Returns {'protocol', 'results': [{'labels', 'pretrained', 'scratch',
  'pretrained_summary', 'scratch_summary', 'welch'}, ...]} (accuracies per seed)."""
  if mode not in MODES:
    raise ValueError(f'mode must be one of {MODES} (got {mode!r})')
  if not hasattr(method, 'encoder_features'):
    raise ValueError(f'method {method.config.method!r} has no encoder to fine-tune: use an '
                     'autoencoder, denoising autoencoder or VAE run')
  num_classes = int(max(np.max(train['label']), np.max(test['label'])) + 1)
  images, ys = jnp.asarray(train['image']), jnp.asarray(train['label'], jnp.int32)
  test_images, test_labels = jnp.asarray(test['image']), np.asarray(test['label'])
  pretrained = method.encoder_params(state.params)
  dim = int(method.encoder_features(pretrained, images[:1]).shape[-1])
  results = []
  for n in labels:
    batch = min(int(n), batch_size)
    fit, predict = make_trainer(method, learning_rate)
    features = jax.jit(method.encoder_features)
    row = {'labels': int(n), 'pretrained': [], 'scratch': []}
    tic = time.time()
    for s in range(seeds):
      subset = balanced_subset(train['label'], int(n), s, num_classes)
      rng = np.random.default_rng([s, int(n)])
      batch_indices = jnp.asarray(subset[rng.integers(0, len(subset), (steps, batch))])
      head = _init_head(jax.random.key(s), dim, num_classes)
      scratch = method.encoder_params(method.create_state(jax.random.key(10_000 + s)).params)
      for arm, enc in (('pretrained', pretrained), ('scratch', scratch)):
        if mode == 'linear':
          row[arm].append(linear_probe(features, enc, images, train['label'], subset,
                                       test_images, test_labels))
        else:
          params = fit(enc, head, images, ys, batch_indices)
          row[arm].append(accuracy(predict, params, test_images, test_labels))
    for arm in ('pretrained', 'scratch'):
      row[f'{arm}_summary'] = S.seed_summary(row[arm])._asdict() if seeds >= 2 else None
    if seeds >= 2:
      w = S.welch_test(row['pretrained'], row['scratch'])
      row['welch'] = {'p_value': w.p_value if np.isfinite(w.p_value) else None,
                      'difference': w.mean_diff}
    row['seconds'] = round(time.time() - tic, 1)
    results.append(row)
    say(f"N={n:>5}: pre-trained {np.mean(row['pretrained']):.3f}  scratch "
        f"{np.mean(row['scratch']):.3f}  ({seeds} seeds, {row['seconds']}s)")
  protocol = {'mode': mode, 'seeds': int(seeds),
              **({'steps': int(steps), 'batch_size': int(batch_size),
                  'learning_rate': float(learning_rate), 'optimizer': 'adam',
                  'head': 'Dense(classes), LeCun-normal, zero bias'} if mode == 'finetune' else
                 {'probe': 'sklearn StandardScaler + LogisticRegression(C=1, max_iter=5000)'}),
              'subset': 'balanced_subset(train labels, N, seed)', 'feature_dim': dim,
              'train_examples': int(len(train['label'])),
              'test_examples': int(len(test['label'])),
              'scratch': "the method's initialization with key 10000 + seed"}
  return {'protocol': protocol, 'results': results}


def figure(result: dict, path: str, title: str = '') -> None:
  """Test accuracy against N (log axis), pre-trained vs scratch, mean and t-interval."""
  # matplotlib's object API: no pyplot, so no backend is switched (notebooks keep theirs)
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  fig = Figure(figsize=(5, 3.5))
  ax = fig.subplots()
  ns = [r['labels'] for r in result['results']]
  for arm, label in (('pretrained', 'pre-trained encoder'), ('scratch', 'from scratch')):
    means = [float(np.mean(r[arm])) for r in result['results']]
    lows = [r[f'{arm}_summary']['t_low'] if r[f'{arm}_summary'] else m
            for r, m in zip(result['results'], means)]
    highs = [r[f'{arm}_summary']['t_high'] if r[f'{arm}_summary'] else m
             for r, m in zip(result['results'], means)]
    ax.errorbar(ns, means, yerr=[np.subtract(means, lows), np.subtract(highs, means)],
                marker='o', capsize=3, label=label)
  ax.set_xscale('log')
  ax.set_xlabel('labelled training digits N')
  ax.set_ylabel('test accuracy')
  ax.set_title(title, fontsize=9)
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=120)

