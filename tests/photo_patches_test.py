"""The offline colour dataset photo_patches: shapes, counts, split by photo, determinism, and
the errors of a wrong config name; colour batches train a model through the CLI."""

import os
import pathlib

import chex
import numpy as np
from PIL import Image
import pytest
import tensorflow_datasets as tfds

from genvision_jax import configs
from genvision_jax import data
from genvision_jax.data import photo_patches
from tests.conftest import experiment, run_main

# (train, test) patches: a fixed function of the seven photos the packages ship.
COUNTS = {32: (1652, 474), 64: (1415, 395)}
TRAIN_PHOTOS = {'astronaut', 'coffee', 'rocket', 'motorcycle', 'china'}


@pytest.fixture(scope='module', params=[32, 64])
def prepared(request, data_dir):
  """(size, {split: {'image', 'source'}}) for photo_patches/SIZE, prepared on first use."""
  size = request.param
  builder = data.ensure_prepared(f'photo_patches/{size}', data_dir)
  splits = {}
  for split in ('train', 'test'):
    source = tfds.data_source(f'photo_patches/{size}', split=split, data_dir=data_dir,
                              download=False, try_gcs=False)
    records = source.__getitems__(list(range(len(source))))
    splits[split] = {'image': np.stack([r['image'] for r in records]),
                     'source': np.asarray([r['source'] for r in records])}
  assert builder.info.full_name == f'photo_patches/{size}/1.0.0'
  return size, splits


def _source_names(ids):
  names = [name for name, _ in photo_patches.PHOTOS]
  return {names[i] for i in np.unique(ids)}


def test_rgb_uint8_patches_of_both_sizes(prepared, data_dir):
  size, splits = prepared
  for arrays in splits.values():
    chex.assert_shape(arrays['image'], (None, size, size, 3))
    assert arrays['image'].dtype == np.uint8
    # Colour, not grey repeated: the channels differ somewhere.
    assert np.any(arrays['image'][..., 0] != arrays['image'][..., 1])
  split = data.load_split(f'photo_patches/{size}', 'test', size, data_dir)
  assert split.image_shape == (size, size, 3) and split.num_classes == 0
  batch = split.minibatch(0, 16, seed=0)
  chex.assert_shape(batch['image'], (16, size, size, 3))
  assert -1.0 <= batch['image'].min() < batch['image'].max() <= 1.0


def test_counts_per_split(prepared):
  size, splits = prepared
  assert (len(splits['train']['image']), len(splits['test']['image'])) == COUNTS[size]
  # The same counts in closed form from the photo sizes: grid positions at scales 1 and 1/2.
  expected = {'train': 0, 'test': 0}
  for name, _ in photo_patches.PHOTOS:
    h, w = photo_patches.load_photo(name).shape[:2]
    n = sum(((h // f - size) // 32 + 1) * ((w // f - size) // 32 + 1) for f in (1, 2))
    expected['test' if name in photo_patches.TEST_PHOTOS else 'train'] += n
  assert (expected['train'], expected['test']) == COUNTS[size]


def test_split_by_source_photo(prepared):
  _, splits = prepared
  train, test = (_source_names(splits[s]['source']) for s in ('train', 'test'))
  assert train == TRAIN_PHOTOS and test == {'chelsea', 'flower'}
  assert not train & test
  # No test patch equals any training patch either.
  train_bytes = {p.tobytes() for p in splits['train']['image']}
  assert not any(p.tobytes() in train_bytes for p in splits['test']['image'])


def test_full_size_patches_are_the_photo_pixels(prepared):
  """The scale-1 patches of flower are exactly the stride-32 crops of the JPEG in
  scikit-learn, decoded here by PIL directly."""
  size, splits = prepared
  import sklearn.datasets  # pylint: disable=g-import-not-at-top
  path = pathlib.Path(sklearn.datasets.__file__).parent / 'images' / 'flower.jpg'
  photo = np.asarray(Image.open(path).convert('RGB'))
  windows = np.lib.stride_tricks.sliding_window_view(photo, (size, size, 3))[::32, ::32, 0]
  crops = {w.tobytes() for w in windows.reshape(-1, size, size, 3)}
  flower = photo_patches.PHOTOS.index(('flower', 'sklearn'))
  stored = {p.tobytes() for p in splits['test']['image'][splits['test']['source'] == flower]}
  assert len(crops) == ((427 - size) // 32 + 1) * ((640 - size) // 32 + 1)
  assert crops <= stored  # the rest are the patches of the half-size photo


def test_prepare_twice_gives_the_same_records(prepared, tmp_path):
  """`genvision prepare` into a fresh directory stores the same patches with the same sources
  in the same order (and needs no TensorFlow: the name's '/64' must not hide that the builder
  is offline). The records are compared, not the ArrayRecord bytes: the file layout is the
  library's business (its writer's bytes were seen to differ under heavy load in CI)."""
  size, splits = prepared
  data.prepare(f'photo_patches/{size}', str(tmp_path))
  for split, arrays in splits.items():
    source = tfds.data_source(f'photo_patches/{size}', split=split, data_dir=str(tmp_path),
                              download=False, try_gcs=False)
    records = source.__getitems__(list(range(len(source))))
    np.testing.assert_array_equal(np.stack([r['image'] for r in records]), arrays['image'])
    np.testing.assert_array_equal(np.asarray([r['source'] for r in records]), arrays['source'])


def test_unknown_config_is_a_clear_error(data_dir):
  with pytest.raises(data.DatasetError) as err:
    data.load_split('photo_patches/48', 'train', 48, data_dir)
  assert str(err.value) == ("dataset 'photo_patches' has no config '48'; use one of "
                            'photo_patches/32, photo_patches/64')
  assert not os.path.exists(os.path.join(data_dir, 'photo_patches', '48'))
  config = configs.method_config('gan')
  config.data.name = 'photo_patches/48'
  with pytest.raises(configs.ConfigError, match="data.name='photo_patches/48': dataset "
                     "'photo_patches' has no config '48'; use one of photo_patches/32"):
    configs.validate(config)
  # The bare name is the first config, 32 px.
  assert data.ensure_prepared('photo_patches', data_dir).info.full_name.startswith(
      'photo_patches/32/')


def test_missing_dataset_message_names_the_offline_colour_data(tmp_path):
  with pytest.raises(data.DatasetError, match=r'photo_patches/32 \(colour\)'):
    data.load_split('cifar10', 'train', 32, str(tmp_path))


def test_colour_patches_train_a_dcgan_through_the_cli(tmp_path):
  proc = run_main('train', f'--config={experiment("dcgan_mnist.py:smoke")}',
                 f'--workdir={tmp_path / "run"}', '--config.data.name=photo_patches/32',
                 '--config.data.image_size=32')
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert '"image_shape": [32, 32, 3]' in (tmp_path / 'run' / 'data_info.json').read_text()
  samples = sorted((tmp_path / 'run' / 'samples').glob('*.png'))
  assert samples and Image.open(samples[-1]).mode == 'RGB'
