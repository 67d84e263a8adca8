"""training/checkpoints.py: the latest K checkpoints survive, through orbax's preservation
policy (not the deprecated max_to_keep)."""

import os

import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from genvision_jax.training.checkpoints import Checkpoints


def test_only_the_latest_k_checkpoints_survive(tmp_path):
  ckpts = Checkpoints(str(tmp_path / 'checkpoints'), keep=2)
  options = ckpts._manager._options  # pylint: disable=protected-access
  assert options.max_to_keep is None
  assert isinstance(options.preservation_policy, ocp.checkpoint_managers.LatestN)
  for step in (1, 2, 3, 5, 8):
    ckpts.save(step, {'w': jnp.full((3,), float(step))})
  ckpts.wait()
  assert ckpts.all_steps() == [5, 8]
  assert sorted(os.listdir(tmp_path / 'checkpoints')) == ['5', '8']
  ckpts.close()
  again = Checkpoints(str(tmp_path / 'checkpoints'), keep=2)  # a rerun resumes from the latest
  assert again.latest_step() == 8
  restored = again.restore(8, {'w': jnp.zeros((3,))})
  np.testing.assert_array_equal(np.asarray(restored['w']), [8.0, 8.0, 8.0])
  again.save(9, {'w': jnp.ones((3,))})
  again.close()
  assert sorted(os.listdir(tmp_path / 'checkpoints')) == ['8', '9']
