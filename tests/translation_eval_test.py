"""Image-to-image evaluation (evaluation/translation.py): PSNR/SSIM against scikit-image, the
per-example pairs, and a pix2pix smoke run evaluated with its baseline and compared."""

import json
import os

import numpy as np
import pytest
from skimage import metrics as skmetrics

from genvision_jax import configs, tasks, training
from genvision_jax.evaluation import runner, translation
from tests.conftest import REPO


def test_psnr_and_ssim_agree_with_scikit_image():
  rng = np.random.default_rng(0)
  targets = rng.uniform(-1, 1, (3, 32, 32, 3)).astype(np.float32)
  outputs = np.clip(targets + rng.normal(0, 0.2, targets.shape), -1, 1).astype(np.float32)
  psnr, ssim = translation.psnr_ssim(outputs, targets)
  for i in range(3):
    a, b = (outputs[i] + 1) / 2, (targets[i] + 1) / 2
    assert psnr[i] == pytest.approx(skmetrics.peak_signal_noise_ratio(b, a, data_range=1.0),
                                    abs=1e-4)
    expected = skmetrics.structural_similarity(b, a, data_range=1.0, channel_axis=-1,
                                               gaussian_weights=True, sigma=1.5,
                                               use_sample_covariance=False)
    assert ssim[i] == pytest.approx(expected, abs=2e-3)


def test_evaluation_pairs_depend_on_the_example_not_the_batch():
  task = tasks.default_config()
  task.name, task.mask = 'inpainting', 'boxes'
  images = np.random.default_rng(1).uniform(-1, 1, (6, 28, 28, 1)).astype(np.float32)
  whole = tasks.degrade_examples(task, images, seed=3)
  tail = tasks.degrade_examples(task, images[4:], seed=3, first_index=4)
  np.testing.assert_array_equal(whole['known'][4:], tail['known'])
  assert not np.array_equal(whole['known'][0], whole['known'][1])


@pytest.fixture(scope='module')
def pix2pix_run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('p2p') / 'run')
  config = configs.load(str(REPO / 'experiments' / 'i2i' / 'pix2pix_mnist.py:smoke'), {})
  training.train_and_evaluate(config, workdir, verbose=False)
  return workdir


def test_evaluate_writes_the_run_and_its_baselines_and_compare_pairs_them(pix2pix_run):
  result = runner.evaluate_run(pix2pix_run, bootstrap=20, verbose=False)
  m = result['metrics']
  assert result['protocol']['examples'] == 500 and result['protocol']['split'] == 'test'
  for key in ('psnr', 'ssim', 'digits_cnn/accuracy', 'digits_cnn/fd',
              'digits_cnn/accuracy_input', 'digits_cnn/accuracy_target'):
    assert np.isfinite(m[key]), key
  assert m['digits_cnn/accuracy_target'] > 0.9  # the classifier knows the clean test digits
  base = os.path.join(pix2pix_run, 'eval', 'baselines', 'bicubic')
  with open(os.path.join(base, 'eval', 'metrics.json')) as f:
    bicubic = json.load(f)['metrics']
  # The bicubic baseline is the model's own input: its accuracy is the input's.
  assert bicubic['digits_cnn/accuracy'] == pytest.approx(m['digits_cnn/accuracy_input'])
  with np.load(os.path.join(pix2pix_run, 'eval', 'per_example.npz')) as f:
    assert f['psnr'].shape == (500,) and f['digits_cnn/correct'].shape == (500,)
  out = runner.compare([pix2pix_run, base], num_resamples=200)
  paired = {t['metric'] for t in out['tests'] if t['test'] == 'paired_bootstrap'}
  assert {'psnr (per example)', 'ssim (per example)',
          'digits_cnn/correct (per example)'} <= paired
  with pytest.raises(runner.EvaluationError, match='drop --metrics and --num_samples'):
    runner.evaluate_run(pix2pix_run, metrics=['kid'], verbose=False)
  with pytest.raises(ValueError, match='pix2pix translates images, it does not sample'):
    training.generate_images(*training.load_run(pix2pix_run)[1:], num=4)


def test_translate_writes_strips_and_takes_any_image_file(pix2pix_run, tmp_path):
  """Rows input | 2 samples | target from the test split; an RGB file of another size is
  converted and resized; a file that is no image is one clear error (exit 2)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from genvision_jax import main  # pylint: disable=g-import-not-at-top
  from genvision_jax.cli import common, translate  # pylint: disable=g-import-not-at-top
  out = translate.translate(pix2pix_run, str(tmp_path / 'a.png'), 0, None, True, num=3,
                            samples=2)
  with Image.open(out) as im:
    width, height = im.size
  assert abs(width / height - 4 / 3) < 0.05  # 3 rows of input, 2 samples, target
  rgb = tmp_path / 'photo.png'
  Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 70, 3), np.uint8)).save(rgb)
  x = common.read_image(str(rgb), 32, 1)
  assert x.shape == (1, 32, 32, 1) and -1.0 <= x.min() and x.max() <= 1.0
  bad = tmp_path / 'notes.txt'
  bad.write_text('not an image')
  assert main.run(['genvision', 'translate', f'--workdir={pix2pix_run}', f'--input={bad}',
                   f'--out={tmp_path / "b.png"}']) == 2
  assert not (tmp_path / 'b.png').exists()
