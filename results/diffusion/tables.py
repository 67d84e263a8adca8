"""The README's tables of "Diffusion, second stage" from what experiments/diffusion/reproduce.sh
writes (its OUT_DIR, with each run's config.json, metrics.jsonl and eval/ copied under runs/).

  python results/diffusion/tables.py results/diffusion
"""

import json
import os
import sys

import numpy as np

FD = 'digits_cnn/fd'


def _load(*parts):
  with open(os.path.join(*parts)) as f:
    return json.load(f)


def _exists(*parts):
  return os.path.exists(os.path.join(*parts))


def _timings(root):
  out = {}
  if _exists(root, 'timings.tsv'):
    with open(os.path.join(root, 'timings.tsv')) as f:
      for line in f:
        name, seconds = line.split()
        out[name] = int(seconds)  # a rerun (resume) appends: the last row wins
  return out


def _steps_per_sec(run):
  rows = [json.loads(line) for line in open(os.path.join(run, 'metrics.jsonl'))]
  rates = [r['steps_per_sec'] for r in rows if 'steps_per_sec' in r][1:]  # after compilation
  return float(np.median(rates)) if rates else float('nan')


def _metrics(run):
  return _load(run, 'eval', 'metrics.json')


def _fd(m):
  low, high = m['intervals'][FD]
  return f"{m['metrics'][FD]:.1f} [{low:.1f}, {high:.1f}]"


def _quality(m):
  """The FD [interval] | precision | recall cells of an evaluate record."""
  return (f"{_fd(m)} | {m['metrics']['digits_cnn/precision']:.3f} | "
          f"{m['metrics']['digits_cnn/recall']:.3f}")


def sweep_table(root, name, file='nfe_sweep.json'):
  path = os.path.join(root, 'runs', name, 'eval', file)
  if not os.path.exists(path):
    return ''
  r = _load(path)
  lines = [f"{name}: {r['protocol']['samples']} samples per point, checkpoint "
           f"{r['protocol'].get('checkpoint_step', '?')}", '',
           '| sampler | steps | NFE | FD | precision | recall | sampling s |',
           '|---|---|---|---|---|---|---|']
  for row in sorted(r['rows'], key=lambda x: (x['sampler'], x['nfe'])):
    lines.append(f"| {row['sampler']} | {row['steps']} | {row['nfe']} | {row['fd']:.1f} | "
                 f"{row['precision']:.3f} | {row['recall']:.3f} | {row['generate_seconds']:.1f} |")
  reach = ', '.join(f"{s} {p['nfe']}" for s, p in r['nfe_to_reach_reference'].items())
  lines += ['', f"fewest NFE with FD <= DDIM-50's ({r['reference']['fd']:.1f}): {reach or 'none'}; "
            f"recommended: {r['recommended']}"
            + (f" (x{r['speedup_over_reference']:.1f} fewer calls)" if r.get('recommended')
               else '')]
  return '\n'.join(lines)


def compare_table(root):
  if not _exists(root, 'compare_flow_ddpm.json'):
    return ''
  r = _load(root, 'compare_flow_ddpm.json')
  t = _timings(root)
  lines = ['| model | FD (mean of 3 seeds, t 95 %) | precision | recall | seeds\' FD | '
           'train s (per seed) | steps/s |', '|---|---|---|---|---|---|---|']
  for model, rows in r['rows'].items():
    cells = []
    for metric in (FD, 'digits_cnn/precision', 'digits_cnn/recall'):
      x = rows[metric]
      cells.append(f"{x['mean']:.3f} [{x['low']:.3f}, {x['high']:.3f}]" if 'fd' not in metric
                   else f"{x['mean']:.1f} [{x['low']:.1f}, {x['high']:.1f}]")
    seeds = ', '.join(f'{v:.1f}' for v in rows[FD]['values'])
    train = ', '.join(str(t.get(f'train_{model}/seed_{s}', '?')) for s in range(3))
    rates = ', '.join(f"{_steps_per_sec(os.path.join(root, 'runs', model, f'seed_{s}')):.2f}"
                      for s in range(3))
    lines.append(f'| {model} | ' + ' | '.join(cells) + f' | {seeds} | {train} | {rates} |')
  lines += ['', '| metric | test | difference (ddpm - flow) | p |', '|---|---|---|---|']
  for test in r['tests']:
    if test['metric'] in (FD, 'digits_cnn/precision', 'digits_cnn/recall'):
      p = 'n/a' if test['p_value'] is None else f"{test['p_value']:.2g}"
      lines.append(f"| {test['metric']} | {test['test']} | {test['difference']:.3f} | {p} |")
  return '\n'.join(lines)


def speed_table(root):
  if not _exists(root, 'ddpm_seed_1_fast_metrics.json'):
    return ''
  lines = ['| evaluate (ddpm seed 1, 1,000 samples) | sampler | NFE | FD | precision | recall | '
           'sampling s | evaluate s |', '|---|---|---|---|---|---|---|---|']
  for which in ('default', 'fast', 'dpmpp_2m'):
    if not _exists(root, f'ddpm_seed_1_{which}_metrics.json'):
      continue
    m = _load(root, f'ddpm_seed_1_{which}_metrics.json')
    s = m['details']['sampling']
    lines.append(f"| {which} | {s['sampler']}-{s['steps']} | {s['nfe']} | {_quality(m)} | "
                 f"{m['protocol']['generate_seconds']} | {m['protocol']['seconds']} |")
  return '\n'.join(lines)


def latent_table(root):
  runs = os.path.join(root, 'runs')
  if not _exists(runs, 'ldm_ae32', 'eval', 'metrics.json'):
    return ''
  ae, ldm = _metrics(os.path.join(runs, 'ae32')), _metrics(os.path.join(runs, 'ldm_ae32'))
  lines = ['| model | what is measured | FD [95 %] | precision | recall | train steps/s | '
           'sampling s (1,000, DDIM-50) |', '|---|---|---|---|---|---|---|',
           f"| autoencoder (ae_mnist, 32-d codes) | test reconstructions (MSE "
           f"{ae['metrics']['mse']:.4f}) | {_quality(ae)} | "
           f"{_steps_per_sec(os.path.join(runs, 'ae32')):.0f} | |",
           f"| latent diffusion (MLP on the codes) | samples | {_quality(ldm)} | "
           f"{_steps_per_sec(os.path.join(runs, 'ldm_ae32')):.0f} | "
           f"{ldm['protocol']['generate_seconds']} |"]
  for s in range(3):
    run = os.path.join(runs, 'ddpm', f'seed_{s}')
    default = os.path.join(root, f'ddpm_seed_{s}_default_metrics.json')  # before the fast one
    if os.path.exists(default) or _exists(run, 'eval', 'metrics.json'):
      m = _load(default) if os.path.exists(default) else _metrics(run)
      lines.append(f"| pixel DDPM (U-Net), seed {s} | samples | {_quality(m)} | "
                   f"{_steps_per_sec(run):.2f} | "
                   f"{m['protocol']['generate_seconds']} |")
  return '\n'.join(lines)


def bpd_table(root):
  if not _exists(root, 'bpd_exact.json'):
    return ''
  lines = ['| run | estimator | bits/dim ± s.e. | network calls / digit | '
           's / digit |', '|---|---|---|---|---|']
  for name, run in (('exact', 'ddpm seed 0'), ('mc', 'ddpm seed 0'), ('mc_100', 'ddpm seed 0'),
                    ('ode_ddpm', 'ddpm seed 0'), ('flow', 'flow seed 0'),
                    ('ode_flow', 'flow seed 0'), ('ode_flow_normal', 'flow seed 0'),
                    ('ode_flow_100', 'flow seed 0')):
    if not _exists(root, f'bpd_{name}.json'):
      continue
    r = _load(root, f'bpd_{name}.json')
    p = r['protocol']
    estimator = p['estimator'] + (f" {p['ode_steps']} steps, {p['dequantization']} "
                                  'dequantization' if p['estimator'] == 'ode' else '')
    lines.append(f"| {run} ({p['num_examples']} digits) | {estimator} ({p['process']}) | "
                 f"{r['bits_per_dim']:.3f} ± "
                 f"{r['stderr']:.3f} | {p['network_calls_per_example']} | "
                 f"{r['seconds_per_example']:.2f} |")
  lines.append('')
  for a, b in (('mc', 'exact'), ('ode_ddpm', 'exact'), ('ode_flow', 'flow'),
               ('ode_flow_normal', 'ode_flow')):
    if _exists(root, f'bpd_{a}.npy') and _exists(root, f'bpd_{b}.npy'):
      d = np.load(os.path.join(root, f'bpd_{a}.npy')) - np.load(os.path.join(root, f'bpd_{b}.npy'))
      lines.append(f'paired, per digit: {a} - {b} = {d.mean():+.4f} ± '
                   f'{d.std(ddof=1) / np.sqrt(len(d)):.4f} (s.e., {len(d)} digits)  ')
  return '\n'.join(lines)


def edm_table(root):
  run = os.path.join(root, 'runs', 'edm', 'seed_0')
  if not _exists(run, 'eval', 'metrics.json'):
    return ''
  m = _metrics(run)
  s = m['details']['sampling']
  return (f"edm seed 0: {s['sampler']}-{s['steps']} ({s['nfe']} NFE), FD [95 %] | precision | "
          f"recall: {_quality(m)}, {_steps_per_sec(run):.2f} steps/s")


def main(root):
  for title, text in (('NFE sweep, ddpm seed 0', sweep_table(root, 'ddpm/seed_0')),
                      ('NFE sweep, ddpm seed 0, session 14 (Euler/Heun in the step index)',
                       sweep_table(root, 'ddpm/seed_0', 'nfe_sweep_session14.json')),
                      ('NFE sweep, flow seed 0', sweep_table(root, 'flow/seed_0')),
                      ('flow matching vs DDPM', compare_table(root)),
                      ('evaluate speed', speed_table(root)),
                      ('latent diffusion', latent_table(root)),
                      ('bits/dim', bpd_table(root)),
                      ('EDM', edm_table(root))):
    if text:
      print(f'## {title}\n\n{text}\n')


if __name__ == '__main__':
  main(sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__)))
