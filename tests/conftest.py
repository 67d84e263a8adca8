"""Shared fixtures. Tests run on CPU with most XLA optimizations off (fast compiles); the
settings go through the environment so that CLI subprocesses inherit them."""

import os

os.environ.setdefault('JAX_PLATFORMS', 'cpu')
os.environ.setdefault('JAX_DISABLE_MOST_OPTIMIZATIONS', '1')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

import pathlib  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
EXPERIMENTS = REPO / 'experiments'


@pytest.fixture(scope='session', autouse=True)
def data_dir(tmp_path_factory):
  """A private TFDS data_dir holding the offline default dataset, prepared once per session.

  Exported as TFDS_DATA_DIR so configs with data.data_dir='' (and CLI subprocesses) use it.
  """
  path = tmp_path_factory.mktemp('tfds')
  os.environ['TFDS_DATA_DIR'] = str(path)
  from genvision_jax import data  # pylint: disable=g-import-not-at-top
  data.ensure_prepared(data.DEFAULT_DATASET, str(path))
  return str(path)


def experiment(name: str) -> str:
  return str(EXPERIMENTS / name)


def run_cli(*args, timeout=300, **kwargs) -> subprocess.CompletedProcess:
  """Runs `python -m genvision_jax ARGS` from the repo root."""
  return subprocess.run([sys.executable, '-m', 'genvision_jax', *args], cwd=REPO,
                        capture_output=True, text=True, timeout=timeout, **kwargs)
