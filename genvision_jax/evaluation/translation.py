"""`genvision evaluate` for image-to-image runs: the test split, the run's outputs and the
classical baselines of the task, in one protocol.

Every test image becomes one (input, target) pair keyed by (seed, example index)
(`tasks.degrade_examples`), so the run and each baseline see the same pairs. Per image:
the mean squared error per pixel (in [0, 1] units), PSNR and SSIM of the output against the target (dm-pix on [0, 1], max value 1; SSIM with an
11-pixel Gaussian window, sigma 1.5, as Wang et al.), and on digits whether the digit
classifier gives the output the target's class (`digits_cnn/correct`; its mean, the accuracy,
beside the accuracy on the degraded inputs and on the clean targets); on colour data the
CIEDE2000 difference and the colourfulness error (`evaluation/colour.py`). Per set: the Fréchet
distance and precision/recall/density/coverage of the outputs' features against the targets'
(`feature_networks`: none for colour data when the Inception weights are absent).

A method may fit baselines on the training split (`fitted_baselines`: the autoencoders' PCA);
a denoising autoencoder also gets `denoising_curve` (PSNR against the noise level, beside PCA
and the noisy input; RUN/eval/denoising_curve.png / .json).

The run's results go to RUN/eval/metrics.json and per_example.npz; each baseline's to
RUN/eval/baselines/NAME/eval/, so that `genvision compare RUN RUN/eval/baselines/NAME` runs
the paired bootstrap on the per-image values.

With a prior (`--prior=DDPM_RUN`, `load_prior` / `prior_outputs`), an unconditional diffusion
run guided by each pair's measurement (`methods.prior_guidance`: RePaint replacement for
masks, DDNM projection for super-resolution) is one more baseline, RUN/eval/baselines/NAME
(default ddpm_prior), on the same pairs; its protocol records the prior and its sampler.
"""

import os
import time
import warnings

import dm_pix
import jax
import jax.numpy as jnp
import numpy as np
import scipy

from genvision_jax import tasks
from genvision_jax.evaluation import baselines as baselines_lib
from genvision_jax.evaluation import colour
from genvision_jax.evaluation import significance as S

SET_GROUPS = ('fd', 'manifold')
CHUNK = 250


def psnr_ssim(outputs, targets) -> tuple[np.ndarray, np.ndarray]:
  """Per-image PSNR (dB) and SSIM of outputs vs targets, both NHWC in [-1, 1]."""
  a = (jnp.asarray(outputs, jnp.float32) + 1.0) / 2.0
  b = (jnp.asarray(targets, jnp.float32) + 1.0) / 2.0
  psnr = dm_pix.psnr(jnp.clip(a, 0.0, 1.0), b)
  ssim = dm_pix.ssim(jnp.clip(a, 0.0, 1.0), b, max_val=1.0)
  return np.asarray(psnr, np.float64), np.asarray(ssim, np.float64)


def feature_networks(features, channels: int, inception_weights: str | None, say) -> tuple:
  """The feature networks of the Fréchet distance and precision/recall: `features` as asked;
  by default digits_cnn for grey images and, for colour images, Inception when its weights are
  found, else none (one line says so: no colour feature network ships with the package)."""
  if features:
    return tuple(features)
  if channels == 1:
    return ('digits_cnn',)
  from genvision_jax.features import inception  # pylint: disable=g-import-not-at-top
  try:
    inception.resolve_weights_path(inception_weights)
  except inception.WeightsNotFoundError:
    say('no feature network for colour images offline (Inception weights not found: set '
        '--inception_weights or $GENVISION_INCEPTION_WEIGHTS): Fréchet distance and '
        'precision/recall skipped')
    return ()
  return ('inception',)


def translate_split(method, state, images, seed: int, use_ema: bool):
  """(pairs as host arrays, outputs [N, H, W, C]) for clean `images` in [-1, 1]."""
  pair_fn = jax.jit(lambda x, first: tasks.degrade_examples(method.task, x, seed, first))
  out_fn = jax.jit(lambda s, x, r: jnp.clip(method.translate(s, x, r, use_ema), -1.0, 1.0))
  pairs, outputs = [], []
  for start in range(0, len(images), CHUNK):
    pair = pair_fn(images[start:start + CHUNK], start)
    rng = jax.random.fold_in(jax.random.key(seed + 1), start)
    outputs.append(np.asarray(out_fn(state, pair['input'], rng)))
    pairs.append(jax.tree.map(np.asarray, pair))
  pairs = {k: np.concatenate([p[k] for p in pairs]) for k in pairs[0]}
  return pairs, np.concatenate(outputs)


def load_prior(prior: dict, config, method):
  """(PriorGuided, its state, protocol entry) for `prior` = {'workdir', and optionally 'step',
  'steps', 'eta', 'guidance', 'jump_length', 'resamples', 'name'}; refuses (ValueError) a
  prior that is not an unconditional diffusion run of the task's image shape, or a task a
  noise-free projection cannot serve."""
  from genvision_jax.methods import prior_guidance  # pylint: disable=g-import-not-at-top
  from genvision_jax.training import load_run  # pylint: disable=g-import-not-at-top
  prior_config, prior_method, prior_state = load_run(prior['workdir'], prior.get('step'))
  prior_guidance.check_prior(prior_method, prior_config, method.image_shape)
  guided = prior_guidance.PriorGuided(
      prior_method, method.task, steps=prior.get('steps'), eta=prior.get('eta', 1.0),
      guidance=prior.get('guidance', 'auto'), jump_length=prior.get('jump_length', 10),
      resamples=prior.get('resamples', 1))
  info = {'workdir': os.path.abspath(prior['workdir']),
          'checkpoint_step': int(jax.device_get(prior_state.step)),
          'dataset': prior_config.data.name, 'resize_method': prior_config.data.resize_method,
          **guided.settings()}
  d = config.data
  if (prior_config.data.name, prior_config.data.resize_method) != (d.name, d.resize_method):
    pd = prior_config.data
    info['warning'] = (f'prior trained on {pd.name} ({pd.resize_method}), the task on '
                       f'{d.name} ({d.resize_method})')
  return guided, prior_state, info


def prior_outputs(guided, prior_state, pairs: dict, seed: int, use_ema: bool) -> np.ndarray:
  """The prior baseline's outputs for host `pairs` (of `translate_split`), clipped to [-1, 1],
  in chunks keyed like the run's (seed + 2, chunk start)."""
  fn = jax.jit(lambda s, p, r: jnp.clip(guided.translate(s, p, r, use_ema), -1.0, 1.0))
  keys = [k for k in ('input', 'known', 'low') if k in pairs]
  outputs = []
  for start in range(0, len(pairs['target']), CHUNK):
    chunk = {k: pairs[k][start:start + CHUNK] for k in keys}
    rng = jax.random.fold_in(jax.random.key(seed + 2), start)
    outputs.append(np.asarray(fn(prior_state, chunk, rng)))
  return np.concatenate(outputs)


def evaluate_translation(workdir: str, config, method, state, *, seed: int, use_ema: bool,
                         bootstrap: int, features, nearest_k: int, say,
                         inception_weights: str | None = None, prior: dict | None = None,
                         feature_weights: dict | None = None) -> dict:
  """Evaluates the run and its task's baselines (and with `prior`, the guided diffusion prior:
  see `load_prior`) on the test split; returns the run's metrics.json content (see the module
  docstring)."""
  from genvision_jax import data as data_lib  # pylint: disable=g-import-not-at-top
  from genvision_jax import viz  # pylint: disable=g-import-not-at-top
  from genvision_jax.evaluation import runner  # pylint: disable=g-import-not-at-top
  from genvision_jax.training import rundir  # pylint: disable=g-import-not-at-top
  tic = time.time()
  guided = None
  if prior:  # refused before the work
    try:
      guided = load_prior(prior, config, method)
    except ValueError as e:
      raise runner.EvaluationError(f"--prior={prior['workdir']}: {e}") from None
  d = config.data
  test = data_lib.load_split(d.name, 'test', d.image_size, d.data_dir or None,
                             d.resize_method).arrays()
  targets_all = data_lib.to_model_range(test['image'])
  labels = test['label'] if 'label' in test else None
  t0 = time.time()
  pairs, outputs = translate_split(method, state, targets_all, seed, use_ema)
  translate_seconds = time.time() - t0
  say(f'translated {len(outputs)} test images in {translate_seconds:.1f}s')
  targets = pairs['target']
  shown_inputs = np.asarray(method.display_input(pairs))
  candidates = {'run': outputs}
  for name in baselines_lib.BASELINES[method.task.name]:
    t0 = time.time()
    candidates[f'baseline/{name}'] = baselines_lib.classical(method.task, pairs, name)
    say(f'baseline {name} in {time.time() - t0:.1f}s')
  fitted = {}
  if hasattr(method, 'fitted_baselines'):  # e.g. autoencoders: PCA fitted on the train split
    t0 = time.time()
    train = data_lib.load_split(d.name, 'train', d.image_size, d.data_dir or None,
                                d.resize_method).arrays()
    fitted = method.fitted_baselines(data_lib.to_model_range(train['image']))
    for name, fn in fitted.items():
      candidates[f'baseline/{name}'] = fn(pairs)
      say(f'baseline {name} (fitted on the train split) in {time.time() - t0:.1f}s')
  extra_protocol = {}
  if guided:
    t0 = time.time()
    name = f"baseline/{prior.get('name') or 'ddpm_prior'}"
    candidates[name] = prior_outputs(guided[0], guided[1], pairs, seed, use_ema)
    extra_protocol[name] = {'prior': {**guided[2], 'seconds': round(time.time() - t0, 1)}}
    strip = np.stack([shown_inputs[:16], candidates[name][:16], targets[:16]], 1)
    viz.save_image_grid(np.clip(strip.reshape(-1, *targets.shape[1:]), -1, 1), os.path.join(
        workdir, runner.EVAL_DIR, 'baselines', name.split('/')[1], 'samples.png'), ncol=3)
    say(f"{name} ({guided[2]['guidance']}, {guided[2]['network_evaluations']} network "
        f'evaluations per image) in {time.time() - t0:.1f}s')

  features = feature_networks(features, targets.shape[-1], inception_weights, say)
  nets = {}
  for name in features:
    net, key, _ = runner.feature_network(name, inception_weights, feature_weights=feature_weights)
    crop = name == 'digits_cnn' and d.resize_method == 'pad' and d.image_size > 28
    prep = (lambda x: runner.center_crop(x, 28)) if crop else (lambda x: x)
    nets[name] = (net, key, prep)
  real_features = {}
  shared = {}
  for name, (net, key, prep) in nets.items():
    out = net(prep(targets))
    real_features[name] = {'features': out[key], 'logits': runner.logits_of(out)}
    if name == 'digits_cnn' and labels is not None:
      shared['digits_cnn/accuracy_target'] = float(np.mean(
          np.argmax(out['logits'], -1) == labels))
      shared['digits_cnn/accuracy_input'] = float(np.mean(
          np.argmax(net(prep(shown_inputs))['logits'], -1) == labels))

  target_colourfulness = colour.colourfulness(targets) if targets.shape[-1] == 3 else None
  settings = {'nearest_k': int(nearest_k)}
  protocol = {
      'workdir': os.path.abspath(workdir), 'checkpoint_step': int(jax.device_get(state.step)),
      'weights': 'ema' if use_ema else 'raw', 'method': config.method, 'seed': seed,
      'dataset': d.name, 'split': 'test', 'examples': int(len(targets)),
      'task': config.task.to_dict(), 'pairs': 'tasks.degrade_examples(seed, example index)',
      'psnr_ssim': 'dm-pix on [0, 1] (max 1); SSIM Gaussian window 11, sigma 1.5',
      **({'colour': 'evaluation/colour.py: skimage rgb2lab + deltaE_ciede2000 (pixel mean); '
                    'Hasler-Suesstrunk colourfulness on 0..255'}
         if target_colourfulness is not None else {}),
      'feature_networks': list(features), 'nearest_k': int(nearest_k),
      'bootstrap_resamples': bootstrap, 'translate_seconds': round(translate_seconds, 1),
      # compare's protocol key reads these as for generative runs
      'reference_split': 'test', 'num_samples': int(len(targets)),
  }
  results = {}
  out_root = os.path.join(workdir, runner.EVAL_DIR)
  for cand, images in candidates.items():
    values, intervals, per_example, details = dict(shared), {}, {}, {}
    psnr, ssim = psnr_ssim(images, targets)
    per_example['psnr'], per_example['ssim'] = psnr, ssim
    per_example['mse'] = np.mean((np.clip(images, -1, 1).astype(np.float64) - targets)**2,
                                 axis=(1, 2, 3)) / 4.0  # per pixel, [0, 1] units
    if targets.shape[-1] == 3:  # CIEDE2000 and colourfulness (evaluation/colour.py)
      per_example.update(colour.colour_metrics(images, targets, target_colourfulness))
      values[colour.COLOURFULNESS_TARGET] = float(target_colourfulness.mean())
    for metric, v in per_example.items():  # percentile bootstrap of the mean
      b = S.bootstrap_interval(np.mean, v, num_resamples=max(bootstrap, 1), rng=seed)
      values[metric] = float(v.mean())
      intervals[metric] = [float(b.low), float(b.high)]
    per_example = {k: v for k, v in per_example.items() if k not in colour.MEAN_ONLY}
    for name, (net, key, prep) in nets.items():
      out = net(prep(images))
      fake = {'features': out[key], 'logits': runner.logits_of(out)}
      with warnings.catch_warnings():
        warnings.simplefilter('ignore', scipy.linalg.LinAlgWarning)
        v, i, p, det = runner.feature_metrics(name, real_features[name], fake, SET_GROUPS, seed,
                                              bootstrap, 0, settings=settings)
      values.update(v)
      intervals.update(i)
      per_example.update(p)
      details.update(det)
      if name == 'digits_cnn' and labels is not None:
        correct = (np.argmax(out['logits'], -1) == labels).astype(np.float64)
        per_example['digits_cnn/correct'] = correct
        values['digits_cnn/accuracy'] = float(correct.mean())
    result = {'protocol': {**protocol, **extra_protocol.get(cand, {}), 'candidate': cand,
                           'seconds': round(time.time() - tic, 1)},
              'metrics': {k: float(v) for k, v in values.items()},
              'intervals': intervals, 'details': details}
    out_dir = (out_root if cand == 'run' else
               os.path.join(out_root, 'baselines', cand.split('/')[1], runner.EVAL_DIR))
    os.makedirs(out_dir, exist_ok=True)
    rundir.write_json(os.path.join(out_dir, 'metrics.json'), result, indent=1)
    np.savez(os.path.join(out_dir, 'per_example.npz'), **per_example)
    results[cand] = result
  if config.task.name == 'denoising' and 'pca' in fitted:  # denoising autoencoders
    from genvision_jax.evaluation import autoencoders  # pylint: disable=g-import-not-at-top
    t0 = time.time()
    curve = autoencoders.denoising_curve(method, state, targets, fitted['pca'], seed)
    t = config.task
    autoencoders.denoising_figure(curve, t[autoencoders.LEVEL_FIELD[t.noise]],
                                  os.path.join(out_root, 'denoising_curve.png'))
    rundir.write_json(os.path.join(out_root, 'denoising_curve.json'), curve, indent=1)
    say(f'denoising curve ({curve["noise"]} at {curve["levels"]}) in {time.time() - t0:.1f}s: '
        + ', '.join(f'{k} ' + ' '.join(f'{v:.2f}' for v in vs)
                    for k, vs in curve['psnr'].items()))
  strip = np.stack([shown_inputs[:16], outputs[:16], targets[:16]], 1).reshape(
      -1, *targets.shape[1:])
  viz.save_image_grid(np.clip(strip, -1, 1), os.path.join(out_root, 'samples.png'), ncol=3)
  lines = [f"{'':<22}{'psnr':>8}{'ssim':>8}" + ''.join(
      f'{k.split("/")[-1]:>10}' for k in ('digits_cnn/accuracy', 'digits_cnn/fd')
      if k in results['run']['metrics'])]
  for cand, r in results.items():
    m = r['metrics']
    lines.append(f'{cand:<22}{m["psnr"]:>8.2f}{m["ssim"]:>8.3f}' + ''.join(
        f'{m[k]:>10.3f}' for k in ('digits_cnn/accuracy', 'digits_cnn/fd') if k in m))
  if target_colourfulness is not None:
    lines += colour.summary_lines({c: r['metrics'] for c, r in results.items()})
  say('\n'.join(lines))
  return results['run']
