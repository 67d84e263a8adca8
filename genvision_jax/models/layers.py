"""Building blocks shared by the architectures."""

from typing import Callable

import flax.linen as nn


def upsampling_plan(image_size: int, min_base: int = 4) -> tuple[int, int]:
  """(number of 2x stages, base resolution) so that base * 2**stages == image_size.

  Halves while the size stays even and at least `min_base`: 28 -> (2, 7), 32 -> (3, 4),
  64 -> (4, 4).
  """
  if image_size < min_base:
    raise ValueError(f'image size {image_size} is smaller than {min_base}')
  stages, base = 0, image_size
  while base % 2 == 0 and base // 2 >= min_base:
    base //= 2
    stages += 1
  if stages == 0:
    raise ValueError(f'image size {image_size} cannot be halved; use 28, 32 or 64')
  return stages, base


def norm_layer(kind: str, train: bool, name: str | None = None) -> Callable:
  """'batch' (BatchNorm, running averages at eval), 'layer', or 'none' (identity)."""
  if kind == 'batch':
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, name=name)
  if kind == 'layer':
    return nn.LayerNorm(name=name)
  if kind == 'none':
    return lambda x: x
  raise ValueError(f"unknown normalization '{kind}'; use 'batch', 'layer' or 'none'")


NORMS = ('batch', 'layer', 'none')
