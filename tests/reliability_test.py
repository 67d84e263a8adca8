"""Reliability of run directories (issue 15): a refused command changes nothing, every expected
failure is one line without a traceback, messages name the real cause, and a resumed run's
metrics have each logged step once.

Most cases run in-process (`main.run([...])`, stderr via capsys) on copies of one trained
:smoke run; faults (full disk, read-only file system) are simulated by OSErrors with the
system's errno raised from the functions that write, plus real tmpfs mounts where the tests
may mount (root in a container that allows it).
"""

import asyncio
import builtins
import errno
import hashlib
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time
import types

import orbax.checkpoint as ocp
import pytest

from genvision_jax import configs
from genvision_jax import main
from genvision_jax import training
from genvision_jax.training import rundir
from tests.conftest import REPO, experiment, run_cli

VAE = experiment('vae_mnist.py:smoke')


def manifest(root) -> dict:
  """{relative path: (size, sha256)} of every file under `root` (and its directories)."""
  root = pathlib.Path(root)
  out = {}
  for path in sorted(root.rglob('*')):
    rel = str(path.relative_to(root))
    if path.is_file():
      out[rel] = (path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest())
    else:
      out[rel] = 'dir'
  return out


@pytest.fixture(scope='session')
def trained(tmp_path_factory):
  """A vae :smoke run trained to step 6 (checkpoints 3 and 6, metrics at every step)."""
  workdir = tmp_path_factory.mktemp('trained') / 'run'
  config = configs.load(VAE, {'train.log_every': 1})
  training.train_and_evaluate(config, str(workdir), verbose=False)
  return workdir


@pytest.fixture
def run(trained, tmp_path):
  """A private copy of the trained run."""
  copy = tmp_path / 'run'
  shutil.copytree(trained, copy)
  return copy


def cli(capsys, *args) -> tuple[int, str, str]:
  code = main.run(['genvision', *args])
  captured = capsys.readouterr()
  return code, captured.out, captured.err


def one_line_error(err: str, command: str) -> str:
  """The stderr of a failed command: one line `genvision COMMAND: error: ...` (a config error
  lists its bad fields on '  - ' lines below it)."""
  lines = [line for line in err.splitlines() if line.strip()]
  assert lines and all(line.startswith('  - ') for line in lines[1:]), err
  assert lines[0].startswith(f'genvision {command}: error: '), err
  assert 'Traceback' not in err and 'Event loop is closed' not in err
  return '\n'.join(lines)


# -- 1. A refused command never changes a run directory -----------------------------------------

REFUSED = [  # (extra train args, words of the message)
    ([f'--config={experiment("dcgan_mnist.py:smoke")}'], ['method', 'new --workdir']),
    (['--config.model.width=8'], ['model.width', '--allow_config_change']),
    (['--config.optim.learning_rate=0.5'], ['optim.learning_rate']),
    (['--config.train.seed=3', '--config.train.num_steps=9'], ['train.seed']),
    (['--config.train.batch_size=1048576'], ['train.batch_size=1048576', 'exceeds']),
    (['--config.train.num_steps=-1'], ['train.num_steps']),
    (['--config.data.image_size=30'], ['data.image_size']),
]


def test_refused_train_commands_leave_the_run_directory_unchanged(run, capsys):
  before = manifest(run)
  for extra, words in REFUSED:
    args = ['train', f'--workdir={run}', *([] if extra[0].startswith('--config=') else
                                           [f'--config={VAE}']), *extra]
    code, _, err = cli(capsys, *args)
    assert code == 2, (extra, err)
    line = one_line_error(err, 'train')
    for word in words:
      assert word in line, (extra, line)
    assert manifest(run) == before, extra


def test_resumable_fields_may_change_and_are_stored(run, capsys):
  code, _, err = cli(capsys, 'train', f'--config={VAE}', f'--workdir={run}',
                     '--config.train.num_steps=8', '--config.train.checkpoint_every=4',
                     '--config.train.log_every=4', '--config.train.keep_checkpoints=5')
  assert code == 0, err
  stored = training.read_config(str(run))
  assert (stored.train.num_steps, stored.train.checkpoint_every) == (8, 4)
  assert sorted(os.listdir(run / 'checkpoints')) == ['3', '6', '8']


def test_every_method_names_only_existing_resumable_fields():
  """Each method's RESUMABLE_FIELDS (inherited, or () when it defines none) are fields of its
  configs, checked on every experiment file."""
  from genvision_jax import methods  # pylint: disable=g-import-not-at-top
  seen = set()
  for path in sorted(REPO.glob('experiments/**/*.py')):
    if 'studies' in path.parts:  # study configs name experiments; they are not one
      continue
    config = configs.load(str(path))
    flat = rundir._flat(config)  # pylint: disable=protected-access
    allowed = rundir.resumable_fields(config.method)
    assert allowed <= set(flat), (path.name, allowed - set(flat))
    seen.add(config.method)
  assert seen == set(methods.METHODS)

  class NewMethod:  # a method family that says nothing about resuming
    pass

  methods.METHODS['new'] = NewMethod
  try:
    assert rundir.resumable_fields('new') == frozenset(configs.RESUMABLE_FIELDS)
  finally:
    del methods.METHODS['new']


def test_allow_config_change_resumes_and_a_mismatched_checkpoint_says_so(run, capsys):
  before = manifest(run)
  code, _, err = cli(capsys, 'train', f'--config={VAE}', f'--workdir={run}',
                     '--config.model.width=8', '--allow_config_change')
  assert code == 1
  line = one_line_error(err, 'train')
  assert 'another shape' in line and 'model.width: 4 -> 8' in line, line
  assert 'corrupt' not in line
  assert manifest(run) == before
  code, _, err = cli(capsys, 'train', f'--config={VAE}', f'--workdir={run}',
                     '--config.optim.learning_rate=0.0005', '--allow_config_change',
                     '--config.train.num_steps=7')
  assert code == 0, err
  assert training.read_config(str(run)).optim.learning_rate == 0.0005


def test_small_files_are_replaced_atomically(tmp_path, monkeypatch):
  path = tmp_path / 'config.json'
  rundir.write_text(str(path), 'old')

  def crash(*args):
    raise OSError(errno.ENOSPC, 'No space left on device', args[0])

  monkeypatch.setattr(os, 'replace', crash)
  with pytest.raises(OSError):
    rundir.write_text(str(path), 'new')
  assert path.read_text() == 'old'
  assert os.listdir(tmp_path) == ['config.json']  # no temporary file left


def test_atomic_writes_name_the_file_and_keep_open_permissions(tmp_path, monkeypatch):
  new = tmp_path / 'data_info.json'
  rundir.write_text(str(new), '{}')
  umask = os.umask(0o022)
  os.umask(umask)
  assert new.stat().st_mode & 0o777 == 0o666 & ~umask  # as open(), not mkstemp's 0600
  new.chmod(0o640)
  rundir.write_text(str(new), '{"a": 1}')
  assert new.stat().st_mode & 0o777 == 0o640  # a rewrite keeps the file's mode

  def full(*args, **kwargs):
    raise OSError(errno.ENOSPC, 'No space left on device', kwargs.get('dir'))

  monkeypatch.setattr(rundir.tempfile, 'mkstemp', full)
  with pytest.raises(OSError) as raised:
    rundir.write_text(str(new), 'x')
  assert raised.value.filename == str(new)  # the file the user knows, not a temporary one


# -- 2. Every expected failure is one line ------------------------------------------------------

def test_bad_paths_are_one_line(run, tmp_path, capsys):
  a_file = tmp_path / 'a_file'
  a_file.write_text('x')
  cases = [
      (['train', f'--config={VAE}', f'--workdir={a_file}'], 'train',
       [str(a_file), 'a file is in the way of a directory']),
      (['train', f'--config={VAE}', f'--workdir={a_file}/run'], 'train',
       [str(a_file), 'Not a directory']),
      (['train', f'--config={VAE}', f'--workdir={tmp_path}/new',
        f'--config.data.data_dir={a_file}'], 'train', [str(a_file)]),
      (['sample', f'--workdir={run}', f'--out={tmp_path}/grid.txt'], 'sample', ['.png']),
      (['sample', f'--workdir={run}', f'--out={tmp_path}'], 'sample',
       ['existing directory']),
      (['interpolate', f'--workdir={run}', f'--out={a_file}/x.png'], 'interpolate',
       ['is a file']),
      (['sample', f'--workdir={a_file}'], 'sample', [str(a_file), 'not a run directory']),
  ]
  for args, command, words in cases:
    code, _, err = cli(capsys, *args)
    assert code in (1, 2), (args, err)
    line = one_line_error(err, command)
    for word in words:
      assert word in line, (args, line)
  assert not (tmp_path / 'new').exists()


@pytest.mark.parametrize('name, text', [('config.json', '{"method": "vae", '),
                                        ('config.json', '[1, 2]'),
                                        ('data_info.json', '{"image_shape": [28, 28'),
                                        ('data_info.json', '{"image_shape": "x"}')])
def test_malformed_run_files_are_one_line(run, capsys, name, text):
  (run / name).write_text(text)
  for command in ('sample', 'interpolate', 'evaluate'):
    code, _, err = cli(capsys, command, f'--workdir={run}', '--num_samples=10'
                       if command == 'evaluate' else f'--seed=0')
    assert code == 1, err
    line = one_line_error(err, command)
    assert f'{run}/{name} is malformed' in line, line


def _fail_writes_under(monkeypatch, root, code):
  """Every write below `root` (open for writing, os.open with O_CREAT/O_WRONLY/O_RDWR,
  makedirs/mkdir) raises OSError(code), as on a read-only or full file system."""
  root = os.path.abspath(root)
  message = os.strerror(code)

  def under(path):
    return os.path.abspath(os.fspath(path)).startswith(root)

  real_open, real_os_open = builtins.open, os.open
  real_makedirs, real_mkdir = os.makedirs, os.mkdir

  def fake_open(file, mode='r', *args, **kwargs):
    if isinstance(file, (str, os.PathLike)) and under(file) and set(mode) & set('wax+'):
      raise OSError(code, message, os.fspath(file))
    return real_open(file, mode, *args, **kwargs)

  def fake_os_open(path, flags, *args, **kwargs):
    if under(path) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
      raise OSError(code, message, os.fspath(path))
    return real_os_open(path, flags, *args, **kwargs)

  def fake_makedirs(path, *args, **kwargs):
    if under(path) and not os.path.isdir(path):
      raise OSError(code, message, os.fspath(path))
    return real_makedirs(path, *args, **kwargs)

  def fake_mkdir(path, *args, **kwargs):
    if under(path):
      raise OSError(code, message, os.fspath(path))
    return real_mkdir(path, *args, **kwargs)

  monkeypatch.setattr(builtins, 'open', fake_open)
  monkeypatch.setattr(os, 'open', fake_os_open)
  monkeypatch.setattr(os, 'makedirs', fake_makedirs)
  monkeypatch.setattr(os, 'mkdir', fake_mkdir)


def test_read_only_file_system_new_and_resumed_run(run, tmp_path, capsys, monkeypatch):
  before = manifest(run)
  _fail_writes_under(monkeypatch, tmp_path, errno.EROFS)
  for workdir, extra in [(tmp_path / 'new', []), (run, ['--config.train.num_steps=9'])]:
    code, _, err = cli(capsys, 'train', f'--config={VAE}', f'--workdir={workdir}', *extra)
    assert code == 1, err
    line = one_line_error(err, 'train')
    assert 'Read-only file system' in line and str(workdir) in line, line
    assert 'writable file system' in line
  monkeypatch.undo()
  assert manifest(run) == before
  assert not (tmp_path / 'new').exists()


def test_full_disk_while_checkpointing_keeps_the_last_checkpoint(run, capsys, monkeypatch):
  real_save = ocp.CheckpointManager.save

  def save(self, step, *args, **kwargs):
    if step > 6:
      raise OSError(errno.ENOSPC, 'No space left on device', f'{run}/checkpoints/{step}')
    return real_save(self, step, *args, **kwargs)

  monkeypatch.setattr(ocp.CheckpointManager, 'save', save)
  code, _, err = cli(capsys, 'train', f'--config={VAE}', f'--workdir={run}',
                     '--config.train.num_steps=9')
  assert code == 1
  line = one_line_error(err, 'train')
  assert 'No space left on device' in line and 'checkpoints/6 is intact' in line, line
  monkeypatch.undo()
  _, _, state = training.load_run(str(run))
  assert int(state.step) == 6


def test_full_disk_while_writing_events_is_one_line(run, capsys, monkeypatch):
  from tensorboardX import record_writer  # pylint: disable=g-import-not-at-top
  real_write = record_writer.RecordWriter.write
  calls = []

  def write(self, data):
    calls.append(1)
    if len(calls) > 3:  # the new events file's header and START are written
      raise OSError(errno.ENOSPC, 'No space left on device', self.path)
    return real_write(self, data)

  monkeypatch.setattr(record_writer.RecordWriter, 'write', write)
  code, _, err = cli(capsys, 'train', f'--config={VAE}', f'--workdir={run}',
                     '--config.train.num_steps=9', '--config.train.log_every=1')
  assert code == 1
  line = one_line_error(err, 'train')
  assert 'No space left on device' in line and 'events.out.tfevents' in line, line
  monkeypatch.undo()
  assert training.load_run(str(run))[2].step == 6


def _mount_tmpfs(path, options) -> bool:
  path.mkdir(parents=True, exist_ok=True)
  try:
    proc = subprocess.run(['mount', '-t', 'tmpfs', '-o', options, 'tmpfs', str(path)],
                          capture_output=True, timeout=30, check=False)
  except (OSError, subprocess.SubprocessError):
    return False
  return proc.returncode == 0


@pytest.fixture
def tmpfs(tmp_path):
  """mount(path, options) -> whether a real tmpfs was mounted there (unmounted after)."""
  mounted = []

  def mount(path, options):
    if _mount_tmpfs(path, options):
      mounted.append(path)
      return True
    return False

  yield mount
  for path in mounted:
    subprocess.run(['umount', '-l', str(path)], capture_output=True, check=False)


# The real CLI with the disk-space check before each checkpoint disabled: the disk fills up
# while orbax writes (what the check cannot foresee, e.g. another process writing there).
WITHOUT_SPACE_CHECK = ('import sys; from genvision_jax.training import checkpoints; '
                       'checkpoints._size_bound = lambda state: 0; from genvision_jax import main; '
                       'sys.exit(main.run(sys.argv))')


def test_real_full_disk_and_read_only_mounts(trained, tmp_path, capsys, tmpfs):
  """The same on real file systems, through the real CLI for the full disk (orbax's
  background threads report there): a tmpfs that fills up during a checkpoint write, and one
  remounted read-only."""
  size = sum(p.stat().st_blocks * 512 for p in trained.rglob('*'))  # a checkpoint: ~280 kB
  full = tmp_path / 'full'
  if not tmpfs(full, f'size={size + 192 * 1024}'):
    pytest.skip('cannot mount a tmpfs here (not root or no CAP_SYS_ADMIN)')
  shutil.copytree(trained, full / 'run')
  proc = subprocess.run(
      [sys.executable, '-c', WITHOUT_SPACE_CHECK, 'train', f'--config={VAE}',
       f'--workdir={full}/run', '--config.train.num_steps=60',
       '--config.train.checkpoint_every=3', '--config.train.keep_checkpoints=100',
       '--config.train.sample_every=100'],
      cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
  assert proc.returncode == 1, proc.stderr[-3000:]
  line = one_line_error(proc.stderr, 'train')
  assert 'No space left on device' in line and f'{full}/run/checkpoints' in line, line
  assert 'is intact' in line, line
  latest = max(int(s) for s in os.listdir(full / 'run' / 'checkpoints') if s.isdigit())
  _, _, state = training.load_run(str(full / 'run'))
  assert int(state.step) == latest >= 6

  ro = tmp_path / 'ro'
  assert tmpfs(ro, 'size=16m')
  shutil.copytree(trained, ro / 'run')
  before = manifest(ro / 'run')
  subprocess.run(['mount', '-o', 'remount,ro', str(ro)], check=True)
  for workdir, extra in [(ro / 'new', []), (ro / 'run', ['--config.train.num_steps=9'])]:
    code, _, err = cli(capsys, 'train', f'--config={VAE}', f'--workdir={workdir}', *extra)
    assert code == 1, err
    assert 'Read-only file system' in one_line_error(err, 'train')
  assert manifest(ro / 'run') == before


def test_a_disk_without_room_for_a_checkpoint_is_refused_before_writing(run, capsys,
                                                                        monkeypatch):
  """The disk-space check before each checkpoint: no partial step is started."""
  from genvision_jax.training import checkpoints  # pylint: disable=g-import-not-at-top
  real = shutil.disk_usage

  def disk_usage(path):
    usage = real(path)
    return usage._replace(free=100 * 1024)  # less than a vae :smoke checkpoint needs

  monkeypatch.setattr(checkpoints.shutil, 'disk_usage', disk_usage)
  code, _, err = cli(capsys, 'train', f'--config={VAE}', f'--workdir={run}',
                     '--config.train.num_steps=9')
  assert code == 1
  line = one_line_error(err, 'train')
  assert f'{run}/checkpoints: No space left on device (it needs about' in line, line
  assert 'checkpoints/6 is intact' in line, line
  assert sorted(os.listdir(run / 'checkpoints')) == ['3', '6']  # nothing partial


def test_leftovers_of_a_failed_checkpoint_read_or_write_are_not_printed():
  """After a checkpoint read or write failed half-way, tensorstore's threads call back into
  orbax's closed event loop, and orbax's coroutines of the other arrays are collected with
  their errors; Python reports each as unraisable (a traceback each, seen with a corrupt
  checkpoint and a disk filling up). The CLI drops those, and nothing else."""
  from genvision_jax.cli import common  # pylint: disable=g-import-not-at-top
  saved = sys.unraisablehook
  printed = []
  sys.unraisablehook = lambda unraisable: printed.append(str(unraisable.exc_value))
  loop = asyncio.new_event_loop()
  loop.close()

  def coroutine_of(filename):
    return types.SimpleNamespace(cr_code=types.SimpleNamespace(co_filename=filename))

  try:
    common.quiet_libraries()
    common.quiet_libraries()  # installed once
    for error, source in [
        (RuntimeError('Event loop is closed'), loop),
        (Exception('Encountered error while reading array index'),
         coroutine_of('/venv/site-packages/orbax/checkpoint/_src/serialization/x.py')),
        (ValueError('other'), loop),
        (Exception('ours'), coroutine_of('/repo/genvision_jax/x.py'))]:
      sys.unraisablehook(types.SimpleNamespace(exc_type=type(error), exc_value=error,
                                               exc_traceback=None, err_msg=None,
                                               object=source))
  finally:
    sys.unraisablehook = saved
  assert printed == ['other', 'ours']


def test_mismatched_restore_through_the_cli_is_one_line_without_thread_noise(run, tmp_path):
  """A real process: orbax's background threads must not print at exit."""
  (run / 'checkpoints' / '6').rename(tmp_path / 'moved')
  config = json.loads((run / 'config.json').read_text())
  config['model']['width'] = 8  # a config.json edited by hand: the checkpoint no longer fits
  (run / 'config.json').write_text(json.dumps(config))
  proc = run_cli('sample', f'--workdir={run}', f'--out={tmp_path}/x.png')
  assert proc.returncode == 1
  line = one_line_error(proc.stderr, 'sample')
  assert 'another shape' in line and 'checkpoints/3' in line, line


# -- 3. Messages that name the real cause -------------------------------------------------------

def test_a_step_that_does_not_exist_lists_the_available_ones(run, capsys):
  code, _, err = cli(capsys, 'sample', f'--workdir={run}', '--step=4')
  assert code == 1
  line = one_line_error(err, 'sample')
  assert 'no checkpoint of step 4' in line and 'available steps: 3, 6' in line, line
  assert 'corrupt' not in line


# -- 4. Metrics after a crash -------------------------------------------------------------------

def _event_steps(workdir):
  """[(file, [(step, kind)])] of the TensorBoard event files, oldest first."""
  from tensorboardX.proto import event_pb2  # pylint: disable=g-import-not-at-top
  import struct  # pylint: disable=g-import-not-at-top
  out = []
  for path in sorted(pathlib.Path(workdir).glob('events.out.tfevents.*')):
    data, events, i = path.read_bytes(), [], 0
    while i < len(data):
      (length,) = struct.unpack('<Q', data[i:i + 8])
      event = event_pb2.Event.FromString(data[i + 12:i + 12 + length])
      i += 12 + length + 4
      kind = event.WhichOneof('what')
      if kind == 'session_log':
        kind = event_pb2.SessionLog.SessionStatus.Name(event.session_log.status)
      events.append((event.step, kind))
    out.append((path.name, events))
  return out


def test_no_duplicate_steps_after_a_crash_past_the_last_checkpoint(run, capsys):
  """A run killed after logging steps 4..6 but before checkpoint 6 was complete (simulated:
  checkpoint 6 removed, a torn last line): the resumed run logs each step once."""
  shutil.rmtree(run / 'checkpoints' / '6')
  with open(run / 'metrics.jsonl', 'a') as f:
    f.write('{"step": 7, "lo')
  code, _, err = cli(capsys, 'train', f'--config={VAE}', f'--workdir={run}',
                     '--config.train.log_every=1')
  assert code == 0, err
  steps = [r['step'] for r in map(json.loads, (run / 'metrics.jsonl').read_text().splitlines())]
  assert steps == [1, 2, 3, 4, 5, 6]
  files = _event_steps(run)
  assert len(files) == 2  # the first run's, and the resumed run's starting with a purge
  first, resumed = files[0][1], files[1][1]
  assert resumed[1] == (4, 'START')  # TensorBoard drops the older events of steps >= 4
  assert {s for s, k in resumed if k == 'summary'} == {4, 5, 6}
  assert {s for s, k in first if k == 'summary'} >= {4, 5, 6}


def test_no_duplicate_steps_after_kill_9(tmp_path, capsys):
  """A real `genvision train` killed with SIGKILL after logging past its last checkpoint,
  then resumed: metrics.jsonl holds each logged step once; TensorBoard's newer events file
  starts with a purge of the steps after the restored checkpoint."""
  workdir = tmp_path / 'run'
  args = [f'--config={VAE}', f'--workdir={workdir}', '--config.train.log_every=1',
          '--config.train.checkpoint_every=20', '--config.train.sample_every=100000']
  proc = subprocess.Popen([sys.executable, '-m', 'genvision_jax', 'train', *args,
                           '--config.train.num_steps=100000'], cwd=REPO,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  try:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
      time.sleep(0.2)
      if (workdir / 'checkpoints' / '20').is_dir() and (workdir / 'metrics.jsonl').exists():
        if len((workdir / 'metrics.jsonl').read_text().splitlines()) >= 30:
          break
  finally:
    proc.send_signal(signal.SIGKILL)
    proc.wait()
  logged = len((workdir / 'metrics.jsonl').read_text().splitlines())
  latest = max(int(s) for s in os.listdir(workdir / 'checkpoints') if s.isdigit())
  assert logged > latest, (logged, latest)  # steps after the checkpoint were logged
  end = logged + 5
  code, _, err = cli(capsys, 'train', *args, f'--config.train.num_steps={end}')
  assert code == 0, err
  steps = [r['step'] for r in map(json.loads, (workdir / 'metrics.jsonl').read_text().splitlines())]
  assert steps == list(range(1, end + 1))
  resumed = _event_steps(workdir)[-1][1]
  assert resumed[1] == (latest + 1, 'START')


def test_progress_prints_to_the_stdout_of_the_moment(monkeypatch):
  """Progress lines go to sys.stdout as it is when the run starts, not as it was when the
  module was imported (an in-process CLI run after a test whose captured stdout was closed
  failed with 'I/O operation on closed file'). Fails on the old code."""
  import io  # pylint: disable=g-import-not-at-top
  from genvision_jax.training import writers  # pylint: disable=g-import-not-at-top
  now = io.StringIO()
  monkeypatch.setattr(sys, 'stdout', now)
  writers.Progress(total=10).message('hello')
  assert now.getvalue() == 'hello\n'
