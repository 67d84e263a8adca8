"""`genvision report`: one self-contained HTML file (images embedded as data URIs, no network
needed) of studies and runs: the protocol, the metric table with intervals and p-values, the
figures (training curves from metrics.jsonl, sample grids, metric distributions, class
histograms, human ratings) and the commands that reproduce every number. Figures are drawn
with matplotlib, the page from the Jinja2 template `templates/report.html.j2` (autoescaped)."""

import base64
import datetime
import glob
import io
import json
import math
import os

import jinja2
import numpy as np

from genvision_jax.training import rundir

MAX_CURVE_KEYS = 6


class ReportError(ValueError):
  """A path that is neither a study, an evaluated run nor a directory of evaluated runs."""


def _png_uri(data: bytes) -> str:
  return 'data:image/png;base64,' + base64.b64encode(data).decode('ascii')


def _figure_uri(fig) -> str:
  buf = io.BytesIO()
  fig.savefig(buf, format='png', dpi=90)
  return _png_uri(buf.getvalue())


def _file_uri(path: str) -> str | None:
  if not os.path.isfile(path):
    return None
  with open(path, 'rb') as f:
    data = f.read()
  if not data.startswith(b'\x89PNG'):
    return None
  return _png_uri(data)


def latest_sample_grid(run_dir: str) -> str | None:
  files = sorted(glob.glob(os.path.join(run_dir, 'samples', 'step_*.png')))
  return files[-1] if files else None


def read_curves(run_dir: str) -> dict[str, tuple[list, list]]:
  """{key: (steps, values)} of the numeric scalars in metrics.jsonl."""
  path = os.path.join(run_dir, rundir.METRICS_FILE)
  curves = {}
  if not os.path.isfile(path):
    return curves
  with open(path) as f:
    for line in f:
      try:
        row = json.loads(line)
      except json.JSONDecodeError:
        continue  # a line cut by a kill: the loop truncates it on resume
      step = row.get('step')
      for k, v in row.items():
        if k != 'step' and isinstance(v, (int, float)) and math.isfinite(v):
          s, vals = curves.setdefault(k, ([], []))
          s.append(step)
          vals.append(v)
  return curves


def curves_figure(runs: dict[str, str], title: str = ''):
  """Training curves of `runs` (label -> run dir): one panel per logged scalar (losses first,
  at most MAX_CURVE_KEYS), one line per run. None if nothing was logged."""
  from matplotlib.backends.backend_agg import FigureCanvasAgg  # pylint: disable=g-import-not-at-top
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  data = {label: read_curves(d) for label, d in runs.items()}
  keys = sorted({k for c in data.values() for k in c},
                key=lambda k: (not k.startswith(('loss', 'g_loss', 'd_loss')), 'loss' not in k, k))
  keys = keys[:MAX_CURVE_KEYS]
  if not keys:
    return None
  cols = min(3, len(keys))
  rows = math.ceil(len(keys) / cols)
  fig = Figure(figsize=(3.4 * cols, 2.5 * rows))
  FigureCanvasAgg(fig)
  for i, key in enumerate(keys):
    ax = fig.add_subplot(rows, cols, i + 1)
    for j, (label, c) in enumerate(data.items()):
      if key in c:
        ax.plot(*c[key], color=f'C{j % 10}', linewidth=1, label=label)
    ax.set_title(key, fontsize=9)
    ax.set_xlabel('step', fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
  if len(data) > 1:
    fig.axes[0].legend(fontsize=6)
  if title:
    fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  return fig


def _fmt(x, digits: int = 4) -> str:
  if x is None or (isinstance(x, float) and not math.isfinite(x)):
    return '–'
  if isinstance(x, (int, np.integer)):
    return str(x)
  return f'{x:.{digits}g}'


def _p(x) -> str:
  if x is None or not math.isfinite(x):
    return '–'
  return f'{x:.2e}' if x < 1e-3 else f'{x:.3f}'


def _evaluate_command(run_dir: str, protocol: dict) -> str:
  if protocol.get('method') in ('pix2pix', 'palette', 'autoencoder'):
    return f'genvision evaluate --workdir={run_dir}'
  return (f'genvision evaluate --workdir={run_dir} --num_samples={protocol.get("num_samples")} '
          f'--metrics={",".join(protocol.get("metrics", []))} '
          f'--features={",".join(protocol.get("feature_networks", []))} '
          f'--seed={protocol.get("seed", 0)}')


def _train_command(run_dir: str) -> str:
  """The recorded `genvision train` command of a run, if the run has one."""
  path = os.path.join(run_dir, 'command.txt')
  if os.path.isfile(path):
    with open(path) as f:
      return f.read().strip()
  return (f'(config in {os.path.join(run_dir, rundir.CONFIG_FILE)}: `genvision train '
          f'--config=EXPERIMENT --workdir={run_dir}` with the same fields)')


def study_section(path: str) -> dict:
  from genvision_jax.studies import analysis  # pylint: disable=g-import-not-at-top
  study = rundir.read_json(os.path.join(path, 'study.json'), 'the study record')
  metric = study['primary_metric']
  runs = study['runs']
  summary = study.get('summary')
  if summary is None:  # an unfinished study: summarize what has finished
    by_group = {}
    for r in runs:
      by_group.setdefault(r['group'], [])
      if r.get('status') == 'done':
        by_group[r['group']].append(r['metrics'][metric])
    from genvision_jax.evaluation import runner  # pylint: disable=g-import-not-at-top
    summary = analysis.summarize(by_group, runner.higher_is_better(metric))
  reference = study.get('reference') or {}
  ref_values = reference.get('values', {})
  rows = []
  for rank, name in enumerate(summary['ranking'] + [n for n in summary['groups']
                                                     if n not in summary['ranking']], start=1):
    g = summary['groups'][name]
    rows.append({'rank': rank if g['n'] else '–', 'name': name, 'n': g['n'],
                 'mean': _fmt(g.get('mean')),
                 'interval': (f'[{_fmt(g.get("low"))}, {_fmt(g.get("high"))}]'
                              if g['n'] >= 2 else '–'),
                 'std': _fmt(g.get('std')), 'median': _fmt(g.get('median')),
                 'range': f'{_fmt(g.get("min"))} – {_fmt(g.get("max"))}' if g['n'] else '–',
                 'per_run': ', '.join(_fmt(v) for v in g['values']),
                 'reference': _fmt(ref_values.get(name)) if ref_values else None})
  tests = [{'a': t['a'], 'b': t['b'], 'difference': _fmt(t['difference']),
            'p': _p(t['p_value']), 'p_holm': _p(t['p_holm']),
            'significant': 'yes' if t['significant'] else 'no'} for t in summary['tests']]
  other = sorted({k for r in runs if r.get('status') == 'done' for k in r['metrics']} - {metric})
  metric_rows = []
  for name in summary['groups']:
    vals = {k: [r['metrics'][k] for r in runs if r['group'] == name and r.get('status') ==
                'done' and k in r['metrics']] for k in other}
    metric_rows.append({'name': name, 'cells': [
        f'{_fmt(float(np.mean(v)))} ± {_fmt(float(np.std(v, ddof=1)) if len(v) > 1 else None, 2)}'
        if v else '–' for v in vals.values()]})
  figures = [{'title': f'{metric} of every run per group (box: quartiles; points: runs)',
              'uri': _figure_uri(analysis.distribution_figure(summary, metric))}]
  groups = {}
  for r in runs:
    groups.setdefault(r['group'], []).append(r)
  samples, curves, histograms = [], [], []
  for name, rs in groups.items():
    dirs = {f'seed {r["seed"]}': os.path.join(path, r['dir']) for r in rs}
    first = next(iter(dirs.values()))
    grid = latest_sample_grid(first)
    if grid:
      samples.append({'title': f'{name}, {next(iter(dirs))}: {os.path.basename(grid)}',
                      'uri': _file_uri(grid)})
    hist = _file_uri(os.path.join(first, 'eval', 'class_histogram.png'))
    if hist:
      histograms.append({'title': f'{name}, {next(iter(dirs))}: classes of the samples',
                         'uri': hist})
    fig = curves_figure(dirs, title=name)
    if fig is not None:
      curves.append({'title': f'{name}: training curves (metrics.jsonl)', 'uri': _figure_uri(fig)})
  commands = [f'genvision study --config={study["config"]} --workdir={path}'] if study.get(
      'config') else []
  for r in runs:
    commands.append(r['command'])
    commands.append(r['evaluate_command'])
  protocol = dict(study['protocol'])
  budget = study.get('budget')
  return {
      'kind': 'study',
      'title': f'Study {study.get("name") or os.path.basename(os.path.normpath(path))}',
      'path': path, 'metric': metric, 'rows': rows, 'tests': tests,
      'test_name': summary.get('test', ''), 'alpha': summary.get('alpha', 0.05),
      'other_metrics': other, 'metric_rows': metric_rows, 'figures': figures,
      'samples': samples, 'curves': curves, 'histograms': histograms, 'commands': commands,
      'protocol': [(k, v) for k, v in protocol.items()] +
                  [('runs', f'{sum(r.get("status") == "done" for r in runs)} done of '
                    f'{len(runs)}'), ('complete', study.get('complete', False))] +
                  ([('budget', f'{budget["seconds"]:g} s of training per run; steps: ' + ', '.join(
                      f'{k} {v["num_steps"]} ({v["steps_per_sec"]:.3g} steps/s)'
                      for k, v in budget['calibration'].items()))] if budget else []),
      'failed': [r['dir'] + ': ' + r.get('status', 'not run') for r in runs
                 if r.get('status') != 'done'],
      'reference_source': reference.get('source'),
      'agreement': reference.get('agreement'),
  }


def runs_section(paths: list[str]) -> dict:
  """Evaluated runs (or directories of seed runs) compared as `genvision compare` does."""
  from genvision_jax.evaluation import runner  # pylint: disable=g-import-not-at-top
  try:
    result = runner.compare(paths, num_resamples=2000)
  except runner.EvaluationError as e:
    raise ReportError(str(e)) from None
  names = list(result['rows'])
  metrics = sorted({m for row in result['rows'].values() for m in row})
  table = []
  for n in names:
    cells = []
    for m in metrics:
      r = result['rows'][n].get(m)
      if r is None:
        cells.append('–')
        continue
      ci = f' [{_fmt(r["low"])}, {_fmt(r["high"])}]' if r['low'] is not None else ''
      cells.append(f'{_fmt(r["mean"])}{ci}')
    table.append({'name': n, 'cells': cells})
  tests = [{'a': t['a'], 'b': t['b'], 'metric': t['metric'], 'test': t['test'],
            'p': _p(t['p_value']), 'p2': _p(t.get('p_value_two_sided')),
            'difference': _fmt(t['difference'])} for t in result['tests']]
  samples, curves, histograms, commands, protocol = [], [], [], [], []
  for name, run_dirs in result['models'].items():
    for d in run_dirs:
      label = name if len(run_dirs) == 1 else f'{name}/{os.path.basename(d)}'
      grid = latest_sample_grid(d)
      if grid:
        samples.append({'title': f'{label}: {os.path.basename(grid)}', 'uri': _file_uri(grid)})
      hist = os.path.join(d, 'eval', 'class_histogram.png')
      if os.path.isfile(hist):
        histograms.append({'title': f'{label}: classes of the samples (digit classifier)',
                           'uri': _file_uri(hist)})
      with open(os.path.join(d, 'eval', 'metrics.json')) as f:
        p = json.load(f)['protocol']
      protocol.append((label, ', '.join(f'{k}={v}' for k, v in p.items()
                                        if k not in ('workdir', 'seconds', 'generate_seconds'))))
      commands.append(_train_command(d))
      commands.append(_evaluate_command(d, p))
    fig = curves_figure({os.path.basename(d): d for d in run_dirs}, title=name)
    if fig is not None:
      curves.append({'title': f'{name}: training curves (metrics.jsonl)', 'uri': _figure_uri(fig)})
  commands.append('genvision compare ' + ' '.join(paths))
  figures = []
  primary = next((m for m in metrics if m.endswith('/fd')), None)
  if primary:
    from genvision_jax.evaluation import significance as S  # pylint: disable=g-import-not-at-top
    by_model = {}
    for name, run_dirs in result['models'].items():
      vals = [result['rows'][name][primary]['values']] if primary in result['rows'][name] else []
      if vals and len(vals[0]) >= 2:
        by_model[name] = vals[0]
      else:
        pe = os.path.join(run_dirs[0], 'eval', 'per_example.npz')
        key = primary.replace('/fd', '/fd_bootstrap')
        if os.path.isfile(pe):
          with np.load(pe) as f:
            if key in f.files:
              by_model[name] = f[key].tolist()
    if by_model:
      buf = io.BytesIO()
      S.histogram_figure(by_model, primary, buf)
      figures.append({'title': f'{primary}: distribution over seeds (groups) or bootstrap '
                               'resamples of the generated set (single runs)',
                      'uri': _png_uri(buf.getvalue())})
  return {'kind': 'runs', 'title': 'Runs: ' + ', '.join(names), 'metrics': metrics,
          'table': table, 'tests': tests, 'samples': samples, 'curves': curves,
          'histograms': histograms, 'figures': figures, 'commands': commands,
          'protocol': protocol,
          'warning': result['table'].splitlines()[0] if result['table'].startswith('WARNING')
                     else None}


def humaneval_section(db_path: str) -> dict:
  from genvision_jax.studies import humaneval  # pylint: disable=g-import-not-at-top
  result = humaneval.analyze(db_path)
  fig = humaneval.figure(result)
  return {'kind': 'humaneval', 'title': f'Human evaluation ({os.path.basename(db_path)})',
          'result': result, 'figures': [{'title': 'preference / fooling rates (Wilson 95 %)',
                                         'uri': _figure_uri(fig)}] if fig is not None else [],
          'commands': [f'genvision humaneval analyze {db_path}'], 'fmt': _fmt, 'p': _p}


def write_report(paths: list[str], out: str, humaneval_db: str | None = None) -> str:
  """Writes the report of `paths` (studies, and runs compared together) to `out`."""
  if not paths and not humaneval_db:
    raise ReportError('report needs study or run directories (or --humaneval=DB)')
  sections = []
  runs = []
  for p in paths:
    p = os.path.normpath(p)
    if os.path.isfile(os.path.join(p, 'study.json')):
      sections.append(study_section(p))
    elif os.path.isdir(p):
      runs.append(p)
    else:
      raise ReportError(f'{p} does not exist')
  if runs:
    sections.append(runs_section(runs))
  if humaneval_db:
    sections.append(humaneval_section(humaneval_db))
  for s in sections:
    for key in ('figures', 'samples', 'histograms', 'curves', 'commands'):
      s.setdefault(key, [])
  env = jinja2.Environment(
      loader=jinja2.PackageLoader('genvision_jax.studies', 'templates'),
      autoescape=jinja2.select_autoescape(['html', 'j2']), undefined=jinja2.StrictUndefined)
  html = env.get_template('report.html.j2').render(
      sections=sections, created=datetime.datetime.now().strftime('%Y-%m-%d %H:%M'),
      paths=paths)
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  rundir.write_text(out, html)
  return out
