"""The batched host loop every feature network's `__call__` shares."""

from collections.abc import Callable, Mapping

import numpy as np


def batched(batch_fn: Callable, variables, images, batch_size: int, dims: Mapping[str, int],
            prepare: Callable | None = None) -> dict[str, np.ndarray]:
  """{key: [N, dims[key]] float32 numpy} of `batch_fn(variables, chunk)` (a jitted function
  returning a dict, or an array for a single key) over images [N, H, W, C] in chunks of
  `batch_size`, the last one zero-padded so that one compiled shape serves every call.
  `prepare` (optional) maps each host chunk first (e.g. a PIL resize). Dispatches run ahead;
  results are fetched at the end."""
  images = np.asarray(images)
  if images.ndim != 4:
    raise ValueError(f'expected images [N, H, W, C], got shape {images.shape}')
  n = images.shape[0]
  if n == 0:
    return {k: np.zeros((0, d), np.float32) for k, d in dims.items()}
  outputs = []
  for start in range(0, n, batch_size):
    chunk = images[start:start + batch_size]
    if prepare is not None:
      chunk = prepare(chunk)
    if len(chunk) < batch_size:
      chunk = np.concatenate([chunk, np.zeros((batch_size - len(chunk),) + chunk.shape[1:],
                                              chunk.dtype)])
    out = batch_fn(variables, chunk)
    outputs.append(out if isinstance(out, Mapping) else {next(iter(dims)): out})
  return {k: np.concatenate([np.asarray(o[k]) for o in outputs])[:n] for k in dims}
