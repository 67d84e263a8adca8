"""Quality against cost for diffusion samplers: `genvision evaluate --nfe_sweep=5,10,20,50`.

For each sampler and each budget of network evaluations (NFE), the same checkpoint draws the
same number of samples with the same seed, and their Fréchet distance and precision/recall
against the reference split are measured in one feature network. The reference point is DDIM
with 50 steps (the package's default before fast samplers); for every sampler the sweep
reports the fewest NFE whose Fréchet distance is at most DDIM-50's, and the recommendation
is the sampler that needs fewest. Written to DIR/eval/nfe_sweep.json and nfe_sweep.png.
"""

import time
import warnings

import scipy.linalg

from genvision_jax.diffusion import samplers as samplers_lib
from genvision_jax.evaluation import metrics as M

REFERENCE = ('ddim', 50)


def default_samplers(method) -> list[str]:
  """Every sampler of the run's process but ancestral DDPM (which always runs all T steps)."""
  out = []
  for name in samplers_lib.SAMPLERS:
    if name == 'ddpm':
      continue
    try:
      samplers_lib.check(method.process, name)
    except ValueError:
      continue
    out.append(name)
  return out


def check_settings(method, budgets, samplers) -> list[tuple[str, int]]:
  """(sampler, steps) of every point, ValueError naming a sampler the run cannot use or a
  budget below 1."""
  if not budgets or any(int(b) < 1 for b in budgets):
    raise ValueError(f'--nfe_sweep takes network-evaluation budgets >= 1, e.g. 5,10,20,50 '
                     f'(got {budgets})')
  points = []
  for sampler in samplers:
    for budget in sorted({int(b) for b in budgets}):
      steps = samplers_lib.steps_for_nfe(sampler, budget)
      method.sample_settings(sampler, steps)  # ValueError for an invalid pair
      if (sampler, steps) not in points:
        points.append((sampler, steps))
  if REFERENCE not in points:
    method.sample_settings(*REFERENCE)
    points.append(REFERENCE)
  return points


def run(method, state, points, generate, embed, real_features, nearest_k: int = 5,
        say=print) -> dict:
  """Evaluates every (sampler, steps) point. generate({sampler, steps}) -> images in
  [-1, 1]; embed(images) -> features. Returns the sweep record."""
  rows = []
  for sampler, steps in points:
    t0 = time.time()
    images = generate({'sampler': sampler, 'steps': steps})
    seconds = time.time() - t0
    fake = embed(images)
    precision, recall = M.precision_recall(real_features, fake, k=nearest_k)
    with warnings.catch_warnings():  # sqrtm of ReLU features' (singular) covariances
      warnings.simplefilter('ignore', scipy.linalg.LinAlgWarning)
      fd = float(M.frechet_distance_from_features(real_features, fake))
    row = {'sampler': sampler, 'steps': steps, 'nfe': method.nfe(sampler, steps), 'fd': fd,
           'precision': float(precision), 'recall': float(recall),
           'generate_seconds': round(seconds, 1)}
    rows.append(row)
    say(f"nfe sweep: {sampler:15s} steps {steps:4d} nfe {row['nfe']:4d}  fd {row['fd']:8.3f}  "
        f"precision {row['precision']:.3f} recall {row['recall']:.3f}  ({seconds:.0f}s)")
  return summarize(rows)


def summarize(rows: list[dict]) -> dict:
  """The record: rows, the DDIM-50 reference, each sampler's fewest NFE reaching it, and the
  recommended sampler (fewest NFE; ties: lower FD at that NFE)."""
  ref = next(r for r in rows if (r['sampler'], r['steps']) == REFERENCE)
  reach = {}
  for sampler in dict.fromkeys(r['sampler'] for r in rows):
    ok = [r for r in rows if r['sampler'] == sampler and r['fd'] <= ref['fd']]
    if ok:
      best = min(ok, key=lambda r: (r['nfe'], r['fd']))
      reach[sampler] = {'nfe': best['nfe'], 'steps': best['steps'], 'fd': best['fd']}
  recommended = (min(reach, key=lambda s: (reach[s]['nfe'], reach[s]['fd'])) if reach else None)
  record = {'rows': rows, 'reference': {'sampler': REFERENCE[0], 'steps': REFERENCE[1],
                                        'nfe': ref['nfe'], 'fd': ref['fd']},
            'nfe_to_reach_reference': reach, 'recommended': recommended}
  if recommended:
    record['speedup_over_reference'] = ref['nfe'] / reach[recommended]['nfe']
  return record


def figure(record: dict, title: str, path: str) -> None:
  """FD and precision/recall against NFE (log axis), one line per sampler."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  from matplotlib import ticker  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
  samplers = list(dict.fromkeys(r['sampler'] for r in record['rows']))
  for sampler in samplers:
    rows = sorted((r for r in record['rows'] if r['sampler'] == sampler), key=lambda r: r['nfe'])
    nfe = [r['nfe'] for r in rows]
    line, = axes[0].plot(nfe, [r['fd'] for r in rows], 'o-', label=sampler)
    axes[1].plot(nfe, [r['precision'] for r in rows], 'o-', color=line.get_color(),
                 label=f'{sampler} precision')
    axes[1].plot(nfe, [r['recall'] for r in rows], 's--', color=line.get_color(),
                 label=f'{sampler} recall')
  ref = record['reference']
  axes[0].axhline(ref['fd'], color='grey', lw=0.8, ls=':', label=f"DDIM-50 ({ref['fd']:.2f})")
  budgets = []  # tick labels: the NFE values, without near-duplicates (Heun's 19 beside 20)
  for nfe in sorted({r['nfe'] for r in record['rows']}, reverse=True):
    if not budgets or budgets[-1] / nfe > 1.15:
      budgets.append(nfe)
  for ax, label in ((axes[0], 'Fréchet distance (lower is better)'),
                    (axes[1], 'precision / recall')):
    ax.set_xscale('log')
    ax.set_xticks(budgets)  # the measured budgets as plain numbers, no 3x10^1 labels
    ax.xaxis.set_major_formatter(ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlabel('network evaluations per sample')
    ax.set_ylabel(label)
  axes[0].set_yscale('log')
  axes[0].yaxis.set_major_formatter(ticker.ScalarFormatter())
  low, high = axes[0].get_ylim()  # minor labels only within one decade (else they collide)
  axes[0].yaxis.set_minor_formatter(ticker.FormatStrFormatter('%g') if high / low < 10
                                    else ticker.NullFormatter())
  axes[0].legend(fontsize=7)
  axes[1].legend(fontsize=6, ncol=2)
  fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)

