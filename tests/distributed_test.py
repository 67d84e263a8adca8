"""Two CPU processes on jax.distributed (gloo collectives over 127.0.0.1) train to the same
state as one process: a global batch assembled from process-local slices."""

import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from genvision_jax import training
from tests.conftest import REPO, experiment, host_leaves, run_cli


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


@pytest.mark.parametrize('spec,placement', [('dcgan_mnist.py:smoke', 'host'),
                                            ('vae_mnist.py:smoke', 'device')])
def test_two_processes_equal_one_process(tmp_path, spec, placement):
  args = ['train', f'--config={experiment(spec)}', '--config.train.num_steps=4',
          f'--config.data.placement={placement}']
  single = run_cli(*args, f'--workdir={tmp_path / "single"}')
  assert single.returncode == 0, single.stderr[-3000:]

  port = _free_port()
  procs = [subprocess.Popen(
      [sys.executable, '-m', 'genvision_jax', *args, f'--workdir={tmp_path / "multi"}',
       f'--coordinator_address=127.0.0.1:{port}', '--num_processes=2', f'--process_id={i}'],
      cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
  outs = [p.communicate(timeout=300) for p in procs]
  for p, (out, err) in zip(procs, outs):
    assert p.returncode == 0, (out[-2000:], err[-3000:])
  assert 'step 4/4' in outs[0][0] and 'step 4/4' not in outs[1][0]  # process 0 reports

  _, _, one = training.load_run(str(tmp_path / 'single'))
  _, _, two = training.load_run(str(tmp_path / 'multi'))
  for a, b in zip(host_leaves(one), host_leaves(two)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)
