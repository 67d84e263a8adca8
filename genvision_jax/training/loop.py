"""The one method-agnostic training loop.

`train_and_evaluate(config, workdir)` validates the config, opens the data, builds the
method's state replicated over a data-parallel mesh, restores the latest checkpoint of
`workdir` if there is one, and runs the jitted `train_step` to `config.train.num_steps`,
writing metrics, sample grids and checkpoints. SIGTERM/SIGINT save a final checkpoint and
stop; a non-finite metric stops the run without overwriting the last good checkpoint.
"""

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
from genvision_jax.training import sharding
from genvision_jax.training.checkpoints import Checkpoints
from genvision_jax.training.writers import MetricsWriter, Progress, format_duration

SAMPLE_SEED_SALT = 0x5A17  # fixed noise of the sample grids: fold_in(PRNGKey(seed), salt)


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


def train_and_evaluate(config, workdir: str, *, verbose: bool = True,
                       devices=None) -> TrainResult:
  """Trains `config` in `workdir`, resuming from its latest checkpoint. See module doc."""
  configs.validate(config, device_count=len(devices) if devices is not None else None)
  t = config.train
  data = open_data(config)  # fails fast (before touching workdir) if the data is missing
  method = methods.create(config, data.image_shape, data.num_classes)
  lead = method.minibatches_per_step
  is_main = jax.process_index() == 0

  os.makedirs(workdir, exist_ok=True)
  if is_main:
    write_config(config, workdir)
  progress = Progress(t.num_steps, enabled=verbose and is_main)

  mesh = sharding.make_mesh(devices)
  repl = sharding.replicated(mesh)
  batch_sh = sharding.batch_sharding(mesh, leading_steps=lead is not None)

  def get_batch(step: int) -> dict:
    count = lead or 1
    local = data.minibatches(step * count, count, t.batch_size, t.seed, jax.process_index(),
                             jax.process_count())
    if lead is None:
      local = {k: v[0] for k, v in local.items()}
    return sharding.global_batch(local, batch_sh, leading_steps=lead is not None)

  init = jax.jit(method.create_state, out_shardings=repl)
  state = init(jax.random.PRNGKey(t.seed))
  ckpts = Checkpoints(os.path.join(workdir, 'checkpoints'), keep=t.keep_checkpoints)
  start = ckpts.latest_step() or 0
  if start:
    state = ckpts.restore(start, state)
    progress.message(f'resumed from {ckpts.directory}/{start}')

  train_step = jax.jit(method.train_step, in_shardings=(repl, batch_sh),
                       out_shardings=(repl, repl), donate_argnums=0)
  sample_fn = jax.jit(functools.partial(method.generate, num=t.num_samples),
                      out_shardings=repl)
  sample_rng = jax.random.fold_in(jax.random.PRNGKey(t.seed), SAMPLE_SEED_SALT)
  writer = MetricsWriter(workdir, enabled=is_main)

  def write_samples(step: int, state) -> None:
    images = np.asarray(jax.device_get(sample_fn(state, sample_rng)))
    if is_main:
      path = viz.save_image_grid(images, os.path.join(workdir, 'samples', f'step_{step:07d}.png'))
      writer.image(step, 'samples', viz.image_grid(images))
      del path

  pending: list[dict] = []  # per-step device metrics since the last flush
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
    host = jax.device_get(pending)
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

  step = start
  try:
    with _StopFlag() as stop:
      while step < t.num_steps:
        batch = get_batch(step)
        if step == start:
          tic = time.perf_counter()
          state, metrics = train_step(state, batch)
          jax.block_until_ready(state)
          compile_seconds = time.perf_counter() - tic
          progress.message(f'compiled and ran the first step in {compile_seconds:.1f}s')
          interval_clock = time.perf_counter()
        else:
          state, metrics = train_step(state, batch)
          interval_steps += 1
        step += 1
        pending.append(metrics)

        done = step == t.num_steps
        log_now = step % t.log_every == 0 or done
        save_now = step % t.checkpoint_every == 0 or done or stop.signum is not None
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
        if step % t.sample_every == 0 or done:
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


def load_run(workdir: str, step: int | None = None):
  """(config, method, state) of a run directory at its latest (or the given) checkpoint."""
  config = read_config(workdir)
  d = config.data
  data = data_lib.load_split(d.name, d.split, d.image_size, d.data_dir or None, d.resize_method,
                             in_memory=False)
  method = methods.create(config, data.image_shape, data.num_classes)
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

