"""Shared fixtures. Tests run on CPU with most XLA optimizations and the new fusion emitters
off (fast compiles) and share JAX's persistent compilation cache (the same steps are compiled
by many tests and CLI subprocesses: a resumed run, the two processes of a distributed test,
...); the settings go through the environment so that xdist workers, CLI subprocesses and
notebook kernels inherit them. Cache keys hash the program, jax version and flags, so a stale
entry is never used."""

import os
import tempfile

os.environ.setdefault('JAX_PLATFORMS', 'cpu')
os.environ.setdefault('JAX_DISABLE_MOST_OPTIMIZATIONS', '1')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
os.environ.setdefault('JAX_COMPILATION_CACHE_DIR', os.path.join(
    tempfile.gettempdir(), f'genvision_jax_test_xla_cache_{os.getuid()}'))
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')
# XLA:CPU's legacy fusion emitters compile a smoke U-Net's train step in ~70 % of the time of
# the default ones (it runs ~30 % slower; the suite is compile-bound): the whole suite with a
# cold cache on 2 cores, session 15: 1,470 s -> 1,150 s.
_FAST_COMPILE_FLAG = '--xla_cpu_use_fusion_emitters=false'
if _FAST_COMPILE_FLAG not in os.environ.get('XLA_FLAGS', ''):
  os.environ['XLA_FLAGS'] = f"{os.environ.get('XLA_FLAGS', '')} {_FAST_COMPILE_FLAG}".strip()

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


def run_main(*args, env: dict | None = None) -> subprocess.CompletedProcess:
  """Runs `genvision ARGS` in this process (the console script's own entry point,
  `main.run`) from the repo root: what
  `run_cli` checks, without a fresh interpreter's imports and compiles per call; `env`, as in
  subprocess.run, is the whole environment of the call. A bug's
  traceback becomes stderr with exit code 1, as in a subprocess. tests/cli_test.py and the
  multi-process tests keep real subprocesses."""
  import contextlib  # pylint: disable=g-import-not-at-top
  import io  # pylint: disable=g-import-not-at-top
  import traceback  # pylint: disable=g-import-not-at-top
  from genvision_jax import main  # pylint: disable=g-import-not-at-top
  out, err = io.StringIO(), io.StringIO()
  saved_env, saved_cwd = dict(os.environ), os.getcwd()
  if env is not None:
    os.environ.clear()
    os.environ.update(env)
  os.chdir(REPO)
  try:
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
      try:
        code = main.run(['genvision', *map(str, args)])
      except Exception:  # pylint: disable=broad-except
        traceback.print_exc()
        code = 1
  finally:
    os.chdir(saved_cwd)
    os.environ.clear()
    os.environ.update(saved_env)
  return subprocess.CompletedProcess(['genvision', *args], code, out.getvalue(), err.getvalue())


def host_leaves(tree):
  """Every leaf of a (device) pytree as a host array, typed PRNG keys as their key data: what
  bit-exact comparisons of training states compare."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  return [np.asarray(jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key)
                     else x) for x in jax.tree.leaves(jax.device_get(tree))]


def shared_path(tmp_path_factory, name: str) -> pathlib.Path:
  """A directory shared by every xdist worker of this session (the workers' common temp root),
  for results that one worker builds and the others reuse under `shared_lock`."""
  root = tmp_path_factory.getbasetemp()
  if os.environ.get('PYTEST_XDIST_WORKER'):
    root = root.parent
  return root / name


class shared_lock:  # pylint: disable=invalid-name
  """An exclusive fcntl lock on PATH.lock: one worker at a time builds a shared result."""

  def __init__(self, path: pathlib.Path):
    self._path = str(path) + '.lock'

  def __enter__(self):
    import fcntl  # pylint: disable=g-import-not-at-top
    self._file = open(self._path, 'w')
    fcntl.flock(self._file, fcntl.LOCK_EX)
    return self

  def __exit__(self, *exc):
    import fcntl  # pylint: disable=g-import-not-at-top
    fcntl.flock(self._file, fcntl.LOCK_UN)
    self._file.close()


def chromium():
  """A headless Chromium driven by selenium through the OS's chromedriver (Debian packages
  chromium and chromium-driver; .ci/run installs them). No browser is ever downloaded."""
  import shutil  # pylint: disable=g-import-not-at-top
  from selenium import webdriver  # pylint: disable=g-import-not-at-top
  from selenium.webdriver.chrome.service import Service  # pylint: disable=g-import-not-at-top
  binary = shutil.which('chromium') or shutil.which('chromium-browser')
  driver = shutil.which('chromedriver')
  if not binary or not driver:
    pytest.fail('the browser tests need Chromium and its driver from the OS: apt-get install '
                'chromium chromium-driver (see README, "Two commands")')
  options = webdriver.ChromeOptions()
  options.binary_location = binary
  for arg in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage',
              '--window-size=1200,900'):
    options.add_argument(arg)
  options.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
  return webdriver.Chrome(service=Service(driver), options=options)


@pytest.fixture(scope='session')
def scenes_dir(tmp_path_factory):
  """A TFDS data_dir with digit_scenes/one and /two prepared by the real builder at 1/50 of
  their size (SIZES patched while preparing), shared by the workers."""
  path = shared_path(tmp_path_factory, 'digit_scenes_small')
  with shared_lock(path):
    from genvision_jax import data as data_lib  # pylint: disable=g-import-not-at-top
    from genvision_jax.data import digit_scenes  # pylint: disable=g-import-not-at-top
    saved = {k: dict(v) for k, v in digit_scenes.SIZES.items()}
    digit_scenes.SIZES.update({'one': {'train': 60, 'test': 20},
                               'two': {'train': 200, 'test': 40, 'test_heldout': 40}})
    try:
      for config in ('one', 'two'):
        data_lib.ensure_prepared(f'digit_scenes/{config}', str(path))
    finally:
      digit_scenes.SIZES.clear()
      digit_scenes.SIZES.update(saved)
  return str(path)
