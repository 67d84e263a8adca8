"""Autoencoder figures: denoising quality against the noise level (a denoising autoencoder
beside PCA and the noisy input itself) and test reconstruction error against the code size
(autoencoders beside PCA), from evaluated run directories.

`denoising_curve` runs inside `genvision evaluate` of a denoising autoencoder (the task's own
noise kind, at several levels, each test image's corruption keyed by (seed, level, index));
`code_size_figure` is `genvision reconstruction RUN...`.
"""

import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from genvision_jax import tasks

LEVELS = {'gaussian': (0.1, 0.25, 0.5, 0.75, 1.0), 'masking': (0.1, 0.25, 0.5, 0.75),
          'flip': (0.05, 0.1, 0.2, 0.3)}
LEVEL_FIELD = {'gaussian': 'noise_std', 'masking': 'mask_prob', 'flip': 'flip_prob'}
LEVEL_LABEL = {'gaussian': 'noise sigma', 'masking': 'masking probability',
               'flip': 'flip probability'}


def _psnr(outputs, targets) -> np.ndarray:
  from genvision_jax.evaluation import translation  # pylint: disable=g-import-not-at-top
  return translation.psnr_ssim(outputs, targets)[0]


def denoising_curve(method, state, test_images, pca_outputs, seed: int) -> dict:
  """{'noise', 'levels', 'psnr': {'dae', 'pca', 'noisy': [mean PSNR per level]}} of the
  test images corrupted at each level of the task's noise kind; `pca_outputs(pairs)` is the
  PCA baseline of `fitted_baselines`."""
  kind = method.task.noise
  levels = LEVELS[kind]
  fn = jax.jit(lambda s, x: jnp.clip(method.translate(s, x), -1.0, 1.0))
  out = {'noise': kind, 'levels': list(levels), 'psnr': {'dae': [], 'pca': [], 'noisy': []}}
  targets = np.asarray(test_images, np.float32)
  for i, level in enumerate(levels):
    task = ml_collections.ConfigDict(method.task.to_dict())
    task.update({LEVEL_FIELD[kind]: level})
    pairs = jax.tree.map(np.asarray, tasks.degrade_examples(task, targets, seed + 1000 + i))
    out['psnr']['dae'].append(float(_psnr(np.asarray(fn(state, pairs['input'])), targets).mean()))
    out['psnr']['pca'].append(float(_psnr(pca_outputs(pairs), targets).mean()))
    out['psnr']['noisy'].append(float(_psnr(np.clip(pairs['input'], -1, 1), targets).mean()))
  return out


def denoising_figure(curve: dict, trained_level: float, path: str) -> None:
  # matplotlib's object API: no pyplot, so no backend is switched (notebooks keep theirs)
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  fig = Figure(figsize=(5, 3.5))
  ax = fig.subplots()
  for name, label in (('dae', 'denoising AE'), ('pca', 'PCA projection'),
                      ('noisy', 'noisy input')):
    ax.plot(curve['levels'], curve['psnr'][name], marker='o', label=label)
  ax.axvline(trained_level, color='grey', ls=':', label='trained at')
  ax.set_xlabel(LEVEL_LABEL[curve['noise']])
  ax.set_ylabel('test PSNR (dB)')
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=120)


def _label(config) -> str:
  """The family of an autoencoder run: 'AE', 'DAE (gaussian 0.5)', 'sparse AE (L1 0.1)',
  'k-sparse AE (k=25)', with its architecture when not the MLP."""
  a, t = config['ae'], config['task']
  if a['sparsity'] == 'l1':
    name = f"sparse AE (L1 {a['l1_weight']:g})"
  elif a['sparsity'] == 'k_sparse':
    name = f"k-sparse AE (k={a['k']})"
  elif t['name'] == 'denoising':
    level = t[LEVEL_FIELD[t['noise']]]
    name = f"DAE ({t['noise']} {level:g}; noisy input)"
  else:
    name = 'AE'
  if config['model']['architecture'] != 'mlp':
    name += f" [{config['model']['architecture']}]"
  if a['reconstruction'] != 'mse':
    name += f" [{a['reconstruction']}]"
  return name


def code_size_table(run_dirs) -> dict:
  """{family: {code_dim: test MSE}} of evaluated autoencoder runs, plus 'PCA' from their PCA
  baselines (the clean test images; for a DAE run, PCA of its noisy inputs is not used)."""
  from genvision_jax.evaluation import runner  # pylint: disable=g-import-not-at-top
  table = {}
  for run in run_dirs:
    with open(os.path.join(run, 'config.json')) as f:
      config = json.load(f)
    if config.get('method') != 'autoencoder':
      raise runner.EvaluationError(f'{run} is not an autoencoder run (method '
                                   f"{config.get('method')!r})")
    metrics_path = os.path.join(run, runner.EVAL_DIR, 'metrics.json')
    if not os.path.isfile(metrics_path):
      raise runner.EvaluationError(f'{run} has no evaluation: run `genvision evaluate '
                                   f'--workdir={run}` first')
    with open(metrics_path) as f:
      mse = json.load(f)['metrics']['mse']
    code = int(config['model']['code_dim'])
    table.setdefault(_label(config), {})[code] = mse
    pca = os.path.join(run, runner.EVAL_DIR, 'baselines', 'pca', runner.EVAL_DIR,
                       'metrics.json')
    if config['task']['name'] == 'reconstruction' and os.path.isfile(pca):
      with open(pca) as f:
        table.setdefault('PCA', {})[code] = json.load(f)['metrics']['mse']
  return table


def code_size_figure(table: dict, path: str) -> None:
  # matplotlib's object API: no pyplot, so no backend is switched (notebooks keep theirs)
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  fig = Figure(figsize=(5, 3.5))
  ax = fig.subplots()
  for name, by_code in sorted(table.items()):
    codes = sorted(by_code)
    ax.plot(codes, [by_code[c] for c in codes], marker='o', label=name,
            ls='--' if name == 'PCA' else '-')
  ax.set_xscale('log', base=2)
  ax.set_yscale('log')
  ax.set_xlabel('code size')
  ax.set_ylabel('test MSE per pixel ([0, 1] units)')
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
