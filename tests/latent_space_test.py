"""The VAE's latent space: codes of real images (encode -> decode), the 2-D manifold's quantile
grid, traversals, arithmetic on class and attribute means, the refusals, and the commands
encode / decode / interpolate on a trained vae_2d_mnist :smoke run."""

import numpy as np
from PIL import Image
import pytest

import jax
import jax.numpy as jnp

from genvision_jax import configs, data, latent, main, methods, training
from genvision_jax.cli import common
from genvision_jax.cli import interpolate as interpolate_cli
from tests.conftest import experiment, run_main


def bars(widths, length: int = 20, size: int = 28):
  """Images [N, size, size, 1] in [-1, 1]: one horizontal bar per image, of the given widths."""
  out = -np.ones((len(widths), size, size, 1), np.float32)
  for i, w in enumerate(widths):
    top = (size - w) // 2
    out[i, top:top + w, 4:4 + length] = 1.0
  return out


def test_quantile_grid_by_hand():
  """n = 3 over [0.05, 0.95]: the probabilities 0.05, 0.5, 0.95, i.e. z = -1.6449, 0, 1.6449
  (Phi^-1(0.95) = 1.644854); z_1 grows along a row, z_2 is largest in the first row."""
  q = 1.6448536269514722
  expected = [[-q, q], [0, q], [q, q], [-q, 0], [0, 0], [q, 0], [-q, -q], [0, -q], [q, -q]]
  np.testing.assert_allclose(latent.quantile_grid(3), expected, atol=1e-6)
  # Equal prior mass per cell: the grid's values are the quantiles of an even grid.
  from scipy.stats import norm  # pylint: disable=g-import-not-at-top
  np.testing.assert_allclose(norm.cdf(latent.quantile_grid(5)[:5, 0]),
                             [0.05, 0.275, 0.5, 0.725, 0.95], atol=1e-6)


def test_traversal_codes_by_hand():
  base = jnp.array([0.5, -1.0, 2.0])
  z = latent.traversal_codes(base, 3, limit=3.0, dims=[2, 0])
  np.testing.assert_allclose(z, [[0.5, -1, -3], [0.5, -1, 0], [0.5, -1, 3],
                                 [-3, -1, 2], [0, -1, 2], [3, -1, 2]])
  assert latent.traversal_codes(base, 4).shape == (12, 3)


def test_kl_per_dimension_by_hand():
  """KL(N(m, e^lv) || N(0, 1)) = (m^2 + e^lv - 1 - lv) / 2: dimension 0 (m = 2, lv = 0) has 2,
  dimension 1 (the prior itself) 0, averaged over examples."""
  mean = jnp.array([[2.0, 0.0], [0.0, 0.0]])
  logvar = jnp.zeros((2, 2))
  np.testing.assert_allclose(latent.kl_per_dimension(mean, logvar), [1.0, 0.0])


def test_pixel_statistics_by_hand():
  x = bars([1, 3, 6])
  np.testing.assert_allclose(latent.ink_area(x), np.array([20, 60, 120]) / 784)
  thickness = latent.stroke_thickness(x)
  assert thickness[0] == 1.0  # a 1-pixel line is its own skeleton
  assert 2.7 < thickness[1] < 3.5 and 5.5 < thickness[2] < 7.5  # about the bar's width
  # Width, not area: a bar half as long has half the ink and the same thickness.
  short = bars([3], length=10)
  assert latent.ink_area(short)[0] == 30 / 784
  assert 2.7 < latent.stroke_thickness(short)[0] < 3.5
  assert latent.stroke_thickness(-np.ones((1, 8, 8, 1)))[0] == 0.0  # no ink, no division by 0


def test_arithmetic_on_class_and_attribute_means_by_hand():
  """Six digits of two classes with known codes (what a stub encoder returns): the 3s are bars
  1, 2 and 3 px wide, the 5s 4, 5 and 6 px. Thin and thick are the lowest / highest third of
  each class (one image each: 1 and 4 px, 3 and 6 px), not of all digits (which would be
  1, 2 and 5, 6 px); 3 - thin + thick moves mean(3) by the difference of those means."""
  labels = np.array([3, 3, 3, 5, 5, 5])
  images = bars([1, 2, 3, 4, 5, 6])
  codes = np.array([[1., 0.], [2., 0.], [3., 6.], [10., 1.], [20., 2.], [30., 3.]])
  terms = latent.parse_terms(['3', 'thin', 'thick'], 10)
  z, members = latent.term_arithmetic(codes, labels, images, terms, rows=3)
  np.testing.assert_array_equal(members[0], [1, 1, 1, 0, 0, 0])
  np.testing.assert_array_equal(members[1], [1, 0, 0, 1, 0, 0])
  np.testing.assert_array_equal(members[2], [0, 0, 1, 0, 0, 1])
  mean3, thin, thick = np.array([2., 2.]), np.array([5.5, 0.5]), np.array([16.5, 4.5])
  z = np.asarray(z).reshape(3, 4, 2)
  np.testing.assert_allclose(z[0], [mean3, thin, thick, mean3 - thin + thick])
  # The next rows start from single 3s (codes [1, 0] and [2, 0]) instead of their mean.
  np.testing.assert_allclose(z[1, 3], [1 - 5.5 + 16.5, 0 - 0.5 + 4.5])
  np.testing.assert_allclose(z[2, 0], [2., 0.])
  # Ink area: 'small' and 'large' pick the same images as thin and thick here.
  np.testing.assert_array_equal(latent.term_members('large', labels, images), members[2])


def test_bad_terms_and_empty_classes_are_refused():
  with pytest.raises(ValueError, match='three terms a,b,c.*unknown fat.*--terms=3,thin,thick'):
    latent.parse_terms(['3', 'thin', 'fat'], 10)
  with pytest.raises(ValueError, match='three terms'):
    latent.parse_terms(['3', 'thin'], 10)
  with pytest.raises(ValueError, match="no example of the split is in '7'"):
    latent.mean_code(np.zeros((2, 2)), np.array([False, False]), '7')


@pytest.fixture(scope='module')
def fitted_vae():
  """A small MLP VAE fitted to 16 test digits for 400 steps, and its untrained start."""
  config = configs.load(experiment('vae_mnist.py:mlp,smoke'), {
      'model.hidden': 128, 'model.latent_dim': 8, 'optim.learning_rate': 3e-3})
  split = data.load_split(data.DEFAULT_DATASET, 'test', 28)
  x = data.to_model_range(split.arrays()['image'][:16])
  method = methods.create(config, (28, 28, 1), 10)
  untrained = method.create_state(jax.random.key(0))
  step = jax.jit(method.train_step)
  state = untrained
  for _ in range(400):
    state, _ = step(state, {'image': jnp.asarray(x), 'label': jnp.zeros(16, jnp.int32)})
  return method, untrained, state, jnp.asarray(x)


def test_encode_then_decode_of_the_posterior_mean_reconstructs(fitted_vae):
  """D(E(x_i)) is closest to x_i among the 16 digits, and much closer than an untrained model's;
  the code is the posterior mean (deterministic), not a draw."""
  method, untrained, state, x = fitted_vae
  codes = latent.encode(method, state, x)
  np.testing.assert_array_equal(codes, latent.encode(method, state, x))
  np.testing.assert_allclose(codes, method.encode(state, x)[0])
  recon = method.decode(state, codes)
  err = np.asarray(jnp.mean((recon[:, None] - x[None]) ** 2, axis=(2, 3, 4)))  # [recon, image]
  assert (np.argmin(err, axis=1) == np.arange(16)).mean() >= 0.9, err
  before = method.decode(untrained, latent.encode(method, untrained, x))
  assert np.diag(err).mean() < 0.5 * float(jnp.mean((before - x) ** 2))
  # A code carries its image: the decoded mean code is worse than each image's own code.
  mean_code = method.decode(state, jnp.mean(codes, axis=0, keepdims=True))
  assert np.diag(err).mean() < 0.7 * float(jnp.mean((mean_code - x) ** 2))


def test_image_interpolation_ends_at_the_reconstructions(fitted_vae):
  method, _, state, x = fitted_vae
  strip = latent.image_interpolation(method, state, x[:2], x[2:4], 5, 'lerp')
  strip = np.asarray(strip).reshape(2, 7, 28, 28, 1)
  np.testing.assert_allclose(strip[:, 0], x[:2])
  np.testing.assert_allclose(strip[:, -1], x[2:4])
  codes = latent.encode(method, state, x[:4])
  np.testing.assert_allclose(strip[:, 1], method.decode(state, codes[:2]), atol=1e-6)
  np.testing.assert_allclose(strip[:, 5], method.decode(state, codes[2:4]), atol=1e-6)
  np.testing.assert_allclose(strip[:, 3], method.decode(state, (codes[:2] + codes[2:4]) / 2),
                             atol=1e-5)


def fake_run(monkeypatch, spec):
  """Makes the commands' load_run return an untrained model of `spec` (no checkpoint)."""
  config = configs.load(experiment(spec))
  method = methods.create(config, (28, 28, 1), 0)
  state = method.create_state(jax.random.key(0))
  monkeypatch.setattr(training, 'load_run', lambda workdir, step=None: (config, method, state))
  return method


def cli(capsys, *args):
  code = main.run(['genvision', *args])
  err = capsys.readouterr().err
  assert 'Traceback' not in err
  return code, err


def test_image_tools_on_a_model_without_encoder_are_one_clear_error(monkeypatch, capsys,
                                                                     tmp_path):
  fake_run(monkeypatch, 'dcgan_mnist.py:smoke')
  png = tmp_path / 'a.png'
  Image.fromarray(np.zeros((28, 28), np.uint8)).save(png)
  for args in (['interpolate', '--workdir=r', f'--from_images={png},{png}'],
               ['interpolate', '--workdir=r', '--from_split=test', '--arithmetic'],
               ['encode', '--workdir=r', '--split=test']):
    code, err = cli(capsys, *args)
    assert code == 2, err
    assert "a 'gan' run has no encoder" in err and 'vae' in err and 'vae_2d_mnist.py' in err


def test_refusals_before_and_after_loading(monkeypatch, capsys, tmp_path):
  fake_run(monkeypatch, 'vae_mnist.py:smoke')  # latent_dim 4
  code, err = cli(capsys, 'interpolate', '--workdir=r', '--manifold')
  assert code == 2 and 'latent_dim 4' in err and 'vae_2d_mnist.py' in err
  code, err = cli(capsys, 'interpolate', '--workdir=r', '--from_images=a.png,b.png,c.png')
  assert code == 2 and 'a multiple of 2 files (got 3)' in err
  code, err = cli(capsys, 'interpolate', '--workdir=r', '--manifold', '--traversal')
  assert code == 2 and 'give one of them' in err
  code, err = cli(capsys, 'interpolate', '--workdir=r', '--from_images=nope.png,nope.png')
  assert code == 2 and '--from_images=nope.png does not exist' in err
  text = tmp_path / 'notes.txt'
  text.write_text('not an image')
  code, err = cli(capsys, 'interpolate', '--workdir=r', f'--from_images={text},{text}')
  assert code == 2 and 'is not an image Pillow can read' in err
  code, err = cli(capsys, 'interpolate', '--workdir=r', '--from_split=test', '--arithmetic',
                  '--terms=3,thin,fat')
  assert code == 2 and 'unknown fat' in err
  code, err = cli(capsys, 'encode', '--workdir=r')
  assert code == 2 and '--images=A.png,... or --split=NAME' in err
  codes = tmp_path / 'codes.npy'
  np.save(codes, np.zeros((3, 2), np.float32))
  code, err = cli(capsys, 'decode', '--workdir=r', f'--codes={codes}')
  assert code == 2 and 'shape (3, 2)' in err and 'codes [N, 4]' in err


def test_a_wrong_size_colour_image_is_converted_and_resized(tmp_path):
  rgb = tmp_path / 'photo.png'
  Image.fromarray(np.full((64, 48, 3), 255, np.uint8)).save(rgb)
  x = interpolate_cli.read_images([str(rgb)] * 2, (28, 28, 1), '--from_images')
  assert x.shape == (2, 28, 28, 1)
  np.testing.assert_allclose(x, 1.0)
  with pytest.raises(common.UsageError, match='--images=missing.png does not exist'):
    interpolate_cli.read_images(['missing.png'], (28, 28, 1), '--images')


@pytest.fixture(scope='module')
def vae_2d_run(tmp_path_factory):
  """experiments/vae_2d_mnist.py:smoke trained through the CLI."""
  workdir = tmp_path_factory.mktemp('vae_2d') / 'run'
  proc = run_main('train', f'--config={experiment("vae_2d_mnist.py:smoke")}',
                 f'--workdir={workdir}')
  assert proc.returncode == 0, proc.stderr[-3000:]
  return workdir


def grid_shape(path, rows, cols):
  return np.asarray(Image.open(path)).shape[:2] == (2 * (rows * 30 + 2), 2 * (cols * 30 + 2))


def test_vae_2d_smoke_encode_decode_manifold_interpolate(vae_2d_run, tmp_path, capsys):
  """The 2-D VAE's :smoke run through every latent-space command: the codes file, the scatter,
  the reconstructions, decoding the codes back, the manifold, traversals, interpolation
  between encoded test digits and between image files, and arithmetic on class means."""
  run = str(vae_2d_run)
  codes = tmp_path / 'codes.npz'
  code, err = cli(capsys, 'encode', f'--workdir={run}', '--split=test', '--num=20',
                  f'--out={codes}', f'--scatter={tmp_path / "scatter.png"}',
                  f'--reconstruct={tmp_path / "recon.png"}')
  assert code == 0, err
  with np.load(codes) as f:
    assert f['mean'].shape == (20, 2) and f['logvar'].shape == (20, 2)
    assert f['label'].shape == (20,) and f['source'][3] == 'test[3]'
  assert grid_shape(tmp_path / 'recon.png', 6, 8)  # 20 images: 3 blocks of inputs over recons
  assert (tmp_path / 'scatter.png').stat().st_size > 0
  decoded = tmp_path / 'decoded.png'
  assert cli(capsys, 'decode', f'--workdir={run}', f'--codes={codes}', '--ncol=5',
             f'--out={decoded}')[0] == 0
  assert grid_shape(decoded, 4, 5)
  # The first decoded code is the first reconstruction (row 2 of the reconstruction grid).
  recon = np.asarray(Image.open(tmp_path / 'recon.png'))
  np.testing.assert_array_equal(np.asarray(Image.open(decoded))[4:60, 4:60], recon[64:120, 4:60])
  png = tmp_path / 'a.png'
  Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(png)
  for args, (rows, cols) in [
      (['--manifold', '--steps=4'], (4, 4)),
      (['--traversal', '--from_split=test', '--steps=5'], (2, 5)),
      (['--from_split=test', '--pairs=3', '--steps=4'], (3, 6)),
      ([f'--from_images={png},{png}', '--steps=3'], (1, 5)),
      (['--from_split=test', '--arithmetic', '--rows=3'], (3, 4))]:
    out = tmp_path / 'figure.png'
    code, err = cli(capsys, 'interpolate', f'--workdir={run}', f'--out={out}', *args)
    assert code == 0, (args, err)
    assert grid_shape(out, rows, cols), args
