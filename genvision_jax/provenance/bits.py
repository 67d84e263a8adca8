"""Bit watermarks read by a learned extractor (HiDDeN runs; later Stable Signature): keys,
embedding, reading, and the binomial test of the read bits.

An image is declared watermarked with key K (n bits) when the extractor's bits match K in at
least tau of the n positions, tau = statistics.bit_threshold(n, fpr): if the bits of an
unwatermarked image were fair, independent coins, the false-positive rate would be <= fpr. That
null is an assumption about the extractor; `null_check` measures it on unwatermarked images
(the matches with a random key against Bin(n, 1/2)).
"""

import numpy as np
from scipy import stats

from genvision_jax.provenance import ProvenanceError, statistics


def key_bits(num_bits: int, key_seed: int | None = None, key: str | None = None) -> np.ndarray:
  """The key as [n] {0, 1}: from a string of n 0/1 characters, or drawn from key_seed."""
  if key is not None:
    if len(key) != num_bits or set(key) - {'0', '1'}:
      raise ProvenanceError(f'--key must be {num_bits} characters 0/1 for this watermark (got '
                            f'{key!r}, {len(key)} characters)')
    return np.asarray([int(c) for c in key], np.int32)
  from genvision_jax.methods import signature  # pylint: disable=g-import-not-at-top
  return signature.key_bits(num_bits, key_seed)  # the draw Stable Signature runs use


def key_string(bits) -> str:
  return ''.join(str(int(b)) for b in bits)


class BitWatermark:
  """A trained HiDDeN run (method, state): embed a key, read bits, test them."""

  def __init__(self, method, state, chunk: int = 500):
    import jax  # pylint: disable=g-import-not-at-top
    self.method, self.state, self.chunk = method, state, chunk
    self.num_bits = method.num_bits
    self.image_shape = method.image_shape
    # the state is an argument, not a closed-over constant baked into the compiled programs
    self._embed = jax.jit(method.embed)
    self._extract = jax.jit(method.extract)

  def _check(self, images):
    images = np.asarray(images, np.float32)
    if images.shape[1:] != self.image_shape:
      raise ProvenanceError(f'the watermark run takes {self.image_shape} images (got '
                            f'{images.shape[1:]})')
    return images

  def embed(self, images, key) -> np.ndarray:
    images = self._check(images)
    bits = np.broadcast_to(np.asarray(key, np.float32), (len(images), self.num_bits))
    return np.concatenate([np.asarray(self._embed(self.state, images[s:s + self.chunk],
                                                  bits[s:s + self.chunk]))
                           for s in range(0, len(images), self.chunk)])

  def read(self, images) -> np.ndarray:
    """[N, n] bits read from images."""
    images = self._check(images)
    return np.concatenate([np.asarray(self._extract(self.state, images[s:s + self.chunk])) > 0
                           for s in range(0, len(images), self.chunk)]).astype(np.int32)

  def score(self, images, key) -> dict:
    """Per image: matches k, bit accuracy k / n, the p-value P(Bin(n, 1/2) >= k)."""
    matches = np.sum(self.read(images) == np.asarray(key)[None], axis=1)
    p = stats.binom.sf(matches - 1, self.num_bits, 0.5)
    return {'matches': matches, 'bit_accuracy': matches / self.num_bits, 'p_value': p}


def null_check(matches, num_bits: int) -> dict:
  """How far the matches of unwatermarked images with a key are from Bin(n, 1/2): their mean
  and variance against n/2 and n/4, and the fraction at or above each tau against the binomial
  tail (a chi-square test of the histogram, tail bins pooled to expected counts >= 5)."""
  m = np.asarray(matches)
  n = num_bits
  expected = stats.binom.pmf(np.arange(n + 1), n, 0.5) * len(m)
  observed = np.bincount(m, minlength=n + 1).astype(float)
  # pool bins from both ends until each has an expected count >= 5
  acc_e, acc_o, bins_e, bins_o = 0.0, 0.0, [], []
  for e, o in zip(expected, observed):
    acc_e, acc_o = acc_e + e, acc_o + o
    if acc_e >= 5:
      bins_e.append(acc_e)
      bins_o.append(acc_o)
      acc_e = acc_o = 0.0
  if bins_e:
    bins_e[-1] += acc_e
    bins_o[-1] += acc_o
  chi = (stats.chisquare(bins_o, np.asarray(bins_e) * sum(bins_o) / sum(bins_e))
         if len(bins_e) > 1 else None)
  return {'num_images': int(len(m)), 'mean_matches': float(m.mean()), 'binomial_mean': n / 2,
          'var_matches': float(m.var(ddof=1)) if len(m) > 1 else float('nan'),
          'binomial_var': n / 4,
          'chi2_p_value': float(chi.pvalue) if chi is not None else float('nan'),
          'fraction_at_or_above_tau_1e-2': float(np.mean(m >= statistics.bit_threshold(n, 1e-2)))}
