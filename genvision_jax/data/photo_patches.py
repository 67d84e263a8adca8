"""The offline colour dataset: RGB patches cut from the sample photos of installed packages.

Sources: seven natural colour photographs that ship inside the scikit-image and scikit-learn
wheels (nothing is downloaded):

  scikit-image (`skimage.data`): astronaut, coffee, chelsea (the cat; `skimage.data.cat` is the
    same photo and is not used twice), rocket, motorcycle (the left view of
    `stereo_motorcycle`; the right view is nearly the same scene and is not used);
  scikit-learn (`sklearn.datasets.load_sample_images`): china, flower.

Not used: the synthetic images (colorwheel, logo, chessboard), the specialist ones
(hubble_deep_field, immunohistochemistry, retina: mostly black backgrounds or stains, not
everyday colour), and those that `skimage.data` only fetches with `pooch` over the network
(skin, lily, kidney, eagle, ...).

The split is by source photo, so no test patch comes from a training photo: **test = chelsea
and flower** (one photo of each package), train = the other five. Each photo is used at two
scales, as it is and downsized by 2 (`skimage.transform.resize` with anti-aliasing, rounded to
uint8); patches of `size` x `size` pixels are cut on a grid of stride 32 from the top-left
corner (the 64-pixel patches overlap by half), so the dataset is a fixed function of the
package files. Example counts per split are in `builder.info.splits` (README, Data).
"""

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

# (name, package) in source-index order; `source` features index this tuple.
PHOTOS = (
    ('astronaut', 'skimage'),
    ('coffee', 'skimage'),
    ('chelsea', 'skimage'),
    ('rocket', 'skimage'),
    ('motorcycle', 'skimage'),
    ('china', 'sklearn'),
    ('flower', 'sklearn'),
)
TEST_PHOTOS = ('chelsea', 'flower')
SCALES = (1, 2)   # downsizing factors
STRIDE = 32       # pixels between patch corners, at every scale and patch size
SIZES = (32, 64)  # builder configs: photo_patches/32 and photo_patches/64


@dataclasses.dataclass
class PhotoPatchesConfig(tfds.core.BuilderConfig):
  size: int = 32


def load_photo(name: str) -> np.ndarray:
  """One source photo as HxWx3 uint8, read from the installed package (no network)."""
  if name in ('china', 'flower'):
    from sklearn.datasets import load_sample_image  # pylint: disable=g-import-not-at-top
    return np.asarray(load_sample_image(f'{name}.jpg'), np.uint8)
  from skimage import data  # pylint: disable=g-import-not-at-top
  if name == 'motorcycle':
    return np.asarray(data.stereo_motorcycle()[0], np.uint8)
  return np.asarray(getattr(data, name)(), np.uint8)


def downsize(photo: np.ndarray, factor: int) -> np.ndarray:
  """`photo` shrunk by an integer factor with anti-aliasing, back to uint8."""
  if factor == 1:
    return photo
  from skimage.transform import resize  # pylint: disable=g-import-not-at-top
  h, w = photo.shape[0] // factor, photo.shape[1] // factor
  out = resize(photo, (h, w), anti_aliasing=True, preserve_range=True)
  return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def patches(photo: np.ndarray, size: int, stride: int = STRIDE) -> np.ndarray:
  """All `size` x `size` patches of `photo` whose corners lie on a grid of `stride`."""
  h, w = photo.shape[:2]
  return np.stack([photo[y:y + size, x:x + size]
                   for y in range(0, h - size + 1, stride)
                   for x in range(0, w - size + 1, stride)])


class PhotoPatches(tfds.core.GeneratorBasedBuilder):
  """RGB patches (32x32 or 64x64) of 7 package sample photos, split by photo; offline."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Seven photos, scales 1 and 1/2, stride 32; test = '
                            + ' and '.join(TEST_PHOTOS) + '.'}
  BUILDER_CONFIGS = [PhotoPatchesConfig(name=str(s), size=s,
                                        description=f'{s}x{s} RGB patches')
                     for s in SIZES]

  def _info(self) -> tfds.core.DatasetInfo:
    size = self.builder_config.size
    train = [name for name, _ in PHOTOS if name not in TEST_PHOTOS]
    return tfds.core.DatasetInfo(
        builder=self,
        description=(
            f'{size}x{size} RGB patches cut on a stride-{STRIDE} grid from the sample photos '
            'shipped by scikit-image and scikit-learn, at full size and downsized by 2. '
            f'Split by photo: train = {", ".join(train)}; test = {", ".join(TEST_PHOTOS)}.'),
        features=tfds.features.FeaturesDict({
            'image': tfds.features.Tensor(shape=(size, size, 3), dtype=np.uint8),
            'source': tfds.features.ClassLabel(names=[name for name, _ in PHOTOS]),
        }),
        homepage='https://scikit-image.org/docs/stable/api/skimage.data.html',
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download.
    train = [name for name, _ in PHOTOS if name not in TEST_PHOTOS]
    return {'train': self._generate_examples(train),
            'test': self._generate_examples(list(TEST_PHOTOS))}

  def _generate_examples(self, names):
    size = self.builder_config.size
    for name in names:
      photo = load_photo(name)
      for factor in SCALES:
        for i, patch in enumerate(patches(downsize(photo, factor), size)):
          yield f'{name}/{factor}/{i}', {'image': patch, 'source': name}


NAME = PhotoPatches.name  # 'photo_patches'
