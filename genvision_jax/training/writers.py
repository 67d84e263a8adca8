"""metrics.jsonl, TensorBoard scalars/images (tensorboardX, no TensorFlow) and the progress line."""

import json
import math
import os
import sys
import time

import numpy as np


class MetricsWriter:
  """Appends one JSON object per logged step to DIR/metrics.jsonl and writes TensorBoard
  events (tensorboardX's protos and record writer, no TensorFlow) to DIR. Only process 0
  writes.

  Both are written in the calling thread and flushed at every record: a write error (a full
  disk) is raised here, as an OSError, not printed by a background thread that then blocks
  the run. `purge_step` (the first step a resumed run logs: its restored step + 1) starts the
  new events file with a SessionLog START at that step: TensorBoard then discards the events
  of steps >= it that an earlier, killed run wrote after its last checkpoint (the loop drops
  those records from metrics.jsonl, rundir.truncate_metrics).
  """

  def __init__(self, workdir: str, enabled: bool = True, purge_step: int | None = None):
    self.enabled = enabled
    self._jsonl = None
    self._events = None
    if enabled:
      from tensorboardX.event_file_writer import EventsWriter  # pylint: disable=g-import-not-at-top
      self._jsonl = open(os.path.join(workdir, 'metrics.jsonl'), 'a')
      try:
        self._events = EventsWriter(os.path.join(workdir, 'events'))
        if purge_step is not None:
          self._write_event(step=int(purge_step), session_log=_session_log_start())
        self._events.flush()
      except BaseException:
        self._jsonl.close()
        raise

  def _write_event(self, **fields) -> None:
    from tensorboardX.proto import event_pb2  # pylint: disable=g-import-not-at-top
    self._events.write_event(event_pb2.Event(wall_time=time.time(), **fields))

  def scalars(self, step: int, values: dict) -> None:
    if not self.enabled:
      return
    from tensorboardX import summary  # pylint: disable=g-import-not-at-top
    record = {'step': int(step)}
    record.update({k: float(v) for k, v in values.items()})
    self._jsonl.write(json.dumps(record) + '\n')
    self._jsonl.flush()
    for k, v in values.items():
      self._write_event(step=int(step), summary=summary.scalar(k, float(v)))
    self._events.flush()

  def image(self, step: int, tag: str, grid_uint8: np.ndarray) -> None:
    if self.enabled:
      from tensorboardX import summary  # pylint: disable=g-import-not-at-top
      self._write_event(step=int(step),
                        summary=summary.image(tag, grid_uint8, dataformats='HWC'))
      self._events.flush()

  def close(self, quiet: bool = False) -> None:
    """Closes both files; with `quiet` (closing because of another error) a failing final
    flush (a full disk) is not raised over that error."""
    if not self.enabled:
      return
    for f in (self._jsonl, self._events):
      try:
        f.close()
      except OSError:
        if not quiet:
          raise


def _session_log_start():
  from tensorboardX.proto import event_pb2  # pylint: disable=g-import-not-at-top
  return event_pb2.SessionLog(status=event_pb2.SessionLog.START)


def format_duration(seconds: float) -> str:
  if not math.isfinite(seconds):
    return '?'
  seconds = int(round(seconds))
  h, rem = divmod(seconds, 3600)
  m, s = divmod(rem, 60)
  return f'{h}h{m:02d}m{s:02d}s' if h else (f'{m}m{s:02d}s' if m else f'{s}s')


class Progress:
  """One line per logged step: step, main metrics, steps/s and ETA."""

  KEYS = ('loss', 'd_loss', 'g_loss', 'recon', 'kl')

  def __init__(self, total: int, stream=None, enabled: bool = True):
    self.total = total
    # sys.stdout of the moment, not of import time (a stream replaced since, e.g. by a test's
    # capture that is closed by now, must not receive the lines)
    self.stream = sys.stdout if stream is None else stream
    self.enabled = enabled

  def line(self, step: int, metrics: dict, steps_per_sec: float) -> None:
    if not self.enabled:
      return
    shown = ' '.join(f'{k} {metrics[k]:.4g}' for k in self.KEYS if k in metrics)
    eta = (self.total - step) / steps_per_sec if steps_per_sec > 0 else float('inf')
    pct = 100.0 * step / self.total
    print(f'step {step}/{self.total} ({pct:.0f}%) | {shown} | {steps_per_sec:.2f} steps/s | '
          f'ETA {format_duration(eta)}', file=self.stream, flush=True)

  def message(self, text: str) -> None:
    if self.enabled:
      print(text, file=self.stream, flush=True)
