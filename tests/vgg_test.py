"""The flax port of torchvision's vgg16 / vgg19 against torchvision itself.

`fixtures/vgg/expected.npz` holds torchvision's outputs (sampled feature maps, pool5, relu7,
logits) for stand-in weights drawn by `fixtures/vgg/seeded_weights.py` from a seed, torchvision's
state-dict names and shapes, and PyTorch's adaptive average pool of small arrays;
`fixtures/vgg/make_fixture.py` made it (versions inside). Here the same seeded weights go
through `load_state_dict_arrays`, so the name and layout mapping (fc6's channel-major input
order included) is tested together with the network and the ImageNet normalization.
"""

import importlib.util
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from genvision_jax.features import inception
from genvision_jax.features import vgg

FIXTURES = pathlib.Path(__file__).resolve().parent / 'fixtures' / 'vgg'
SAMPLED_MAPS = ('relu1_1', 'relu3_1', 'relu4_2')


def _load_seeded_weights_module():
  spec = importlib.util.spec_from_file_location('vgg_seeded_weights',
                                                FIXTURES / 'seeded_weights.py')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


seeded_weights = _load_seeded_weights_module()


@pytest.fixture(scope='module')
def expected():
  with np.load(FIXTURES / 'expected.npz', allow_pickle=False) as data:
    return {k: data[k] for k in data.files}


def shape_only_state_dict(depth, include_top=True):
  """torchvision's names and shapes with free (broadcast zero) arrays: for the name checks."""
  return {k: np.broadcast_to(np.float32(0), s)
          for k, s in vgg.torchvision_state_dict_shapes(depth, include_top).items()}


def assert_close_to_reference(actual, reference):
  """Float32 agreement: 1e-4 relative, with an absolute floor of 1e-4 of the largest value."""
  actual = np.asarray(actual)
  assert actual.shape == reference.shape
  np.testing.assert_allclose(actual, reference, rtol=1e-4, atol=1e-4 * np.abs(reference).max())


@pytest.mark.parametrize('depth', vgg.DEPTHS)
def test_state_dict_names_and_shapes_are_torchvisions(expected, depth):
  names = [str(n) for n in expected[f'vgg{depth}_state_dict_names']]
  ours = vgg.torchvision_state_dict_shapes(depth)
  assert len(names) == len(ours) == 2 * (depth - 3) + 6  # conv weight+bias, 3 Linear
  assert names == list(ours)  # same order, too
  for name, row in zip(names, expected[f'vgg{depth}_state_dict_shapes']):
    shape = ours[name]
    assert tuple(row[:len(shape)]) == shape and not row[len(shape):].any(), name
  features_only = vgg.torchvision_state_dict_shapes(depth, include_top=False)
  assert list(features_only) == [n for n in names if n.startswith('features.')]


def test_layer_names():
  assert vgg.LAYER_NAMES[16][:5] == ('conv1_1', 'relu1_1', 'conv1_2', 'relu1_2', 'pool1')
  assert vgg.LAYER_NAMES[16][-6:] == ('pool5', 'fc6', 'relu6', 'fc7', 'relu7', 'logits')
  for depth in vgg.DEPTHS:
    names = vgg.LAYER_NAMES[depth]
    assert len(names) == 2 * (depth - 3) + 5 + 5  # conv + relu per convolution, 5 pools, top
    assert len(set(names)) == len(names)
    assert vgg.CONTENT_LAYER in names and set(vgg.STYLE_LAYERS) <= set(names)
  assert 'conv3_4' in vgg.LAYER_NAMES[19] and 'conv3_4' not in vgg.LAYER_NAMES[16]
  assert vgg.FEATURE_LAYER_NAMES[19][-1] == 'pool5'


@pytest.mark.parametrize('depth', vgg.DEPTHS)
def test_matches_torchvision(expected, depth):
  state_dict = seeded_weights.seeded_state_dict(vgg.torchvision_state_dict_shapes(depth),
                                                int(expected['seed']))
  variables = vgg.load_state_dict_arrays(state_dict, depth)
  del state_dict
  # The repository's [-1, 1] images; 3 images in batches of 2: the last batch is padded.
  features = vgg.VGGFeatures(depth, variables=variables, batch_size=2, image_size=32)
  rgb = expected['rgb_images'] * 2.0 - 1.0
  out = features(rgb[[0, 1, 0]])
  assert out['fc7'].shape == (3, 4096) and out['fc7'].dtype == np.float32
  assert out['logits'].shape == (3, 1000) and out['logits'].dtype == np.float32
  key = f'vgg{depth}_rgb'
  for name, ours in (('relu7', out['fc7']), ('logits', out['logits'])):
    reference = expected[f'{key}_{name}']
    # The two images' outputs differ by far more than the tolerance.
    assert np.abs(reference[0] - reference[1]).max() > 100 * 1e-4 * np.abs(reference).max()
    assert_close_to_reference(ours, reference[[0, 1, 0]])
  assert features.num_compiles == 1
  features(rgb[:1])  # a smaller call pads to one full batch: same compiled function
  assert features.num_compiles == 1

  layers = (*SAMPLED_MAPS, 'pool5', 'relu7', 'logits')
  cases = {'rgb': rgb,  # the grey image as [1, 72, 104, 1] (torchvision had it repeated to RGB)
           'gray': expected['gray_images'] * 2.0 - 1.0}
  for case, images in cases.items():
    maps = features.maps(features.variables, images, layers)
    assert list(maps) == list(layers)
    key = f'vgg{depth}_{case}'
    for name in SAMPLED_MAPS:
      m = np.asarray(maps[name])
      sample = m[:, expected[f'{key}_{name}_rows']][:, :, expected[f'{key}_{name}_cols']]
      assert_close_to_reference(sample[..., expected[f'{key}_{name}_chans']],
                                expected[f'{key}_{name}_sample'])
      assert_close_to_reference(m.mean(axis=(1, 2)), expected[f'{key}_{name}_mean'])
    for name in ('pool5', 'relu7', 'logits'):
      assert_close_to_reference(maps[name], expected[f'{key}_{name}'])
  assert expected[f'vgg{depth}_gray_pool5'].shape == (1, 2, 3, 512)  # a real adaptive pool


def _variables_16():
  """VGG-16 variables with free (broadcast) values: for the tests of structure."""
  return vgg.load_state_dict_arrays(shape_only_state_dict(16), 16)


def test_stops_after_the_last_layer_asked_for():
  variables = _variables_16()
  params = {k: v for k, v in variables['params'].items()
            if int(k.rsplit('_', 1)[1]) < 24 and k.startswith('features_')}  # blocks 1-4
  x = jnp.zeros((1, 32, 32, 3))
  out = vgg.VGG(16).apply({'params': params}, x, outputs=('relu4_1', 'conv1_1', 'relu4_3'))
  assert list(out) == ['conv1_1', 'relu4_1', 'relu4_3']  # in the network's order
  assert out['relu4_1'].shape == (1, 4, 4, 512) and out['conv1_1'].shape == (1, 32, 32, 64)
  with pytest.raises(Exception, match='features_24'):  # block 5 needs its weights
    vgg.VGG(16).apply({'params': params}, x, outputs=('relu5_1',))
  shapes = jax.eval_shape(lambda v: vgg.VGG(16).apply(v, x, outputs=vgg.LAYER_NAMES[16]),
                          variables)
  assert shapes['pool5'].shape == (1, 1, 1, 512) and shapes['fc6'].shape == (1, 4096)
  assert shapes['logits'].shape == (1, 1000)


def test_output_names_are_checked():
  variables, x = _variables_16(), jnp.zeros((1, 32, 32, 3))
  with pytest.raises(ValueError, match='relu3_4'):
    vgg.VGG(16).apply(variables, x, outputs=('relu3_4',))  # a VGG-19 layer
  with pytest.raises(ValueError, match='include_top=False'):
    vgg.VGG(16).apply(variables, x, outputs=('pool5', 'fc7'), include_top=False)
  with pytest.raises(ValueError, match='NHWC'):
    vgg.VGG(16).apply(variables, jnp.zeros((1, 3, 32, 32)))
  with pytest.raises(ValueError, match='depth'):
    vgg.VGG(17).apply(variables, x)
  # Defaults: the logits, or pool5 without the top (shapes only: no 400 MB of zeros to copy).
  assert list(jax.eval_shape(lambda v: vgg.VGG(16).apply(v, x), variables)) == ['logits']
  assert list(jax.eval_shape(lambda v: vgg.VGG(16).apply(v, x, include_top=False),
                             variables)) == ['pool5']


def test_features_without_the_classifier():
  state = shape_only_state_dict(16, include_top=False)
  with pytest.raises(vgg.VGGWeightsError, match='6 missing: classifier.0.bias'):
    vgg.load_state_dict_arrays(state, 16)
  variables = vgg.load_state_dict_arrays(state, 16, require_top=False)
  assert not any(k.startswith('classifier') for k in variables['params'])
  features = vgg.VGGFeatures(16, variables=variables, include_top=False)
  assert features.layers == vgg.FEATURE_LAYER_NAMES[16]
  assert vgg.VGGFeatures(16, variables=variables).layers == vgg.LAYER_NAMES[16]
  maps = features.maps(features.variables, np.zeros((1, 32, 32, 1)), vgg.STYLE_LAYERS)
  assert list(maps) == list(vgg.STYLE_LAYERS)
  with pytest.raises(ValueError, match='include_top=False'):
    features.maps(features.variables, np.zeros((1, 32, 32, 3)), ['relu7'])
  with pytest.raises(ValueError, match='classifier'):
    features(np.zeros((1, 32, 32, 3)))
  # A classifier, when present, must be whole.
  state['classifier.6.weight'] = np.zeros((1000, 4096), np.float32)
  with pytest.raises(vgg.VGGWeightsError, match='classifier optional.*5 missing'):
    vgg.load_state_dict_arrays(state, 16, require_top=False)


@pytest.mark.parametrize('size', [(2, 3), (1, 1), (9, 10), (13, 8), (7, 7), (6, 20)])
def test_adaptive_avg_pool_matches_torch(expected, size):
  x = expected[f'adaptive_{size[0]}x{size[1]}_in']
  out = np.asarray(vgg.adaptive_avg_pool2d(x, (7, 7)))
  np.testing.assert_allclose(out, expected[f'adaptive_{size[0]}x{size[1]}_out'], rtol=0,
                             atol=1e-6)


def test_adaptive_avg_pool_by_hand():
  # Rows: 2 -> 7, windows [floor(7i/7)... ]: i*2//7 .. ceil((i+1)*2/7): rows 0,0,0,{0,1},1,1,1.
  # Columns: 3 -> 7: 0,0,{0,1},1,{1,2},2,2.
  x = np.arange(6, dtype=np.float32).reshape(1, 2, 3, 1)  # [[0, 1, 2], [3, 4, 5]]
  rows = [[0], [0], [0], [0, 1], [1], [1], [1]]
  cols = [[0], [0], [0, 1], [1], [1, 2], [2], [2]]
  hand = np.array([[np.mean([x[0, r, c, 0] for r in rs for c in cs]) for cs in cols]
                   for rs in rows])
  assert hand[3, 2] == 2.0 and hand[0, 4] == 1.5 and hand[6, 6] == 5.0
  np.testing.assert_allclose(np.asarray(vgg.adaptive_avg_pool2d(x, 7))[0, :, :, 0], hand,
                             atol=1e-6)
  # Larger input: 10 -> 7 windows [0,2), [1,3), [2,5), [4,6), [5,8), [7,9), [8,10).
  y = np.arange(10, dtype=np.float32)
  pooled = np.asarray(vgg.adaptive_avg_pool2d(y.reshape(1, 10, 1, 1) * np.ones((1, 1, 7, 1)),
                                              7))[0, :, 0, 0]
  np.testing.assert_allclose(pooled, [0.5, 1.5, 3.0, 4.5, 6.0, 7.5, 8.5], atol=1e-6)
  same = np.random.default_rng(0).normal(size=(2, 7, 7, 3)).astype(np.float32)
  np.testing.assert_array_equal(np.asarray(vgg.adaptive_avg_pool2d(same, 7)), same)


def test_imagenet_normalize():
  # Black, white and mid-grey in [-1, 1]; one grey-scale image repeated to RGB.
  x = np.array([-1.0, 1.0, 0.0], np.float32).reshape(1, 1, 3, 1)
  out = np.asarray(vgg.imagenet_normalize(x))
  assert out.shape == (1, 1, 3, 3)
  np.testing.assert_allclose(out[0, 0, 0], [-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225],
                             rtol=1e-6)
  np.testing.assert_allclose(out[0, 0, 1], [0.515 / 0.229, 0.544 / 0.224, 0.594 / 0.225],
                             rtol=1e-6)
  np.testing.assert_allclose(out[0, 0, 2], [0.015 / 0.229, 0.044 / 0.224, 0.094 / 0.225],
                             rtol=1e-5)
  rgb = np.array([[[[0, 128, 255]]]], np.float32)
  np.testing.assert_allclose(np.asarray(vgg.imagenet_normalize(rgb, value_range=(0, 255))),
                             [[[[-0.485 / 0.229, (128 / 255 - 0.456) / 0.224, 0.594 / 0.225]]]],
                             rtol=1e-6)
  with pytest.raises(ValueError, match='NHWC'):
    vgg.imagenet_normalize(np.zeros((1, 3, 8, 8), np.float32))
  with pytest.raises(ValueError, match='value_range'):
    vgg.imagenet_normalize(x, value_range=(1, 0))


def test_features_input_is_normalized_and_resized():
  features = vgg.VGGFeatures(16, variables={}, image_size=32)
  images = np.random.default_rng(1).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
  np.testing.assert_array_equal(np.asarray(features.network_input(images)),
                                np.asarray(vgg.imagenet_normalize(images)))
  small = images[:, ::2, ::3, :1]
  np.testing.assert_allclose(
      np.asarray(features.network_input(small)),
      np.asarray(inception.resize_bilinear(vgg.imagenet_normalize(small), 32)), atol=1e-6)
  assert features.network_input(small).shape == (2, 32, 32, 3)
  assert {k: v.shape for k, v in features(np.zeros((0, 32, 32, 3))).items()} == {
      'fc7': (0, 4096), 'logits': (0, 1000)}
  with pytest.raises(ValueError, match='image_size'):
    vgg.VGGFeatures(16, variables={}, image_size=16)


def test_wrong_weights_are_a_clear_error():
  state = shape_only_state_dict(16)
  del state['features.28.weight']
  state['features.1.weight'] = np.zeros((64,), np.float32)        # as in vgg16_bn
  state['classifier.6.bias'] = np.zeros(1008, np.float32)
  with pytest.raises(vgg.VGGWeightsError) as error:
    vgg.load_state_dict_arrays(state, 16)
  message = str(error.value)
  assert "not torchvision's vgg16 state dict (vgg16-397923af.pth)" in message
  assert '1 missing: features.28.weight' in message
  assert '1 unexpected: features.1.weight' in message
  assert '1 with the wrong shape: classifier.6.bias (1008,) (expected (1000,))' in message
  with pytest.raises(vgg.VGGWeightsError, match=r"they are VGG-19's: use depth=19"):
    vgg.load_state_dict_arrays(shape_only_state_dict(19), 16)
  with pytest.raises(ValueError, match='depth'):
    vgg.load_state_dict_arrays(state, 11)


def test_layouts_are_converted():
  rng = np.random.default_rng(0)
  state = {k: rng.normal(size=s).astype(np.float32) if k in (
      'features.5.weight', 'classifier.3.weight') else np.broadcast_to(np.float32(0), s)
           for k, s in vgg.torchvision_state_dict_shapes(16).items()}
  variables = vgg.load_state_dict_arrays(state, 16)
  conv = variables['params']['features_5']['kernel']
  assert conv.shape == (3, 3, 64, 128)  # OIHW (128, 64, 3, 3) -> HWIO
  np.testing.assert_array_equal(conv[0, 2, 5, 9], state['features.5.weight'][9, 5, 0, 2])
  np.testing.assert_array_equal(variables['params']['classifier_3']['kernel'],
                                state['classifier.3.weight'].T)
  flat = traverse_util.flatten_dict(variables)
  assert len(flat) == 32 and all(v.dtype == np.float32 for v in flat.values())


def test_missing_weight_file_says_where_to_get_it(tmp_path, monkeypatch):
  for depth in vgg.DEPTHS:
    env, url = vgg.WEIGHTS_ENVS[depth], vgg.WEIGHTS_URLS[depth]
    monkeypatch.delenv(env, raising=False)
    with pytest.raises(FileNotFoundError) as error:
      vgg.resolve_weights_path(None, depth)
    assert isinstance(error.value, vgg.WeightsNotFoundError)
    message = str(error.value)
    for part in ('No path', url, vgg.WEIGHTS_FILENAMES[depth], env, '--weights',
                 '--feature_weights', 'convert'):
      assert part in message, part
    missing = tmp_path / vgg.WEIGHTS_FILENAMES[depth]
    monkeypatch.setenv(env, str(missing))
    with pytest.raises(vgg.WeightsNotFoundError, match=str(missing)) as error:
      vgg.VGGFeatures(depth)
    assert url in str(error.value) and env in str(error.value)
    with pytest.raises(vgg.WeightsNotFoundError, match=url):
      vgg.load_torchvision_weights(missing, depth)
  monkeypatch.setenv(vgg.WEIGHTS_ENVS[16], str(missing))  # an existing file, from the env
  missing.write_bytes(b'')
  assert vgg.resolve_weights_path(None, 16) == str(missing)
  assert vgg.resolve_weights_path(missing, 16) == str(missing)
  with pytest.raises(vgg.WeightsNotFoundError, match=vgg.WEIGHTS_URLS[19]):
    vgg.read_state_dict(tmp_path / 'nothing.npz')  # no depth: both files are named


def test_pth_without_torch_asks_for_the_npz(tmp_path, monkeypatch):
  path = tmp_path / vgg.WEIGHTS_FILENAMES[16]
  path.write_bytes(b'not read')
  monkeypatch.setitem(sys.modules, 'torch', None)  # `import torch` raises ImportError
  with pytest.raises(vgg.VGGWeightsError, match='genvision_jax.features.vgg convert'):
    vgg.load_torchvision_weights(path, 16)


def test_convert_npz_round_trip(tmp_path, capsys):
  # The convolutional part of VGG-16 (59 MB; the classifier would be another 480 MB), seeded.
  shapes = vgg.torchvision_state_dict_shapes(16, include_top=False)
  state = seeded_weights.seeded_state_dict(shapes, 3)
  source, converted = tmp_path / 'source.npz', tmp_path / 'vgg16.npz'
  np.savez(source, **state)
  assert vgg.main(['convert', str(source), str(converted)]) == 0  # npz in: no torch needed
  assert 'VGG-16' in capsys.readouterr().out
  assert sorted(vgg.read_state_dict(converted)) == sorted(shapes)
  loaded = vgg.load_torchvision_weights(converted, 16, require_top=False)
  np.testing.assert_equal(loaded, vgg.load_state_dict_arrays(state, 16, require_top=False))
  with pytest.raises(vgg.VGGWeightsError, match='missing'):
    vgg.load_torchvision_weights(converted, 16)  # the classifier is required by default
  assert vgg.main(['convert', str(source), str(converted), '--depth', '19']) == 1
  assert "not torchvision's vgg19" in capsys.readouterr().err
  broken = tmp_path / 'broken.npz'
  np.savez(broken, **{'features.0.weight': state['features.0.weight']})
  assert vgg.main(['convert', str(broken), str(tmp_path / 'out.npz')]) == 1
  assert 'cannot tell VGG-16 from VGG-19' in capsys.readouterr().err
  assert not (tmp_path / 'out.npz').exists()


def test_maps_are_differentiable_and_jittable():
  variables = vgg.VGG(16).init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)), outputs='relu2_1')
  features = vgg.VGGFeatures(16, variables=variables)
  images = jnp.asarray(np.random.default_rng(2).uniform(-1, 1, (1, 32, 32, 3)), jnp.float32)

  def style_loss(x):
    maps = features.maps(features.variables, x, ('relu1_1', 'relu2_1'))
    return sum(jnp.mean(m ** 2) for m in maps.values())

  grad = jax.jit(jax.grad(style_loss))(images)
  assert grad.shape == images.shape and bool(jnp.all(jnp.isfinite(grad)))
  assert float(jnp.abs(grad).max()) > 0
  np.testing.assert_allclose(jax.jit(style_loss)(images), style_loss(images), rtol=1e-5)


def test_pth_and_converted_npz_load_the_same_variables(tmp_path):
  torch = pytest.importorskip('torch')
  state = seeded_weights.seeded_state_dict(
      vgg.torchvision_state_dict_shapes(16, include_top=False), 5)
  pth, npz = tmp_path / 'features.pth', tmp_path / 'features.npz'
  torch.save({k: torch.from_numpy(v) for k, v in state.items()}, pth)
  from_pth = vgg.load_torchvision_weights(pth, 16, require_top=False)
  assert vgg.main(['convert', str(pth), str(npz)]) == 0
  from_npz = vgg.load_torchvision_weights(npz, 16, require_top=False)
  expected_variables = vgg.load_state_dict_arrays(state, 16, require_top=False)
  for loaded in (from_pth, from_npz):
    np.testing.assert_equal(loaded, expected_variables)
  pth.write_bytes(b'garbage')
  with pytest.raises(vgg.VGGWeightsError, match='weights_only'):
    vgg.load_torchvision_weights(pth, 16)


def test_gatys_runs_on_vgg_maps_and_lowers_the_loss():
  """Style transfer through the registry's extractor on VGG-16's convolutional part (seeded
  weights: the path a user with torchvision's file takes, minus the file)."""
  from genvision_jax import features, style  # pylint: disable=g-import-not-at-top
  shapes = vgg.torchvision_state_dict_shapes(16, include_top=False)
  variables = vgg.load_state_dict_arrays(seeded_weights.seeded_state_dict(shapes, 5), 16,
                                         require_top=False)
  net = features.Extractor(features.spec('vgg16'),
                           vgg.VGGFeatures(16, variables=variables, include_top=False), 'seeded')
  rng = np.random.default_rng(0)
  yy, xx = np.mgrid[:32, :32] / 32
  content = (np.stack([np.sin(6 * xx), np.cos(4 * yy), xx - yy], -1) * 0.8).astype(np.float32)
  style_img = np.clip(rng.standard_normal((32, 32, 3)), -1, 1).astype(np.float32)
  # the first two blocks only (the network stops after relu2_2): a cheap compile
  settings = style.Settings(steps=30, optimizer='adam', learning_rate=0.02, log_every=30,
                            content_layer='relu2_2', style_layers=('relu1_1', 'relu2_1'))
  image, history = style.stylize(net, content, style_img, settings)
  assert history['content'][0] == 0.0  # from the content image
  assert history['style'][-1] < 0.7 * history['style'][0]
  assert np.asarray(history['total'])[-5:].mean() < np.asarray(history['total'])[:3].mean()
  assert image.shape == content.shape and np.isfinite(image).all()
