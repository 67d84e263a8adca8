"""The shared loop: outputs of a run, bit-exact resume, non-finite stop, data parallelism."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genvision_jax import configs
from genvision_jax import methods
from genvision_jax import training
from genvision_jax.models import layers
from genvision_jax.training import sharding, steps
from tests.conftest import REPO, experiment, host_leaves


def _config(spec, **overrides):
  return configs.load(experiment(spec), overrides)


@pytest.mark.parametrize('spec', ['vae_mnist.py:smoke', 'dcgan_mnist.py:smoke'])
def test_resume_is_bit_exact(tmp_path, spec):
  """2N steps straight == N steps, a restart, and N more steps: every leaf, bit for bit."""
  n = 4
  straight = training.train_and_evaluate(
      _config(spec, **{'train.num_steps': 2 * n, 'train.checkpoint_every': n}),
      str(tmp_path / 'straight'), verbose=False)
  first = training.train_and_evaluate(
      _config(spec, **{'train.num_steps': n, 'train.checkpoint_every': n}),
      str(tmp_path / 'resumed'), verbose=False)
  assert first.step == n
  resumed = training.train_and_evaluate(
      _config(spec, **{'train.num_steps': 2 * n, 'train.checkpoint_every': n}),
      str(tmp_path / 'resumed'), verbose=False)
  assert resumed.step == 2 * n
  a, b = host_leaves(straight.state), host_leaves(resumed.state)
  assert len(a) == len(b)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)
  # The resumed run logged the second half only, continuing the step count.
  steps = [r['step'] for r in map(json.loads, open(tmp_path / 'resumed' / 'metrics.jsonl'))]
  assert steps == sorted(steps) and steps[-1] == 2 * n


def test_state_holds_a_typed_key_and_a_run_written_with_raw_keys_resumes_bit_exactly(
    tmp_path, monkeypatch):
  """Run directories written before the state held typed keys (`jax.random.PRNGKey`: raw
  uint32[2] in the checkpoint) resume, and continue exactly as a run that never stopped."""
  from genvision_jax.training import loop  # pylint: disable=g-import-not-at-top
  n, spec = 3, 'dcgan_mnist.py:smoke'
  straight = training.train_and_evaluate(
      _config(spec, **{'train.num_steps': 2 * n, 'train.checkpoint_every': n}),
      str(tmp_path / 'straight'), verbose=False)
  assert jnp.issubdtype(straight.state.rng.dtype, jax.dtypes.prng_key)
  with monkeypatch.context() as m:  # the old code: raw uint32 keys in the state
    m.setattr(loop.jax.random, 'key', jax.random.PRNGKey)
    old = training.train_and_evaluate(
        _config(spec, **{'train.num_steps': n, 'train.checkpoint_every': n}),
        str(tmp_path / 'old'), verbose=False)
  assert old.state.rng.dtype == jnp.uint32
  resumed = training.train_and_evaluate(
      _config(spec, **{'train.num_steps': 2 * n, 'train.checkpoint_every': n}),
      str(tmp_path / 'old'), verbose=False)
  assert jnp.issubdtype(resumed.state.rng.dtype, jax.dtypes.prng_key)
  for a, b in zip(host_leaves(straight.state), host_leaves(resumed.state)):
    np.testing.assert_array_equal(a, b)


def test_run_directory_contents(tmp_path):
  config = _config('dcgan_mnist.py:smoke', **{'train.keep_checkpoints': 2,
                                              'train.checkpoint_every': 2})
  result = training.train_and_evaluate(config, str(tmp_path), verbose=False)
  assert json.load(open(tmp_path / 'config.json'))['train']['num_steps'] == 6
  records = [json.loads(line) for line in open(tmp_path / 'metrics.jsonl')]
  assert [r['step'] for r in records] == [2, 4, 6]
  for key in ('d_loss', 'g_loss', 'd_real_logit', 'd_fake_logit', 'd_grad_norm', 'g_grad_norm',
              'steps_per_sec'):
    assert all(np.isfinite(r[key]) for r in records), key
  assert sorted(os.listdir(tmp_path / 'checkpoints')) == ['4', '6']  # latest 2 kept
  assert sorted(os.listdir(tmp_path / 'samples')) == ['step_0000003.png', 'step_0000006.png']
  assert any(name.startswith('events.') for name in os.listdir(tmp_path))
  assert json.load(open(tmp_path / 'data_info.json')) == {
      'image_shape': [28, 28, 1], 'num_classes': 10, 'num_examples': 4500}
  assert int(result.state.d_updates) == 12 and int(result.state.g_updates) == 6
  # Rerunning a finished run does nothing and keeps everything.
  again = training.train_and_evaluate(config, str(tmp_path), verbose=False)
  assert again.step == 6 and sorted(os.listdir(tmp_path / 'checkpoints')) == ['4', '6']


class _NaNAtStep3(methods.VAEMethod):
  """The VAE, except that its 3rd step's loss is NaN."""

  def train_step(self, state, batch):
    state, metrics = super().train_step(state, batch)
    metrics['loss'] = jnp.where(state.step == 3, jnp.nan, metrics['loss'])
    return state, metrics


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
  monkeypatch.setitem(methods.METHODS, 'nan_at_3', _NaNAtStep3)
  config = _config('vae_mnist.py:smoke', **{'train.checkpoint_every': 2, 'train.log_every': 5,
                                            'train.num_steps': 50})
  with config.unlocked():
    config.method = 'nan_at_3'
  with pytest.raises(training.NonFiniteError) as err:
    training.train_and_evaluate(config, str(tmp_path), verbose=False)
  message = str(err.value)
  assert 'non-finite loss at step 3' in message
  assert 'checkpoints/2 is kept' in message
  assert sorted(os.listdir(tmp_path / 'checkpoints')) == ['2']  # step 4 was never saved
  _, _, state = training.load_run(str(tmp_path))
  assert int(state.step) == 2


def test_corrupt_checkpoint_is_a_clear_error_and_deletes_nothing(tmp_path):
  config = _config('vae_mnist.py:smoke')
  training.train_and_evaluate(config, str(tmp_path), verbose=False)
  latest = tmp_path / 'checkpoints' / '6'
  for path in latest.rglob('*'):
    if path.is_file() and path.stat().st_size > 0 and 'metadata' not in path.name:
      path.write_bytes(b'\0garbage' * 4)
  before = sorted(str(p) for p in tmp_path.rglob('*'))
  with pytest.raises(training.CheckpointError, match='checkpoints/6'):
    training.train_and_evaluate(_config('vae_mnist.py:smoke', **{'train.num_steps': 9}),
                                str(tmp_path), verbose=False)
  assert sorted(str(p) for p in tmp_path.rglob('*')) == before


_MULTI_DEVICE = textwrap.dedent('''
    import jax, numpy as np
    from genvision_jax import configs, methods
    from genvision_jax.training import sharding
    assert jax.device_count() == 8, jax.devices()
    spec, lead, overrides = {spec!r}, {lead!r}, {overrides!r}
    config = configs.load(spec, overrides)
    method = methods.create(config, (28, 28, 1))
    rng = np.random.default_rng(0)
    shape = (lead, 16, 28, 28, 1) if lead else (16, 28, 28, 1)
    batch = {{'image': np.clip(rng.normal(size=shape), -1, 1).astype(np.float32)}}
    out = []
    for devices in (jax.devices()[:1], jax.devices()):
      mesh = sharding.make_mesh(devices)
      repl = sharding.replicated(mesh)
      bsh = sharding.batch_sharding(mesh, leading_axes=int(bool(lead)))
      state = jax.jit(method.create_state, out_shardings=repl)(jax.random.PRNGKey(0))
      step = jax.jit(method.train_step, in_shardings=(repl, bsh), out_shardings=(repl, repl))
      b = jax.device_put(batch, bsh)
      for _ in range(2):
        state, metrics = step(state, b)
      out.append((jax.device_get(state), jax.device_get(metrics)))
      if len(devices) == 8:
        assert len(b['image'].sharding.device_set) == 8
    (s1, m1), (s8, m8) = out
    for a, b in zip(jax.tree.leaves(s1), jax.tree.leaves(s8)):
      np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64),
                                 rtol=2e-4, atol=2e-5)
    for k in m1:
      np.testing.assert_allclose(m1[k], m8[k], rtol=2e-4, atol=2e-5)
    print('OK', sorted(m1))
''')


@pytest.mark.parametrize('spec,lead,overrides', [
    ('vae_mnist.py:smoke', None, {}),
    ('dcgan_mnist.py:smoke', 2, {}),
    # One resolution level (GroupNorm, attention, time embedding all kept): half the compile.
    ('ddpm_mnist.py:smoke', None, {'model.channel_mults': (1,)}),
    # HiDDeN after its warm-up: a noise layer per batch, JPEG through a host callback.
    ('provenance/hidden_mnist.py:smoke', None, {'hidden.warmup_steps': 0})])
def test_sharded_step_on_8_devices_equals_one_device(spec, lead, overrides):
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=8')
  proc = subprocess.run(
      [sys.executable, '-c',
       _MULTI_DEVICE.format(spec=experiment(spec), lead=lead, overrides=overrides)],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout.startswith('OK')


def test_workdir_config_round_trip(tmp_path):
  config = _config('dcgan_mnist.py:smoke')
  os.makedirs(tmp_path, exist_ok=True)
  training.loop.write_config(config, str(tmp_path))
  again = training.read_config(str(tmp_path))
  assert again.to_dict() == config.to_dict()
  configs.validate(again)
  with pytest.raises(FileNotFoundError, match='not a run directory'):
    training.read_config(str(pathlib.Path(tmp_path) / 'nothing'))


@pytest.mark.parametrize('spec', ['vae_mnist.py:smoke', 'dcgan_mnist.py:smoke'])
def test_device_gathered_batches_equal_host_batches(spec):
  config = _config(spec, **{'train.seed': 7})
  split = training.open_data(config)
  method = methods.create(config, split.image_shape, split.num_classes)
  mesh = sharding.make_mesh()
  lead = method.minibatches_per_step
  batch_sh = sharding.batch_sharding(mesh, int(lead is not None))
  dataset = training.loop._device_dataset(split, mesh)  # pylint: disable=protected-access
  gather = jax.jit(steps.device_gather(method, config, split.num_examples, batch_sh))
  state = method.create_state(jax.random.PRNGKey(0))
  count = lead or 1
  per_epoch = split.num_examples // config.train.batch_size
  for step in (0, 1, per_epoch // count + 1):  # the last one is in the second epoch
    got = gather(state.replace(step=jnp.asarray(step, jnp.int32)), dataset)
    want = split.minibatches(step * count, count, config.train.batch_size, 7)
    if lead is None:
      want = {k: v[0] for k, v in want.items()}
    np.testing.assert_array_equal(np.asarray(got['image']), want['image'])
    np.testing.assert_array_equal(np.asarray(got['label']), want['label'])


@pytest.mark.parametrize('spec,conv,placements', [
    ('vae_mnist.py:smoke', 'auto', ('host', 'device')),
    ('dcgan_mnist.py:smoke', 'auto', ('host', 'device')),
    ('dcgan_mnist.py:smoke', 'gemm', ('host',)),
    ('vae_mnist.py:smoke', 'split', ('host',))])
def test_fused_steps_equal_single_steps_for_host_and_device_input(tmp_path, spec, conv,
                                                                 placements):
  """k steps in one lax.scan call == k single calls; host-fed == device-gathered batches;
  with the tiny layers' XLA convolutions, with every layer as a patch matrix product (the
  form wide layers take on CPU) and with every kernel gradient as per-tap products ('split')."""
  results = {}
  for placement in placements:
    for k in (1, 3):
      config = _config(spec, **{'train.steps_per_dispatch': k, 'data.placement': placement})
      with layers.convolution_implementation(conv):
        results[placement, k] = training.train_and_evaluate(
            config, str(tmp_path / f'{placement}{k}'), verbose=False).state
  reference = host_leaves(results['host', 1])
  for key, state in results.items():
    for a, b in zip(reference, host_leaves(state)):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=str(key))
  # Logging, checkpoints and samples happen at the dispatch boundaries that cross them.
  records = [json.loads(line) for line in open(tmp_path / 'host3' / 'metrics.jsonl')]
  assert [r['step'] for r in records] == [3, 6]
  assert sorted(os.listdir(tmp_path / 'host3' / 'checkpoints')) == ['3', '6']


class _CountTraces(methods.GANMethod):
  """The GAN, failing if its train_step is traced more than once."""

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self.train_step = chex.assert_max_traces(super().train_step, n=1)


@pytest.mark.parametrize('placement,k', [('device', 1), ('host', 1), ('device', 2),
                                         ('host', 2)])
def test_loop_has_no_hidden_transfers_and_compiles_once(tmp_path, monkeypatch, placement, k):
  chex.clear_trace_counter()
  monkeypatch.setitem(methods.METHODS, 'gan_counted', _CountTraces)
  config = _config('dcgan_mnist.py:smoke', **{'data.placement': placement,
                                              'train.steps_per_dispatch': k})
  with config.unlocked():
    config.method = 'gan_counted'
  result = training.train_and_evaluate(config, str(tmp_path), verbose=False,
                                       transfer_guard=True)
  assert int(result.state.step) == 6


def test_profile_steps_writes_a_trace(tmp_path):
  config = _config('vae_mnist.py:smoke', **{'train.profile_steps': 2})
  training.train_and_evaluate(config, str(tmp_path), verbose=False)
  traces = list((tmp_path / 'profile').rglob('*.xplane.pb'))
  assert len(traces) == 1 and traces[0].stat().st_size > 0
