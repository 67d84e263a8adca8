"""Training-free translation with an unconditional diffusion prior (methods/prior_guidance.py):
RePaint's schedule by hand, the measurement operators against the task's own degradation,
known pixels kept exactly, super-resolution outputs consistent with their low-resolution
image, the refusals, and `genvision evaluate --prior` on smoke runs."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genvision_jax import configs, methods, tasks, training
from genvision_jax.evaluation import runner
from genvision_jax.methods import prior_guidance as pg
from tests.conftest import experiment, run_main


def test_repaint_schedule_by_hand():
  # 5 steps, jump 2, 2 passes: jump points j in {0, 2} (j < 5 - 2), each jumped back once.
  assert pg.repaint_schedule(5, 2, 2) == [4, 3, 2, 3, 4, 3, 2, 1, 0, 1, 2, 1, 0, -1]
  assert pg.repaint_schedule(4, 10, 5) == [3, 2, 1, 0, -1]  # no jump fits
  assert pg.repaint_schedule(3) == [2, 1, 0, -1]
  # RePaint's paper setting: 250 steps, jump 10, 10 passes: 24 jump points x 9 x 10 up-steps.
  s = pg.repaint_schedule(250, 10, 10)
  ups = sum(b > a for a, b in zip(s[:-1], s[1:]))
  assert ups == 24 * 9 * 10 and len(s) - 1 - ups == 250 + ups
  t_from, t_to = pg.transitions(1000, 5, 2, 2)
  grid = [0, 250, 500, 749, 999]  # sampling_timesteps(1000, 5), ascending
  assert t_from[:5].tolist() == [999, 749, 500, 749, 999] and t_to[-1] == -1
  assert t_to[:3].tolist() == [749, 500, 749] and set(t_from) <= set(grid)


def _task(**kw):
  t = tasks.default_config()
  t.update(kw)
  return t


@pytest.mark.parametrize('down', ['area', 'bicubic'])
def test_super_resolution_operator_is_the_tasks_and_its_pinv_inverts_it(down):
  task = _task(name='super_resolution', factor=4, downsample=down)
  meas = pg.Measurement(task, (32, 32, 2))
  x = jax.random.uniform(jax.random.key(0), (3, 32, 32, 2), minval=-1, maxval=1)
  y = tasks.degrade(task, x, jax.random.key(1))['low']
  np.testing.assert_allclose(meas.apply(x), y, atol=2e-6)  # A is the task's degradation
  np.testing.assert_allclose(meas.apply(meas.pinv(y)), y, atol=2e-5)  # A A^+ = I
  p = meas.project(jax.random.normal(jax.random.key(2), x.shape), y)
  np.testing.assert_allclose(meas.apply(p), y, atol=2e-5)
  np.testing.assert_allclose(meas.project(x, y), x, atol=5e-5)  # x already consistent
  if down == 'area':  # A^+ is nearest upsampling
    np.testing.assert_allclose(meas.pinv(y), jnp.repeat(jnp.repeat(y, 4, 1), 4, 2), atol=1e-6)


def test_colorization_operator_pinv():
  meas = pg.Measurement(_task(name='colorization'), (8, 8, 3))
  x = jax.random.uniform(jax.random.key(0), (2, 8, 8, 3), minval=-1, maxval=1)
  y = tasks.luminance(x)
  np.testing.assert_allclose(meas.apply(meas.pinv(y)), y, atol=1e-6)
  np.testing.assert_allclose(meas.apply(meas.project(0 * x, y)), y, atol=1e-6)


@pytest.fixture(scope='module')
def smoke_prior():
  config = configs.load(experiment('ddpm_mnist.py:pad32,smoke'), {})
  method = methods.create(config, (32, 32, 1), 10)
  state = method.create_state(jax.random.key(0))  # random weights: consistency holds anyway
  images = jax.random.uniform(jax.random.key(3), (3, 32, 32, 1), minval=-1, maxval=1)
  return method, state, images


@pytest.mark.parametrize('task,resamples', [
    (dict(name='inpainting', mask='boxes'), 1), (dict(name='uncropping'), 2)])
def test_replacement_keeps_known_pixels_exactly(smoke_prior, task, resamples):
  method, state, images = smoke_prior
  task = _task(**task)
  guided = pg.PriorGuided(method, task, steps=4, eta=1.0, jump_length=1, resamples=resamples)
  assert guided.guidance == 'replace'
  assert guided.network_evaluations == (4 if resamples == 1 else 4 + 3)  # jumps at 0, 1, 2
  pair = tasks.degrade_examples(task, images, seed=0)
  out = jax.jit(guided.translate)(state, pair, jax.random.key(1))
  known = np.asarray(pair['known'][..., 0]) > 0.5
  assert 0 < known.mean() < 1
  np.testing.assert_array_equal(np.asarray(out)[..., 0][known], np.asarray(images)[..., 0][known])
  assert not np.allclose(np.asarray(out)[..., 0][~known], 0.0)  # the hole is filled


@pytest.mark.parametrize('down', ['area', 'bicubic'])
def test_ddnm_output_is_consistent_with_the_low_resolution_image(smoke_prior, down):
  method, state, images = smoke_prior
  task = _task(name='super_resolution', factor=4, downsample=down)
  guided = pg.PriorGuided(method, task, steps=4, eta=0.5)
  assert guided.guidance == 'ddnm'
  pair = tasks.degrade_examples(task, images, seed=0)
  out = jax.jit(guided.translate)(state, pair, jax.random.key(1))
  np.testing.assert_allclose(tasks.downsample(out, 4, down), pair['low'], atol=1e-4)
  # Without the projection (the prior alone) the output ignores the measurement.
  free = method.generate(state, jax.random.key(1), 3, steps=4)
  assert np.abs(tasks.downsample(free, 4, down) - pair['low']).max() > 0.1


def test_refusals(smoke_prior):
  method, _, _ = smoke_prior
  with pytest.raises(ValueError, match='denoising observes'):
    pg.PriorGuided(method, _task(name='denoising'))
  with pytest.raises(ValueError, match="'replace' puts known pixels back"):
    pg.PriorGuided(method, _task(name='super_resolution'), guidance='replace')
  with pytest.raises(ValueError, match=r'models \(32, 32, 1\) images .* the task has \(28, 28, 1\)'):
    pg.check_prior(method, method.config, (28, 28, 1))
  p2p_config = configs.load(experiment('i2i/pix2pix_mnist.py:smoke'), {})
  p2p = methods.create(p2p_config, (32, 32, 1), 10)
  with pytest.raises(ValueError, match="unconditional diffusion run .* this one is 'pix2pix'"):
    pg.check_prior(p2p, p2p_config, (32, 32, 1))
  cond_config = configs.load(experiment('ddpm_cond_mnist.py:smoke'), {})
  cond = methods.create(cond_config, (28, 28, 1), 10)
  with pytest.raises(ValueError, match='class-conditional'):
    pg.check_prior(cond, cond_config, (28, 28, 1))


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  root = tmp_path_factory.mktemp('prior')
  out = {}
  for name, spec in (('prior', 'ddpm_mnist.py:pad32,smoke'),
                     ('inp', 'i2i/pix2pix_mnist.py:inpainting,smoke')):
    out[name] = str(root / name)
    training.train_and_evaluate(configs.load(experiment(spec), {}), out[name], verbose=False)
  return out


def test_evaluate_with_prior_adds_a_baseline_on_the_same_pairs(runs):
  result = runner.evaluate_run(runs['inp'], bootstrap=5, verbose=False,
                               prior={'workdir': runs['prior'], 'steps': 2})
  base = os.path.join(runs['inp'], 'eval', 'baselines', 'ddpm_prior', 'eval')
  with open(os.path.join(base, 'metrics.json')) as f:
    prior = json.load(f)
  assert prior['protocol']['prior']['guidance'] == 'replace'
  assert prior['protocol']['prior']['network_evaluations'] == 2
  assert prior['protocol']['examples'] == result['protocol']['examples'] == 500
  assert np.isfinite(prior['metrics']['psnr'])
  assert len(np.load(os.path.join(base, 'per_example.npz'))['psnr']) == 500
  assert os.path.isfile(os.path.join(os.path.dirname(base), 'samples.png'))
  # A diffusion run is not a prior for itself: it has no task; a pix2pix run is no prior.
  with pytest.raises(runner.EvaluationError, match='has no task'):
    runner.evaluate_run(runs['prior'], verbose=False, prior={'workdir': runs['prior']})
  with pytest.raises(runner.EvaluationError, match="--prior=.*this one is 'pix2pix'"):
    runner.evaluate_run(runs['inp'], verbose=False, prior={'workdir': runs['inp']})


def test_cli_evaluate_with_prior(runs):
  r = run_main('evaluate', f'--workdir={runs["inp"]}', f'--prior={runs["prior"]}',
              '--prior_steps=2', '--prior_name=cli_prior', '--bootstrap=5')
  assert r.returncode == 0, r.stderr[-2000:]
  assert 'baseline/cli_prior' in r.stdout
  assert os.path.isfile(os.path.join(runs['inp'], 'eval', 'baselines', 'cli_prior', 'eval',
                                     'metrics.json'))
