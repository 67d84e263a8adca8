"""What every image-to-image method shares: the task's pairs, how an input is shown, the
training loop's sample grid (rows input | output | target) and the refusal to sample from noise.
A method mixes in `ImageToImage`, calls `set_task(config, image_shape)` and defines
`translate(state, inputs, rng, use_ema=True)`."""

import functools

import jax
import jax.numpy as jnp

from genvision_jax import tasks


class ImageToImage:
  """Mixin of the image-to-image methods (pix2pix, palette)."""

  def set_task(self, config, image_shape) -> None:
    """self.task, self.image_shape and self.input_shape (the model's input) for images of
    `image_shape`; refuses a task whose input is not the output's size (these models map an
    image to one of the same size) or that the images' channels cannot serve."""
    self.task, self.image_shape = config.task, tuple(image_shape)
    size, channels = self.image_shape[0], self.image_shape[-1]
    tasks.check_channels(self.task, channels)
    if tasks.input_size(self.task, size) != size:
      raise ValueError(f'{config.method} maps an image to one of the same size: use '
                       '--config.task.upsample_input=True for super-resolution')
    self.input_shape = (size, size, tasks.input_channels(self.task, channels))
    # What the network produces: the image, or its chroma (colorization with keep_luma).
    self.keep_luma = tasks.output_channels(self.task, channels) != channels
    self.output_shape = (size, size, tasks.output_channels(self.task, channels))

  def network_target(self, target):
    """What the network learns to produce for `target` images: the images, or their chroma."""
    return tasks.chroma(target) if self.keep_luma else target

  def network_to_image(self, out, inputs):
    """The output image of network output `out` for task `inputs`: `out` itself, or the
    RGB image of the input's luma and the chroma `out` (not clipped)."""
    return tasks.compose_luma_chroma(inputs, out) if self.keep_luma else out

  def pairs(self, images, rng):
    """(input, target[, known]) of `images` for the task (see `genvision_jax.tasks`)."""
    return tasks.degrade(self.task, images, rng)

  def display_input(self, pair):
    """The input as an image of the target's shape, for strips: the image channels of an
    inpainting/uncropping input, luminance as grey, a small input upsampled."""
    x, target = pair['input'], pair['target']
    b, h, w, c = target.shape
    if x.shape[1] != h:
      x = tasks.upsample_bicubic(x, (h, w))
    x = x[..., :c]
    return jnp.broadcast_to(x, (b, h, w, c)) if x.shape[-1] != c else x

  def translation_grid(self, state, rng, images, use_ema: bool = True):
    """Rows input | output | target for clean `images` [N, H, W, C]: [3N, H, W, C]. The
    pairs are keyed by a fixed key, so each grid of a run shows the same inputs."""
    pair = self.pairs(images, jax.random.key(0))
    out = jnp.clip(self.translate(state, pair['input'], rng, use_ema), -1.0, 1.0)
    rows = jnp.stack([jnp.clip(self.display_input(pair), -1.0, 1.0), out, pair['target']], 1)
    return rows.reshape(-1, *self.image_shape)

  def grid_from_data(self, images, num: int):
    """(fn(state, rng) -> grid images, columns) of the training loop's sample grid: the first
    num // 3 of `images` as rows input | output | target."""
    rows = max(1, num // 3)
    return functools.partial(self.translation_grid, images=jnp.asarray(images[:rows])), 3

  def generate(self, state, rng, num: int, **kwargs):
    del state, rng, num, kwargs
    raise ValueError(f'{self.config.method} translates images, it does not sample from noise: '
                     'its training run writes input | output | target grids (samples/), and '
                     '`genvision evaluate` translates the test split')
