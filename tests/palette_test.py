"""Conditional diffusion for image-to-image (methods/palette.py): the input reaches the U-Net,
known pixels are kept exactly by the sampler, the loss covers the hidden pixels only."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genvision_jax import configs, methods
from tests.conftest import REPO


def _method(variant='inpainting,smoke', **overrides):
  config = configs.load(str(REPO / 'experiments' / 'i2i' / f'palette_mnist.py:{variant}'),
                        overrides)
  configs.validate(config)
  return config, methods.create(config, (32, 32, 1))


def _digits(n=4, seed=0):
  return jax.random.uniform(jax.random.key(seed), (n, 32, 32, 1), minval=-1.0)


@pytest.mark.parametrize('sampler', ['ddim', 'ddpm'])
def test_the_sampler_keeps_the_known_pixels_exactly(sampler):
  _, m = _method()
  state = m.create_state(jax.random.key(0))
  pair = m.pairs(_digits(), jax.random.key(1))
  out = jax.jit(lambda s, x, r: m.translate(s, x, r, sampler=sampler))(
      state, pair['input'], jax.random.key(2))
  known = np.asarray(pair['known']) == 1
  np.testing.assert_array_equal(np.asarray(out)[known], np.asarray(pair['target'])[known])
  assert not np.allclose(np.asarray(out)[~known], np.asarray(pair['target'])[~known])


def test_the_denoiser_sees_the_input():
  _, m = _method('sr4,smoke')
  params = m.create_state(jax.random.key(0)).params
  leaves, tree = jax.tree.flatten(params)  # the output layer starts at zero: perturb it all
  keys = jax.random.split(jax.random.key(9), len(leaves))
  params = jax.tree.unflatten(tree, [p + 0.05 * jax.random.normal(k, p.shape)
                                     for p, k in zip(leaves, keys)])
  xt, t = _digits(2), jnp.full((2,), 50)
  a = m.network_output(params, xt, t, m.pairs(_digits(2, 1), None)['input'], 0.0)
  b = m.network_output(params, xt, t, m.pairs(_digits(2, 2), None)['input'], 0.0)
  assert not np.allclose(a, b)


def test_the_loss_ignores_the_known_pixels():
  """With the network's output forced, the loss is the hidden pixels' mean squared error: the
  known pixels' targets can be anything."""
  _, m = _method()
  state = m.create_state(jax.random.key(0))
  batch = {'image': _digits()}
  loss, _ = m.batch_loss(state.params, batch, jax.random.key(3))
  m_zero = m
  m_zero._apply = lambda params, xt, t, cond, **kw: jnp.zeros_like(xt)  # pylint: disable=protected-access
  task_rng, t_rng, n_rng, _ = jax.random.split(jax.random.key(3), 4)
  pair = m.pairs(batch['image'], task_rng)
  noise = jax.random.normal(n_rng, pair['target'].shape)
  hidden = 1 - np.asarray(pair['known'])
  expected = (np.asarray(noise) ** 2 * hidden).sum(axis=(1, 2, 3)) / hidden.sum(axis=(1, 2, 3))
  zero_loss, t = m_zero.batch_loss(state.params, batch, jax.random.key(3))
  np.testing.assert_allclose(zero_loss, expected, rtol=1e-5)
  assert loss.shape == (4,) and t.shape == (4,)


def test_one_step_trains_and_the_config_refuses_what_it_cannot_do():
  _, m = _method()
  state = m.create_state(jax.random.key(0))
  new, metrics = jax.jit(m.train_step)(state, {'image': _digits()})
  assert int(new.step) == 1 and np.isfinite(float(metrics['loss']))
  with pytest.raises(configs.ConfigError) as e:
    _method(**{'diffusion.guidance': 2.0, 'task.name': 'colorization'})
  assert 'palette has no classifier-free guidance' in str(e.value)
  with pytest.raises(ValueError, match='palette translates images'):
    m.generate(state, jax.random.key(0), 4)


def test_uncropping_trains_and_translates_through_the_cli(tmp_path):
  """`genvision train` on palette_mnist:uncropping,smoke, then `genvision translate`: the
  strip's output column keeps the known centre of each target exactly."""
  from tests.conftest import run_main  # pylint: disable=g-import-not-at-top
  workdir, out = tmp_path / 'run', tmp_path / 'strip.png'
  r = run_main('train', f'--config={REPO}/experiments/i2i/palette_mnist.py:uncropping,smoke',
              f'--workdir={workdir}')
  assert r.returncode == 0, r.stderr[-2000:]
  r = run_main('translate', f'--workdir={workdir}', '--num=2', f'--out={out}')
  assert r.returncode == 0, r.stderr[-2000:]
  from PIL import Image  # pylint: disable=g-import-not-at-top
  with Image.open(out) as im:
    strip = np.asarray(im, np.int32)
  # viz.image_grid: 32 px cells after a 2 px border and 2 px gaps, all upscaled 2x.
  cell = lambda row, col: strip[2 * (2 + row * 34):2 * (34 + row * 34),
                                2 * (2 + col * 34):2 * (34 + col * 34)]
  for row in range(2):
    output, target = cell(row, 1), cell(row, 2)
    centre = slice(2 * 8, 2 * 24)  # the known 16 x 16 centre (border_fraction 0.25)
    np.testing.assert_array_equal(output[centre, centre], target[centre, centre])
    assert not np.array_equal(output, target)  # the border is generated
