"""The `genvision` command end to end: train and sample on :smoke configs, preemption, and
bad input that must fail with one readable line, before any compute, touching nothing."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
from PIL import Image
import pytest

from tests.conftest import REPO, experiment, run_cli


@pytest.mark.parametrize('spec', ['vae_mnist.py:smoke', 'beta_vae_mnist.py:smoke',
                                  'dcgan_mnist.py:smoke'])
def test_train_then_sample(tmp_path, spec):
  workdir = tmp_path / 'run'
  proc = run_cli('train', f'--config={experiment(spec)}', f'--workdir={workdir}',
                 '--config.train.num_steps=4')
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'step 4/4' in proc.stdout
  assert (workdir / 'samples' / 'step_0000004.png').exists()
  out = tmp_path / 'grid.png'
  # Sampling needs the run directory only, not the dataset.
  env = dict(os.environ, TFDS_DATA_DIR=str(tmp_path / 'no_data_here'))
  proc = run_cli('sample', f'--workdir={workdir}', '--num=9', f'--out={out}', '--seed=3',
                 env=env)
  assert proc.returncode == 0, proc.stderr[-3000:]
  image = np.asarray(Image.open(out))
  # 3x3 grid of 28 px images with 2 px padding, upscaled 2x.
  assert image.shape == (2 * (3 * 30 + 2), 2 * (3 * 30 + 2))
  assert image.std() > 0
  if 'beta' in spec:
    return
  for extra, (rows, cols) in [(['--mode=lerp', '--steps=5'], (2, 5)), (['--arithmetic'], (2, 4))]:
    out = tmp_path / f'strip{cols}.png'
    proc = run_cli('interpolate', f'--workdir={workdir}', '--rows=2', f'--out={out}', *extra)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert np.asarray(Image.open(out)).shape == (2 * (rows * 30 + 2), 2 * (cols * 30 + 2))


def test_sigterm_saves_a_checkpoint_and_the_rerun_resumes(tmp_path):
  workdir = tmp_path / 'run'
  args = [sys.executable, '-m', 'genvision_jax', 'train',
          f'--config={experiment("vae_mnist.py:smoke")}', f'--workdir={workdir}',
          '--config.train.num_steps=100000', '--config.train.checkpoint_every=100000',
          '--config.train.log_every=1']
  proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
  metrics = workdir / 'metrics.jsonl'
  deadline = time.time() + 120
  while time.time() < deadline and not (metrics.exists() and metrics.stat().st_size > 0):
    time.sleep(0.2)
  proc.send_signal(signal.SIGTERM)
  _, stderr = proc.communicate(timeout=120)
  assert proc.returncode == 130, stderr[-3000:]
  assert 'SIGTERM at step' in stderr and 'Traceback' not in stderr
  saved = [int(s) for s in os.listdir(workdir / 'checkpoints')]
  assert len(saved) == 1 and saved[0] >= 1
  proc = run_cli('train', f'--config={experiment("vae_mnist.py:smoke")}', f'--workdir={workdir}',
                 f'--config.train.num_steps={saved[0] + 2}')
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert 'resumed from' in proc.stdout and f'step {saved[0] + 2}/' in proc.stdout


BAD_CONFIGS = [
    (['--config.train.bogus=1'], "unknown config key 'train.bogus'"),
    (['--config.trian.num_steps=1'], 'did you mean train.num_steps'),
    (['--config.train.batch_size=0'], 'train.batch_size must be a positive integer'),
    (['--config.train.num_steps=-5'], 'train.num_steps must be a positive integer'),
    (['--config.train.d_steps=0'], 'train.d_steps must be a positive integer'),
    (['--config.data.image_size=27'], 'data.image_size=27 is not supported'),
    (['--config.data.name=no_such_dataset'], "data.name='no_such_dataset' is not a TFDS"),
    (['--config.train.batch_size=abc'], 'invalid literal'),
    (['--config.model.d_norm=groupy'], 'model.d_norm must be one of'),
    (['--config.gan.loss=wasserstein'], 'gan.loss must be one of'),
    (['--config.optim.d.learning_rate=0'], 'optim.d.learning_rate must be > 0'),
]


@pytest.mark.parametrize('extra,message', BAD_CONFIGS)
def test_bad_config_is_one_clear_error_and_touches_nothing(tmp_path, extra, message):
  workdir = tmp_path / 'run'
  workdir.mkdir()
  (workdir / 'keep.txt').write_text('precious')
  proc = run_cli('train', f'--config={experiment("dcgan_mnist.py:smoke")}',
                 f'--workdir={workdir}', *extra)
  assert proc.returncode == 2, (proc.stdout, proc.stderr)
  assert message in proc.stderr, proc.stderr
  assert 'Traceback' not in proc.stderr
  assert sorted(os.listdir(workdir)) == ['keep.txt']


@pytest.mark.parametrize('config,message', [
    ('experiments/nope.py', 'does not exist'),
    ('experiments/vae_mnist.py:smokey', "unknown variant 'smokey'"),
])
def test_bad_config_file_or_variant(tmp_path, config, message):
  proc = run_cli('train', f'--config={config}', f'--workdir={tmp_path / "run"}')
  assert proc.returncode == 2 and message in proc.stderr and 'Traceback' not in proc.stderr
  assert not (tmp_path / 'run').exists()


def test_batch_not_divisible_by_devices(tmp_path):
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=8')
  proc = run_cli('train', f'--config={experiment("vae_mnist.py:smoke")}',
                 f'--workdir={tmp_path / "run"}', '--config.train.batch_size=12', env=env)
  assert proc.returncode == 2
  assert 'divisible by the 8 devices' in proc.stderr and 'Traceback' not in proc.stderr


def test_missing_dataset_offline_is_one_clear_error(tmp_path):
  proc = run_cli('train', f'--config={experiment("vae_mnist.py:smoke")}',
                 f'--workdir={tmp_path / "run"}', '--config.data.name=mnist',
                 f'--config.data.data_dir={tmp_path / "tfds"}', timeout=60)
  assert proc.returncode == 1
  assert '--config.data.data_dir' in proc.stderr and 'Traceback' not in proc.stderr
  assert not (tmp_path / 'run').exists()


def test_sample_from_a_directory_that_is_not_a_run(tmp_path):
  proc = run_cli('sample', f'--workdir={tmp_path}', '--num=4')
  assert proc.returncode == 1 and 'not a run directory' in proc.stderr
  assert 'Traceback' not in proc.stderr


def test_usage():
  proc = run_cli('--help')
  assert proc.returncode == 0 and 'genvision train' in proc.stdout
  proc = run_cli('fly')
  assert proc.returncode == 2 and "unknown command 'fly'" in proc.stderr
