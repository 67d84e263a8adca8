"""BEGAN's training curves from a run directory: k_t and the convergence measure M_global
(Berthelot et al. 2017, section 3.4.1) against the step, with L(x) and L(G(z)), read from
DIR/metrics.jsonl (the keys began_k, began_m_global, d_loss_real, g_loss).

  python benchmarks/began_curves.py runs/began_mnist [--out=began_curves.png]

Writes the PNG (default DIR/began_curves.png) and prints the values at each logged step.
"""

import argparse
import os

from genvision_jax import viz

KEYS = ('began_k', 'began_m_global', 'd_loss_real', 'g_loss')


def curves(records):
  """{key: [(step, value), ...]} for the BEGAN keys present in the records."""
  return {k: [(r['step'], r[k]) for r in records if k in r] for k in KEYS}


def plot(records, path):
  """Two panels: k_t; M_global with L(x) and L(G(z)). Saved to `path`."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  c = curves(records)
  if not c['began_k']:
    raise ValueError('no began_k in the metrics: not a BEGAN run (gan.loss=began)')
  fig, (ax_k, ax_m) = plt.subplots(1, 2, figsize=(9, 3.2))
  ax_k.plot(*zip(*c['began_k']), color='C0')
  ax_k.set_title('k_t')
  labels = {'began_m_global': 'M_global', 'd_loss_real': 'L(x)', 'g_loss': 'L(G(z))'}
  for key, label in labels.items():
    if c[key]:
      ax_m.plot(*zip(*c[key]), label=label)
  ax_m.set_title('convergence measure and energies')
  ax_m.legend()
  for ax in (ax_k, ax_m):
    ax.set_xlabel('step')
    ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=80)
  return path


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('workdir')
  parser.add_argument('--out', default=None)
  args = parser.parse_args()
  records = viz.read_metrics(os.path.join(args.workdir, 'metrics.jsonl'))
  out = plot(records, args.out or os.path.join(args.workdir, 'began_curves.png'))
  c = curves(records)
  print('step      k_t   M_global   L(x)   L(G(z))')
  for i, (step, k) in enumerate(c['began_k']):
    vals = [c[key][i][1] if i < len(c[key]) else float('nan') for key in KEYS[1:]]
    print(f'{step:5d}  {k:7.4f}  {vals[0]:8.4f}  {vals[1]:6.4f}  {vals[2]:7.4f}')
  print('wrote', out)


if __name__ == '__main__':
  main()
