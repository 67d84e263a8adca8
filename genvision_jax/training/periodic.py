"""The named pieces of the training loop's bookkeeping, each with its own state.

In the manner of CLU's `periodic_actions`: "every N steps do X" is an object, called after
every dispatch as `action(before, step, state)` (the dispatch ran steps before+1 .. step), that
decides by itself whether it is due. The loop body then reads: get the batch, run the step,
let the actions act.

  Throughput      steps/s after compilation (compile, checkpoint and sample time excluded)
  PendingMetrics  the device metrics of dispatches not yet fetched; the non-finite check
  ReportProgress  every `log_every` steps: mean metrics to metrics.jsonl/TensorBoard, a line
  SaveCheckpoint  every `checkpoint_every` steps, at the end and on SIGTERM/SIGINT
  WriteSamples    every `sample_every` steps and at the end: a sample grid
  Profile         a JAX profiler trace of the first `profile_steps` steps after compiling
"""

import os
import time

import jax
import numpy as np

from genvision_jax import viz


class NonFiniteError(RuntimeError):
  """A loss or metric became NaN/inf; the message names the step and the kept checkpoint."""


def crossed(before: int, after: int, every: int) -> bool:
  """Whether a multiple of `every` lies in (before, after]."""
  return after // every > before // every


class Throughput:
  """Steps per second over the timed intervals of a run.

  The first dispatch (trace + compile + run) and a later phase's first dispatch count as
  compilation; time spent in checkpoints and samples is excluded from the interval it falls in.
  """

  def __init__(self):
    self.compile_seconds = 0.0
    self.timed_steps, self.timed_seconds = 0, 0.0
    self._start, self._steps, self._excluded = time.perf_counter(), 0, 0.0

  def compiled(self, seconds: float, first: bool) -> None:
    """A dispatch that compiled took `seconds`: the run's first, or a new phase's."""
    self.compile_seconds += seconds
    if first:
      self._start = time.perf_counter()  # intervals start after it
    else:
      self._excluded += seconds  # neither its time nor its steps count towards steps/s

  def ran(self, k: int) -> None:
    self._steps += k

  def exclude(self, seconds: float) -> None:
    self._excluded += seconds

  def interval_rate(self) -> float:
    """Steps/s since the previous call (or the first dispatch); starts a new interval."""
    elapsed = time.perf_counter() - self._start - self._excluded
    rate = self._steps / elapsed if self._steps and elapsed > 0 else 0.0
    self.timed_steps += self._steps
    self.timed_seconds += elapsed
    self._start, self._steps, self._excluded = time.perf_counter(), 0, 0.0
    return rate

  @property
  def rate(self) -> float:
    return self.timed_steps / self.timed_seconds if self.timed_seconds > 0 else 0.0


def _first_nonfinite(host_metrics: list[dict], first_step: int):
  for i, m in enumerate(host_metrics):
    bad = sorted(k for k, v in m.items() if not np.all(np.isfinite(v)))
    if bad:
      return first_step + i, bad
  return None


class PendingMetrics:
  """Device metrics of the dispatches since the last fetch. `flush` fetches them (one host
  round trip), raises NonFiniteError naming the first bad step, and returns their means."""

  def __init__(self, start: int, last_checkpoint):
    """last_checkpoint() -> (directory, step of the last saved checkpoint or 0), for the
    message."""
    self._pending: list[tuple[int, dict]] = []  # (steps in the dispatch, device metrics)
    self._first = start  # the pending metrics are of steps first+1, first+2, ...
    self._last_checkpoint = last_checkpoint

  def add(self, k: int, metrics) -> None:
    self._pending.append((k, metrics))

  def flush(self, step: int) -> dict:
    if not self._pending:
      return {}
    host = []
    for k, m in jax.device_get(self._pending):
      host.extend([m] if k == 1 else [{key: v[i] for key, v in m.items()} for i in range(k)])
    bad = _first_nonfinite(host, self._first + 1)
    if bad:
      bad_step, keys = bad
      directory, saved = self._last_checkpoint()
      kept = (f'the last good checkpoint {directory}/{saved} is kept' if saved
              else 'no checkpoint had been written yet')
      raise NonFiniteError(
          f'non-finite {", ".join(keys)} at step {bad_step}; stopped at step {step} and '
          f'saved nothing after it ({kept}). Lower the learning rate (config.optim...), '
          'add gradient clipping (grad_clip) or check the data, then rerun to resume.')
    self._pending, self._first = [], step
    return {k: float(np.mean([m[k] for m in host])) for k in host[0]}


class PeriodicAction:
  """Acts after the dispatch that crosses a multiple of `every`, and after the last step.

  Subclasses define `act(step, state)`; with `timed=False` its wall time is excluded from
  the throughput (checkpoints, samples).
  """

  timed = True

  def __init__(self, every: int, num_steps: int, throughput: Throughput):
    self.every, self.num_steps, self.throughput = every, num_steps, throughput

  def due(self, before: int, step: int) -> bool:
    return crossed(before, step, self.every) or step == self.num_steps

  def __call__(self, before: int, step: int, state) -> None:
    if not self.due(before, step):
      return
    tic = time.perf_counter()
    self.act(step, state)
    if not self.timed:
      self.throughput.exclude(time.perf_counter() - tic)

  def act(self, step: int, state) -> None:
    raise NotImplementedError


class ReportProgress(PeriodicAction):
  """Mean metrics of the steps since the last report, with steps/s, to the writer and the
  progress line."""

  def __init__(self, every, num_steps, throughput, pending: PendingMetrics, writer, progress):
    super().__init__(every, num_steps, throughput)
    self.pending, self.writer, self.progress = pending, writer, progress
    self.last: dict = {}

  def act(self, step, state):
    mean = self.pending.flush(step)
    if not mean:
      return
    jax.block_until_ready(state)
    mean['steps_per_sec'] = self.throughput.interval_rate()
    self.writer.scalars(step, mean)
    self.progress.line(step, mean, mean['steps_per_sec'])
    self.last = mean


class SaveCheckpoint(PeriodicAction):
  """Saves the state after checking that every pending metric is finite (a non-finite step
  is never saved). Also due when a stop signal has arrived."""

  timed = False

  def __init__(self, every, num_steps, throughput, pending: PendingMetrics, checkpoints,
               stop, writer, start: int):
    super().__init__(every, num_steps, throughput)
    self.pending, self.checkpoints, self.stop, self.writer = pending, checkpoints, stop, writer
    self.last_saved = start

  @property
  def directory(self) -> str:
    return self.checkpoints.directory

  def due(self, before, step):
    return super().due(before, step) or self.stop.signum is not None

  def act(self, step, state):
    self.pending.flush(step)  # the report logged them if it was due; here: check only
    self.checkpoints.save(step, state)
    self.last_saved = step

  def save_before_stopping(self, step: int, state) -> None:
    """On a stop signal: logs and saves the last completed step unless it is saved already
    (the signal came after this step's save decision), then waits for the write."""
    if self.last_saved != step:
      mean = self.pending.flush(step)
      if mean:
        self.writer.scalars(step, mean)
      self.checkpoints.save(step, state)
      self.last_saved = step
    self.checkpoints.wait()


class WriteSamples(PeriodicAction):
  """A grid of `sample_fn(state)` images to DIR/samples/step_NNNNNNN.png and TensorBoard."""

  timed = False

  def __init__(self, every, num_steps, throughput, sample_fn, save_grid):
    super().__init__(every, num_steps, throughput)
    self.sample_fn, self.save_grid = sample_fn, save_grid

  def act(self, step, state):
    self.save_grid(step, np.asarray(jax.device_get(self.sample_fn(state))))


class Profile:
  """A JAX profiler trace from the second dispatch (after compiling) until `num_steps` steps
  after the start, written to `directory` (TensorBoard's profile plugin reads it)."""

  def __init__(self, num_steps: int, start: int, total_steps: int, directory: str, progress,
               enabled: bool = True):
    self.num_steps, self.start, self.total_steps = num_steps, start, total_steps
    self.directory, self.progress = directory, progress
    self.enabled = bool(num_steps) and enabled
    self.tracing = False

  def __call__(self, before: int, step: int, state) -> None:
    if not self.enabled:
      return
    if before == self.start and step < self.total_steps:
      jax.profiler.start_trace(self.directory)
      self.tracing = True
    elif self.tracing and step - self.start > self.num_steps:
      jax.block_until_ready(state)
      self.close()
      self.progress.message(f'wrote a profile of steps {self.start + 2}..{step} to '
                            f'{self.directory} (tensorboard --logdir {self.directory})')

  def close(self) -> None:
    if self.tracing:
      jax.profiler.stop_trace()
      self.tracing = False


def sample_grid_writer(workdir: str, writer, cols, enabled: bool):
  """save_grid(step, images) for WriteSamples: a PNG under DIR/samples and a TensorBoard
  image (main process only)."""
  def save_grid(step: int, images) -> None:
    if enabled:
      viz.save_image_grid(images, os.path.join(workdir, 'samples', f'step_{step:07d}.png'),
                          ncol=cols)
      writer.image(step, 'samples', viz.image_grid(images, cols))

  return save_grid
