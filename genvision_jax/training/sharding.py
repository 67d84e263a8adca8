"""Data parallelism: a 1-D device mesh, replicated state, batches sharded on 'data'."""

import jax
from jax.sharding import NamedSharding, PartitionSpec as P
import numpy as np


def make_mesh(devices=None) -> jax.sharding.Mesh:
  """A mesh with one 'data' axis over `devices` (default: all devices of all processes)."""
  devices = list(devices) if devices is not None else jax.devices()
  return jax.sharding.Mesh(np.asarray(devices), ('data',))


def replicated(mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharding(mesh, leading_axes: int = 0) -> NamedSharding:
  """Shards the batch axis, which follows `leading_axes` unsharded axes (fused steps, the
  D minibatches of a GAN step): [B, ...] -> P('data'), [k, B, ...] -> P(None, 'data'), ..."""
  return NamedSharding(mesh, P(*([None] * leading_axes), 'data'))


def global_batch(local: dict, sharding: NamedSharding, leading_axes: int = 0) -> dict:
  """Assembles a global batch from each process's local slice of it."""
  axis = leading_axes
  out = {}
  for key, value in local.items():
    shape = list(value.shape)
    shape[axis] *= jax.process_count()
    out[key] = jax.make_array_from_process_local_data(sharding, value, tuple(shape))
  return out
