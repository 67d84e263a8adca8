"""The one method-agnostic training loop.

`train_and_evaluate(config, workdir)` validates the config, opens the data, builds the
method's state replicated over a data-parallel mesh, restores the latest checkpoint of
`workdir` if there is one, and runs the jitted `train_step` to `config.train.num_steps`,
writing metrics, sample grids and checkpoints. SIGTERM/SIGINT save a final checkpoint and
stop; a non-finite metric stops the run without overwriting the last good checkpoint.
"""

import contextlib
import dataclasses
import functools
import json
import os
import signal
import threading
import time
from typing import Any

import jax
import numpy as np

from genvision_jax import configs
from genvision_jax import data as data_lib
from genvision_jax import methods
from genvision_jax import viz
from genvision_jax.training import host_memory
from genvision_jax.training import sharding
from genvision_jax.training import steps
from genvision_jax.training.checkpoints import Checkpoints
from genvision_jax.training.writers import MetricsWriter, Progress, format_duration

SAMPLE_SEED_SALT = 0x5A17
DATA_INFO = 'data_info.json'  # image shape and classes of the training data, for sampling
# data.placement='auto' keeps splits up to this size (uint8) on the devices.
DEVICE_DATA_MAX_BYTES = 2**30  # fixed noise of the sample grids: fold_in(PRNGKey(seed), salt)


class NonFiniteError(RuntimeError):
  """A loss or metric became NaN/inf; the message names the step and the kept checkpoint."""


class Interrupted(RuntimeError):
  """SIGTERM/SIGINT arrived; a checkpoint of the last completed step was saved."""


@dataclasses.dataclass
class TrainResult:
  state: Any
  step: int
  metrics: dict           # last logged (averaged) metrics
  steps_per_sec: float    # over the whole run, excluding compilation
  compile_seconds: float  # the first call of the step (trace + compile + run)


class _StopFlag:
  """Turns SIGTERM/SIGINT into a flag checked between steps (main thread only)."""

  def __init__(self):
    self.signum = None
    self._previous = {}

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      for sig in (signal.SIGTERM, signal.SIGINT):
        self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def _handle(self, signum, frame):
    del frame
    if self.signum is not None and signum == signal.SIGINT:
      raise KeyboardInterrupt  # second Ctrl-C: give up at once
    self.signum = signum

  def __exit__(self, *exc):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)


def open_data(config) -> data_lib.ImageSplit:
  d = config.data
  return data_lib.load_split(d.name, d.split, d.image_size, d.data_dir or None, d.resize_method)


def _first_nonfinite(host_metrics: list[dict], first_step: int):
  for i, m in enumerate(host_metrics):
    bad = sorted(k for k, v in m.items() if not np.all(np.isfinite(v)))
    if bad:
      return first_step + i, bad
  return None


def _mean_metrics(host_metrics: list[dict]) -> dict:
  return {k: float(np.mean([m[k] for m in host_metrics])) for k in host_metrics[0]}


def write_config(config, workdir: str) -> None:
  with open(os.path.join(workdir, 'config.json'), 'w') as f:
    f.write(config.to_json_best_effort(indent=2, sort_keys=True))


def read_config(workdir: str):
  path = os.path.join(workdir, 'config.json')
  if not os.path.isfile(path):
    raise FileNotFoundError(f'{workdir} is not a run directory (no config.json); pass the '
                            '--workdir of a `genvision train` run')
  with open(path) as f:
    return configs.from_dict(json.load(f))


def _crossed(before: int, after: int, every: int) -> bool:
  """Whether a multiple of `every` lies in (before, after]."""
  return after // every > before // every


def place_on_device(config, data: data_lib.ImageSplit) -> bool:
  """data.placement: 'device', 'host', or 'auto' = device on GPU/TPU when the split fits.

  On CPU the "device" is host memory and gathering inside the step measured no faster than
  feeding the batch (default DCGAN on 2 cores: 10.5 vs 10.2 steps/s over 2,000 steps; 11.0 vs
  13.2 in a 300-step pair), so 'auto' keeps the general host path there.
  """
  placement = config.data.placement
  if placement == 'auto':
    size = data.num_examples * int(np.prod(data.image_shape))
    return (jax.default_backend() != 'cpu' and data.in_memory
            and size <= DEVICE_DATA_MAX_BYTES)
  return placement == 'device'


def _device_dataset(data: data_lib.ImageSplit, mesh) -> dict:
  """The split as uint8 images and int32 labels, sharded over the devices along the examples
  (padded to a multiple of the device count); each process supplies its own rows."""
  arrays = data.arrays()
  n = data.num_examples
  n_dev, n_proc, p = mesh.devices.size, jax.process_count(), jax.process_index()
  padded = -(-n // n_dev) * n_dev
  rows = padded // n_proc
  sh = sharding.batch_sharding(mesh, leading_axes=0)
  out = {}
  for key, value in arrays.items():
    value = np.concatenate([value, np.zeros((padded - n, *value.shape[1:]), value.dtype)])
    out[key] = jax.make_array_from_process_local_data(sh, value[p * rows:(p + 1) * rows],
                                                      value.shape)
  return out


def train_and_evaluate(config, workdir: str, *, verbose: bool = True, devices=None,
                       transfer_guard: bool = False) -> TrainResult:
  """Trains `config` in `workdir`, resuming from its latest checkpoint. See module doc.

  transfer_guard: run every dispatch under jax.transfer_guard('disallow'), so that an
    implicit host/device transfer inside the training loop is an error (used by tests).
  """
  host_memory.keep_freed_host_memory()  # XLA:CPU step buffers: reuse, don't page-fault anew
  configs.validate(config, device_count=len(devices) if devices is not None else None)
  t = config.train
  data = open_data(config)  # fails fast (before touching workdir) if the data is missing
  if config.get('model', {}).get('conditional', False) and data.num_classes < 1:
    raise configs.ConfigError(
        f"model.conditional=True needs labels, but dataset '{data.name}' has none; use a "
        'labelled dataset or --config.model.conditional=False')
  method = methods.create(config, data.image_shape, data.num_classes)
  lead = method.minibatches_per_step
  is_main = jax.process_index() == 0
  k_fuse = steps.steps_per_dispatch(config)
  on_device = place_on_device(config, data)

  os.makedirs(workdir, exist_ok=True)
  if is_main:
    write_config(config, workdir)
    with open(os.path.join(workdir, DATA_INFO), 'w') as f:
      json.dump({'image_shape': list(data.image_shape), 'num_classes': data.num_classes,
                 'num_examples': data.num_examples}, f)
  progress = Progress(t.num_steps, enabled=verbose and is_main)

  mesh = sharding.make_mesh(devices)
  repl = sharding.replicated(mesh)
  step_batch_sh = sharding.batch_sharding(mesh, leading_axes=int(lead is not None))

  init = jax.jit(method.create_state, out_shardings=repl)
  state = init(jax.random.PRNGKey(t.seed))
  ckpts = Checkpoints(os.path.join(workdir, 'checkpoints'), keep=t.keep_checkpoints)
  start = ckpts.latest_step() or 0
  if start:
    state = ckpts.restore(start, state)
    progress.message(f'resumed from {ckpts.directory}/{start}')

  if on_device:
    dataset = _device_dataset(data, mesh)
    gather = steps.device_gather(method, config, data.num_examples, step_batch_sh)
  else:
    dataset, gather = None, None
  dispatches = {}

  def dispatch_fn(k: int, phase):
    """The compiled dispatch of k steps in `phase` (None unless the method has phases)."""
    if (k, phase) not in dispatches:
      if on_device:
        source_sh = sharding.batch_sharding(mesh, leading_axes=0)
      else:
        source_sh = sharding.batch_sharding(mesh, int(lead is not None) + int(k > 1))
      train_step = method.train_step if phase is None else method.train_step_for(phase)
      dispatches[k, phase] = jax.jit(steps.make_dispatch(train_step, k, gather),
                                     in_shardings=(repl, source_sh),
                                     out_shardings=(repl, repl), donate_argnums=0)
    return dispatches[k, phase]

  def source_for(step: int, k: int):
    if on_device:
      return dataset
    count = lead or 1
    local = data.minibatches(step * count, k * count, t.batch_size, t.seed,
                             jax.process_index(), jax.process_count())
    # [k * count, b, ...] -> [k, count, b, ...], dropping the axes of size one not wanted.
    local = {key: v.reshape(k, count, *v.shape[1:]) for key, v in local.items()}
    local = {key: v[:, 0] if lead is None else v for key, v in local.items()}
    local = {key: v[0] if k == 1 else v for key, v in local.items()}
    axes = int(lead is not None) + int(k > 1)
    return sharding.global_batch(local, sharding.batch_sharding(mesh, axes), axes)

  sample_kwargs, sample_cols = class_grid_labels(method, t.num_samples)
  sample_fn = jax.jit(functools.partial(method.generate, num=t.num_samples, **sample_kwargs),
                      out_shardings=repl)
  sample_rng = jax.random.fold_in(jax.random.PRNGKey(t.seed), SAMPLE_SEED_SALT)
  writer = MetricsWriter(workdir, enabled=is_main)

  def write_samples(step: int, state) -> None:
    images = np.asarray(jax.device_get(sample_fn(state, sample_rng)))
    if is_main:
      viz.save_image_grid(images, os.path.join(workdir, 'samples', f'step_{step:07d}.png'),
                          ncol=sample_cols)
      writer.image(step, 'samples', viz.image_grid(images, sample_cols))

  pending: list[tuple[int, dict]] = []  # (steps in the dispatch, device metrics)
  pending_start = start
  last_metrics: dict = {}
  last_saved = start
  compile_seconds = 0.0
  timed_steps, timed_seconds = 0, 0.0
  interval_clock = time.perf_counter()
  interval_steps = 0
  io_seconds = 0.0  # checkpoint and sample time inside the current interval

  def flush(step: int) -> dict:
    """Fetches pending metrics; raises NonFiniteError naming the first bad step."""
    nonlocal pending, pending_start
    if not pending:
      return {}
    host = []
    for k, m in jax.device_get(pending):
      host.extend([m] if k == 1 else [{key: v[i] for key, v in m.items()} for i in range(k)])
    bad = _first_nonfinite(host, pending_start + 1)
    if bad:
      bad_step, keys = bad
      kept = (f'the last good checkpoint {ckpts.directory}/{last_saved} is kept' if last_saved
              else 'no checkpoint had been written yet')
      raise NonFiniteError(
          f'non-finite {", ".join(keys)} at step {bad_step}; stopped at step {step} and '
          f'saved nothing after it ({kept}). Lower the learning rate (config.optim...), '
          'add gradient clipping (grad_clip) or check the data, then rerun to resume.')
    pending, pending_start = [], step
    return _mean_metrics(host)

  def guard():
    return jax.transfer_guard('disallow') if transfer_guard else contextlib.nullcontext()

  step = start
  profiling = False
  try:
    with _StopFlag() as stop:
      while step < t.num_steps:
        k = min(k_fuse, t.num_steps - step)
        phase = steps.phase_at(method, step)
        if phase is not None:  # a dispatch never crosses into the next phase
          end = method.phase_end(step)
          k = k if end is None else min(k, end - step)
        source = source_for(step, k)
        new_phase = (k, phase) not in dispatches and step != start
        fn = dispatch_fn(k, phase)
        if new_phase and phase is not None:  # a later phase compiles mid-run: time it apart
          tic = time.perf_counter()
          with guard():
            state, metrics = fn(state, source)
          jax.block_until_ready(state)
          took = time.perf_counter() - tic
          compile_seconds += took
          io_seconds += took  # neither its time nor its steps count towards steps/s
          progress.message(f'compiled and ran the first step(s) of phase {phase} in '
                           f'{took:.1f}s')
        elif step == start:
          tic = time.perf_counter()
          with guard():
            state, metrics = fn(state, source)
          jax.block_until_ready(state)
          compile_seconds = time.perf_counter() - tic
          progress.message(f'compiled and ran the first {k} step(s) in {compile_seconds:.1f}s'
                           f' ({"device" if on_device else "host"} input, {k_fuse} step(s) '
                           'per dispatch)')
          interval_clock = time.perf_counter()
        else:
          with guard():
            state, metrics = fn(state, source)
          interval_steps += k
        before, step = step, step + k
        pending.append((k, metrics))
        if t.profile_steps and is_main:  # trace from the 2nd dispatch on (after compiling)
          if before == start and step < t.num_steps:
            jax.profiler.start_trace(os.path.join(workdir, 'profile'))
            profiling = True
          elif profiling and step - start > t.profile_steps:
            jax.block_until_ready(state)
            jax.profiler.stop_trace()
            profiling = False
            progress.message(f'wrote a profile of steps {start + 2}..{step} to '
                             f'{workdir}/profile (tensorboard --logdir {workdir}/profile)')

        done = step == t.num_steps
        log_now = _crossed(before, step, t.log_every) or done
        save_now = _crossed(before, step, t.checkpoint_every) or done or stop.signum is not None
        if log_now or save_now:
          mean = flush(step)
          if log_now and mean:
            jax.block_until_ready(state)
            elapsed = time.perf_counter() - interval_clock - io_seconds
            rate = interval_steps / elapsed if interval_steps and elapsed > 0 else 0.0
            timed_steps += interval_steps
            timed_seconds += elapsed
            mean['steps_per_sec'] = rate
            writer.scalars(step, mean)
            progress.line(step, mean, rate)
            last_metrics = mean
            interval_clock, interval_steps, io_seconds = time.perf_counter(), 0, 0.0
        tic = time.perf_counter()
        if save_now:
          ckpts.save(step, state)
          last_saved = step
        if _crossed(before, step, t.sample_every) or done:
          write_samples(step, state)
        io_seconds += time.perf_counter() - tic
        if stop.signum is not None:
          if last_saved != step:  # the signal arrived after this step's save decision
            mean = flush(step)
            if mean:
              writer.scalars(step, mean)
            ckpts.save(step, state)
            last_saved = step
          ckpts.wait()
          name = signal.Signals(stop.signum).name
          raise Interrupted(f'{name} at step {step}: saved checkpoint {ckpts.directory}/'
                            f'{step}; rerun the same command to resume.')
  finally:
    if profiling:
      jax.profiler.stop_trace()
    writer.close()
    ckpts.close()

  rate = timed_steps / timed_seconds if timed_seconds > 0 else 0.0
  if start < t.num_steps:
    progress.message(f'done: {t.num_steps} steps in {workdir} ({rate:.2f} steps/s after '
                     f'compilation; compile {format_duration(compile_seconds)})')
  else:
    progress.message(f'{workdir} is already trained to step {start} (train.num_steps='
                     f'{t.num_steps}); raise --config.train.num_steps to train further.')
  return TrainResult(state=state, step=step, metrics=last_metrics, steps_per_sec=rate,
                     compile_seconds=compile_seconds)


def class_grid_labels(method, num: int):
  """(generate kwargs, columns) for a sample grid: one row per class for a conditional model
  (num // num_classes columns, at least 1), a square grid otherwise."""
  classes = getattr(method, 'num_classes', 0)
  if not classes:
    return {}, None
  cols = max(1, num // classes)
  labels = np.repeat(np.arange(classes), cols)[:num]
  labels = np.concatenate([labels, np.zeros(num - len(labels), np.int64)]).astype(np.int32)
  return {'label': labels}, cols


def load_run(workdir: str, step: int | None = None):
  """(config, method, state) of a run directory at its latest (or the given) checkpoint."""
  config = read_config(workdir)
  info_path = os.path.join(workdir, DATA_INFO)
  if os.path.isfile(info_path):  # no need for the dataset itself
    with open(info_path) as f:
      info = json.load(f)
    image_shape, num_classes = tuple(info['image_shape']), info['num_classes']
  else:
    d = config.data
    data = data_lib.load_split(d.name, d.split, d.image_size, d.data_dir or None,
                               d.resize_method, in_memory=False)
    image_shape, num_classes = data.image_shape, data.num_classes
  method = methods.create(config, image_shape, num_classes)
  mesh = sharding.make_mesh()
  state = jax.jit(method.create_state, out_shardings=sharding.replicated(mesh))(
      jax.random.PRNGKey(config.train.seed))
  ckpts = Checkpoints(os.path.join(workdir, 'checkpoints'), keep=config.train.keep_checkpoints)
  try:
    step = step if step is not None else ckpts.latest_step()
    if step is None:
      raise FileNotFoundError(f'{workdir}/checkpoints holds no checkpoint yet; train first')
    state = ckpts.restore(step, state)
  finally:
    ckpts.close()
  return config, method, state


def generate_images(method, state, num: int, seed: int = 0, **kwargs) -> np.ndarray:
  """num images in [-1, 1] as a host array."""
  fn = jax.jit(functools.partial(method.generate, num=num, **kwargs))
  return np.asarray(jax.device_get(fn(state, jax.random.PRNGKey(seed))))

