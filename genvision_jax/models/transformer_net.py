"""The image-transformation network of fast style transfer (Johnson, Alahi & Fei-Fei 2016).

Johnson et al.'s architecture with Ulyanov et al.'s instance normalization (as their released
code and most re-implementations use): a 9x9 convolution, two stride-2 3x3 convolutions
(width, 2 width, 4 width channels), `res_blocks` residual blocks of two 3x3 convolutions, two
x2 nearest-neighbour upsamplings each followed by a 3x3 convolution (upsample-convolution
instead of fractionally strided convolutions: no checkerboard artefacts, Odena et al. 2016),
a 9x9 convolution to RGB and tanh. Every convolution but the last is followed by instance
normalization (unless `norm='none'`) and ReLU; reflection padding throughout. Images of any
size divisible by 4 go through unchanged in size (other sizes are padded by reflection and
cropped back).

Two options, both measured on the offline photos (README, "Fast style transfer"):
- `norm='none'` drops the normalization layers. With instance norm the network learned to paint
  a dark blob on every 64 px patch (a way to set each image's feature statistics, like
  StyleGAN's "droplet" artefact of its AdaIN); without normalization the blob does not appear.
- `residual=True` outputs tanh(atanh(x) + r(x)): the network starts at the identity and learns a
  change of the input. The random-filter features are blind to a flat grey level (their
  filters have zero mean), so a network that must rebuild the whole image from them loses the
  brightness of flat regions; the residual keeps it.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp


def _conv(x, features: int, kernel: int, stride: int = 1, zero: bool = False):
  pad = kernel // 2
  x = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode='reflect')
  init = nn.initializers.zeros if zero else nn.linear.default_kernel_init
  return nn.Conv(features, (kernel, kernel), strides=(stride, stride), padding='VALID',
                 kernel_init=init)(x)


NORMS = ('instance', 'none')


def _norm(kind: str, x):
  if kind == 'none':
    return x
  # Instance normalization: GroupNorm with one group per channel (statistics per image and
  # channel over positions), with a learned scale and bias.
  return nn.GroupNorm(num_groups=None, group_size=1, epsilon=1e-5)(x)


class ResidualBlock(nn.Module):
  norm: str = 'instance'

  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]
    h = nn.relu(_norm(self.norm, _conv(x, c, 3)))
    return x + _norm(self.norm, _conv(h, c, 3))


class TransformerNet(nn.Module):
  """images [N, H, W, 3] in [-1, 1] -> stylized images [N, H, W, 3] in [-1, 1]."""
  width: int = 32
  res_blocks: int = 5
  norm: str = 'instance'   # one of NORMS
  residual: bool = False   # output tanh(atanh(x) + r(x)) instead of tanh(r(x))

  @nn.compact
  def __call__(self, x):
    if self.norm not in NORMS:
      raise ValueError(f'norm must be one of {NORMS} (got {self.norm!r})')
    inputs = x
    h0, w0 = x.shape[1:3]
    ph, pw = (-h0) % 4, (-w0) % 4
    if ph or pw:
      x = jnp.pad(x, ((0, 0), (0, ph), (0, pw), (0, 0)), mode='reflect')
    w = self.width
    h = nn.relu(_norm(self.norm, _conv(x, w, 9)))
    h = nn.relu(_norm(self.norm, _conv(h, 2 * w, 3, 2)))
    h = nn.relu(_norm(self.norm, _conv(h, 4 * w, 3, 2)))
    for _ in range(self.res_blocks):
      h = ResidualBlock(self.norm)(h)
    for c in (2 * w, w):
      n, hh, ww, ch = h.shape
      h = jax.image.resize(h, (n, 2 * hh, 2 * ww, ch), 'nearest')
      h = nn.relu(_norm(self.norm, _conv(h, c, 3)))
    r = _conv(h, 3, 9, zero=self.residual)[:, :h0, :w0]  # residual: starts at the identity
    if self.residual:
      # atanh of the input kept off +-1 (finite); r = 0 is the identity up to that clip
      return jnp.tanh(jnp.arctanh(jnp.clip(inputs, -0.999, 0.999)) + r)
    return jnp.tanh(r)
