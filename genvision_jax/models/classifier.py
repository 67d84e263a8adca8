"""A small convolutional classifier of 28 x 28 grey digits: the domain feature network of the
evaluation (genvision_jax/features/digits.py).

conv 3x3 (32) - ReLU - avgpool 2 - conv 3x3 (64) - ReLU - avgpool 2 - flatten - dense (128) -
ReLU -> 128-d features -> dense -> class logits. No BatchNorm and no dropout, so features are a
deterministic function of one image.
"""

import flax.linen as nn

from genvision_jax.models.layers import Conv


class DigitClassifier(nn.Module):
  """images [B, 28, 28, 1] in [-1, 1] -> {'features': [B, 128], 'logits': [B, classes]}."""
  num_classes: int = 10
  widths: tuple[int, ...] = (32, 64)
  feature_dim: int = 128

  @nn.compact
  def __call__(self, x):
    h = x
    for i, width in enumerate(self.widths):
      h = nn.relu(Conv(width, 3, name=f'conv_{i}')(h))
      h = nn.avg_pool(h, (2, 2), strides=(2, 2))
    features = nn.relu(nn.Dense(self.feature_dim, name='features')(h.reshape(h.shape[0], -1)))
    return {'features': features,
            'logits': nn.Dense(self.num_classes, name='head')(features)}
