"""`genvision study`: train every run of a study (skipping finished ones), evaluate them with
one protocol, and write DIR/study.json, DIR/distribution.png and DIR/report.html.

Resuming: a run whose evaluation exists for the study's protocol at its final step is skipped
without compiling anything; a run killed mid-way resumes from its last checkpoint (the shared
loop's resume); study.json is rewritten atomically after every run. The study's config is
stored in DIR/study_config.json and a rerun with a different one is refused (a new DIR is a new
study), except that seeds may be added.
"""

import json
import os
import time

from genvision_jax import configs
from genvision_jax.studies import analysis
from genvision_jax.studies import spec as spec_lib
from genvision_jax.training import rundir

STUDY_FILE = 'study.json'
CONFIG_FILE = 'study_config.json'
CALIBRATION_FILE = 'calibration.json'
FIGURE_FILE = 'distribution.png'
REPORT_FILE = 'report.html'
# Fields of a study config that may change between invocations on one DIR.
MAY_CHANGE = ('seeds',)


def _plain(config) -> dict:
  return json.loads(config.to_json())


def check_config(config, workdir: str) -> None:
  """Refuses a study DIR that holds a different study (before anything is written)."""
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.isfile(path):
    if os.path.isdir(workdir) and os.listdir(workdir):
      stray = [f for f in os.listdir(workdir) if f not in ('runs', 'calibration')]
      if stray:
        raise spec_lib.StudyError(f'{workdir} is not empty and holds no study '
                                  f'({CONFIG_FILE} missing): use a new --workdir')
    return
  stored = rundir.read_json(path, 'the study config')
  new = _plain(config)
  changed = sorted(k for k in set(stored) | set(new)
                   if k not in MAY_CHANGE and stored.get(k) != new.get(k))
  if changed:
    raise spec_lib.StudyError(
        f'{workdir} holds a study with a different config (fields {", ".join(changed)}): '
        'use a new --workdir, or restore the study config it was started with')


def _eval_file(run_dir: str) -> str:
  return os.path.join(run_dir, 'eval', 'metrics.json')


def protocol_matches(run_dir: str, num_steps: int, evaluation) -> bool:
  """The run's evaluation exists, is of its final step and of the study's protocol."""
  path = _eval_file(run_dir)
  if not os.path.isfile(path):
    return False
  try:
    p = rundir.read_json(path, 'the evaluation')['protocol']
  except (rundir.RunDirError, KeyError):
    return False
  return (p.get('checkpoint_step') == num_steps and p.get('num_samples') ==
          evaluation.num_samples and p.get('seed') == evaluation.seed and
          list(p.get('metrics', ())) == list(evaluation.metrics) and
          list(p.get('feature_networks', ())) == list(evaluation.features))


def evaluate_command(run_dir: str, evaluation) -> str:
  return (f'genvision evaluate --workdir={run_dir} --num_samples={evaluation.num_samples} '
          f'--metrics={",".join(evaluation.metrics)} --features={",".join(evaluation.features)} '
          f'--seed={evaluation.seed}')


def calibrate(config, folder: str, workdir: str, say) -> dict[str, int]:
  """train.num_steps of each group for `budget_seconds` of wall-clock: each group's config
  (first seed, its own overrides) trains `calibration_steps` steps in DIR/calibration/GROUP and
  its steps/s after compilation sets the budget. Measured once; DIR/calibration.json keeps it."""
  from genvision_jax import training  # pylint: disable=g-import-not-at-top
  path = os.path.join(workdir, CALIBRATION_FILE)
  record = rundir.read_json(path, 'the calibration') if os.path.isfile(path) else {}
  for run in spec_lib.expand(config, folder):
    name = run.group.split('@')[0]
    if name in record or run.seed != config.seeds[0]:
      continue
    exp = spec_lib.load_experiment(run)
    exp.train.num_steps = config.calibration_steps
    cal_dir = os.path.join(workdir, 'calibration', name)
    say(f'calibrating {name}: {config.calibration_steps} steps')
    result = training.train_and_evaluate(exp, cal_dir, verbose=False)
    rate = float(result.steps_per_sec)
    record[name] = {'steps_per_sec': rate,
                    'num_steps': max(1, int(config.budget_seconds * rate)),
                    'budget_seconds': float(config.budget_seconds)}
    say(f'  {rate:.3g} steps/s -> {record[name]["num_steps"]} steps in '
        f'{config.budget_seconds:g} s')
    rundir.write_json(path, record, indent=1)
  return {k: v['num_steps'] for k, v in record.items()}


def run_study(config, folder: str, workdir: str, spec_text: str = '', verbose: bool = True,
              after_run=None) -> dict:
  """Trains and evaluates every run of `config` in `workdir`; returns the study.json content.

  after_run(run_spec): called after each run's training (tests use it to kill a study)."""
  from genvision_jax import training  # pylint: disable=g-import-not-at-top
  from genvision_jax.evaluation import runner as eval_runner  # pylint: disable=g-import-not-at-top
  say = print if verbose else (lambda *a, **k: None)
  check_config(config, workdir)
  runs = spec_lib.expand(config, folder)
  experiments = {run: spec_lib.load_experiment(run) for run in runs}  # every config checked
  for run, exp in experiments.items():
    configs.validate(exp)
  os.makedirs(workdir, exist_ok=True)
  rundir.write_json(os.path.join(workdir, CONFIG_FILE), _plain(config), indent=1)
  steps = calibrate(config, folder, workdir, say) if config.budget_seconds > 0 else None
  if steps is not None:
    runs = spec_lib.expand(config, folder, steps)
    experiments = {run: spec_lib.load_experiment(run) for run in runs}

  study_path = os.path.join(workdir, STUDY_FILE)
  previous = {}
  if os.path.isfile(study_path):
    for r in rundir.read_json(study_path, 'the study record').get('runs', []):
      previous[r['dir']] = r
  records = []

  def write(done: bool):
    study = {'name': config.name, 'config': spec_text, 'workdir': os.path.abspath(workdir),
             'protocol': _plain(config.evaluation), 'primary_metric': config.primary_metric,
             'budget': ({'seconds': config.budget_seconds,
                         'calibration': rundir.read_json(
                             os.path.join(workdir, CALIBRATION_FILE), 'the calibration')}
                        if steps is not None else None),
             'runs': records + [previous[r.rel_dir] for r in runs[len(records):]
                                if r.rel_dir in previous],
             'complete': done}
    if done:
      study.update(summarize(config, records))
    rundir.write_json(study_path, study, indent=1)
    return study

  for i, run in enumerate(runs):
    exp = experiments[run]
    run_dir = os.path.join(workdir, run.rel_dir)
    rec = dict(previous.get(run.rel_dir, {}))
    rec.update({'group': run.group, 'seed': run.seed, 'dir': run.rel_dir,
                'num_steps': exp.train.num_steps,
                'command': run.command(workdir, repo=os.getcwd()),
                'evaluate_command': evaluate_command(run_dir, config.evaluation)})
    label = f'[{i + 1}/{len(runs)}] {run.group} seed {run.seed}'
    if protocol_matches(run_dir, exp.train.num_steps, config.evaluation):
      say(f'{label}: finished, skipped')
      rec.setdefault('status', 'done')
    else:
      say(f'{label}: training {exp.train.num_steps} steps in {run_dir}')
      try:
        tic = time.time()
        result = training.train_and_evaluate(exp, run_dir, verbose=verbose,
                                             command=rec['command'])
        rec['train_seconds'] = round(time.time() - tic, 1)
        rec['steps_per_sec'] = float(result.steps_per_sec)
        if after_run is not None:
          after_run(run)
        tic = time.time()
        eval_runner.evaluate_run(
            run_dir, num_samples=config.evaluation.num_samples,
            metrics=list(config.evaluation.metrics), features=list(config.evaluation.features),
            seed=config.evaluation.seed, verbose=False)
        rec['eval_seconds'] = round(time.time() - tic, 1)
        rec['status'] = 'done'
      except training.NonFiniteError as e:  # a diverged run is a result of the study
        rec['status'] = f'diverged: {e}'
        say(f'{label}: {rec["status"]}')
    if rec['status'] == 'done':
      with open(_eval_file(run_dir)) as f:
        rec['metrics'] = json.load(f)['metrics']
      primary = rec['metrics'].get(config.primary_metric)
      say(f'{label}: {config.primary_metric} = {primary}')
    records.append(rec)
    write(done=False)
  study = write(done=True)
  from genvision_jax.studies import report  # pylint: disable=g-import-not-at-top
  analysis.distribution_figure(study['summary'], config.primary_metric,
                               os.path.join(workdir, FIGURE_FILE), title=config.name)
  report.write_report([workdir], os.path.join(workdir, REPORT_FILE))
  say(f'wrote {study_path}, {os.path.join(workdir, FIGURE_FILE)} and '
      f'{os.path.join(workdir, REPORT_FILE)}')
  return study


def summarize(config, records: list[dict]) -> dict:
  """The study's statistics of its primary metric (analysis.summarize) + the reference."""
  from genvision_jax.evaluation import runner as eval_runner  # pylint: disable=g-import-not-at-top
  metric = config.primary_metric
  by_group = {}
  for r in records:
    by_group.setdefault(r['group'], [])
    if r.get('status') == 'done' and metric in r.get('metrics', {}):
      by_group[r['group']].append(r['metrics'][metric])
  out = {'summary': analysis.summarize(by_group, eval_runner.higher_is_better(metric),
                                       alpha=config.alpha)}
  failed = [r['dir'] for r in records if r.get('status') != 'done']
  out['summary']['failed_runs'] = failed
  if 'reference' in config and config.reference.table:
    ref = dict(config.reference.table)
    means = {g: s['mean'] for g, s in out['summary']['groups'].items() if s['n']}
    out['reference'] = {'source': config.reference.source, 'values': ref,
                        'agreement': analysis.rank_agreement(means, ref)}
  return out
