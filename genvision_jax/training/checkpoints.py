"""Orbax checkpoints of a whole method state, latest few kept, restored against a target."""

import errno
import os
import shutil

import jax
import orbax.checkpoint as ocp

from genvision_jax.training import rundir


class CheckpointError(RuntimeError):
  """A checkpoint cannot be restored; the message says which and what to do. Nothing is
  deleted."""


def _is_key(x) -> bool:
  return jax.numpy.issubdtype(x.dtype, jax.dtypes.prng_key)


def _as_target_key(target, restored):
  """A typed PRNG key where the target holds one. Run directories written before the state
  held typed keys (`jax.random.key`) store the raw uint32 key data (`jax.random.PRNGKey`),
  which orbax restores as such; both hold the same bits, so the run resumes unchanged."""
  if _is_key(target) and not _is_key(restored):
    return jax.random.wrap_key_data(restored, impl=jax.random.key_impl(target))
  return restored


class Checkpoints:
  """One orbax CheckpointManager for a run's `checkpoints/` directory."""

  def __init__(self, directory: str, keep: int = 3, create: bool = True):
    self.directory = os.path.abspath(directory)
    # The latest `keep` checkpoints survive (max_to_keep is deprecated in favour of a
    # preservation policy); every save is forced by the loop, so no save-decision policy.
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            create=create, preservation_policy=ocp.checkpoint_managers.LatestN(n=keep)))
    self._writing = None  # the step of the last save started

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def save(self, step: int, state) -> None:
    """Starts writing `state` as checkpoint `step` (asynchronously) after the previous write
    has finished (its failure is reported as its own step's) and after checking that the
    disk has room for it: a disk too full is reported before orbax writes anything (a write
    failing half-way leaves orbax's threads printing errors, and a partial temporary step)."""
    if step in self._manager.all_steps():
      return
    self.wait()
    self._writing = step
    need, free = _size_bound(state), shutil.disk_usage(self.directory).free
    if free < need:
      self._write_failed(step, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.directory),
                         f' (it needs about {need / 2**20:.1f} MiB, {free / 2**20:.1f} MiB free)')
    try:
      self._manager.save(step, args=ocp.args.StandardSave(state), force=True)
    except Exception as e:  # pylint: disable=broad-except
      self._write_failed(step, e)

  def _write_failed(self, step: int, e: Exception, detail: str = ''):
    """A failed (possibly asynchronous) write as one CheckpointError naming the cause and the
    last complete checkpoint, which orbax never touches while writing a new one."""
    os_error = rundir.find_os_error(e)
    if os_error is not None and str(os_error.filename).startswith(self.directory + os.sep):
      # orbax's temporary files inside the step being written: name the directory
      os_error = OSError(os_error.errno, os_error.strerror, self.directory)
    cause = (rundir.describe_os_error(os_error, detail) if os_error is not None
             else f'{e.__class__.__name__}: {_first_line(e)}')
    complete = [s for s in self._manager.all_steps() if s != step]
    kept = (f'the last complete checkpoint {self.directory}/{max(complete)} is intact'
            if complete else 'no earlier checkpoint exists')
    raise CheckpointError(f'cannot write checkpoint {self.directory}/{step}: {cause} '
                          f'({kept}).') from None

  def restore(self, step: int, target):
    """The state saved at `step`, with the shapes, dtypes and shardings of `target`."""
    available = self.all_steps()
    if step not in available:
      raise CheckpointError(
          f'{self.directory} has no checkpoint of step {step}; available steps: '
          f'{", ".join(map(str, available)) or "none (train first)"}. Pass one of them to '
          '--step, or omit --step for the latest.')
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), target)
    mismatch = self._shape_mismatch(step, abstract)
    if mismatch:
      raise CheckpointError(
          f'checkpoint {self.directory}/{step} was written by a model of another shape '
          f'({mismatch}): the config does not match the one that trained it. Train in a new '
          '--workdir, or restore the run\'s own config.json.')
    try:
      restored = self._manager.restore(step, args=ocp.args.StandardRestore(abstract))
    except Exception as e:  # pylint: disable=broad-except
      raise CheckpointError(
          f'cannot restore checkpoint {self.directory}/{step}: {e.__class__.__name__}: '
          f'{_first_line(e)}. It is corrupt (its shapes match the model). '
          'Nothing was deleted: move that step directory aside to resume from an earlier '
          'checkpoint, or train in a new --workdir.') from None
    return jax.tree.map(_as_target_key, target, restored)

  def _shape_mismatch(self, step: int, abstract) -> str:
    """'' if the stored arrays have the tree paths and shapes of `abstract`, else the first
    difference. Unreadable metadata is left to the restore (a corrupt checkpoint)."""
    try:
      with ocp.StandardCheckpointer() as checkpointer:
        stored = checkpointer.metadata(os.path.join(self.directory, str(step), 'default'))
      stored = getattr(stored, 'item_metadata', stored)
      stored = getattr(stored, 'tree', stored)
      have = _shapes(stored)
    except Exception:  # pylint: disable=broad-except
      return ''
    want = _shapes(jax.tree.map(_stored_form, abstract))
    for name, shape in want.items():
      if name not in have:
        missing = sorted(set(want) - set(have))
        return f'{len(missing)} arrays of the model are not in it, e.g. {missing[0]}'
      if have[name] != shape:
        return f'{name} has shape {have[name]} there, {shape} in the model'
    extra = sorted(set(have) - set(want))
    if extra:
      return f'it holds {len(extra)} arrays the model does not have, e.g. {extra[0]}'
    return ''

  def wait(self) -> None:
    try:
      self._manager.wait_until_finished()
    except Exception as e:  # pylint: disable=broad-except
      self._write_failed(self._writing, e)

  def close(self, quiet: bool = False) -> None:
    """Waits for pending writes and stops orbax's background threads; also on error paths
    (an unclosed manager's threads print tracebacks at exit). A failure of the pending write
    is raised after the threads are stopped, unless `quiet` (closing because of another
    error, which is the one to report)."""
    try:
      self.wait()
    except CheckpointError:
      if not quiet:
        raise
    finally:
      try:
        self._manager.close()
      except Exception:  # pylint: disable=broad-except
        pass  # closing after a failed write: the write's error is the one that matters


def _stored_form(x):
  """The array orbax stores for a leaf: a typed PRNG key as its raw key data (shape + (2,)
  for threefry), as a run written with raw `PRNGKey` data also holds it."""
  return jax.eval_shape(jax.random.key_data, x) if _is_key(x) else x


def _size_bound(state) -> int:
  """An upper bound of the bytes a checkpoint of `state` takes on disk: the arrays
  (uncompressed), ~1 KiB of metadata per array, and a 4 KiB block per file (measured: a
  dcgan :smoke state of 72 kB in 66 arrays takes 176 KiB in 13 files; this gives 266 KiB)."""
  leaves = jax.tree.leaves(state)
  data = sum(int(x.size) * (8 if _is_key(x) else x.dtype.itemsize) for x in leaves)
  return data + 1024 * len(leaves) + 32 * 4096


def _shapes(tree) -> dict:
  """{'a.b.0': shape} of the arrays of a pytree (dataclass fields, dict keys and sequence
  indices all spelled the same, as orbax's metadata spells them)."""
  leaves = jax.tree_util.tree_flatten_with_path(tree, is_leaf=lambda x: hasattr(x, 'shape'))[0]
  out = {}
  for path, leaf in leaves:
    if hasattr(leaf, 'shape'):
      name = '.'.join(str(getattr(k, 'key', getattr(k, 'name', getattr(k, 'idx', k))))
                      for k in path)
      out[name] = tuple(leaf.shape)
  return out


def _first_line(e: Exception) -> str:
  text = str(e).strip().split(' See full TensorStore details')[0]  # then a dump of its spec
  return text.splitlines()[0][:300].rstrip('.') if text else ''
