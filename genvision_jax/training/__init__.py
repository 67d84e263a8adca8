"""The shared training loop and its I/O: checkpoints, metrics, samples, sharding."""

from genvision_jax.training.checkpoints import CheckpointError, Checkpoints
from genvision_jax.training.loop import (Interrupted, NonFiniteError, TrainResult,
                                         generate_images, load_run, open_data, read_config,
                                         train_and_evaluate)
from genvision_jax.training.rundir import ConfigChangeError, RunDirError
