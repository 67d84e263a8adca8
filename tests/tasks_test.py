"""Image-to-image degradations (genvision_jax/tasks.py) and classical baselines
(evaluation/baselines.py): shapes, determinism, known pixels kept, against scikit-image /
closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from skimage import color, transform

from genvision_jax import tasks
from genvision_jax.evaluation import baselines
from genvision_jax.methods import common


def _task(**fields):
  t = tasks.default_config()
  t.update(fields)
  return t


def _images(shape, seed=0):
  return np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)


@pytest.mark.parametrize('factor', [2, 4])
def test_area_downsampling_is_the_block_mean(factor):
  x = _images((2, 28, 28, 3))
  low = tasks.downsample(jnp.asarray(x), factor, 'area')
  expected = np.stack([transform.downscale_local_mean(im, (factor, factor, 1)) for im in x])
  np.testing.assert_allclose(low, expected, atol=1e-6)


def test_super_resolution_pairs():
  x = _images((3, 28, 28, 1))
  up = tasks.degrade(_task(factor=4, downsample='bicubic'), x, jax.random.key(0))
  assert up['input'].shape == x.shape and 'known' not in up
  np.testing.assert_array_equal(up['target'], x)
  low = tasks.degrade(_task(factor=4, upsample_input=False), x, jax.random.key(0))
  assert low['input'].shape == (3, 7, 7, 1)
  assert tasks.input_size(_task(factor=4, upsample_input=False), 28) == 7
  # A constant image stays constant through either downsampler and the bicubic upsampling.
  flat = np.full((1, 28, 28, 1), 0.3, np.float32)
  for method in tasks.DOWNSAMPLERS:
    pair = tasks.degrade(_task(factor=2, downsample=method), flat, jax.random.key(0))
    np.testing.assert_allclose(pair['input'], flat, atol=1e-5)


def test_center_hole_keeps_the_known_pixels_exactly():
  x = _images((2, 28, 28, 3))
  pair = tasks.degrade(_task(name='inpainting', mask='center', hole_fraction=0.5), x,
                       jax.random.key(0))
  known = np.asarray(pair['known'])[..., 0]
  assert pair['input'].shape == (2, 28, 28, 4)
  assert tasks.input_channels(_task(name='inpainting'), 3) == 4
  assert (known == 0).sum() == 2 * 14 * 14
  assert (known[:, 7:21, 7:21] == 0).all()
  np.testing.assert_array_equal(np.asarray(pair['input'])[..., :3][known == 1], x[known == 1])
  np.testing.assert_array_equal(np.asarray(pair['input'])[..., :3][known == 0], 0.0)
  np.testing.assert_array_equal(np.asarray(pair['input'])[..., 3], known)


@pytest.mark.parametrize('mask', ['boxes', 'strokes'])
def test_random_holes_are_deterministic_per_key_and_differ_between_keys(mask):
  task = _task(name='inpainting', mask=mask)
  x = _images((4, 28, 28, 1))
  a = tasks.degrade(task, x, jax.random.key(3))
  b = tasks.degrade(task, x, jax.random.key(3))
  c = tasks.degrade(task, x, jax.random.key(4))
  np.testing.assert_array_equal(a['input'], b['input'])
  assert not np.array_equal(a['known'], c['known'])
  holes = 1 - np.asarray(a['known'])[..., 0]
  assert (holes.sum(axis=(1, 2)) > 0).all() and (holes.mean(axis=(1, 2)) < 0.9).all()
  assert not np.array_equal(holes[0], holes[1])  # each image its own hole
  known = np.asarray(a['known']) == 1
  np.testing.assert_array_equal(np.asarray(a['input'])[..., :1][known], x[known])


def test_box_sides_stay_within_the_hole_fraction():
  hole = np.asarray(tasks.box_holes(jax.random.key(0), 28, 28, 1, 0.5))
  rows, cols = np.nonzero(hole)
  assert 0 < rows.max() - rows.min() + 1 <= 15 and 0 < cols.max() - cols.min() + 1 <= 15


def test_a_stroke_covers_the_pixels_within_half_its_width(monkeypatch):
  """One horizontal segment from (row 10.5, col 5) to (row 10.5, col 20), width 3: pixel
  centres within 1.5 of it — rows 9..11 between the ends, round caps beyond them."""
  points = jnp.asarray([[[10.5, 5.0], [10.5, 20.0]]]) / jnp.asarray([28.0, 28.0])
  monkeypatch.setattr(tasks.jax.random, 'uniform', lambda *a, **k: points)
  hole = np.asarray(tasks.stroke_holes(jax.random.key(0), 28, 28, 1, 2, 3.0))
  rows, cols = np.mgrid[0:28, 0:28] + 0.5
  along = np.clip(cols, 5.0, 20.0)
  expected = np.hypot(rows - 10.5, cols - along) <= 1.5
  np.testing.assert_array_equal(hole, expected)
  assert hole[8:13, 6:19].sum() == 3 * 13 and hole[8, 10] == 0 and hole[12, 10] == 0


def test_uncropping_border_and_half():
  x = _images((8, 28, 28, 1))
  border = tasks.degrade(_task(name='uncropping', uncrop='border', border_fraction=0.25), x,
                         jax.random.key(0))
  hidden = 1 - np.asarray(border['known'])[..., 0]
  assert (hidden.sum(axis=(1, 2)) == 28 * 28 - 14 * 14).all()
  assert (hidden[:, 7:21, 7:21] == 0).all()
  half = tasks.degrade(_task(name='uncropping', uncrop='half'), x, jax.random.key(1))
  hidden = 1 - np.asarray(half['known'])[..., 0]
  assert (hidden.sum(axis=(1, 2)) == 28 * 14).all()
  sides = {(hidden[i, :, 0].all(), hidden[i, :, -1].all(), hidden[i, 0].all(), hidden[i, -1].all())
           for i in range(8)}
  assert len(sides) > 1  # the hidden side is drawn per image


def test_colorization_luminance_is_rec601_luma():
  x = _images((2, 8, 8, 3))
  pair = tasks.degrade(_task(name='colorization'), x, jax.random.key(0))
  rgb01 = (x + 1) / 2
  y01 = (color.rgb2ycbcr(rgb01.reshape(-1, 8, 3))[..., 0].reshape(2, 8, 8) - 16) / 219
  np.testing.assert_allclose(np.asarray(pair['input'])[..., 0], 2 * y01 - 1, atol=1e-5)
  assert tasks.input_channels(_task(name='colorization'), 3) == 1
  with pytest.raises(ValueError, match='needs RGB images'):
    tasks.degrade(_task(name='colorization'), _images((1, 8, 8, 1)), jax.random.key(0))


def test_denoising_noise_has_the_configured_std_and_follows_the_key():
  x = np.zeros((4, 28, 28, 1), np.float32)
  a = tasks.degrade(_task(name='denoising', noise_std=0.3), x, jax.random.key(0))
  b = tasks.degrade(_task(name='denoising', noise_std=0.3), x, jax.random.key(0))
  np.testing.assert_array_equal(a['input'], b['input'])
  assert abs(float(np.std(a['input'])) - 0.3) < 0.01


def test_task_validation_names_each_bad_field():
  config = type('C', (), {})()
  config.data = type('D', (), {'image_size': 28})()
  config.task = _task(name='super_resolution', factor=3, downsample='nearest')
  check = common.ConfigChecks()
  tasks.validate(config, check)
  assert any('task.factor must be 2 or 4' in e for e in check.errors)
  assert any('task.downsample' in e for e in check.errors)
  config.task = _task(name='inpainting', mask='stars', hole_fraction=1.5)
  check = common.ConfigChecks()
  tasks.validate(config, check)
  assert len(check.errors) == 2
  config.task = _task(name='deblurring')
  check = common.ConfigChecks()
  tasks.validate(config, check)
  assert check.errors == [f"task.name must be one of {tasks.TASKS} (got 'deblurring')"]


def test_edge_and_mean_baselines_by_hand():
  x = np.tile(np.linspace(-1, 1, 28, dtype=np.float32)[None, None, :, None], (1, 28, 1, 1))
  known = np.ones((1, 28, 28, 1), np.float32)
  known[:, :, :14] = 0  # the left half hidden
  pair = {'target': x, 'input': np.concatenate([x * known, known], -1), 'known': known}
  edge = baselines.classical(_task(name='uncropping'), pair, 'edge')
  np.testing.assert_array_equal(edge[:, :, :14], np.broadcast_to(x[:, :, 14:15], (1, 28, 14, 1)))
  np.testing.assert_array_equal(edge[:, :, 14:], x[:, :, 14:])
  mean = baselines.classical(_task(name='inpainting'), pair, 'mean')
  np.testing.assert_allclose(mean[:, :, :14], x[:, :, 14:].mean(), atol=1e-6)


def test_biharmonic_fill_restores_a_linear_ramp():
  """Linear functions are biharmonic: inpainting a ramp with a centre hole restores it."""
  ramp = np.add.outer(np.linspace(-0.5, 0.5, 28), np.linspace(-0.3, 0.3, 28))
  x = np.repeat(ramp[None, :, :, None], 3, axis=-1).astype(np.float32)
  pair = tasks.degrade(_task(name='inpainting', mask='center'), x, jax.random.key(0))
  pair = jax.tree.map(np.asarray, pair)
  filled = baselines.classical(_task(name='inpainting'), pair, 'biharmonic')
  np.testing.assert_allclose(filled, x, atol=1e-3)
  with pytest.raises(ValueError, match="does not apply to task 'inpainting'"):
    baselines.classical(_task(name='inpainting'), pair, 'bicubic')


def test_bicubic_and_grey_baselines():
  x = _images((2, 28, 28, 3))
  task = _task(factor=2, upsample_input=False)
  pair = jax.tree.map(np.asarray, tasks.degrade(task, x, jax.random.key(0)))
  np.testing.assert_allclose(baselines.classical(task, pair),
                             tasks.upsample_bicubic(jnp.asarray(pair['input']), (28, 28)))
  grey = baselines.classical(_task(name='colorization'),
                             jax.tree.map(np.asarray, tasks.degrade(_task(name='colorization'),
                                                                    x, jax.random.key(0))))
  assert grey.shape == x.shape and np.all(grey[..., 0] == grey[..., 2])


def test_presets_set_the_named_task_and_the_first_one_wins():
  t = _task(name='denoising')
  tasks.apply_preset(t, ['smoke', 'inpainting', 'sr4'])
  assert (t.name, t.mask, t.hole_fraction) == ('inpainting', 'center', 0.5)
  t = _task(name='denoising')
  tasks.apply_preset(t, ['l1'])
  assert t.name == 'denoising'
