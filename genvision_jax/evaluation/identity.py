"""Identity preservation of SD-GAN (Donahue et al. 2018), measured with a classifier.

On digits an "identity" is a class (`genvision_jax.methods.sdgan`), so a generator that keeps
z_I's identity draws both images of a pair G([z_I, z_O1]), G([z_I, z_O2]) as the same digit.
The measure is the fraction of pairs whose two images the classifier assigns to one class,
for three kinds of pair:

  generated     shared z_I, independent z_O: what SD-GAN should hold fixed
  independent   independent z_I and z_O: the chance level for this generator (about
                sum_k p_k^2 over its class frequencies p_k, 0.1 when it covers ten classes
                evenly)
  real          two different real images of one class (the training pairs): the ceiling
                that classifier errors leave (about accuracy^2)

`genvision evaluate --metrics=identity` reports them for SD-GAN runs with the shipped digit
classifier as `digits_cnn/identity_{generated,independent,real}`, each with a 95 % Wilson
interval, and the per-pair 0/1 values of the generated kinds (so `genvision compare` can test
two runs).
"""

import jax
import numpy as np
from scipy import stats

PAIR_KINDS = ('generated', 'independent', 'real')


def same_class_fraction(classes_a, classes_b):
  """(fraction of pairs with classes_a == classes_b, per-pair 0/1 array, 95 % Wilson
  interval of the fraction)."""
  same = (np.asarray(classes_a) == np.asarray(classes_b)).astype(np.float64)
  ci = stats.binomtest(int(same.sum()), len(same)).proportion_ci(0.95, method='wilson')
  return float(same.mean()), same, (float(ci.low), float(ci.high))


def real_pairs(labels, num_pairs: int, seed: int = 0, chunk: int = 256):
  """Index pairs (first, second) [num_pairs] of two different examples with one label, drawn
  as SD-GAN draws its training pairs (`methods.sdgan.same_identity_pairs`) inside random
  chunks of `chunk` examples (drawn without replacement)."""
  from genvision_jax.methods.sdgan import same_identity_pairs  # pylint: disable=g-import-not-at-top
  labels = np.asarray(labels)
  if len(labels) < 2:
    raise ValueError(f'real pairs need at least two labelled examples (got {len(labels)})')
  chunk = min(chunk, len(labels))
  rng = np.random.default_rng(seed)
  pair_fn = jax.jit(same_identity_pairs)
  firsts, seconds, done = [], [], 0
  for i in range(-(-num_pairs // chunk)):
    idx = rng.choice(len(labels), chunk, replace=False)
    first, second = map(np.asarray, pair_fn(labels[idx], jax.random.PRNGKey(seed + i)))
    if np.any(first == second):
      raise ValueError(f'a chunk of {chunk} examples has no two of one class: real pairs need '
                       'more examples than classes')
    take = min(chunk, num_pairs - done)
    firsts.append(idx[first[:take]])
    seconds.append(idx[second[:take]])
    done += take
  return np.concatenate(firsts), np.concatenate(seconds)


def generated_pairs(method, state, num_pairs: int, seed: int = 0, use_ema: bool = True,
                    shared_identity: bool = True, chunk: int = 250):
  """Images (a, b) [num_pairs, H, W, C] of an SD-GAN: pair i from latents with one z_I
  (shared_identity=True) or two independent ones."""
  def decode(state, rng, n):
    z = method.paired_latents(rng, n, shared_identity)
    images = method.decode(state, z, use_ema=use_ema)
    return images[:n], images[n:]
  fn = jax.jit(decode, static_argnums=2)
  a, b = [], []
  for i, start in enumerate(range(0, num_pairs, chunk)):
    n = min(chunk, num_pairs - start)
    first, second = jax.device_get(fn(state, jax.random.PRNGKey(seed * 1000 + i), n))
    a.append(np.asarray(first))
    b.append(np.asarray(second))
  return np.concatenate(a), np.concatenate(b)


def identity_preservation(method, state, classify, real_images, real_labels,
                          num_pairs: int = 1000, seed: int = 0, use_ema: bool = True,
                          prefix: str = 'digits_cnn'):
  """The three same-class fractions of the module docstring.

  classify: images [N, H, W, C] in [-1, 1] -> class ids [N].
  Returns (values, intervals, per_example, details) keyed `{prefix}/identity_{kind}`.
  """
  shared = generated_pairs(method, state, num_pairs, seed, use_ema, shared_identity=True)
  independent = generated_pairs(method, state, num_pairs, seed + 1, use_ema,
                                shared_identity=False)
  first, second = real_pairs(real_labels, num_pairs, seed)
  real = (real_images[first], real_images[second])
  values, intervals, per_example = {}, {}, {}
  for kind, (a, b) in zip(PAIR_KINDS, (shared, independent, real)):
    name = f'{prefix}/identity_{kind}'
    values[name], same, intervals[name] = same_class_fraction(classify(a), classify(b))
    if kind != 'real':  # the real pairs are the same for every run: nothing to compare
      per_example[name] = same
  details = {'identity_pairs': num_pairs,
             'identity': 'class: the classifier argmax of both images of a pair agrees'}
  return values, intervals, per_example, details
