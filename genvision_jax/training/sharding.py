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


def batch_sharding(mesh, leading_steps: bool) -> NamedSharding:
  """Shards the batch axis: axis 0 of [B, ...], or axis 1 of [k, B, ...]."""
  return NamedSharding(mesh, P(None, 'data') if leading_steps else P('data'))


def global_batch(local: dict, sharding: NamedSharding, leading_steps: bool) -> dict:
  """Assembles a global batch from each process's local slice of it."""
  axis = 1 if leading_steps else 0
  out = {}
  for key, value in local.items():
    shape = list(value.shape)
    shape[axis] *= jax.process_count()
    out[key] = jax.make_array_from_process_local_data(sharding, value, tuple(shape))
  return out
