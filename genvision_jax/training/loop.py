"""The one method-agnostic training loop.

`train_and_evaluate(config, workdir)` validates the config, opens the data, builds the
method's state replicated over a data-parallel mesh, restores the latest checkpoint of
`workdir` if there is one, and runs the jitted `train_step` to `config.train.num_steps`,
writing metrics, sample grids and checkpoints. SIGTERM/SIGINT save a final checkpoint and
stop; a non-finite metric stops the run without overwriting the last good checkpoint.

Its pieces have names: an `InputSource` (host-fed or device-resident batches), a
`DispatchCache` (the compiled single or fused steps per phase) and the periodic actions of
`training/periodic.py` (report, checkpoint, samples, profile), so that the loop body reads
as the algorithm: get the batch, run the step, let the actions act.
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
from genvision_jax import features as features_lib
from genvision_jax import methods
from genvision_jax.training import host_memory
from genvision_jax.training import periodic
from genvision_jax.training import rundir
from genvision_jax.training import sharding
from genvision_jax.training import steps
from genvision_jax.training.checkpoints import CheckpointError, Checkpoints
from genvision_jax.training.periodic import NonFiniteError  # noqa: F401 (re-exported)
from genvision_jax.training.writers import MetricsWriter, Progress, format_duration

SAMPLE_SEED_SALT = 0x5A17
DATA_INFO = rundir.DATA_INFO
COMMAND_FILE = rundir.COMMAND_FILE
FROZEN_DIR = 'frozen'  # copies of the config.json / data_info.json of the runs built on
# data.placement='auto' keeps splits up to this size (uint8) on the devices.
DEVICE_DATA_MAX_BYTES = 2**30  # fixed noise of the sample grids: fold_in(key(seed), salt)


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
  return data_lib.load_split(d.name, d.split, d.image_size, d.data_dir or None, d.resize_method,
                             exclude=d.get('exclude') or None)


def write_config(config, workdir: str) -> None:
  rundir.write_text(os.path.join(workdir, rundir.CONFIG_FILE),
                    config.to_json_best_effort(indent=2, sort_keys=True))


read_config = rundir.read_config


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


class InputSource:
  """Where each dispatch's batches come from.

  Host input (`on_device=False`): the k step batches of a dispatch are read on the host (each
  process its rows) and sent with it. Device-resident input: the split lives on the devices
  and every step gathers its own minibatches there (`steps.device_gather`); the source of a
  dispatch is then the whole dataset. Both see the same (seed, step) batches.
  """

  def __init__(self, config, data: data_lib.ImageSplit, method, mesh):
    self.config, self.data, self.mesh = config, data, mesh
    self.lead = method.minibatches_per_step  # None or k minibatches per step
    self.on_device = place_on_device(config, data)
    if self.on_device:
      self.dataset = _device_dataset(data, mesh)
      step_batch = sharding.batch_sharding(mesh, leading_axes=int(self.lead is not None))
      self.gather = steps.device_gather(method, config, data.num_examples, step_batch)
    else:
      self.dataset, self.gather = None, None

  @property
  def name(self) -> str:
    return 'device' if self.on_device else 'host'

  def sharding(self, k: int):
    """The sharding of the source of a k-step dispatch."""
    if self.on_device:
      return sharding.batch_sharding(self.mesh, leading_axes=0)
    return sharding.batch_sharding(self.mesh, int(self.lead is not None) + int(k > 1))

  def __call__(self, step: int, k: int):
    """The source of the dispatch running steps step+1 .. step+k."""
    if self.on_device:
      return self.dataset
    t, lead = self.config.train, self.lead
    count = lead or 1
    local = self.data.minibatches(step * count, k * count, t.batch_size, t.seed,
                                  jax.process_index(), jax.process_count())
    # [k * count, b, ...] -> [k, count, b, ...], dropping the axes of size one not wanted.
    local = {key: v.reshape(k, count, *v.shape[1:]) for key, v in local.items()}
    local = {key: v[:, 0] if lead is None else v for key, v in local.items()}
    local = {key: v[0] if k == 1 else v for key, v in local.items()}
    axes = int(lead is not None) + int(k > 1)
    return sharding.global_batch(local, sharding.batch_sharding(self.mesh, axes), axes)


class DispatchCache:
  """The compiled dispatches of a run, one per (steps fused k, phase), made on first use:
  jit of `steps.make_dispatch` with the input's shardings and the state donated.

  transfer_guard: run every dispatch under jax.transfer_guard('disallow').
  """

  def __init__(self, method, inputs: InputSource, mesh, transfer_guard: bool = False):
    self.method, self.inputs = method, inputs
    self.replicated = sharding.replicated(mesh)
    self.transfer_guard = transfer_guard
    self._compiled = {}

  def is_new(self, k: int, phase) -> bool:
    return (k, phase) not in self._compiled

  def plan(self, step: int, k_fuse: int, num_steps: int):
    """(k, phase) of the dispatch starting after `step`: up to k_fuse steps, never past the
    run's end nor into the method's next phase (None unless the method has phases)."""
    k = min(k_fuse, num_steps - step)
    phase = steps.phase_at(self.method, step)
    if phase is not None:
      end = self.method.phase_end(step)
      k = k if end is None else min(k, end - step)
    return k, phase

  def __call__(self, state, source, k: int, phase):
    if self.is_new(k, phase):
      train_step = (self.method.train_step if phase is None
                    else self.method.train_step_for(phase))
      self._compiled[k, phase] = jax.jit(
          steps.make_dispatch(train_step, k, self.inputs.gather),
          in_shardings=(self.replicated, self.inputs.sharding(k)),
          out_shardings=(self.replicated, self.replicated), donate_argnums=0)
    guard = (jax.transfer_guard('disallow') if self.transfer_guard
             else contextlib.nullcontext())
    with guard:
      return self._compiled[k, phase](state, source)


def train_and_evaluate(config, workdir: str, *, verbose: bool = True, devices=None,
                       transfer_guard: bool = False,
                       allow_config_change: bool = False,
                       command: str | None = None) -> TrainResult:
  """Trains `config` in `workdir`, resuming from its latest checkpoint. See module doc.

  Every check that can refuse the run (the config, the data, the stored config of a resumed
  run, its checkpoint) comes before the first write to `workdir`, so a refused run leaves it
  as it was; the small files are then written atomically (training/rundir.py).

  transfer_guard: run every dispatch under jax.transfer_guard('disallow'), so that an
    implicit host/device transfer inside the training loop is an error (used by tests).
  allow_config_change: resume although the config differs from the stored one in fields
    that may not change on resume (see rundir.check_resume).
  command: the command line that trains this run, recorded as DIR/command.txt (reports quote it).
  """
  host_memory.keep_freed_host_memory()  # XLA:CPU step buffers: reuse, don't page-fault anew
  configs.validate(config, device_count=len(devices) if devices is not None else None)
  t = config.train
  data = open_data(config)  # fails fast (before touching workdir) if the data is missing
  check_data(config, data)
  # e.g. Parti's tokenizer: read from its own workdir for a new run; a run being resumed uses
  # the copies in workdir/frozen/ (its checkpoint holds the parameters it was trained with,
  # even if the tokenizer's directory has since been moved, deleted or retrained).
  frozen = load_frozen_runs(config, workdir if _has_checkpoint(workdir) else None,
                            training=True)
  method = methods.create(config, data.image_shape, data.num_classes, frozen)
  changes = rundir.check_resume(config, workdir, allow_config_change)
  is_main = jax.process_index() == 0
  k_fuse = steps.steps_per_dispatch(config)
  progress = Progress(t.num_steps, enabled=verbose and is_main)

  mesh = sharding.make_mesh(devices)
  repl = sharding.replicated(mesh)
  state = jax.jit(method.create_state, out_shardings=repl)(jax.random.key(t.seed))
  os.makedirs(workdir, exist_ok=True)
  ckpts = Checkpoints(os.path.join(workdir, 'checkpoints'), keep=t.keep_checkpoints)
  writer = profile = None
  failed = True
  try:
    start = ckpts.latest_step() or 0
    if start:
      try:
        state = ckpts.restore(start, state)
      except CheckpointError as e:
        if changes:
          raise CheckpointError(
              f'{e} The config differs from the stored {workdir}/config.json in '
              f'{rundir.describe_changes(changes)} (let through by --allow_config_change).'
          ) from None
        raise
      progress.message(f'resumed from {ckpts.directory}/{start}')
    if is_main:  # the first writes: everything that can refuse the run has passed
      write_run_files(config, data, workdir, start, command, frozen)
    # TensorBoard drops the older events of steps >= purge_step: those a killed run logged after
    # the checkpoint restored here (steps <= start stay, as in metrics.jsonl)
    writer = MetricsWriter(workdir, enabled=is_main, purge_step=start + 1 if start else None)

    if hasattr(method, 'derived_fields'):  # e.g. Parti: its frozen tokenizer's codes, once
      data = data.with_fields(method.derived_fields(state, data.arrays()))
    inputs = InputSource(config, data, method, mesh)
    dispatch = DispatchCache(method, inputs, mesh, transfer_guard)
    grid_fn, sample_cols = sample_grid(method, data, t.num_samples, t.seed)
    sample_fn = jax.jit(grid_fn, out_shardings=repl)
    sample_rng = jax.random.fold_in(jax.random.key(t.seed), SAMPLE_SEED_SALT)

    throughput = periodic.Throughput()
    pending = periodic.PendingMetrics(start, lambda: (ckpts.directory, save.last_saved))
    stop = _StopFlag()
    report = periodic.ReportProgress(t.log_every, t.num_steps, throughput, pending, writer,
                                     progress)
    save = periodic.SaveCheckpoint(t.checkpoint_every, t.num_steps, throughput, pending,
                                   ckpts, stop, writer, start)
    samples = periodic.WriteSamples(
        t.sample_every, t.num_steps, throughput, lambda state: sample_fn(state, sample_rng),
        periodic.sample_grid_writer(workdir, writer, sample_cols, is_main))
    profile = periodic.Profile(t.profile_steps, start, t.num_steps,
                               os.path.join(workdir, 'profile'), progress, enabled=is_main)
    actions = (profile, report, save, samples)  # in this order after every dispatch

    step = start
    with stop:
      while step < t.num_steps:
        k, phase = dispatch.plan(step, k_fuse, t.num_steps)
        source = inputs(step, k)
        first = step == start
        if first or (phase is not None and dispatch.is_new(k, phase)):  # compiles: time it
          tic = time.perf_counter()
          state, metrics = dispatch(state, source, k, phase)
          jax.block_until_ready(state)
          took = time.perf_counter() - tic
          throughput.compiled(took, first)
          progress.message(
              f'compiled and ran the first {k} step(s) in {took:.1f}s ({inputs.name} input, '
              f'{k_fuse} step(s) per dispatch)' if first else
              f'compiled and ran the first step(s) of phase {phase} in {took:.1f}s')
        else:
          state, metrics = dispatch(state, source, k, phase)
          throughput.ran(k)
        before, step = step, step + k
        pending.add(k, metrics)
        for action in actions:
          action(before, step, state)
        if stop.signum is not None:
          save.save_before_stopping(step, state)
          raise Interrupted(f'{signal.Signals(stop.signum).name} at step {step}: saved '
                            f'checkpoint {ckpts.directory}/{step}; rerun the same command to '
                            'resume.')
    failed = False
  finally:  # on every path: no orbax/tensorboardX background thread outlives the run
    if profile is not None:
      profile.close()
    if writer is not None:
      writer.close(quiet=failed)
    ckpts.close(quiet=failed)

  if start < t.num_steps:
    progress.message(f'done: {t.num_steps} steps in {workdir} ({throughput.rate:.2f} steps/s '
                     f'after compilation; compile {format_duration(throughput.compile_seconds)})')
  else:
    progress.message(f'{workdir} is already trained to step {start} (train.num_steps='
                     f'{t.num_steps}); raise --config.train.num_steps to train further.')
  return TrainResult(state=state, step=step, metrics=report.last, steps_per_sec=throughput.rate,
                     compile_seconds=throughput.compile_seconds)


def check_data(config, data: data_lib.ImageSplit) -> None:
  """The checks of `config` against the data itself (before anything is written)."""
  if config.get('model', {}).get('conditional', False) and data.num_classes < 1:
    raise configs.ConfigError(
        f"model.conditional=True needs labels, but dataset '{data.name}' has none; use a "
        'labelled dataset or --config.model.conditional=False')
  if config.train.batch_size > data.num_examples:
    raise configs.ConfigError(
        f'train.batch_size={config.train.batch_size} exceeds the {data.num_examples} examples '
        f"of '{data.name}' split '{data.split}'; use e.g. "
        f'--config.train.batch_size={max(1, data.num_examples // 2)}')


def write_run_files(config, data: data_lib.ImageSplit, workdir: str, start: int,
                    command: str | None = None, frozen: dict | None = None) -> None:
  """config.json and data_info.json (atomically, only when they change), metrics.jsonl
  without the records past the restored step `start`, the command line that trains the
  run (command.txt; the first one, a resumed run keeps it) when given, and the config.json /
  data_info.json of each frozen run in FROZEN_DIR/NAME (load_frozen_runs)."""
  for name, run in (frozen or {}).items():
    if isinstance(run, FrozenImage):
      path = os.path.join(workdir, FROZEN_DIR, f'{name}.png')
      if start == 0 or not os.path.isfile(path):  # before a checkpoint: the image trained on
        from PIL import Image  # pylint: disable=g-import-not-at-top
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with rundir.atomic_open(path, 'wb') as f:
          Image.fromarray(run.pixels).save(f, format='PNG')
      continue
    if not isinstance(run, FrozenRun):  # e.g. a feature network: nothing to keep
      continue
    for file in (rundir.CONFIG_FILE, DATA_INFO):
      with open(os.path.join(run.workdir, file)) as f:
        text = f.read()
      os.makedirs(os.path.join(workdir, FROZEN_DIR, name), exist_ok=True)
      _write_if_changed(os.path.join(workdir, FROZEN_DIR, name, file), text)
  text = config.to_json_best_effort(indent=2, sort_keys=True)
  _write_if_changed(os.path.join(workdir, rundir.CONFIG_FILE), text)
  info = {'image_shape': list(data.image_shape), 'num_classes': data.num_classes,
          'num_examples': data.num_examples}
  vocabulary = data_lib.vocabulary(data.name)
  if vocabulary is not None:  # captions: prompts are tokenized with it (genvision sample)
    info['vocabulary'] = list(vocabulary)
  if data.excluded is not None:  # data.exclude: the examples left out, as they were read
    info['excluded'] = data.excluded.tolist()
  info = json.dumps(info)
  _write_if_changed(os.path.join(workdir, DATA_INFO), info)
  if command and not os.path.isfile(os.path.join(workdir, COMMAND_FILE)):
    rundir.write_text(os.path.join(workdir, COMMAND_FILE), command + '\n')
  rundir.truncate_metrics(workdir, start)


def _write_if_changed(path: str, text: str) -> None:
  if os.path.isfile(path):
    with open(path) as f:
      if f.read() == text:
        return
  rundir.write_text(path, text)


def sample_grid(method, data, num: int, seed: int):
  """(fn(state, rng) -> images, columns) of the periodic sample grid: a method conditioned on
  images (image-to-image: `grid_from_data`) gets the split's first minibatch of `num`; the
  others generate `num` images (one row per class for a conditional model)."""
  if hasattr(method, 'grid_from_data'):
    images = data.minibatch(0, min(num, data.num_examples), seed)['image']
    return method.grid_from_data(images, num)
  key = getattr(method, 'conditioning_key', None)
  if key is not None:  # e.g. captions: one row per caption of the first minibatch
    rows = max(1, min(8, num, data.num_examples))
    cols = max(1, num // rows)
    cond = data.minibatch(0, rows, seed)[key]
    cond = np.repeat(cond, cols, axis=0)
    cond = np.concatenate([cond, np.repeat(cond[:1], num - len(cond), axis=0)])
    return functools.partial(method.generate, num=num, label=cond), cols
  kwargs, cols = class_grid_labels(method, num)
  return functools.partial(method.generate, num=num, **kwargs), cols


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


@dataclasses.dataclass(frozen=True)
class FrozenImage:
  """An image file a method needs (methods.frozen_images): where it was read from, its pixels
  (uint8 [H, W, 3]) and the same in [-1, 1] (`image`)."""
  source: str
  pixels: Any

  @property
  def image(self):
    return self.pixels.astype(np.float32) / 127.5 - 1.0


@dataclasses.dataclass(frozen=True)
class FrozenRun:
  """A trained run another run builds on (methods.frozen_runs): where it was read from, its
  config, method object and state (host arrays)."""
  workdir: str
  config: Any
  method: Any
  state: Any


def _has_checkpoint(workdir: str) -> bool:
  directory = os.path.join(workdir, 'checkpoints')
  return os.path.isdir(directory) and any(n.isdigit() for n in os.listdir(directory))


def load_frozen_runs(config, workdir: str | None = None, training: bool = False) -> dict:
  """{name: FrozenRun} of the runs the method of `config` builds on.

  A new run (workdir None): each is read from its own workdir at its latest checkpoint; a
  missing or untrained one is a FileNotFoundError naming it. Loading or resuming the trained
  run in `workdir`: from the copies of their config.json and data_info.json in workdir/frozen/NAME,
  with initialized states, because the run's own checkpoint holds their parameters (the
  tokenizer run may since have been deleted or retrained).

  Also the method's image files (methods.frozen_images; a FrozenImage each, from the copy in
  workdir/frozen/NAME.png once the run has one) and, when `training`, its feature networks
  (methods.frozen_features; None otherwise: only training needs them)."""
  out = {}
  for name, source in methods.frozen_runs(config).items():
    stored = os.path.join(workdir, FROZEN_DIR, name) if workdir else None
    info = stored and rundir.read_data_info(stored)
    if info and os.path.isfile(os.path.join(stored, rundir.CONFIG_FILE)):
      cfg = read_config(stored)
      method = methods.create(cfg, tuple(info['image_shape']), info['num_classes'])
      state = jax.jit(method.create_state)(jax.random.key(0))
      source = stored
    else:
      try:
        cfg, method, state = load_run(source)
      except FileNotFoundError as e:
        raise FileNotFoundError(f'the {name} run of this {config.method!r} run cannot be '
                                f'read: {e}') from None
    out[name] = FrozenRun(source, cfg, method, jax.device_get(state))
  for name, (source, side) in methods.frozen_images(config).items():
    # A run keeps the image it was trained with (RUN/frozen/NAME.png, lossless): used as it is.
    stored = os.path.join(workdir, FROZEN_DIR, f'{name}.png') if workdir else None
    if stored and os.path.isfile(stored):
      out[name] = FrozenImage(stored, data_lib.image_files.read_rgb(stored, None, name))
    else:
      out[name] = FrozenImage(source, data_lib.image_files.read_rgb(source, side,
                                                                    f'{name} image'))
  for name, (network, weights) in methods.frozen_features(config).items():
    try:
      out[name] = features_lib.load(network, weights) if training else None
    except (features_lib.FeatureError, features_lib.WeightsNotFoundError) as e:
      raise data_lib.DatasetError(
          f'the {name} network {network!r} of this {config.method!r} run cannot be loaded: {e} '
          '(in a config: --config.style.weights=FILE)') from None
  return out


def load_run(workdir: str, step: int | None = None):
  """(config, method, state) of a run directory at its latest (or the given) checkpoint."""
  config = read_config(workdir)
  info = rundir.read_data_info(workdir)
  if info is not None:  # no need for the dataset itself
    image_shape, num_classes = tuple(info['image_shape']), info['num_classes']
  else:
    d = config.data
    data = data_lib.load_split(d.name, d.split, d.image_size, d.data_dir or None,
                               d.resize_method, in_memory=False)
    image_shape, num_classes = data.image_shape, data.num_classes
  method = methods.create(config, image_shape, num_classes, load_frozen_runs(config, workdir))
  mesh = sharding.make_mesh()
  state = jax.jit(method.create_state, out_shardings=sharding.replicated(mesh))(
      jax.random.key(config.train.seed))
  directory = os.path.join(workdir, 'checkpoints')
  if not os.path.isdir(directory):
    raise FileNotFoundError(f'{directory} holds no checkpoint yet; train first')
  ckpts = Checkpoints(directory, keep=config.train.keep_checkpoints, create=False)
  failed = True
  try:
    step = step if step is not None else ckpts.latest_step()
    if step is None:
      raise FileNotFoundError(f'{directory} holds no checkpoint yet; train first')
    state = ckpts.restore(step, state)
    failed = False
  finally:
    ckpts.close(quiet=failed)
  return config, method, state


def generate_images(method, state, num: int, seed: int = 0, **kwargs) -> np.ndarray:
  """num images in [-1, 1] as a host array."""
  fn = jax.jit(functools.partial(method.generate, num=num, **kwargs))
  return np.asarray(jax.device_get(fn(state, jax.random.key(seed))))

