"""Multi-process runs on JAX's own distributed runtime.

Call `initialize(...)` before anything touches a JAX device. Every process then runs the same
`train_and_evaluate`: the mesh spans the devices of all processes, each process reads only its
slice of every global batch (or its rows of a device-resident dataset), checkpoints are written
collectively by orbax, and process 0 alone writes metrics, samples and config.json.

- TPU VM pod slice, SLURM, Open MPI: `initialize(auto=True)` detects the cluster.
- Anything else (several GPU hosts, or CPU processes for testing): pass the coordinator's
  address, the number of processes and this process's id. On CPU the collectives use gloo.
"""

import jax


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, auto: bool = False) -> bool:
  """Joins the distributed runtime if asked to; returns whether it did."""
  if not (auto or coordinator_address):
    return False
  if coordinator_address and (num_processes is None or process_id is None):
    raise ValueError('--coordinator_address needs --num_processes and --process_id')
  if jax.config.jax_platforms in (None, '', 'cpu') and not auto:
    # CPU devices of several processes talk through gloo (TCP); without it there are no
    # cross-process collectives on CPU.
    jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  if auto:
    jax.distributed.initialize()
  else:
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes, process_id=process_id)
  return True
