"""Studies: the grid, the statistics (checked by hand), a smoke study trained in-process with
its resume after a kill, and its HTML report checked in a real headless browser."""

import json
import math
import os
import shutil

import numpy as np
import pytest
from scipy import stats

from genvision_jax.studies import analysis
from genvision_jax.studies import report
from genvision_jax.studies import runner
from genvision_jax.studies import spec
from tests.conftest import chromium, experiment, shared_lock, shared_path

SMOKE = experiment('studies/gan_losses_mnist.py') + ':smoke'


def test_holm_matches_a_hand_computation():
  # sorted: .005*4 = .02, .01*3 = .03, .03*2 = .06, .04*1 = .04 -> running max .02 .03 .06 .06
  adjusted, reject = analysis.holm([0.01, 0.04, 0.03, 0.005], alpha=0.05)
  np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02])
  assert reject == [True, False, False, True]
  adjusted, reject = analysis.holm([0.2, float('nan')])
  assert adjusted[0] == pytest.approx(0.2) and math.isnan(adjusted[1]) and reject == [False, False]


def test_summary_ranks_tests_and_corrects():
  values = {'a': [1.0, 1.2, 0.9], 'b': [5.0, 5.5, 4.8], 'c': [1.1, 1.0, 1.3], 'd': [7.0]}
  s = analysis.summarize(values, higher_is_better=False, alpha=0.05)
  assert s['ranking'] == ['a', 'c', 'b', 'd']  # lower is better: by mean
  g = s['groups']['a']
  t = stats.t.interval(0.95, 2, loc=np.mean(values['a']), scale=stats.sem(values['a']))
  assert (g['low'], g['high']) == pytest.approx(t)
  assert math.isnan(s['groups']['d']['std'])  # one run: no spread
  pairs = {(x['a'], x['b']): x for x in s['tests']}
  assert set(pairs) == {('a', 'c'), ('a', 'b'), ('c', 'b')}  # d has one run: no Welch test
  ab = pairs[('a', 'b')]
  assert ab['p_value'] == pytest.approx(
      stats.ttest_ind(values['a'], values['b'], equal_var=False).pvalue)
  assert ab['p_holm'] == pytest.approx(min(1, 3 * ab['p_value']))  # the smallest of 3 p's
  assert ab['significant'] and not pairs[('a', 'c')]['significant']
  # values spanning less than 10x: a linear axis; a collapsed run (100x): a log axis
  assert analysis.distribution_figure(s, 'fd').axes[0].get_yscale() == 'linear'
  values['d'] = [700.0]
  wide = analysis.summarize(values, higher_is_better=False)
  assert analysis.distribution_figure(wide, 'fd').axes[0].get_yscale() == 'log'


def test_rank_agreement_is_spearman():
  ours = {'x': 1.0, 'y': 2.0, 'z': 3.0, 'w': 4.0}
  r = analysis.rank_agreement(ours, {'x': 10, 'y': 30, 'z': 20, 'w': 40, 'other': 1})
  assert r['spearman_rho'] == pytest.approx(0.8)
  assert analysis.rank_agreement(ours, {'x': 1, 'y': 2}) is None


def test_the_grid_and_its_overrides(tmp_path):
  config, folder = spec.load(SMOKE)
  runs = spec.expand(config, folder)
  assert [(r.group, r.seed) for r in runs] == [('hinge', 0), ('non_saturating', 0),
                                               ('hinge', 1), ('non_saturating', 1)]
  r = runs[2]
  assert r.experiment.endswith(os.path.join('experiments', 'gan', 'hinge_mnist.py') + ':smoke')
  assert r.overrides[-1] == 'train.seed=1' and 'train.num_steps=6' in r.overrides
  exp = spec.load_experiment(r)
  assert exp.train.seed == 1 and exp.train.num_steps == 6 and exp.gan.loss == 'hinge'
  assert r.command(str(tmp_path)).endswith('--config.train.seed=1')
  with pytest.raises(spec.StudyError, match="unknown config key 'train.num_stepz'"):
    spec.load_experiment(spec.RunSpec('g', 0, r.experiment, ('train.num_stepz=3',)))
  with pytest.raises(spec.StudyError, match='not KEY=VALUE'):
    spec.load_experiment(spec.RunSpec('g', 0, r.experiment, ('train.num_steps',)))
  with pytest.raises(spec.StudyError, match='train.num_steps=many'):
    spec.load_experiment(spec.RunSpec('g', 0, r.experiment, ('train.num_steps=many',)))
  with pytest.raises(spec.StudyError, match='seeds must be distinct'):
    spec.load(SMOKE, {'seeds': (1, 1)})


def test_random_search_is_seeded_and_inside_its_space():
  config, folder = spec.load(experiment('studies/gan_losses_mnist.py') + ':search')
  trials = spec.search_trials(config)
  assert trials == spec.search_trials(config) and len(trials) == 4
  for trial in trials:
    values = dict(spec.split_override(o) for o in trial)
    assert 5e-5 <= float(values['optim.g.learning_rate']) <= 1e-3
    assert float(values['optim.g.b1']) in (0.0, 0.5, 0.9)
  runs = spec.expand(config, folder)
  assert len(runs) == 8 * 4 and runs[0].group == 'began@t0' and runs[3].group == 'began@t3'
  assert runs[4].group == 'dragan@t0'  # groups in name order (ConfigDict), trials within
  exp = spec.load_experiment(runs[1])
  assert exp.optim.g.learning_rate == pytest.approx(
      float(dict(spec.split_override(o) for o in trials[1])['optim.g.learning_rate']))


@pytest.fixture(scope='module')
def smoke_study(tmp_path_factory):
  """The smoke study (2 losses x 2 seeds), trained once per session (shared by the workers)."""
  path = shared_path(tmp_path_factory, 'smoke_study')
  with shared_lock(path):
    config, folder = spec.load(SMOKE)
    study = runner.run_study(config, folder, str(path), spec_text=SMOKE, verbose=False)
  return path, study


def test_study_writes_its_record_figure_and_report(smoke_study):
  path, study = smoke_study
  assert study['complete'] and len(study['runs']) == 4
  assert all(r['status'] == 'done' for r in study['runs'])
  fds = {}
  for r in study['runs']:
    with open(os.path.join(path, r['dir'], 'eval', 'metrics.json')) as f:
      m = json.load(f)
    assert m['protocol']['num_samples'] == 64 and m['protocol']['checkpoint_step'] == 6
    assert r['metrics']['digits_cnn/fd'] == m['metrics']['digits_cnn/fd']
    fds.setdefault(r['group'], []).append(m['metrics']['digits_cnn/fd'])
    with open(os.path.join(path, r['dir'], 'command.txt')) as f:
      assert f.read().strip() == r['command']
  g = study['summary']['groups']['hinge']
  assert g['mean'] == pytest.approx(np.mean(fds['hinge']))
  assert study['summary']['tests'][0]['p_value'] == pytest.approx(
      stats.ttest_ind(fds['hinge'], fds['non_saturating'], equal_var=False).pvalue)
  assert study['reference']['values'] == {'non_saturating': 6.8}
  for f in ('distribution.png', 'report.html', 'study_config.json'):
    assert os.path.isfile(os.path.join(path, f))


def test_study_resumes_after_a_kill_without_redoing_finished_runs(smoke_study, tmp_path,
                                                                  monkeypatch):
  src, _ = smoke_study
  work = tmp_path / 'study'
  shutil.copytree(src, work)
  # Runs go seed-major: hinge 0, non_saturating 0, hinge 1, non_saturating 1. A kill after
  # run 2's training, before its evaluation, and before runs 3 and 4: what is on disk.
  killed = work / 'runs' / 'non_saturating' / 'seed_0'
  shutil.rmtree(killed / 'eval')
  shutil.rmtree(work / 'runs' / 'non_saturating' / 'seed_1')
  finished = work / 'runs' / 'hinge' / 'seed_0' / 'eval' / 'metrics.json'
  before = finished.stat().st_mtime_ns
  from genvision_jax import training
  trained = []
  real_train = training.train_and_evaluate

  def counting(config, workdir, **kwargs):
    trained.append(os.path.relpath(workdir, work))
    return real_train(config, workdir, **kwargs)

  monkeypatch.setattr(training, 'train_and_evaluate', counting)
  config, folder = spec.load(SMOKE)

  class Killed(Exception):
    pass

  def kill(run):  # this invocation is killed again, after run 2's (no-op) training
    raise Killed(run.rel_dir)

  with pytest.raises(Killed):
    runner.run_study(config, folder, str(work), verbose=False, after_run=kill)
  assert trained == [os.path.join('runs', 'non_saturating', 'seed_0')]  # run 1 skipped
  record = json.loads((work / 'study.json').read_text())
  assert not record['complete']
  study = runner.run_study(config, folder, str(work), verbose=False)
  assert trained[1:] == [os.path.join('runs', 'non_saturating', 'seed_0'),
                         os.path.join('runs', 'non_saturating', 'seed_1')]
  assert finished.stat().st_mtime_ns == before  # finished runs untouched
  assert study['complete'] and all(r['status'] == 'done' for r in study['runs'])
  # Run 2 was not retrained (the loop found it at its last step), run 3 was skipped.
  steps = [json.loads(line)['step'] for line in (killed / 'metrics.jsonl').read_text().splitlines()]
  assert steps == sorted(set(steps))
  # A different study in the same directory is refused before anything is written.
  other, _ = spec.load(SMOKE, {'evaluation.num_samples': 32})
  with pytest.raises(spec.StudyError, match='different config'):
    runner.run_study(other, folder, str(work), verbose=False)


def test_budget_calibration_sets_the_steps(tmp_path):
  config, folder = spec.load(experiment('studies/gan_losses_mnist.py') + ':budget,smoke',
                             {'seeds': (0,)})
  steps = runner.calibrate(config, folder, str(tmp_path), lambda *a: None)
  cal = json.loads((tmp_path / 'calibration.json').read_text())
  assert set(cal) == set(steps) == {'hinge', 'non_saturating'}
  for name, c in cal.items():
    assert c['num_steps'] == max(1, int(2.0 * c['steps_per_sec'])) == steps[name]
  runs = spec.expand(config, folder, steps)
  for r in runs:  # every run trains its group's calibrated steps
    assert spec.load_experiment(r).train.num_steps == steps[r.group]
  # Measured once: a second call reads the record instead of training again.
  (tmp_path / 'calibration' / 'hinge').rename(tmp_path / 'moved')
  assert runner.calibrate(config, folder, str(tmp_path), lambda *a: None) == steps
  assert not (tmp_path / 'calibration' / 'hinge').exists()


def test_report_in_a_real_browser(smoke_study, tmp_path):
  path, study = smoke_study
  out = tmp_path / 'r.html'
  report.write_report([str(path)], str(out))
  html = out.read_text()
  assert 'http://' not in html and 'https://' not in html  # self-contained
  driver = chromium()
  try:
    driver.get(out.as_uri())
    errors = [e for e in driver.get_log('browser') if e['level'] == 'SEVERE']
    assert not errors, errors
    images = driver.execute_script(
        'return Array.from(document.images).map(i => [i.complete, i.naturalWidth])')
    assert len(images) >= 1 + 2 + 2  # distribution, 2 sample grids, 2 curve figures
    assert all(done and width > 0 for done, width in images), images
    rows = driver.execute_script(
        "return Array.from(document.querySelectorAll('#ranking tr')).slice(1).map("
        "r => Array.from(r.cells).map(c => c.textContent))")
    for row in rows:
      g = study['summary']['groups'][row[1]]
      assert row[3] == f'{g["mean"]:.4g}' and row[2] == '2'
  finally:
    driver.quit()


def test_report_of_runs_and_bad_paths(smoke_study, tmp_path, capsys):
  from genvision_jax import main
  path, _ = smoke_study
  out = tmp_path / 'runs.html'
  assert main.run(['genvision', 'report', str(path / 'runs' / 'hinge'),
                   str(path / 'runs' / 'non_saturating'), f'--out={out}']) == 0
  html = out.read_text()
  assert 'digits_cnn/fd' in html and 'welch' in html and 'genvision train --config=' in html
  capsys.readouterr()
  assert main.run(['genvision', 'report', str(tmp_path / 'nothing'), f'--out={out}']) == 2
  err = capsys.readouterr().err
  assert 'does not exist' in err and 'Traceback' not in err
