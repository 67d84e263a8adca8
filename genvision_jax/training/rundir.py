"""The small files of a run directory: atomic writes, checked reads, and the resume check.

Guarantees (see the README's "Reliability"):
  * every small file (config.json, data_info.json, metrics.jsonl rewrites, eval JSON, sample
    PNGs) is written to a temporary file in the same directory and `os.replace`d over the old
    one: a reader, or a run killed with kill -9 mid-write, sees the old file or the new one;
  * `check_resume` compares a resumed run's config with the stored config.json before anything
    is written: only the fields that may change on resume (`configs.RESUMABLE_FIELDS` and the
    method's own `RESUMABLE_FIELDS`) may differ, any other difference refuses the run;
  * a malformed config.json / data_info.json is a `RunDirError` naming the file and the fix;
  * `describe_os_error` turns an OSError into one sentence naming the path and the fix, by
    errno (the error boundary of every command, `cli/common.py`, uses it).
"""

import contextlib
import errno
import json
import os
import re
import tempfile

CONFIG_FILE = 'config.json'
DATA_INFO = 'data_info.json'  # image shape and classes of the training data, for sampling
METRICS_FILE = 'metrics.jsonl'
COMMAND_FILE = 'command.txt'  # the command line that trains the run (reports quote it)


class RunDirError(RuntimeError):
  """A run directory's file is malformed, or a command would change a run it must not."""


class ConfigChangeError(RunDirError):
  """A resumed run's config differs from the stored one in fields that may not change."""


# -- atomic writes ----------------------------------------------------------------------------

@contextlib.contextmanager
def atomic_open(path: str, mode: str = 'w'):
  """Opens a temporary file next to `path`; on a clean exit it is flushed, fsynced and renamed
  over `path` (atomic on POSIX); on an error it is removed and `path` is untouched."""
  directory = os.path.dirname(os.path.abspath(path))
  try:
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f'.{os.path.basename(path)}.',
                               suffix='.tmp')
  except OSError as e:
    raise _naming(e, path) from None
  try:
    os.fchmod(fd, _file_mode(path))  # mkstemp's 0600 -> what open() would have given
    with os.fdopen(fd, mode) as f:
      yield f
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException as e:
    with contextlib.suppress(OSError):
      os.remove(tmp)
    if isinstance(e, OSError) and e.filename in (tmp, None):
      raise _naming(e, path) from None
    raise


def _file_mode(path: str) -> int:
  """The permission bits of the existing `path`, else 0666 minus the process's umask."""
  try:
    return os.stat(path).st_mode & 0o7777
  except OSError:
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def _naming(e: OSError, path: str) -> OSError:
  """The same system error about the file the user knows (not our temporary file)."""
  return OSError(e.errno, e.strerror, path) if e.errno is not None else e


def write_text(path: str, text: str) -> None:
  with atomic_open(path) as f:
    f.write(text)


def write_json(path: str, value, **kwargs) -> None:
  write_text(path, json.dumps(value, **kwargs))


# -- checked reads ------------------------------------------------------------------------------

def read_json(path: str, what: str):
  """The JSON object in `path`, or a RunDirError naming the file and the fix."""
  try:
    with open(path) as f:
      value = json.load(f)
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise RunDirError(
        f'{path} is malformed ({what}: {e.__class__.__name__}: {e}); restore it from a copy '
        'or retrain in a new --workdir') from None
  if not isinstance(value, dict):
    raise RunDirError(f'{path} is malformed ({what}: expected a JSON object, got '
                      f'{type(value).__name__}); restore it from a copy or retrain in a new '
                      '--workdir')
  return value


def read_config(workdir: str):
  """The ConfigDict of the run in `workdir` (fields added since filled in, see
  configs.from_dict)."""
  from genvision_jax import configs  # pylint: disable=g-import-not-at-top
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.isdir(workdir):
    what = 'it is a file' if os.path.exists(workdir) else 'it does not exist: no config.json'
    raise FileNotFoundError(f'{workdir} is not a run directory ({what}); pass the '
                            '--workdir of a `genvision train` run')
  if not os.path.isfile(path):
    raise FileNotFoundError(f'{workdir} is not a run directory (no config.json); pass the '
                            '--workdir of a `genvision train` run')
  stored = read_json(path, 'the config of the run')
  try:
    return configs.from_dict(stored)
  except Exception as e:  # pylint: disable=broad-except
    raise RunDirError(f'{path} is malformed (not a config: {e.__class__.__name__}: {e}); '
                      'restore it from a copy or retrain in a new --workdir') from None


def read_data_info(workdir: str) -> dict | None:
  """{'image_shape', 'num_classes', ...} of data_info.json, None if there is none."""
  path = os.path.join(workdir, DATA_INFO)
  if not os.path.isfile(path):
    return None
  info = read_json(path, 'image shape and classes of the training data')
  shape, classes = info.get('image_shape'), info.get('num_classes')
  if not (isinstance(shape, list) and len(shape) == 3
          and all(isinstance(s, int) and s > 0 for s in shape)
          and isinstance(classes, int) and classes >= 0):
    raise RunDirError(f'{path} is malformed (expected image_shape [H, W, C] and num_classes '
                      f'>= 0, got {info!r}); delete it to read the shape from the dataset, '
                      'or restore it from a copy')
  return info


# -- the resume check ---------------------------------------------------------------------------

def _flat(config) -> dict:
  """{dotted key: JSON value} of a ConfigDict or dict (tuples and lists compare equal)."""
  as_dict = config.to_dict() if hasattr(config, 'to_dict') else config
  as_json = json.loads(json.dumps(as_dict, default=str))
  out = {}

  def walk(node, prefix):
    for key, value in node.items():
      if isinstance(value, dict):
        walk(value, f'{prefix}{key}.')
      else:
        out[f'{prefix}{key}'] = value

  walk(as_json, '')
  return out


def resumable_fields(method_name: str) -> frozenset:
  """The fields a resumed run may change: the shared `configs.RESUMABLE_FIELDS` and the
  method's own `RESUMABLE_FIELDS`."""
  from genvision_jax import configs, methods  # pylint: disable=g-import-not-at-top
  method = methods.METHODS.get(method_name)
  return frozenset(configs.RESUMABLE_FIELDS) | frozenset(
      getattr(method, 'RESUMABLE_FIELDS', ()))


def config_changes(stored, config) -> tuple[dict, dict]:
  """(accepted, refused): {field: (stored value, new value)} of the fields that differ."""
  old, new = _flat(stored), _flat(config)
  allowed = resumable_fields(new.get('method'))
  accepted, refused = {}, {}
  for key in sorted(set(old) | set(new)):
    a, b = old.get(key, '<absent>'), new.get(key, '<absent>')
    if a != b:
      (accepted if key in allowed else refused)[key] = (a, b)
  return accepted, refused


def describe_changes(changes: dict, most: int = 12) -> str:
  """'field: old -> new, ...' (the first `most` of them, then how many more)."""
  text = ', '.join(f'{k}: {a!r} -> {b!r}' for k, (a, b) in list(changes.items())[:most])
  return text + (f' and {len(changes) - most} more' if len(changes) > most else '')


def check_resume(config, workdir: str, allow_config_change: bool = False) -> dict:
  """Before a run writes anything in `workdir`: refuses a config that differs from the stored
  one in a field that may not change on resume (unless `allow_config_change`). Returns those
  fields {field: (stored, new)} that `allow_config_change` let through ({} otherwise)."""
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), workdir)
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.isfile(path):
    return {}
  stored = read_config(workdir)
  if stored.get('method') != config.get('method'):  # never resumable, not even when allowed
    raise ConfigChangeError(
        f'{workdir} holds a run of method={stored.get("method")!r}, not '
        f'method={config.get("method")!r}. Nothing was written. Train in a new --workdir.')
  accepted, refused = config_changes(stored, config)
  if refused and not allow_config_change:
    raise ConfigChangeError(
        f'{workdir} holds a run of another config: {describe_changes(refused)} (only '
        f'{", ".join(sorted(resumable_fields(config.method)))} may change on resume). Nothing '
        'was written. Train in a new --workdir, or pass --allow_config_change to resume '
        'this run with the new values (its checkpoint must still fit the model).')
  del accepted  # stored in config.json when the run starts
  return refused


# -- metrics after a crash ----------------------------------------------------------------------

def truncate_metrics(workdir: str, step: int) -> int:
  """Drops the metrics.jsonl records after `step` (logged after the checkpoint a resumed run
  restores, then logged again) and a torn last line; atomic. Returns the records dropped."""
  path = os.path.join(workdir, METRICS_FILE)
  if not os.path.isfile(path):
    return 0
  with open(path) as f:
    lines = f.readlines()
  kept = []
  for line in lines:
    try:
      record = json.loads(line)
    except json.JSONDecodeError:
      continue  # a line torn by a kill mid-write
    if isinstance(record, dict) and record.get('step', 0) <= step:
      kept.append(line if line.endswith('\n') else line + '\n')
  dropped = len(lines) - len(kept)
  if dropped:
    write_text(path, ''.join(kept))
  return dropped


# -- OSError in one sentence --------------------------------------------------------------------

_FIXES = {
    errno.ENOSPC: 'free space on that disk (or use a --workdir/--out elsewhere) and rerun the '
                  'same command; a training run resumes from its last complete checkpoint',
    errno.EDQUOT: 'free space within your quota and rerun the same command; a training run '
                  'resumes from its last complete checkpoint',
    errno.EFBIG: 'the file size limit (ulimit -f) was reached; raise it and rerun',
    errno.EROFS: 'the file system is read-only; use a --workdir/--out on a writable file '
                 'system (a run directory may be copied there and resumed)',
    errno.ENOTDIR: 'a component of the path is a file, not a directory; choose a path under '
                   'a directory',
    errno.EEXIST: 'a file is in the way of a directory; choose another path or move the '
                  'file aside',
    errno.EACCES: 'permission denied; fix the permissions or choose a path you can write',
    errno.EPERM: 'operation not permitted; fix the permissions or choose a path you can write',
    errno.EISDIR: 'it is a directory; name a file',
    errno.ENOENT: 'it does not exist; check the path',
}


# tensorstore (orbax's array writer) reports a failed system call as a ValueError such as
# 'RESOURCE_EXHAUSTED: Error writing local file "P": Failed writing: "P": ... [os_error_code='28']'.
_TENSORSTORE_ERRNO = re.compile(r"os_error_code='(\d+)'")
_TENSORSTORE_PATH = re.compile(r'(?:Failed writing|local file|file): "([^"]+)"')


def find_os_error(e: BaseException) -> OSError | None:
  """The first OSError with an errno in the chain of `e` (its causes and contexts), also one
  that tensorstore reported as text (then rebuilt with its errno and path)."""
  seen = set()
  while e is not None and id(e) not in seen:
    seen.add(id(e))
    if isinstance(e, OSError) and e.errno is not None:
      return e
    code = _TENSORSTORE_ERRNO.search(str(e))
    if code:
      paths = _TENSORSTORE_PATH.findall(str(e))
      number = int(code.group(1))
      return OSError(number, os.strerror(number), paths[-1] if paths else None)
    e = e.__cause__ or e.__context__
  return None


def describe_os_error(e: OSError, detail: str = '') -> str:
  """'PATH: strerror[detail]; the fix' for an OSError raised by the system (errno set)."""
  path = e.filename if e.filename is not None else '(unknown path)'
  if e.filename2 is not None:
    path = f'{path} -> {e.filename2}'
  reason = e.strerror or os.strerror(e.errno)
  fix = _FIXES.get(e.errno, 'check the path and rerun')
  return f'{path}: {reason}{detail}; {fix}'
