"""Colorization: the colour metrics (evaluation/colour.py) against published CIEDE2000 values
and hand computations, evaluation of colour runs without a colour feature network, and the
photo configs trained, evaluated and compared through the CLI."""

import json
import math
import os

import numpy as np
import pytest
from skimage import color

from genvision_jax.evaluation import colour, runner, translation
from tests.conftest import experiment, run_main

# Sharma, Wu & Dalal (2005), "The CIEDE2000 color-difference formula: implementation notes,
# supplementary test data, and mathematical observations", Table 1 (the pairs also in
# scikit-image's ciede2000_test_data.txt): (Lab 1, Lab 2, Delta E00), pairs 7, 17, 18, 25;
# all four colours lie inside the sRGB gamut, so they survive the trip through RGB.
SHARMA = (
    ((50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
    ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
    ((50.0, 2.5, 0.0), (61.0, -5.0, 29.0), 22.8977),
    ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
)


def _rgb(lab_pixels) -> np.ndarray:
  """Lab pixels [H, W, 3] -> one RGB image [1, H, W, 3] in [-1, 1]."""
  return 2.0 * color.lab2rgb(np.asarray(lab_pixels, np.float64)) - 1.0


def test_ciede2000_of_rgb_images_matches_sharmas_published_values():
  for lab1, lab2, expected in SHARMA:
    got = colour.ciede2000(_rgb([[lab1]])[None], _rgb([[lab2]])[None])
    assert got.shape == (1,) and got[0] == pytest.approx(expected, abs=1e-4)
  # One image of two pixels (pairs 7 and 17): the mean over its pixels; a batch of images.
  a = _rgb([[SHARMA[0][0], SHARMA[1][0]]])[None]
  b = _rgb([[SHARMA[0][1], SHARMA[1][1]]])[None]
  got = colour.ciede2000(np.concatenate([a, b]), np.concatenate([b, b]))
  np.testing.assert_allclose(got, [(2.3669 + 27.1492) / 2, 0.0], atol=1e-4)


def _srgb_grey_lightness(v: float) -> float:
  """CIE L* of the sRGB grey (v, v, v), v in [0, 1], by hand (IEC 61966-2-1; CIE 1976)."""
  y = ((v + 0.055) / 1.055)**2.4 if v > 0.04045 else v / 12.92
  return 116.0 * y**(1 / 3) - 16.0 if y > (6 / 29)**3 else (29 / 3)**3 * y


def test_ciede2000_of_greys_is_the_lightness_term_by_hand():
  """Two greys differ only in L*: Delta E00 = |Delta L| / S_L, S_L = 1 + 0.015 (Lm - 50)^2 /
  sqrt(20 + (Lm - 50)^2), Lm the mean lightness."""
  for u, v in ((0.2, 0.3), (0.5, 0.9), (0.02, 0.6)):
    l1, l2 = _srgb_grey_lightness(u), _srgb_grey_lightness(v)
    lm = (l1 + l2) / 2
    expected = abs(l1 - l2) / (1 + 0.015 * (lm - 50)**2 / math.sqrt(20 + (lm - 50)**2))
    a = np.full((1, 2, 2, 3), 2 * u - 1)
    b = np.full((1, 2, 2, 3), 2 * v - 1)
    assert colour.ciede2000(a, b)[0] == pytest.approx(expected, abs=2e-3)


def test_colourfulness_of_grey_is_zero_and_of_two_pixels_by_hand():
  grey = np.random.default_rng(0).uniform(-1, 1, (3, 8, 8, 1)).repeat(3, axis=-1)
  np.testing.assert_array_equal(colour.colourfulness(grey), np.zeros(3))
  # Pure red and pure blue, RGB 0..255: rg = (255, 0), yb = (127.5, -255); population sds
  # 127.5 and 191.25, means 127.5 and -63.75.
  image = np.asarray([[[[1.0, -1.0, -1.0], [-1.0, -1.0, 1.0]]]])
  expected = math.hypot(127.5, 191.25) + 0.3 * math.hypot(127.5, -63.75)
  assert colour.colourfulness(image)[0] == pytest.approx(expected, rel=1e-12)
  m = colour.colour_metrics(grey, np.concatenate([image.repeat(8, 1).repeat(4, 2)] * 3))
  np.testing.assert_allclose(m[colour.COLOURFULNESS_ERROR], [expected] * 3, rtol=1e-12)


def test_colour_images_get_no_feature_network_offline_and_say_so(monkeypatch):
  monkeypatch.delenv('GENVISION_INCEPTION_WEIGHTS', raising=False)
  said = []
  assert translation.feature_networks(None, 3, None, said.append) == ()
  assert len(said) == 1 and 'no feature network for colour images' in said[0]
  assert translation.feature_networks(None, 1, None, said.append) == ('digits_cnn',)
  assert translation.feature_networks(['inception'], 3, None, said.append) == ('inception',)
  assert len(said) == 1


@pytest.fixture(scope='module')
def pix2pix_colour_run(tmp_path_factory):
  """pix2pix_photos.py:smoke trained and evaluated through the CLI."""
  workdir = str(tmp_path_factory.mktemp('colour') / 'p2p')
  r = run_main('train', f'--config={experiment("i2i/pix2pix_photos.py:smoke")}',
              f'--workdir={workdir}')
  assert r.returncode == 0, r.stderr[-2000:]
  env = {k: v for k, v in os.environ.items() if k != 'GENVISION_INCEPTION_WEIGHTS'}
  r = run_main('evaluate', f'--workdir={workdir}', '--bootstrap=20', env=env)
  assert r.returncode == 0, r.stderr[-2000:]
  return workdir, r.stdout


def test_colour_run_is_evaluated_with_colour_metrics_and_compared(pix2pix_colour_run, tmp_path):
  workdir, stdout = pix2pix_colour_run
  assert 'no feature network for colour images offline' in stdout
  with open(os.path.join(workdir, 'eval', 'metrics.json')) as f:
    run = json.load(f)
  grey_dir = os.path.join(workdir, 'eval', 'baselines', 'grey')
  with open(os.path.join(grey_dir, 'eval', 'metrics.json')) as f:
    grey = json.load(f)['metrics']
  assert run['protocol']['feature_networks'] == [] and run['protocol']['dataset'] == (
      'photo_patches/32')
  # The grey baseline has no colour at all: its colourfulness error is the targets'.
  assert grey[colour.COLOURFULNESS] == 0.0
  assert grey[colour.COLOURFULNESS_ERROR] == pytest.approx(grey[colour.COLOURFULNESS_TARGET])
  assert grey[colour.COLOURFULNESS_TARGET] > 10  # the test photos are colourful
  assert grey[colour.CIEDE2000] > 1
  with np.load(os.path.join(workdir, 'eval', 'per_example.npz')) as f:
    n = run['protocol']['examples']
    assert f[colour.CIEDE2000].shape == (n,) and f[colour.COLOURFULNESS_ERROR].shape == (n,)
    assert colour.COLOURFULNESS not in f.files  # no better direction: not paired-tested
  out = runner.compare([workdir, grey_dir], num_resamples=200)
  paired = {t['metric'] for t in out['tests'] if t['test'] == 'paired_bootstrap'}
  assert paired == {f'{k} (per example)' for k in
                    ('mse', 'psnr', 'ssim', colour.CIEDE2000, colour.COLOURFULNESS_ERROR)}
  assert 'colour/ciede2000 (lower is better)' in out['table']
  assert 'colour/colourfulness (no better direction)' in out['table']
  r = run_main('translate', f'--workdir={workdir}', '--split=test', '--num=2', '--samples=2',
              f'--out={tmp_path / "strip.png"}')
  assert r.returncode == 0, r.stderr[-2000:]


def test_palette_colorization_trains_through_the_cli(tmp_path):
  r = run_main('train', f'--config={experiment("i2i/palette_photos.py:smoke")}',
              f'--workdir={tmp_path / "run"}')
  assert r.returncode == 0, r.stderr[-2000:]
  assert os.path.isdir(tmp_path / 'run' / 'checkpoints')


# ----------------------------------------------------------------------------------------------
# Colorization keeping the input's luma (task.keep_luma): the networks produce chroma only.


def test_luma_and_chroma_are_scikit_images_ycbcr_and_invert():
  """tasks.luminance / tasks.chroma are BT.601 Y'CbCr (scikit-image's rgb2ycbcr, rescaled to
  [-1, 1]); compose_luma_chroma inverts them and keeps the luma whatever the chroma."""
  from genvision_jax import tasks  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  x = rng.uniform(-1, 1, (2, 5, 5, 3)).astype(np.float32)
  ycc = color.rgb2ycbcr((x.astype(np.float64) + 1) / 2)  # Y in [16, 235], Cb Cr in [16, 240]
  y, c = np.asarray(tasks.luminance(x)), np.asarray(tasks.chroma(x))
  np.testing.assert_allclose(y[..., 0], 2 * (ycc[..., 0] - 16) / 219 - 1, atol=1e-5)
  np.testing.assert_allclose(c, (ycc[..., 1:] - 128) / 112, atol=1e-5)
  np.testing.assert_allclose(tasks.compose_luma_chroma(y, c), x, atol=1e-5)
  other = rng.uniform(-1, 1, (2, 5, 5, 2)).astype(np.float32)
  np.testing.assert_allclose(tasks.luminance(tasks.compose_luma_chroma(y, other)), y, atol=1e-5)
  np.testing.assert_allclose(tasks.chroma(np.repeat(x[..., :1], 3, -1)), 0.0, atol=1e-6)


@pytest.mark.parametrize('name', ['pix2pix_photos', 'palette_photos'])
def test_keep_luma_outputs_carry_the_inputs_luma(name):
  """With task.keep_luma the network has 2 output channels (chroma) and every output pixel
  inside the RGB cube has the input's luma exactly; without it, an untrained network's do not.
  (palette: an untrained chain ends at x0 = +-1 everywhere, outside the cube, so its end is
  forced to small values; the chain itself is tested in palette_test.)"""
  import jax  # pylint: disable=g-import-not-at-top
  from genvision_jax import configs, methods, tasks  # pylint: disable=g-import-not-at-top
  images = jax.random.uniform(jax.random.key(1), (4, 32, 32, 3), minval=-1.0)
  for keep in (True, False):
    config = configs.load(experiment(f'i2i/{name}.py:smoke'), {'task.keep_luma': keep})
    configs.validate(config)
    m = methods.create(config, (32, 32, 3))
    assert m.output_shape[-1] == (2 if keep else 3)
    if name == 'palette_photos':
      m.reverse_chain = lambda params, x_T, *a, **k: 0.2 * x_T
    state = m.create_state(jax.random.key(0))
    pair = m.pairs(images, jax.random.key(2))
    out = np.asarray(jax.jit(m.translate)(state, pair['input'], jax.random.key(3)))
    assert out.shape == images.shape
    inside = np.all(np.abs(out) < 0.999, axis=-1)
    assert inside.mean() > 0.3
    luma, given = np.asarray(tasks.luminance(out))[..., 0], np.asarray(pair['input'])[..., 0]
    if keep:
      np.testing.assert_allclose(luma[inside], given[inside], atol=1e-5)
    else:
      assert np.abs(luma[inside] - given[inside]).mean() > 0.01


def test_keep_luma_is_for_colorization_only_and_old_runs_load_without_it():
  from genvision_jax import configs  # pylint: disable=g-import-not-at-top
  config = configs.load(experiment('i2i/pix2pix_mnist.py:smoke'), {'task.keep_luma': True})
  with pytest.raises(configs.ConfigError, match='keep_luma applies to colorization only'):
    configs.validate(config)
  old = configs.load(experiment('i2i/palette_photos.py:smoke')).to_dict()
  del old['task']['keep_luma']
  assert configs.from_dict(old).task.keep_luma is False
