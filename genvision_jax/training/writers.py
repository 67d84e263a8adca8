"""metrics.jsonl, TensorBoard scalars/images (tensorboardX, no TensorFlow) and the progress line."""

import json
import math
import os
import sys

import numpy as np


class MetricsWriter:
  """Appends one JSON object per logged step to DIR/metrics.jsonl and writes TensorBoard
  events to DIR. Only process 0 writes."""

  def __init__(self, workdir: str, enabled: bool = True):
    self.enabled = enabled
    self._jsonl = None
    self._tb = None
    if enabled:
      self._jsonl = open(os.path.join(workdir, 'metrics.jsonl'), 'a')
      from tensorboardX import SummaryWriter  # pylint: disable=g-import-not-at-top
      self._tb = SummaryWriter(logdir=workdir)

  def scalars(self, step: int, values: dict) -> None:
    if not self.enabled:
      return
    record = {'step': int(step)}
    record.update({k: float(v) for k, v in values.items()})
    self._jsonl.write(json.dumps(record) + '\n')
    self._jsonl.flush()
    for k, v in values.items():
      self._tb.add_scalar(k, float(v), int(step))

  def image(self, step: int, tag: str, grid_uint8: np.ndarray) -> None:
    if self.enabled:
      self._tb.add_image(tag, grid_uint8, int(step), dataformats='HWC')

  def close(self) -> None:
    if self.enabled:
      self._jsonl.close()
      self._tb.close()


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

  def __init__(self, total: int, stream=sys.stdout, enabled: bool = True):
    self.total = total
    self.stream = stream
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
