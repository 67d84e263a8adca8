"""`genvision pgm denoise | classify | sample` (evaluation/graphical.py) at tiny sizes, in
process; and the flip noise of the denoising task."""

import json
import os
import re

import jax
import ml_collections
import numpy as np
import pytest

from tests.conftest import experiment, run_main
from genvision_jax import tasks
from genvision_jax.evaluation import graphical


def test_flip_noise_flips_binarized_pixels_at_the_rate():
  task = ml_collections.ConfigDict(tasks.default_config().to_dict())
  task.update({'name': 'denoising', 'noise': 'flip', 'flip_prob': 0.2})
  images = jax.random.uniform(jax.random.key(0), (8, 28, 28, 1), minval=-1.0, maxval=1.0)
  noisy = np.asarray(tasks.corrupt(task, images, jax.random.key(1)))
  binary = np.where(np.asarray(images) > 0, 1.0, -1.0)
  assert set(np.unique(noisy)) <= {-1.0, 1.0}
  assert abs(np.mean(noisy != binary) - 0.2) < 0.01           # 6,272 pixels: sd 0.005
  clean = np.zeros((50, 28, 28), np.int32)
  a, b = graphical.flip_noise(clean, 0.1, 0), graphical.flip_noise(clean[:10], 0.1, 0)
  np.testing.assert_array_equal(a[:10], b)                     # keyed per image, not per batch
  assert abs(a.mean() - 0.1) < 0.01


def test_per_image_error_rate_and_psnr_by_hand():
  clean = np.zeros((2, 4, 4), np.int32)
  est = clean.copy()
  est[0, 0, :2] = 1                                            # 2 of 16 pixels wrong
  per = graphical._per_image(est, clean)
  np.testing.assert_allclose(per['error_rate'], [2 / 16, 0])
  np.testing.assert_allclose(per['psnr'], [-10 * np.log10(2 / 16), -10 * np.log10(0.5 / 16)])


@pytest.fixture(scope='module')
def flip_dae(tmp_path_factory):
  run = str(tmp_path_factory.mktemp('pgm') / 'dae_flip')
  r = run_main('train', f'--config={experiment("ae/dae_mnist.py:smoke")}',
               '--config.task.noise=flip', f'--workdir={run}')
  assert r.returncode == 0, r.stderr[-2000:]
  return run


def test_pgm_denoise_classify_sample_through_the_cli(flip_dae, tmp_path):
  out = tmp_path / 'pgm'
  r = run_main('pgm', 'denoise', f'--out={out}', '--num=16', '--flips=0.1', '--train_num=300',
               '--gibbs_sweeps=10', '--pcd_steps=30', f'--dae={flip_dae}')
  assert r.returncode == 0, r.stderr[-2000:]
  summary = json.load(open(out / 'denoise.json'))
  row = summary['results']['0.1']
  assert set(row) == {'noisy', 'median', 'icm', 'bp_map', 'bp_marginal', 'gibbs_marginal', 'dae'}
  assert abs(row['noisy']['error_rate'] - 0.1) < 0.03
  assert 0 <= summary['bp']['0.1']['bp_map_converged'] <= 1
  assert 1 <= summary['bp']['0.1']['bp_marginal_iterations'] <= 100
  for name in ('icm', 'bp_map', 'bp_marginal', 'gibbs_marginal'):   # the prior helps
    assert row[name]['error_rate'] < 0.6 * row['noisy']['error_rate'], name
  assert os.path.isfile(out / 'denoise.png') and os.path.isfile(out / 'denoise_examples.png')
  cmp_png = tmp_path / 'cmp.png'
  r = run_main('compare', str(out / 'flip_0.1' / 'bp_map'), str(out / 'flip_0.1' / 'noisy'),
               f'--out={cmp_png}')
  assert r.returncode == 0, r.stderr[-2000:]
  assert 'error_rate' in r.stdout and os.path.isfile(cmp_png)

  r = run_main('pgm', 'classify', f'--out={out}', '--sizes=20,200', '--repeats=2')
  assert r.returncode == 0, r.stderr[-2000:]
  result = json.load(open(out / 'classify.json'))
  assert result['sizes'] == [20, 200]
  assert result['naive_bayes'][1]['mean'] > 0.6 and result['logistic_regression'][1]['mean'] > 0.6
  assert len(result['naive_bayes'][0]['values']) == 2 and os.path.isfile(out / 'classify.png')

  r = run_main('pgm', 'sample', f'--out={out}', '--num=3', '--gibbs_sweeps=20',
               '--train_num=300', '--pcd_steps=30')
  assert r.returncode == 0, r.stderr[-2000:]
  stats = json.load(open(out / 'samples.json'))['statistics']
  # the MRF's couplings make smoother pictures than independent pixels
  for fit in ('pseudo-likelihood', 'maximum likelihood'):
    assert (stats[f'grid MRF, {fit} (Gibbs, 20 sweeps)']['mean_neighbour_agreement'] >
            stats['product of Bernoullis']['mean_neighbour_agreement'])


@pytest.mark.parametrize('args, message', [
    ((), 'pgm needs one subcommand'),
    (('denoise',), 'needs --out'),
    (('denoise', '--out=X', '--flips=0.7'), r'--flips values must be in \(0.0, 0.5\)'),
    (('denoise', '--out=X', '--flips=abc'), '--flips takes floats'),
    (('classify', '--out=X', '--repeats=1'), '--repeats must be >= 2'),
    (('sample', '--out=X', '--vae=/nonexistent'), 'is not a trained run directory'),
])
def test_pgm_bad_arguments_are_one_line_errors(args, message, tmp_path):
  r = run_main('pgm', *[a.replace('X', str(tmp_path / 'o')) for a in args])
  assert r.returncode == 2, r.stderr
  assert re.search(message, r.stderr), r.stderr
  assert not os.path.exists(tmp_path / 'o')


def test_pgm_refuses_a_run_of_the_wrong_method(flip_dae, tmp_path):
  r = run_main('pgm', 'sample', f'--out={tmp_path / "o"}', f'--vae={flip_dae}')
  assert r.returncode == 2
  assert 'is a run of method autoencoder (denoising); --vae takes a run of method vae' in r.stderr
  assert not os.path.exists(tmp_path / 'o')
