"""Training throughput of genvision_jax's VAE, DCGAN and diffusion steps, beside PyTorch.

  pip install -e ".[bench]"             # torch==2.13.0 (CPU build) for the reference
  python benchmarks/run.py              # batch 64 and 256, 1 and 50 fused steps -> RESULTS.md
  python benchmarks/run.py --models=dcgan --batch_sizes=64 --fused=1 --no_torch

For each model and batch size: compile time of the jitted step (tracing, lowering and XLA
compilation, not running it), iterations/s and real images/s with the data already on the
device (median over timing windows), for one step per call and for k steps fused in one call
(lax.scan); achieved FLOP/s counting useful FLOPs analytically for VAE and DCGAN (XLA's cost
analysis is printed too; it counts the zeros of transposed convolutions and other waste) and by
XLA's count for the diffusion U-Net, against the machine's measured matmul peak; and the same
networks, optimizers and losses in PyTorch eager (benchmarks/torch_reference.py; the U-Net has
the same 686,769 parameters) on the same number of threads (the diffusion step at batch 256
with k = 50 is one call of ~2 minutes on 2 cores; the whole run takes ~15 min). The
process keeps freed host memory as `genvision train` does (training/host_memory.py), for both
frameworks. Not part of the test suite. Results are machine specific: rerun on yours.
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from genvision_jax import configs, methods
from genvision_jax.models import layers
from genvision_jax.training import host_memory
from genvision_jax.training import steps

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPERIMENTS = {'vae': 'vae_mnist.py', 'dcgan': 'dcgan_mnist.py', 'diffusion': 'ddpm_mnist.py'}


# -- useful FLOPs, counted from the architecture ------------------------------------------------

def _conv(h_out, c_in, c_out, taps):
  return 2 * h_out * h_out * c_in * c_out * taps


def _down_flops(size, channels, width, stages):
  """Strided 4x4 convolutions, width * 2**i channels: (FLOPs, final size, final channels)."""
  flops, h, c_in = 0, size, channels
  for i in range(stages):
    h //= 2
    flops += _conv(h, c_in, width * 2**i, 16)
    c_in = width * 2**i
  return flops, h, c_in


def _up_flops(base, features, channels, stages):
  """Transposed 4x4 stride-2 convolutions from base x base x features to the image; they count
  the 4 taps that meet real input pixels per output pixel."""
  flops, h = 0, base
  for _ in range(stages - 1):
    flops += _conv(2 * h, features, features // 2, 4)
    features //= 2
    h *= 2
  return flops + _conv(2 * h, features, channels, 4)


def dcgan_forward_flops(config, size=28, channels=1):
  """(F_G, F_D): forward FLOPs per example."""
  m = config.model
  stages, base = layers.upsampling_plan(size)
  feats = m.g_width * 2**(stages - 1)
  f_g = 2 * m.latent_dim * base * base * feats + _up_flops(base, feats, channels, stages)
  f_d, h, c_in = _down_flops(size, channels, m.d_width, stages)
  return f_g, f_d + 2 * h * h * c_in


def vae_forward_flops(config, size=28, channels=1):
  m = config.model
  stages, base = layers.upsampling_plan(size)
  flops, h, c_in = _down_flops(size, channels, m.width, stages)
  flops += 2 * h * h * c_in * m.hidden + 2 * 2 * m.hidden * m.latent_dim  # dense, mean+logvar
  feats = m.width * 2**(stages - 1)
  flops += 2 * m.latent_dim * m.hidden + 2 * m.hidden * base * base * feats
  return flops + _up_flops(base, feats, channels, stages)


def useful_flops_per_iteration(name, config, batch_size):
  """Training FLOPs of one iteration: backward ~ 2x forward. DCGAN (k = 1): the D update runs
  G forward and D forward+backward on real and fake; the G update runs G and D forward, D
  backward to its input and G backward: 4 F_G + 8 F_D per example. None for the diffusion
  U-Net (no transposed convolutions: XLA's count is the useful one there)."""
  if name == 'diffusion':
    return None
  if name == 'vae':
    return 3 * vae_forward_flops(config) * batch_size
  f_g, f_d = dcgan_forward_flops(config)
  return (4 * f_g + 8 * f_d) * batch_size


# -- measurement ---------------------------------------------------------------------------------

def measured_peak_gflops(n=2048, reps=10, repeats=5):
  """float32 matmul throughput of XLA on this machine (the attainable peak): the best of
  `repeats` timings of `reps` products."""
  a = jnp.ones((n, n), jnp.float32)
  f = jax.jit(lambda a: a @ a)
  f(a).block_until_ready()
  best = 0.0
  for _ in range(repeats):
    tic = time.perf_counter()
    for _ in range(reps):
      out = f(a)
    out.block_until_ready()
    best = max(best, 2 * n**3 * reps / (time.perf_counter() - tic) / 1e9)
  return best


def calls_per_second(fn, min_seconds=4.0, windows=5):
  """Median rate over `windows` timing windows of at least min_seconds / windows each (fewer
  when calls are long: stops once 3 * min_seconds are timed): robust to the slowdowns a shared
  VM has now and then."""
  rates, total = [], 0.0
  while len(rates) < windows and total < 3 * min_seconds:
    calls, elapsed = 0, 0.0
    while calls < 1 or elapsed < min_seconds / windows:
      tic = time.perf_counter()
      jax.block_until_ready(fn())
      elapsed += time.perf_counter() - tic
      calls += 1
    rates.append(calls / elapsed)
    total += elapsed
  return float(np.median(rates))


def bench_jax(name, batch_size, k, min_seconds, conv_impl='auto'):
  config = configs.load(os.path.join(REPO, 'experiments', EXPERIMENTS[name]),
                        {'train.batch_size': batch_size})
  method = methods.create(config, (28, 28, 1))
  lead = method.minibatches_per_step
  shape = ((lead,) if lead else ()) + (batch_size, 28, 28, 1)
  if k > 1:
    shape = (k,) + shape
  batch = {'image': jax.device_put(
      np.random.default_rng(0).uniform(-1, 1, shape).astype(np.float32))}
  fn = jax.jit(steps.make_dispatch(method.train_step, k), donate_argnums=0)
  state = jax.jit(method.create_state)(jax.random.key(0))
  # Compile time: tracing, lowering and XLA compilation, without running the step.
  tic = time.perf_counter()
  with layers.convolution_implementation(conv_impl):
    compiled = fn.lower(state, batch).compile()
  compile_s = time.perf_counter() - tic
  holder = {'state': state}

  def call():
    holder['state'], metrics = compiled(holder['state'], batch)
    return metrics

  jax.block_until_ready(call())  # warm-up
  it_s = calls_per_second(call, min_seconds) * k
  result = {'framework': 'jax' if conv_impl == 'auto' else f'jax ({conv_impl} conv)',
            'model': name, 'batch': batch_size, 'fused_k': k,
            'compile_s': round(compile_s, 2), 'it_per_s': round(it_s, 2),
            'images_per_s': round(it_s * batch_size * (lead or 1), 1)}
  if k == 1:
    xla = compiled.cost_analysis()
    xla = xla[0] if isinstance(xla, (list, tuple)) else xla
    xla_gflop = float(xla.get('flops', 0.0)) / 1e9
    useful = useful_flops_per_iteration(name, config, batch_size)
    result.update(useful_gflop_per_it=round(useful / 1e9 if useful else xla_gflop, 3),
                  xla_gflop_per_it=round(xla_gflop, 3))
  return result


def bench_torch(name, batch_size, threads, min_seconds):
  import torch  # pylint: disable=g-import-not-at-top
  sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
  import torch_reference  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(threads)
  torch.manual_seed(0)
  images = torch.rand(batch_size, 1, 28, 28) * 2 - 1
  step = {'vae': torch_reference.VAEStep, 'dcgan': torch_reference.DCGANStep,
          'diffusion': torch_reference.DiffusionStep}[name]()
  step(images)
  step(images)
  it_s = calls_per_second(lambda: step(images), min_seconds)
  return {'framework': f'torch {torch.__version__} eager', 'model': name, 'batch': batch_size,
          'fused_k': 1, 'it_per_s': round(it_s, 2), 'images_per_s': round(it_s * batch_size, 1),
          'threads': threads}


def machine_description():
  cpu = platform.processor() or platform.machine()
  try:
    out = subprocess.run(['lscpu'], capture_output=True, text=True).stdout
    cpu = next((l.split(':', 1)[1].strip() for l in out.splitlines()
                if l.startswith('Model name')), cpu)
    flags = next((l for l in out.splitlines() if l.startswith('Flags')), '')
    isa = [f for f in ('avx2', 'fma', 'avx512f', 'avx512_bf16', 'amx_bf16') if f' {f}' in flags]
  except OSError:
    isa = []
  return {'cpu': cpu, 'cores': os.cpu_count(), 'isa': isa, 'python': platform.python_version(),
          'jax': jax.__version__, 'backend': jax.default_backend(),
          'devices': jax.device_count()}


def write_results(path, machine, peak, rows, command, kept_memory):
  lines = [
      '# Benchmark results', '',
      f'Measured {datetime.date.today().isoformat()} with `{command}`.', '',
      f"Machine: {machine['cpu']}, {machine['cores']} cores ({', '.join(machine['isa'])}), "
      f"Python {machine['python']}, jax {machine['jax']} ({machine['backend']}, "
      f"{machine['devices']} device(s)). Measured float32 matmul peak of XLA: "
      f'{peak:.0f} GFLOP/s. Host memory: '
      + ('freed memory kept by malloc (`training/host_memory.py`, as `genvision train` does), '
         'for both frameworks.' if kept_memory else 'system malloc defaults.'), '',
      'Iterations/s of one training iteration (DCGAN: one D and one G update; diffusion: one '
      'denoising-loss update of the U-Net), data on the device, median over timing windows. '
      'Useful FLOPs are counted from the architecture for VAE and DCGAN (transposed '
      'convolutions: 4 taps per output pixel) and taken from XLA\'s cost analysis for the '
      'U-Net; XLA\'s own count is shown for comparison.', '',
      '| model | batch | framework | fused k | compile s | it/s | images/s | useful GFLOP/it '
      '| achieved GFLOP/s | % of peak | JAX/PyTorch |',
      '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |']
  for r in rows:
    gflop = next((x['useful_gflop_per_it'] for x in rows if x['model'] == r['model'] and
                  x['batch'] == r['batch'] and 'useful_gflop_per_it' in x), None)
    achieved = gflop * r['it_per_s'] if gflop else None
    ref = next((x for x in rows if x['model'] == r['model'] and x['batch'] == r['batch'] and
                x['framework'].startswith('torch')), None)
    ratio = (f"{r['it_per_s'] / ref['it_per_s']:.2f}x" if ref and r['framework'].startswith('jax')
             else '')
    lines.append(
        f"| {r['model']} | {r['batch']} | {r['framework']} | {r['fused_k']} | "
        f"{r.get('compile_s', '')} | {r['it_per_s']} | {r['images_per_s']} | "
        f"{gflop if gflop is not None else ''} | "
        f"{f'{achieved:.1f}' if achieved else ''} | "
        f"{f'{100 * achieved / peak:.0f} %' if achieved else ''} | {ratio} |")
  xla = [r for r in rows if 'xla_gflop_per_it' in r]
  if xla:
    lines += ['', 'XLA cost analysis of the single step (GFLOP per iteration): ' + ', '.join(
        f"{r['model']} b{r['batch']}: {r['xla_gflop_per_it']} (useful {r['useful_gflop_per_it']})"
        for r in xla) + '.']
  with open(path, 'w') as f:
    f.write('\n'.join(lines) + '\n')


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--models', default='vae,dcgan,diffusion')
  parser.add_argument('--batch_sizes', default='64,256')
  parser.add_argument('--fused', default='1,50', help='steps per dispatch to measure')
  parser.add_argument('--seconds', type=float, default=4.0, help='minimum timing per case')
  parser.add_argument('--no_torch', action='store_true')
  parser.add_argument('--conv_impl', default='auto', choices=layers.CONV_IMPLS,
                      help="convolutions of the JAX steps (auto = genvision_jax's default)")
  parser.add_argument('--out', default=os.path.join(REPO, 'benchmarks', 'RESULTS.md'))
  args = parser.parse_args()
  # As `genvision train` does (both frameworks run under it here; see host_memory).
  kept_memory = host_memory.keep_freed_host_memory()
  command = 'python benchmarks/run.py ' + ' '.join(sys.argv[1:])
  machine = machine_description()
  peak = measured_peak_gflops()
  print(json.dumps({**machine, 'matmul_peak_gflops': round(peak, 1),
                    'kept_host_memory': kept_memory}), flush=True)
  rows = []
  for name in args.models.split(','):
    for batch in map(int, args.batch_sizes.split(',')):
      for k in map(int, args.fused.split(',')):
        rows.append(bench_jax(name, batch, k, args.seconds, args.conv_impl))
        print(json.dumps(rows[-1]), flush=True)
      if not args.no_torch:
        rows.append(bench_torch(name, batch, os.cpu_count(), args.seconds))
        print(json.dumps(rows[-1]), flush=True)
  write_results(args.out, machine, peak, rows, command.strip(), kept_memory)
  print(f'wrote {args.out}')


if __name__ == '__main__':
  main()
