"""The flax port of pytorch-fid's FID Inception against pytorch-fid itself.

`fixtures/inception/expected.npz` holds pytorch-fid's outputs (pool3, logits) for stand-in
weights drawn by `fixtures/inception/seeded_weights.py` from a seed, and PyTorch's bilinear
resize of two tiny arrays; `fixtures/inception/make_fixture.py` made it (versions inside).
Here the same seeded weights go through `load_state_dict_arrays`, so the name and layout
mapping is tested together with the network and the preprocessing.
"""

import importlib.util
import pathlib
import sys

import numpy as np
import pytest

from genvision_jax.features import inception

FIXTURES = pathlib.Path(__file__).resolve().parent / 'fixtures' / 'inception'


def _load_seeded_weights_module():
  spec = importlib.util.spec_from_file_location('inception_seeded_weights',
                                                FIXTURES / 'seeded_weights.py')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


seeded_weights = _load_seeded_weights_module()


@pytest.fixture(scope='module')
def expected():
  with np.load(FIXTURES / 'expected.npz', allow_pickle=False) as data:
    return {k: data[k] for k in data.files}


@pytest.fixture(scope='module')
def seeded_state_dict(expected):
  return seeded_weights.seeded_state_dict(inception.pytorch_fid_state_dict_shapes(),
                                          int(expected['seed']))


@pytest.fixture(scope='module')
def seeded_variables(seeded_state_dict):
  return inception.load_state_dict_arrays(seeded_state_dict)


def assert_close_to_reference(actual, reference):
  """Float32 agreement: 1e-4 relative, with an absolute floor of 1e-4 of the largest value."""
  np.testing.assert_allclose(actual, reference, rtol=1e-4, atol=1e-4 * np.abs(reference).max())


def test_state_dict_names_and_shapes_are_pytorch_fids(expected):
  names = [str(n) for n in expected['state_dict_names']]
  ours = inception.pytorch_fid_state_dict_shapes()
  assert len(names) == len(ours) == 472  # 94 conv+BN layers x 5 tensors, fc weight and bias
  assert sorted(names) == sorted(ours)
  for name, row in zip(names, expected['state_dict_shapes']):
    shape = ours[name]
    assert tuple(row[:len(shape)]) == shape and not row[len(shape):].any(), name


def test_matches_pytorch_fid_in_batches(expected, seeded_variables):
  # The repository's [-1, 1] images; 3 images in batches of 2: the last batch is padded.
  features = inception.InceptionFeatures(variables=seeded_variables, batch_size=2)
  images = expected['rgb_images'] * 2.0 - 1.0
  out = features(images[[0, 1, 0]])
  assert out['pool3'].shape == (3, 2048) and out['pool3'].dtype == np.float32
  assert out['logits'].shape == (3, 1008) and out['logits'].dtype == np.float32
  for key in ('pool3', 'logits'):
    reference = expected[f'rgb_{key}']
    # The two images' features differ by far more than the tolerance.
    assert np.abs(reference[0] - reference[1]).max() > 100 * 1e-4 * np.abs(reference).max()
    assert_close_to_reference(out[key], reference[[0, 1, 0]])
  assert features.num_compiles == 1
  features(images[:1])  # a smaller call pads to one full batch: same compiled function
  assert features.num_compiles == 1


def test_grayscale_is_repeated_to_rgb_and_value_range(expected, seeded_variables):
  # pytorch-fid was given the grayscale image repeated to 3 channels; here it is given as
  # [N, 28, 28, 1] in [0, 255].
  features = inception.InceptionFeatures(variables=seeded_variables, batch_size=1,
                                         value_range=(0.0, 255.0))
  out = features(expected['gray_images'] * 255.0)
  assert_close_to_reference(out['pool3'], expected['gray_pool3'])
  assert_close_to_reference(out['logits'], expected['gray_logits'])


@pytest.mark.parametrize('case', ['up', 'down'])
def test_resize_matches_torch_bilinear(expected, case):
  # F.interpolate(mode='bilinear', align_corners=False): no antialiasing, also when shrinking.
  images, reference = expected[f'resize_{case}_in'], expected[f'resize_{case}_out']
  out = np.asarray(inception.resize_bilinear(images, reference.shape[1]))
  np.testing.assert_allclose(out, reference, rtol=0, atol=1e-6)


def test_preprocess_shapes_and_errors():
  x = np.zeros((2, 28, 28, 1), np.float32)
  assert inception.preprocess(x).shape == (2, 299, 299, 3)
  np.testing.assert_allclose(inception.preprocess(x, value_range=(-1, 1)), 0.0, atol=1e-6)
  np.testing.assert_allclose(inception.preprocess(x, value_range=(0, 1)), -1.0, atol=1e-6)
  with pytest.raises(ValueError, match='NHWC'):
    inception.preprocess(np.zeros((2, 3, 28, 28), np.float32))
  with pytest.raises(ValueError, match='value_range'):
    inception.preprocess(x, value_range=(1, 0))


def test_missing_weight_file_says_where_to_get_it(tmp_path, monkeypatch):
  missing = tmp_path / inception.WEIGHTS_FILENAME
  with pytest.raises(FileNotFoundError) as error:
    inception.load_pytorch_fid_weights(missing)
  assert isinstance(error.value, inception.WeightsNotFoundError)
  message = str(error.value)
  assert inception.FID_WEIGHTS_URL in message
  assert str(missing) in message and inception.WEIGHTS_ENV in message
  monkeypatch.delenv(inception.WEIGHTS_ENV, raising=False)
  with pytest.raises(inception.WeightsNotFoundError, match='No path') as error:
    inception.InceptionFeatures()
  assert inception.FID_WEIGHTS_URL in str(error.value)
  monkeypatch.setenv(inception.WEIGHTS_ENV, str(missing))
  with pytest.raises(inception.WeightsNotFoundError, match=inception.WEIGHTS_FILENAME):
    inception.InceptionFeatures()


def test_wrong_weights_are_a_clear_error(seeded_state_dict):
  state = dict(seeded_state_dict)
  del state['Mixed_6e.branch7x7dbl_5.conv.weight']
  state['AuxLogits.fc.weight'] = np.zeros((1008, 768), np.float32)
  state['fc.bias'] = np.zeros(1000, np.float32)
  state['Mixed_5b.branch1x1.bn.num_batches_tracked'] = np.int64(0)  # ignored, as in PyTorch
  with pytest.raises(inception.InceptionWeightsError) as error:
    inception.load_state_dict_arrays(state)
  message = str(error.value)
  assert '1 missing: Mixed_6e.branch7x7dbl_5.conv.weight' in message
  assert '1 unexpected: AuxLogits.fc.weight' in message
  assert '1 with the wrong shape: fc.bias (1000,) (expected (1008,))' in message
  assert 'num_batches_tracked' not in message


def test_layouts_are_converted(seeded_state_dict, seeded_variables):
  conv = seeded_variables['params']['Mixed_6b']['branch7x7_2']['conv']['kernel']
  torch_conv = seeded_state_dict['Mixed_6b.branch7x7_2.conv.weight']
  assert torch_conv.shape == (128, 128, 1, 7) and conv.shape == (1, 7, 128, 128)  # OIHW->HWIO
  np.testing.assert_array_equal(conv[0, 3, 5, 9], torch_conv[9, 5, 0, 3])
  np.testing.assert_array_equal(seeded_variables['params']['fc']['kernel'],
                                seeded_state_dict['fc.weight'].T)
  bn = seeded_variables['batch_stats']['Conv2d_1a_3x3']['bn']
  np.testing.assert_array_equal(bn['var'], seeded_state_dict['Conv2d_1a_3x3.bn.running_var'])


def test_pth_without_torch_asks_for_the_npz(tmp_path, monkeypatch):
  path = tmp_path / inception.WEIGHTS_FILENAME
  path.write_bytes(b'not read')
  monkeypatch.setitem(sys.modules, 'torch', None)  # `import torch` raises ImportError
  with pytest.raises(inception.InceptionWeightsError, match='convert'):
    inception.load_pytorch_fid_weights(path)


def test_pth_and_converted_npz_load_the_same_variables(tmp_path, seeded_state_dict,
                                                       seeded_variables):
  torch = pytest.importorskip('torch')
  pth, npz = tmp_path / 'weights.pth', tmp_path / 'weights.npz'
  state = {k: torch.from_numpy(v) for k, v in seeded_state_dict.items()}
  state['Conv2d_1a_3x3.bn.num_batches_tracked'] = torch.tensor(0)
  torch.save(state, pth)
  from_pth = inception.load_pytorch_fid_weights(pth)
  assert inception.main(['convert', str(pth), str(npz)]) == 0
  from_npz = inception.load_pytorch_fid_weights(npz)
  for loaded in (from_pth, from_npz):
    np.testing.assert_equal(loaded, seeded_variables)
  pth.write_bytes(b'garbage')
  with pytest.raises(inception.InceptionWeightsError, match='weights_only'):
    inception.load_pytorch_fid_weights(pth)


def test_clean_resize_is_pil_bicubic_on_float_images():
  """clean-fid's 'clean' mode, checked against PIL itself: each channel of the [0, 255] float
  image resized as a mode 'F' image with BICUBIC, clipped to [0, 255]; grey becomes RGB."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  images = rng.uniform(-1.0, 1.0, size=(2, 28, 28, 3)).astype(np.float32)
  images[0, :14] = 1.0   # a hard edge: bicubic overshoots it, the clip matters
  images[0, 14:] = -1.0
  out = inception.clean_resize(images)
  assert out.shape == (2, 299, 299, 3) and out.dtype == np.float32
  for i in range(2):
    for c in range(3):
      pil = Image.fromarray((images[i, :, :, c] + 1.0) * 127.5, mode='F')
      expected = np.clip(np.asarray(pil.resize((299, 299), Image.BICUBIC)), 0, 255)
      np.testing.assert_allclose(out[i, :, :, c], expected, rtol=0, atol=1e-3)
  assert out[0].max() == 255.0 and out[0].min() == 0.0   # clipped overshoot
  grey = inception.clean_resize(images[:, :, :, :1])
  np.testing.assert_array_equal(grey[..., 0], grey[..., 2])
  np.testing.assert_allclose(grey[..., 0], out[..., 0], atol=1e-3)
  # uint8-range images give the same result as their [-1, 1] version.
  np.testing.assert_allclose(inception.clean_resize((images + 1) * 127.5, (0.0, 255.0)), out,
                             atol=2e-3)


def test_inception_features_clean_mode_feeds_the_network_pil_resized_images():
  images = np.random.default_rng(1).uniform(-1.0, 1.0, size=(3, 32, 32, 1)).astype(np.float32)
  clean = inception.InceptionFeatures(variables={}, batch_size=2, resize='clean')
  expected = 2.0 * inception.clean_resize(images) / 255.0 - 1.0
  np.testing.assert_allclose(np.asarray(clean.network_input(images)), expected, atol=1e-5)
  default = inception.InceptionFeatures(variables={}, batch_size=2)
  assert np.abs(np.asarray(default.network_input(images)) - expected).max() > 0.1  # differ
  np.testing.assert_allclose(np.asarray(default.network_input(images)),
                             np.asarray(inception.preprocess(images)), atol=0)
  seen = []

  def fake_network(variables, x):
    seen.append(np.asarray(x))
    return {'pool3': np.zeros((len(x), 2048)), 'logits': np.zeros((len(x), 1008))}

  clean._batch_fn = fake_network   # what __call__ sends to the jitted network, batch by batch
  clean(images)
  np.testing.assert_allclose(np.concatenate(seen)[:3], inception.clean_resize(images), atol=0)
  with pytest.raises(ValueError, match='resize'):
    inception.InceptionFeatures(variables={}, resize='bicubic')
