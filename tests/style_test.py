"""Style transfer and the feature-network registry: the Gram matrix and the losses by hand, the
random-filter network against scipy, Gatys et al.'s optimization (content loss zero at the
content image, the loss falls, colour preservation keeps the content's chroma) and the
`genvision stylize` command on awkward inputs."""

import json
import os
import shutil

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage
from PIL import Image

from genvision_jax import features, losses, style
from genvision_jax.features import random_filters

from tests.conftest import REPO, run_main


# -- losses by hand ----------------------------------------------------------------------------


def test_gram_matrix_and_style_loss_by_hand():
  # One example, 1 x 2 positions (M = 2), N = 2 channels: rows of F are (1, 2) and (3, 4).
  f = jnp.array([[[[1.0, 2.0], [3.0, 4.0]]]])
  np.testing.assert_allclose(losses.gram_matrix(f)[0], [[5.0, 7.0], [7.0, 10.0]])
  # Gatys et al.: E = sum((G_u - A_u)^2) / (4 N^2 M^2) with G_u = F^T F = [[10, 14], [14, 20]]
  # and A_u = 0: (100 + 196 + 196 + 400) / (4 * 4 * 4) = 892 / 64 = 13.9375.
  np.testing.assert_allclose(losses.style_layer_loss(f, jnp.zeros((2, 2))), [13.9375])
  # Against its own Gram matrix: zero.
  np.testing.assert_allclose(losses.style_layer_loss(f, losses.gram_matrix(f)[0]), [0.0])


def test_content_loss_and_total_variation_by_hand():
  f, p = jnp.array([[[[1.0, 2.0]]]]), jnp.array([[[[0.0, 4.0]]]])
  np.testing.assert_allclose(losses.content_loss(f, p), [0.5 * (1 + 4) / 2])
  x = jnp.array([[[0.0], [1.0]], [[3.0], [5.0]]])[None]  # [[0, 1], [3, 5]]
  # vertical |3 - 0|, |5 - 1| -> mean 3.5; horizontal |1 - 0|, |5 - 3| -> mean 1.5
  np.testing.assert_allclose(losses.total_variation(x), [5.0])


# -- the registry ------------------------------------------------------------------------------


def test_registry_lists_networks_and_refuses_what_they_cannot_do(monkeypatch, tmp_path):
  assert set(features.names()) == {'digits_cnn', 'inception', 'vgg16', 'vgg19', 'random'}
  with pytest.raises(features.FeatureError, match='registered: digits_cnn, inception'):
    features.spec('vgg21')
  monkeypatch.delenv('GENVISION_VGG19_WEIGHTS', raising=False)
  with pytest.raises(features.WeightsNotFoundError) as e:
    features.load('vgg19')
  message = str(e.value)
  for part in ('vgg19-dcbb9e9d.pth', 'download.pytorch.org', 'GENVISION_VGG19_WEIGHTS'):
    assert part in message, message
  monkeypatch.setenv('GENVISION_VGG19_WEIGHTS', str(tmp_path / 'absent.pth'))
  with pytest.raises(features.WeightsNotFoundError, match='absent.pth'):
    features.load('vgg19')
  with pytest.raises(features.FeatureError, match='no weight file'):
    features.load('random', weights='x.npz')
  digits = features.load('digits_cnn')
  with pytest.raises(features.FeatureError, match='exposes no feature maps; use one of vgg16'):
    digits.check_layers(['features'])
  net = features.load('random')
  with pytest.raises(features.FeatureError, match='no layer.*relu4_2.*scale0, scale1'):
    net.check_layers(['scale0', 'relu4_2'])
  assert features.spec('vgg19').layers[:2] == ('conv1_1', 'relu1_1')
  assert features.parse_weights(['vgg19=/w/v.pth']) == {'vgg19': '/w/v.pth'}
  for bad, match in (('vgg19', 'write NAME=PATH'), ('vgg21=/a', 'unknown feature network')):
    with pytest.raises(features.FeatureError, match=match):
      features.parse_weights([bad])


# -- the random-filter network -----------------------------------------------------------------


def test_random_filters_are_seeded_zero_mean_unit_norm_and_match_scipy():
  a, b = random_filters.random_filters(0), random_filters.random_filters(0)
  c = random_filters.random_filters(1)
  k0 = a['params']['scale0']['kernel']
  assert k0.shape == (5, 5, 3, 128)
  np.testing.assert_array_equal(k0, b['params']['scale0']['kernel'])
  assert not np.allclose(k0, c['params']['scale0']['kernel'])
  flat = k0.reshape(-1, 128)
  np.testing.assert_allclose(flat.mean(0), 0.0, atol=1e-7)
  np.testing.assert_allclose(np.linalg.norm(flat, axis=0), 1.0, rtol=1e-6)

  rng = np.random.default_rng(0)
  x = rng.uniform(-1, 1, (1, 64, 48, 3)).astype(np.float32)
  maps = random_filters.RandomFilterFeatures.maps(a, jnp.asarray(x))
  assert [maps[f'scale{s}'].shape[1:3] for s in range(6)] == [
      (64, 48), (32, 24), (16, 12), (8, 6), (4, 3), (2, 1)]
  with pytest.raises(ValueError, match='at least 32 px'):  # the coarsest scale needs 32 px
    random_filters.RandomFilterFeatures.maps(a, jnp.asarray(x[:, :31]))
  # Scale 0, filter 7: cross-correlation with zero padding (flax 'SAME'), then ReLU.
  expect = sum(scipy.ndimage.correlate(x[0, :, :, ch].astype(np.float64), k0[:, :, ch, 7],
                                       mode='constant') for ch in range(3))
  np.testing.assert_allclose(maps['scale0'][0, :, :, 7], np.maximum(expect, 0), atol=1e-5)
  # Scale 2 sees the image average-pooled 4 x 4.
  pooled = x[0].reshape(16, 4, 12, 4, 3).mean(axis=(1, 3))
  k2 = a['params']['scale2']['kernel']
  expect = sum(scipy.ndimage.correlate(pooled[:, :, ch].astype(np.float64), k2[:, :, ch, 3],
                                       mode='constant') for ch in range(3))
  np.testing.assert_allclose(maps['scale2'][0, :, :, 3], np.maximum(expect, 0), atol=1e-5)
  # A flat grey image gives no response (zero-mean filters), a flat colour one does.
  grey = random_filters.RandomFilterFeatures.maps(a, jnp.full((1, 16, 16, 3), 0.3), ('scale0',))
  assert float(jnp.abs(grey['scale0'][:, 2:-2, 2:-2]).max()) < 1e-6
  red = random_filters.RandomFilterFeatures.maps(
      a, jnp.broadcast_to(jnp.array([0.9, -0.5, -0.5]), (1, 16, 16, 3)), ('scale0',))
  assert float(red['scale0'][:, 2:-2, 2:-2].max()) > 0.1
  # The registry's vector: per-scale channel means, grey input repeated to RGB.
  net = features.load('random')
  out = net(np.concatenate([x[..., :1]] * 2))
  assert set(out) == {'features'} and out['features'].shape == (2, 768)
  rgb = random_filters.RandomFilterFeatures.maps(a, jnp.repeat(jnp.asarray(x[..., :1]), 3, -1))
  np.testing.assert_allclose(out['features'][0, :128], rgb['scale0'][0].mean((0, 1)),
                             rtol=1e-5, atol=1e-6)


# -- Gatys et al. ------------------------------------------------------------------------------


def _pictures(size=32):
  rng = np.random.default_rng(0)
  yy, xx = np.mgrid[:size, :size] / size
  content = np.stack([np.sin(6 * xx), np.cos(4 * yy), xx - yy], -1).astype(np.float32) * 0.8
  stripes = np.sign(np.sin(20 * (xx + yy)))
  style_img = np.stack([stripes * 0.9, -stripes * 0.3, 0.1 * rng.standard_normal(xx.shape)], -1)
  return content, style_img.astype(np.float32)


def test_gatys_lowers_the_loss_and_keeps_the_content():
  """L-BFGS (the default); Adam is run by the colour-preservation test."""
  content, style_img = _pictures()
  net = features.load('random')
  settings = style.Settings(steps=40, optimizer='lbfgs', learning_rate=0.05, log_every=20,
                            style_weight=1e3)
  seen = []
  image, history = style.stylize(net, content, style_img, settings,
                                 progress=lambda step, terms: seen.append(step))
  assert seen == [20, 40] and len(history['total']) == 40
  # Started at the content image: the content loss is exactly zero at step 0.
  assert history['content'][0] == 0.0 and history['style'][0] > 0
  total = np.asarray(history['total'])
  assert total[-10:].mean() < 0.5 * total[:5].mean()
  assert history['style'][-1] < 0.5 * history['style'][0]
  assert image.shape == content.shape and np.abs(image).max() <= 1.0
  # The result keeps the content's features closer than the style image's.
  layer = net.spec.content_layer
  maps = lambda im: net.maps(net.variables, jnp.asarray(im)[None], (layer,))[layer]
  c = maps(content)
  assert float(jnp.mean((maps(image) - c)**2)) < 0.8 * float(jnp.mean((maps(style_img) - c)**2))


def test_colour_preservation_keeps_the_content_chroma():
  content, style_img = _pictures()
  content = content * 0.5  # no clipping of the result
  np.testing.assert_allclose(style.yiq_to_rgb(style.rgb_to_yiq(content)), content, atol=1e-5)
  # Against scikit-image's YIQ on [0, 1] images: Y' = (Y + 1) / 2, I' = I / 2, Q' = Q / 2.
  import skimage.color  # pylint: disable=g-import-not-at-top
  ref = skimage.color.rgb2yiq((content + 1) / 2)
  ours = np.asarray(style.rgb_to_yiq(content))
  np.testing.assert_allclose(ours[..., 0], 2 * ref[..., 0] - 1, atol=1e-3)
  np.testing.assert_allclose(ours[..., 1:], 2 * ref[..., 1:], atol=1e-3)
  net = features.load('random')
  image, history = style.stylize(net, content, style_img, style.Settings(
      steps=10, optimizer='adam', preserve_color=True, log_every=10))
  assert np.mean(history['total'][-3:]) < np.mean(history['total'][:3])  # Adam lowers it too
  np.testing.assert_allclose(style.rgb_to_yiq(image)[..., 1:],
                             style.rgb_to_yiq(content)[..., 1:], atol=1e-4)
  assert not np.allclose(image, content, atol=1e-3)  # the luminance did change
  # Noise start: the content loss is positive at step 0.
  _, history = style.stylize(net, content, style_img, style.Settings(
      steps=2, optimizer='adam', init='noise', log_every=2))
  assert history['content'][0] > 0


def test_match_luminance_takes_the_content_mean_and_spread():
  rng = np.random.default_rng(2)
  style_y = jnp.asarray(rng.gamma(2.0, 0.1, (20, 30)), jnp.float32)
  content_y = jnp.asarray(rng.uniform(0.3, 0.9, (16, 16)), jnp.float32)
  out = np.asarray(style.match_luminance(style_y, content_y), np.float64)
  assert abs(out.mean() - float(content_y.mean())) < 1e-5
  assert abs(out.std() - float(content_y.std())) < 1e-5
  # an affine map of the style: its standardized values are unchanged
  z = lambda v: (v - v.mean()) / v.std()
  np.testing.assert_allclose(z(out), z(np.asarray(style_y, np.float64)), atol=1e-4)


def test_settings_are_checked():
  for kwargs, match in (({'steps': 0}, 'steps=0'), ({'optimizer': 'sgd'}, 'adam, lbfgs'),
                        ({'style_weight': -1.0}, 'style_weight=-1'),
                        ({'init': 'zeros'}, 'content, noise')):
    with pytest.raises(style.StyleError, match=match):
      style.Settings(**kwargs).check()


# -- the command -------------------------------------------------------------------------------


def test_stylize_command_converts_any_image_and_refuses_bad_input(tmp_path):
  content, style_img = _pictures(48)
  grey = tmp_path / 'content.png'
  Image.fromarray(((content[:40, :, 0] + 1) * 127.5).astype(np.uint8), 'L').save(grey)
  rgba = Image.fromarray(((style_img + 1) * 127.5).astype(np.uint8)).convert('RGBA')
  palette = tmp_path / 'style.png'
  rgba.convert('P', palette=Image.Palette.ADAPTIVE).save(palette, transparency=0)
  out = tmp_path / 'out' / 'stylized.png'
  proc = run_main('stylize', f'--content={grey}', f'--style={palette}', f'--out={out}',
                  '--size=40', '--steps=4', '--log_every=2', '--optimizer=adam')
  assert proc.returncode == 0, proc.stderr
  assert 'step 2/4: total' in proc.stdout and 'step 4/4' in proc.stdout
  with Image.open(out) as im:
    assert im.mode == 'RGB' and im.size == (40, 33)  # longer side 40, aspect of 48 x 40 kept
  record = json.load(open(tmp_path / 'out' / 'stylized.json'))
  assert record['features'] == 'random' and record['settings']['style_weight'] == 1e5
  assert len(record['losses']['total']) == 3 and record['seconds'] > 0

  bad_weights = tmp_path / 'bad.npz'
  bad_cases = (
      (['--style=' + str(palette)], 'needs --content'),
      ([f'--content={grey}'], 'needs --style'),
      ([f'--content={tmp_path / "none.png"}', f'--style={palette}'], 'does not exist'),
      ([f'--content={grey}', f'--style={tmp_path / "out" / "stylized.json"}'],
       'not an image Pillow can read'),
      ([f'--content={grey}', f'--style={palette}', '--features=digits_cnn'],
       'exposes no feature maps'),
      ([f'--content={grey}', f'--style={palette}', '--style_layers=relu9_9'], 'no layer'),
      ([f'--content={grey}', f'--style={palette}', '--size=8'], '--size=8'),
      ([f'--content={grey}', f'--style={palette}', '--features=inception'],
       'exposes no feature maps'),
      ([f'--content={grey}', f'--style={palette}', '--features=vgg19',
        f'--weights={bad_weights}'], 'cannot read'),
  )
  before = sorted(os.listdir(tmp_path / 'out'))
  for args, match in bad_cases:
    assert bad_weights.write_text('not an npz') > 0
    proc = run_main('stylize', *args, f'--out={tmp_path / "out" / "b.png"}', '--steps=2')
    assert proc.returncode == 2 and match in proc.stderr, (args, proc.stderr)
    assert proc.stderr.count('\n') <= 2, proc.stderr
  assert sorted(os.listdir(tmp_path / 'out')) == before


def test_image_files_convert_16_bit_grey_and_refuse_tiny_images(tmp_path):
  from genvision_jax.data import DatasetError, image_files  # pylint: disable=g-import-not-at-top
  path = tmp_path / 'deep.png'
  Image.fromarray(np.full((40, 50), 32768, np.uint16)).save(path)
  x = image_files.read_rgb(str(path), 100)
  assert x.shape == (80, 100, 3) and abs(int(x.mean()) - 128) <= 1
  with pytest.raises(DatasetError, match='shorter side would be 20 px'):
    image_files.read_rgb(str(path), 25)


# -- fast style transfer (Johnson et al.) ------------------------------------------------------

FAST = 'experiments/style/fast_style_photos.py:smoke'


def test_transformer_net_keeps_any_image_size_and_range():
  import jax  # pylint: disable=g-import-not-at-top
  from genvision_jax.models.transformer_net import TransformerNet  # pylint: disable=g-import-not-at-top
  net = TransformerNet(width=4, res_blocks=1)
  x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (2, 30, 45, 3)), jnp.float32)
  params = net.init(jax.random.key(0), x)
  y = net.apply(params, x)
  assert y.shape == x.shape and float(jnp.abs(y).max()) <= 1.0


def test_transformer_net_options_residual_starts_at_the_identity_and_no_norm():
  import jax  # pylint: disable=g-import-not-at-top
  from genvision_jax.models.transformer_net import TransformerNet  # pylint: disable=g-import-not-at-top
  x = jnp.asarray(np.random.default_rng(1).uniform(-0.99, 0.99, (2, 16, 20, 3)), jnp.float32)
  net = TransformerNet(width=4, res_blocks=1, norm='none', residual=True)
  params = net.init(jax.random.key(0), x)
  np.testing.assert_allclose(net.apply(params, x), x, atol=1e-5)  # r = 0 at initialization
  assert not any('GroupNorm' in k for k in params['params'])      # norm='none': no norm layers
  # with other weights the output moves away from the input (it is not a copy of it)
  moved = jax.tree_util.tree_map(lambda p: p + 0.1, params)
  assert float(jnp.abs(net.apply(moved, x) - x).max()) > 0.05
  plain = TransformerNet(width=4, res_blocks=1)
  assert any('GroupNorm' in k for k in plain.init(jax.random.key(0), x)['params'])
  with pytest.raises(ValueError, match='norm must be one of'):
    TransformerNet(norm='batch').init(jax.random.key(0), x)


@pytest.fixture(scope='module')
def fast_run(tmp_path_factory):
  """A smoke fast style-transfer run trained in process on a style image that is then deleted
  (the run keeps its own copy)."""
  from genvision_jax import configs, training  # pylint: disable=g-import-not-at-top
  root = tmp_path_factory.mktemp('fast_style')
  _, style_img = _pictures(48)
  source = root / 'style.png'
  Image.fromarray(((style_img + 1) * 127.5).astype(np.uint8)).save(source)
  config = configs.load(str(REPO / FAST), {'style.image': str(source)})
  workdir = root / 'run'
  result = training.train_and_evaluate(config, str(workdir), verbose=False)
  kept = np.asarray(Image.open(workdir / 'frozen' / 'style.png'))
  source.unlink()
  return workdir, result, kept


def test_fast_style_trains_keeps_its_style_image_and_stylizes_by_the_cli(fast_run, tmp_path):
  from genvision_jax import training  # pylint: disable=g-import-not-at-top
  workdir, result, kept = fast_run
  assert np.isfinite(result.metrics['loss']) and result.metrics['style'] > 0
  assert kept.shape == (64, 64, 3)  # style.size = 64 (smoke): the longer side
  records = [json.loads(l) for l in open(workdir / 'metrics.jsonl')]
  assert records[-1]['loss'] < records[0]['loss']
  # The original style file is gone: the run still loads (for stylizing, without features).
  _, method, state = training.load_run(str(workdir))
  assert method.net is None
  np.testing.assert_array_equal(np.asarray((method.style_image + 1) * 127.5).round(), kept)
  content = tmp_path / 'c.png'
  Image.fromarray(np.full((50, 70, 4), 200, np.uint8), 'RGBA').save(content)
  out = tmp_path / 'o.jpg'
  proc = run_main('stylize', f'--workdir={workdir}', f'--content={content}', f'--out={out}',
                  '--size=70')
  assert proc.returncode == 0, proc.stderr
  with Image.open(out) as im:
    assert im.size == (70, 50) and im.mode == 'RGB'
  proc = run_main('stylize', f'--workdir={workdir}', f'--content={content}', f'--out={out}',
                  f'--style={content}')
  assert proc.returncode == 2 and 'drop --style' in proc.stderr


def test_fast_style_config_and_missing_style_image_are_clear_errors(tmp_path):
  from genvision_jax import configs, training  # pylint: disable=g-import-not-at-top
  for override, match in (({'style.image': ''}, 'style.image must name'),
                          ({'style.features': 'digits_cnn'}, 'style.features must be one of'),
                          ({'style.content_layer': 'relu4_2'}, 'random has no layer relu4_2'),
                          ({'style.size': 16}, 'style.size must be an integer >= 32'),
                          ({'model.norm': 'batch'}, 'model.norm must be one of')):
    with pytest.raises(configs.ConfigError, match=match):
      configs.validate(configs.load(str(REPO / FAST), override))
  workdir = tmp_path / 'run'
  config = configs.load(str(REPO / FAST), {'style.image': str(tmp_path / 'gone.png')})
  with pytest.raises(Exception, match='style image .*gone.png.* does not exist'):
    training.train_and_evaluate(config, str(workdir), verbose=False)
  assert not workdir.exists()


def test_fast_style_evaluate_scores_the_test_split_and_compares(fast_run):
  from genvision_jax.evaluation import runner  # pylint: disable=g-import-not-at-top
  workdir, _, _ = fast_run
  result = runner.evaluate_run(str(workdir), bootstrap=20, verbose=False)
  m, d = result['metrics'], result['details']
  per = np.load(workdir / 'eval' / 'per_example.npz')
  n = result['protocol']['reference_examples']
  assert per['style_transfer/style'].shape == (n,) and n > 100
  w = result['protocol']['weights']
  np.testing.assert_allclose(  # the total is the weighted sum of the terms, per example
      per['style_transfer/total'], w['content'] * per['style_transfer/content']
      + w['style'] * per['style_transfer/style'] + w['tv'] * per['style_transfer/tv'],
      rtol=1e-4)
  assert m['style_transfer/content'] > 0 and d['identity/content'] == 0.0
  low, high = result['intervals']['style_transfer/style']
  assert low <= m['style_transfer/style'] <= high
  assert (workdir / 'eval' / 'samples.png').is_file() and d['seconds_per_image'] > 0
  with pytest.raises(runner.EvaluationError, match='drop --metrics'):
    runner.evaluate_run(str(workdir), metrics=['fd'], verbose=False)
  # compare reads two evaluated fast-style runs (here the run and a copy of its evaluation
  # with every style loss doubled): the table lists the losses, lower is better, and the
  # paired test on the per-example style losses names the run itself as the better one
  other = workdir.parent / 'doubled'
  shutil.copytree(workdir / 'eval', other / 'eval')
  doubled = dict(per)
  doubled['style_transfer/style'] = 2 * per['style_transfer/style']
  np.savez(other / 'eval' / 'per_example.npz', **doubled)
  cmp = runner.compare([str(workdir), str(other)], num_resamples=200)
  assert 'style_transfer/style' in cmp['table']
  (test,) = [t for t in cmp['tests'] if t['metric'] == 'style_transfer/style (per example)']
  assert test['winner'] == workdir.name and test['p_value'] < 0.01
