"""Throughput of the FID Inception feature extractor (genvision_jax.features.inception).

  python benchmarks/inception_features.py                      # 64 MNIST-sized images
  python benchmarks/inception_features.py --weights=pt_inception-2015-12-05-6726825d.pth \
      --image_size=32 --channels=3 --num_images=128 --batch_size=64

Times `InceptionFeatures` end to end (host -> device, resize to 299, network, device -> host)
on random images: the first call (compile + run) and then the best of `--repeats` calls,
extrapolated to 1,000 images, with XLA's FLOP count per image. The time does not depend on
the weights' values, so without --weights the network's random initialization is used. Not
part of the test suite; results are machine specific.
"""

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from genvision_jax.features import inception


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--weights', default=None, help="pytorch-fid's .pth or its .npz")
  parser.add_argument('--num_images', type=int, default=64)
  parser.add_argument('--batch_size', type=int, default=32)
  parser.add_argument('--image_size', type=int, default=28)
  parser.add_argument('--channels', type=int, default=1)
  parser.add_argument('--repeats', type=int, default=2)
  args = parser.parse_args()

  if args.weights:
    variables = inception.load_pytorch_fid_weights(args.weights)
  else:
    variables = jax.jit(inception.InceptionV3().init)(
        jax.random.key(0), jnp.zeros((1, inception.INPUT_SIZE, inception.INPUT_SIZE, 3)))
  features = inception.InceptionFeatures(variables=variables, batch_size=args.batch_size)
  rng = np.random.default_rng(0)
  images = rng.uniform(-1, 1, (args.num_images, args.image_size, args.image_size,
                               args.channels)).astype(np.float32)

  batch_shape = jax.ShapeDtypeStruct((args.batch_size, args.image_size, args.image_size,
                                      args.channels), jnp.float32)
  compiled = jax.jit(features._features).lower(features.variables, batch_shape).compile()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  flops_per_image = float(cost.get('flops', float('nan'))) / args.batch_size

  start = time.perf_counter()
  features(images)
  first = time.perf_counter() - start
  times = []
  for _ in range(args.repeats):
    start = time.perf_counter()
    features(images)
    times.append(time.perf_counter() - start)
  best = min(times)
  per_image = best / args.num_images
  print(f'backend {jax.default_backend()} ({os.cpu_count()} CPUs), jax {jax.__version__}')
  print(f'{args.num_images} images {args.image_size}x{args.image_size}x{args.channels}, '
        f'batch {args.batch_size}: first call (compile + run) {first:.1f} s, '
        f'then {best:.2f} s (runs: {", ".join(f"{t:.2f}" for t in times)})')
  print(f'{per_image * 1e3:.0f} ms/image -> {per_image * 1000:.0f} s per 1,000 images; '
        f'XLA counts {flops_per_image / 1e9:.2f} GFLOP/image '
        f'({flops_per_image / per_image / 1e9:.1f} GFLOP/s)')


if __name__ == '__main__':
  main()
