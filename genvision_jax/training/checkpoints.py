"""Orbax checkpoints of a whole method state, latest few kept, restored against a target."""

import os

import jax
import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
  """A checkpoint cannot be restored; the message says which and what to do. Nothing is
  deleted."""


class Checkpoints:
  """One orbax CheckpointManager for a run's `checkpoints/` directory."""

  def __init__(self, directory: str, keep: int = 3):
    self.directory = os.path.abspath(directory)
    # The latest `keep` checkpoints survive (max_to_keep is deprecated in favour of a
    # preservation policy); every save is forced by the loop, so no save-decision policy.
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            create=True, preservation_policy=ocp.checkpoint_managers.LatestN(n=keep)))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def save(self, step: int, state) -> None:
    if step in self._manager.all_steps():
      return
    self._manager.save(step, args=ocp.args.StandardSave(state), force=True)

  def restore(self, step: int, target):
    """The state saved at `step`, with the shapes, dtypes and shardings of `target`."""
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), target)
    try:
      return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))
    except Exception as e:  # pylint: disable=broad-except
      first = str(e).strip().splitlines()[0] if str(e).strip() else ''
      raise CheckpointError(
          f'cannot restore checkpoint {self.directory}/{step}: {e.__class__.__name__}: '
          f'{first[:300]}. It is corrupt or was written by a different config/model. '
          'Nothing was deleted: move that step directory aside to resume from an earlier '
          'checkpoint, or train in a new --workdir.') from None

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()
