"""Compiled training dispatches: one step or k fused steps, fed from the host or from a
dataset that lives on the devices.

A dispatch is `fn(state, source) -> (state, metrics)`. With host input, `source` is the batch
(k stacked step batches when fused); with device-resident input it is the whole dataset,
sharded over the devices, and each step gathers its own minibatches at the indices of the
deterministic (seed, step) order (`data.minibatch_indices`), so both paths see the same batches.
Fused dispatches are a `lax.scan` over steps, traced with `loop_safe_convolutions` (see
`models.layers.conv2d_loop_safe` for why XLA:CPU needs it).
"""

import jax
import jax.numpy as jnp

from genvision_jax import data as data_lib
from genvision_jax.models import layers

# Fused steps per dispatch when config.train.steps_per_dispatch = 0 ('auto'). Measured on a
# 2-core CPU (benchmarks/RESULTS.md): fusing gains nothing there (a DCGAN step is ~70 ms, a
# dispatch ~0.1 ms) and slows the small VAE step; on GPU/TPU, where a step takes
# milliseconds and dispatch and host round trips dominate, several steps per call is the
# known win (score_sde, vdm).
AUTO_STEPS_PER_DISPATCH = {'cpu': 1}
AUTO_STEPS_PER_DISPATCH_ACCELERATOR = 8


def steps_per_dispatch(config) -> int:
  k = int(config.train.steps_per_dispatch)
  if k > 0:
    return k
  return AUTO_STEPS_PER_DISPATCH.get(jax.default_backend(), AUTO_STEPS_PER_DISPATCH_ACCELERATOR)


def phase_at(method, step: int):
  """The method's training phase at `step` (a hashable, e.g. ProGAN's stage), or None.

  Methods whose step changes shape over training (progressive growing) define
  `phase(step)`, `phase_end(step)` (first step of the next phase, None for the last) and
  `train_step_for(phase)`; the loop compiles one dispatch per phase and never lets a fused
  dispatch cross a phase boundary.
  """
  return method.phase(step) if hasattr(method, 'phase') else None


def device_gather(method, config, num_examples: int, batch_sharding):
  """fn(state, dataset) -> batch: this step's minibatches gathered on the devices."""
  t = config.train
  count = method.minibatches_per_step

  def gather(state, dataset):
    first = state.step * (count or 1)
    idx = jnp.stack([data_lib.minibatch_indices(t.seed, first + j, t.batch_size, num_examples)
                     for j in range(count or 1)])
    if count is None:
      idx = idx[0]
    batch = {key: value[idx] for key, value in dataset.items()}  # labels, tokens, ...
    batch['image'] = data_lib.to_model_range(batch['image'])
    return jax.lax.with_sharding_constraint(batch, batch_sharding)

  return gather


def make_dispatch(train_step, k: int, gather=None):
  """The function one compiled call runs: k training steps (k >= 1).

  gather: None for host input (source = the batch, with a leading k axis when k > 1), or
    `device_gather(...)` for device-resident input (source = the dataset).
  """
  if gather is None:
    one = train_step
  else:
    def one(state, dataset):
      return train_step(state, gather(state, dataset))

  if k == 1:
    return one

  def fused(state, source):
    with layers.loop_safe_convolutions():
      if gather is None:
        return jax.lax.scan(one, state, source)
      return jax.lax.scan(lambda s, _: one(s, source), state, None, length=k)

  return fused
