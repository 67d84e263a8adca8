"""The README's provenance tables from the JSON that experiments/provenance/reproduce.sh writes.

  python results/provenance/tables.py results/provenance
"""

import glob
import json
import os
import sys


def _load(path):
  with open(path) as f:
    return json.load(f)


def _rate(r):
  return f"{r['rate']:.3f} [{r['low']:.3f}, {r['high']:.3f}]"


def watermark_table(root):
  lines = ['| watermark | attack | strength | TPR at FPR 1e-3 (p-value test) | realized FPR '
           '(unmarked / real) | AUC vs unmarked | bit acc. |', '|---|---|---|---|---|---|---|']
  for scheme in ('treering', 'hidden', 'signature'):
    path = os.path.join(root, f'robust_{scheme}', f'{scheme}.json')
    if not os.path.exists(path) or 'attacks' not in _load(path):
      continue
    r = _load(path)
    negs = [k.split('/', 1)[1] for k in next(iter(r['attacks'].values()))[0] if
            k.startswith('fpr_p/')]
    for attack, rows in r['attacks'].items():
      for row in rows:
        fprs = ' / '.join(f"{row[f'fpr_p/{n}']['rate']:.3f}" for n in negs)
        unmarked = negs[0]
        auc = row[f'auc/{unmarked}']
        bit = f"{row['bit_accuracy']:.3f}" if 'bit_accuracy' in row else ''
        lines.append(f"| {scheme} | {attack} | {row['strength']:g} | {_rate(row['tpr_p'])} | "
                     f"{fprs} | {auc['auc']:.3f} | {bit} |")
  return '\n'.join(lines)


def combined_watermark_table(root):
  """TPR at FPR 1e-3 (the p-value test) of every scheme side by side, one row per attack
  strength."""
  schemes, rows = [], {}
  for scheme in ('treering', 'hidden', 'signature'):
    path = os.path.join(root, f'robust_{scheme}', f'{scheme}.json')
    if not os.path.exists(path) or 'attacks' not in _load(path):
      continue
    schemes.append(scheme)
    for attack, table in _load(path)['attacks'].items():
      for row in table:
        rows.setdefault((attack, row['strength']), {})[scheme] = row['tpr_p']['rate']
  lines = ['| attack | strength | ' + ' | '.join(schemes) + ' |',
           '|---|---|' + '---|' * len(schemes)]
  for (attack, strength), by in rows.items():
    lines.append(f'| {attack} | {strength:g} | ' + ' | '.join(
        f'{by[s]:.2f}' if s in by else '' for s in schemes) + ' |')
  return '\n'.join(lines)


def quality_table(root):
  lines = ['| watermark | quality cost |', '|---|---|']
  for scheme in ('treering', 'hidden', 'signature'):
    path = os.path.join(root, f'robust_{scheme}', f'{scheme}.json')
    if os.path.exists(path) and 'quality' in _load(path):
      q = _load(path)['quality']
      lines.append(f'| {scheme} | ' + ', '.join(f'{k} {v:.3f}' if isinstance(v, float) else
                                                 f'{k} {v}' for k, v in q.items()) + ' |')
  return '\n'.join(lines)


def detection_table(root):
  path = os.path.join(root, 'det_eval', 'detect_eval.json')
  if not os.path.exists(path):
    return ''
  r = _load(path)
  lines = ['| test set | CNN AUC | Durall (spectrum) AUC | Frank (DCT) AUC |', '|---|---|---|---|']
  for name, row in r['auc'].items():
    lines.append(f"| {name} | " + ' | '.join(
        f"{row[k]['auc']:.3f} [{row[k]['low']:.3f}, {row[k]['high']:.3f}]"
        for k in ('cnn', 'durall', 'frank')) + ' |')
  rob = ['| attack | strength | CNN AUC | Durall AUC |', '|---|---|---|---|']
  for attack, rows in r['robustness'].items():
    for row in rows:
      rob.append(f"| {attack} | {row['strength']:g} | {row['cnn']['auc']:.3f} | "
                 f"{row['durall']['auc']:.3f} |")
  return '\n'.join(lines) + '\n\n' + '\n'.join(rob)


def attribution_table(root):
  lines = ['| study | runs | accuracy (CNN) | Frank DCT | chance | accuracy vs samples per run |',
           '|---|---|---|---|---|---|']
  for study in ('families', 'losses', 'seeds'):
    path = os.path.join(root, f'att_{study}', 'attribute.json')
    if not os.path.exists(path):
      continue
    r = _load(path)
    curve = ', '.join(f"{c['per_run']}: {c['rate']:.3f}" for c in r.get('accuracy_vs_samples', []))
    lines.append(f"| {study} | {', '.join(r['sources'])} | {_rate(r['accuracy'])} | "
                 f"{_rate(r['frank_accuracy'])} | {r['chance']:.3f} | {curve} |")
  return '\n'.join(lines)


def memorization_table(root):
  lines = ['| run | space | fraction of samples closer to a training image than the median test '
           'image (copies: 1, novel: 0.5) | binomial p | Z_U (negative: copying) |',
           '|---|---|---|---|---|']
  for path in sorted(glob.glob(os.path.join(root, 'nn_*', 'neighbours.json'))):
    name = os.path.basename(os.path.dirname(path))[3:]
    if name in ('full', 'r') or name.startswith(('S_', 'R_')):
      continue  # the counterfactual's subset runs
    r = _load(path)
    for space, m in r['spaces'].items():
      lines.append(f"| {name} | {space} | {m['fraction_closer']:.3f} | {m['p_value']:.3g} | "
                   f"{m['z_u']:.1f} |")
  return '\n'.join(lines)


def counterfactual_table(root):
  """Share of samples whose nearest training image lies in S (or R), per run."""
  rows = [('dcgan (full data)', 'nn_full', 'S'), ('dcgan seed 1 (full data)', 'nn_S_dcgan_s1', 'S'),
          ('dcgan without S', 'nn_S_dcgan_minus_s', 'S'),
          ('dcgan without R', 'nn_S_dcgan_minus_r', 'S'),
          ('dcgan (full data)', 'nn_r', 'R'), ('dcgan without R', 'nn_R_dcgan_minus_r', 'R')]
  lines = ['| run | subset | space | share of samples credited to the subset [95 % CI] | '
           'share of test images |', '|---|---|---|---|---|']
  for label, folder, subset in rows:
    path = os.path.join(root, folder, 'neighbours.json')
    if not os.path.exists(path):
      continue
    sub = _load(path)['subset']
    for space, v in sub['spaces'].items():
      a, t = v['samples'], v['test']
      lines.append(f"| {label} | {subset} ({sub['size']}) | {space} | {a['share']:.3f} "
                   f"[{a['interval'][0]:.3f}, {a['interval'][1]:.3f}] | {t['share']:.3f} |")
  return '\n'.join(lines)


if __name__ == '__main__':
  root = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(__file__)
  for title, fn in (('watermarks: TPR at FPR 1e-3', combined_watermark_table),
                    ('watermarks', watermark_table), ('quality', quality_table),
                    ('detection', detection_table), ('attribution', attribution_table),
                    ('memorization', memorization_table),
                    ('counterfactual', counterfactual_table)):
    print(f'## {title}\n')
    print(fn(root))
    print()
