"""Training-step throughput of the default experiments on this machine.

  python benchmarks/train_steps.py                 # VAE and DCGAN, batch 64
  python benchmarks/train_steps.py --batch_size=256 --iters=20

Measures, per experiment: compile time of the jitted step (first call), then iterations/s
and images/s over `--iters` calls with the batch already on the device (the loop's own
speed is in each run's metrics.jsonl as steps_per_sec). Not part of the test suite.
"""

import argparse
import json
import os
import platform
import time

import jax
import numpy as np

from genvision_jax import configs, methods

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def bench(spec: str, batch_size: int, iters: int) -> dict:
  config = configs.load(os.path.join(REPO, 'experiments', spec),
                        {'train.batch_size': batch_size})
  method = methods.create(config, (28, 28, 1))
  state = jax.jit(method.create_state)(jax.random.PRNGKey(0))
  lead = method.minibatches_per_step
  shape = (lead, batch_size, 28, 28, 1) if lead else (batch_size, 28, 28, 1)
  batch = {'image': jax.device_put(
      np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32))}
  step = jax.jit(method.train_step, donate_argnums=0)
  tic = time.perf_counter()
  state, metrics = step(state, batch)
  jax.block_until_ready(metrics)
  compile_s = time.perf_counter() - tic
  for _ in range(2):  # warm-up
    state, metrics = step(state, batch)
  jax.block_until_ready(metrics)
  tic = time.perf_counter()
  for _ in range(iters):
    state, metrics = step(state, batch)
  jax.block_until_ready(metrics)
  elapsed = time.perf_counter() - tic
  images = batch_size * (lead or 1)
  return {'experiment': spec, 'batch_size': batch_size, 'compile_s': round(compile_s, 2),
          'it_per_s': round(iters / elapsed, 2),
          'real_images_per_s': round(iters * images / elapsed, 1)}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--batch_size', type=int, default=64)
  parser.add_argument('--iters', type=int, default=30)
  parser.add_argument('--experiments', default='vae_mnist.py,dcgan_mnist.py')
  args = parser.parse_args()
  print(json.dumps({'jax': jax.__version__, 'backend': jax.default_backend(),
                    'devices': jax.device_count(), 'cpu_count': os.cpu_count(),
                    'machine': platform.machine()}))
  for spec in args.experiments.split(','):
    print(json.dumps(bench(spec, args.batch_size, args.iters)), flush=True)


if __name__ == '__main__':
  main()
