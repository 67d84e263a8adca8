"""`genvision evaluate` for text-to-image runs: does a sample show what its prompt asked for?

Protocol, per split of the captioned digit scenes ('test', and on two-digit canvases
'test_heldout', whose (left, right) digit pairs never occur in training): the first N captions
of the split (the test canvases' own captions), one sample each, keyed by (seed, chunk). Each
32 x 32 slot of a sample (left to right) is read as the dataset reads its real canvases
(`digit_scenes.measure`, `categories`): the digit cropped to its ink, rescaled to a 20 px box on
28 x 28 and classified by `digits_cnn` (an empty slot reads as no digit); its size, stroke
thickness and slant measured from the pixels. Per sample:

  faithful          every slot shows the asked digit (so digits *and* positions match)
  digit_accuracy    the fraction of slots that show the asked digit
  ATTR_agreement    for each attribute the caption names (size, thickness, slant), whether the
                    measured category is the asked one (means over the samples that ask)

The same reading of the split's real canvases gives the ceiling of the reader
(`faithful_real`, ...): the classifier and the thresholds err on real digits too.
Image quality: the Fréchet distance and precision/recall/density/coverage of the samples
against the split's real canvases (same captions) in `digits_cnn_slots` features: the
classifier's 128-d features of each slot (resized to 28 px, not normalized, so size and
position count) concatenated.

Written like every evaluation: RUN/eval/metrics.json (metric names SPLIT/NAME) and
per_example.npz (SPLIT/faithful, SPLIT/digit_accuracy, SPLIT/digits_cnn_slots/nn_distance),
so `genvision compare RUN_A RUN_B` runs the paired bootstrap over prompts. With
`guidance_sweep`, each w is evaluated on the 'test' split too (RUN/eval/guidance_sweep.json and
.png: faithfulness against Fréchet distance, one point per w; the w of the main evaluation
reuses its samples, the same seed giving the same samples).
"""

import os
import time
import warnings

import jax
import numpy as np
import scipy

from genvision_jax.data import digit_scenes
from genvision_jax.evaluation import significance as S

ATTRIBUTES = ('size', 'thickness', 'slant')
FEATURES = 'digits_cnn_slots'
CHUNK = 250
SET_GROUPS = ('fd', 'manifold')


def slots(canvases) -> np.ndarray:
  """[N, n, 32, 32] in [0, 1] of canvases [N, 32, 32 n, 1] in [-1, 1] (left to right)."""
  x = (np.clip(np.asarray(canvases, np.float32)[..., 0], -1, 1) + 1) / 2
  n = x.shape[2] // digit_scenes.SLOT
  return np.stack([x[:, :, i * digit_scenes.SLOT:(i + 1) * digit_scenes.SLOT]
                   for i in range(n)], 1)


def read_canvases(canvases, classifier) -> dict:
  """What the reader sees in each slot: {'digit' [N, n] (-1: empty), 'words' [N][n] (caption
  words of the measured attributes, None for an empty slot), 'features' [N, n * 128]}."""
  s = slots(canvases)
  num, n = s.shape[:2]
  flat = s.reshape(num * n, digit_scenes.SLOT, digit_scenes.SLOT)
  normal = np.zeros((len(flat), 28, 28), np.float32)
  words = []
  for i, slot in enumerate(flat):
    digit = digit_scenes.normalized(slot)
    if digit is None:
      words.append(None)
      continue
    normal[i] = digit
    words.append(digit_scenes.categories(digit_scenes.measure(slot)))
  logits = classifier(normal[..., None] * 2 - 1)['logits']
  digits = np.where([w is not None for w in words], np.argmax(logits, -1), -1)
  features = classifier(flat[..., None] * 2 - 1)['features']  # resized to 28 px inside
  return {'digit': digits.reshape(num, n),
          'words': [words[i * n:(i + 1) * n] for i in range(num)],
          'features': np.asarray(features, np.float64).reshape(num, -1)}


def asked_slots(tokens, vocabulary=digit_scenes.VOCABULARY) -> list[list[dict]]:
  """The slots each caption asks for, left to right (`digit_scenes.parse`)."""
  return [digit_scenes.parse(digit_scenes.detokenize(t, vocabulary)) for t in tokens]


def score(asked: list[list[dict]], read: dict) -> dict:
  """Per-sample arrays: 'faithful', 'digit_accuracy' (0/1 and fractions) and, per attribute,
  'ATTR_agreement' (1/0, NaN where the caption does not name it)."""
  num = len(asked)
  out = {'faithful': np.zeros(num), 'digit_accuracy': np.zeros(num),
         **{f'{a}_agreement': np.full(num, np.nan) for a in ATTRIBUTES}}
  for i, (slots_asked, digits, words) in enumerate(zip(asked, read['digit'], read['words'])):
    right = [s['digit'] == int(d) for s, d in zip(slots_asked, digits)]
    right += [False] * (len(slots_asked) - len(right))
    out['faithful'][i] = float(all(right))
    out['digit_accuracy'][i] = float(np.mean(right))
    for a in ATTRIBUTES:
      asks = [(s[a], w) for s, w in zip(slots_asked, words) if s[a] is not None]
      if asks:
        out[f'{a}_agreement'][i] = float(np.mean([w is not None and w[a] == want
                                                  for want, w in asks]))
  return out


def generate_for_captions(method, state, tokens, seed: int, use_ema: bool,
                          settings: dict) -> np.ndarray:
  """One sample per caption (tokens [N, L]), in chunks of CHUNK compiled once (the last chunk
  padded), chunk c keyed by seed * 1000 + c."""
  import inspect  # pylint: disable=g-import-not-at-top
  kwargs = dict(settings)
  if 'use_ema' in inspect.signature(method.generate).parameters:
    kwargs['use_ema'] = use_ema
  chunk = min(CHUNK, len(tokens))
  fn = jax.jit(lambda st, rng, t: method.generate(st, rng, chunk, label=t, **kwargs))
  parts = []
  for c, start in enumerate(range(0, len(tokens), chunk)):
    part = tokens[start:start + chunk]
    padded = np.concatenate([part, np.repeat(part[-1:], chunk - len(part), 0)])
    images = fn(state, jax.random.key(seed * 1000 + c), padded)
    parts.append(np.asarray(jax.device_get(images))[:len(part)])
  return np.concatenate(parts)


def _mean_interval(values, bootstrap: int, seed: int):
  v = np.asarray(values, np.float64)
  v = v[np.isfinite(v)]
  if not len(v):
    return float('nan'), None
  if bootstrap and len(v) > 1:
    b = S.bootstrap_interval(np.mean, v, num_resamples=bootstrap, rng=seed)
    return float(v.mean()), [float(b.low), float(b.high)]
  return float(v.mean()), None


def read_reference(real: dict, num: int, classifier) -> dict:
  """The first `num` captions of a split, what they ask and the reading of their real canvases:
  {'tokens', 'asked', 'read', 'scores'} (computed once per split, shared by a sweep)."""
  tokens = np.asarray(real['tokens'][:num], np.int32)
  asked = asked_slots(tokens)
  read = read_canvases(real['image'][:num], classifier)
  return {'tokens': tokens, 'asked': asked, 'read': read, 'scores': score(asked, read)}


def evaluate_split(method, state, classifier, ref: dict, seed: int, use_ema: bool,
                   settings: dict, bootstrap: int, nearest_k: int, prefix: str):
  """(values, intervals, per_example, details, samples) of one split against its
  `read_reference` (see the module doc)."""
  from genvision_jax.evaluation import runner  # pylint: disable=g-import-not-at-top
  t0 = time.time()
  samples = generate_for_captions(method, state, ref['tokens'], seed, use_ema, settings)
  seconds = time.time() - t0
  read_fake = read_canvases(samples, classifier)
  values, intervals, per_example = {}, {}, {}
  for name, v in score(ref['asked'], read_fake).items():
    values[f'{prefix}/{name}'], ci = _mean_interval(v, bootstrap, seed)
    if ci:
      intervals[f'{prefix}/{name}'] = ci
    values[f'{prefix}/{name}_real'] = _mean_interval(ref['scores'][name], 0, seed)[0]
    if name.endswith('_agreement'):  # the prompts that name the attribute
      values[f'{prefix}/{name}_asked'] = int(np.isfinite(v).sum())
    else:
      per_example[f'{prefix}/{name}'] = v
  with warnings.catch_warnings():
    warnings.simplefilter('ignore', scipy.linalg.LinAlgWarning)
    v, i, p, details = runner.feature_metrics(
        f'{prefix}/{FEATURES}', {'features': ref['read']['features']},
        {'features': read_fake['features']}, SET_GROUPS, seed, bootstrap, 0,
        settings={'nearest_k': int(nearest_k)})
  values.update(v)
  intervals.update(i)
  per_example.update(p)
  details[f'{prefix}/generate_seconds'] = round(seconds, 1)
  return values, intervals, per_example, details, samples


def splits_of(image_shape) -> tuple[str, ...]:
  """'test', and 'test_heldout' for two-digit canvases."""
  return ('test', 'test_heldout') if image_shape[1] == 2 * image_shape[0] else ('test',)


def evaluate_text_to_image(workdir: str, config, method, state, *, num_samples: int | None,
                           seed: int, use_ema: bool, bootstrap: int, nearest_k: int, say,
                           guidance: float | None = None, guidance_sweep=None,
                           sweep_samples: int | None = None) -> dict:
  """Evaluates a text-to-image run (see the module docstring); returns metrics.json's content."""
  from genvision_jax import data as data_lib  # pylint: disable=g-import-not-at-top
  from genvision_jax import viz  # pylint: disable=g-import-not-at-top
  from genvision_jax.evaluation import runner  # pylint: disable=g-import-not-at-top
  from genvision_jax.features import digits  # pylint: disable=g-import-not-at-top
  from genvision_jax.training import rundir  # pylint: disable=g-import-not-at-top
  tic = time.time()
  settings = {} if guidance is None else {'guidance': float(guidance)}
  try:
    chosen = method.sample_settings(**settings)
  except ValueError as e:
    raise runner.EvaluationError(str(e)) from None
  d = config.data
  classifier = digits.DigitFeatures()
  num = 500 if num_samples is None else int(num_samples)
  values, intervals, per_example, details, protocol_splits = {}, {}, {}, {}, {}
  test_samples = test_images = test_ref = None
  for split in splits_of(method.image_shape):
    real = data_lib.load_split(d.name, split, d.image_size, d.data_dir or None,
                               d.resize_method).arrays()
    images = data_lib.to_model_range(real['image'])
    n = min(num, len(images))
    ref = read_reference({'tokens': real['tokens'], 'image': images}, n, classifier)
    v, i, p, det, samples = evaluate_split(method, state, classifier, ref, seed, use_ema,
                                           settings, bootstrap, nearest_k, split)
    values.update(v)
    intervals.update(i)
    per_example.update(p)
    details.update(det)
    protocol_splits[split] = n
    say(f"{split}: {n} prompts in {det[f'{split}/generate_seconds']}s; faithful "
        f"{v[f'{split}/faithful']:.3f} (real canvases {v[f'{split}/faithful_real']:.3f}), "
        f"{FEATURES} fd {v[f'{split}/{FEATURES}/fd']:.2f}")
    if split == 'test':
      test_samples, test_images, test_ref, test_real = samples, images, ref, real
  out_root = os.path.join(workdir, runner.EVAL_DIR)
  os.makedirs(out_root, exist_ok=True)
  sweep = None
  if guidance_sweep:
    sweep = []
    main_w = sampling_protocol(chosen)['guidance']
    n_test = protocol_splits['test']
    n_sweep = n_test if sweep_samples is None else min(int(sweep_samples), n_test)
    sweep_ref = test_ref if n_sweep == n_test else read_reference(
        {'tokens': test_real['tokens'], 'image': test_images}, n_sweep, classifier)
    for w in guidance_sweep:
      if float(w) == main_w and n_sweep == n_test:  # the test split's samples above
        v = values
      else:
        v, *_ = evaluate_split(method, state, classifier, sweep_ref, seed, use_ema,
                               {'guidance': float(w)}, 0, nearest_k, 'test')
      sweep.append({'guidance': float(w), 'prompts': n_sweep, 'faithful': v['test/faithful'],
                    'digit_accuracy': v['test/digit_accuracy'],
                    'fd': v[f'test/{FEATURES}/fd'], 'precision': v[f'test/{FEATURES}/precision'],
                    'recall': v[f'test/{FEATURES}/recall']})
      say(f"guidance {w:g}: faithful {sweep[-1]['faithful']:.3f}, fd {sweep[-1]['fd']:.2f}")
    rundir.write_json(os.path.join(out_root, 'guidance_sweep.json'), sweep, indent=1)
    sweep_figure(sweep, config.method, os.path.join(out_root, 'guidance_sweep.png'))
    details['guidance_sweep'] = sweep
  protocol = {
      'workdir': os.path.abspath(workdir), 'checkpoint_step': int(jax.device_get(state.step)),
      'weights': 'ema' if use_ema else 'raw', 'method': config.method, 'seed': seed,
      'dataset': d.name, 'splits': protocol_splits, 'sampling': sampling_protocol(chosen),
      'reader': 'digits_cnn on each slot normalized as digit_scenes.measure; attribute '
                'categories by digit_scenes.categories',
      'feature_networks': [FEATURES], 'nearest_k': int(nearest_k),
      'bootstrap_resamples': bootstrap,
      # compare's protocol key reads these as for generative runs
      'reference_split': 'test', 'num_samples': int(protocol_splits['test']),
      'seconds': round(time.time() - tic, 1)}
  result = {'protocol': protocol, 'metrics': {k: float(v) for k, v in values.items()},
            'intervals': intervals, 'details': details}
  rundir.write_json(os.path.join(out_root, 'metrics.json'), result, indent=1)
  np.savez(os.path.join(out_root, 'per_example.npz'), **per_example)
  rows = np.stack([test_images[:8], test_samples[:8]], 1)
  viz.save_image_grid(np.clip(rows.reshape(-1, *rows.shape[2:]), -1, 1),
                      os.path.join(out_root, 'samples.png'), ncol=2)
  return result


def sampling_protocol(chosen) -> dict:
  """The sampling settings of `method.sample_settings` as a dict (Parti: guidance,
  temperature, top_k; diffusion: sampler, steps, eta, guidance)."""
  if len(chosen) == 3:
    return dict(zip(('guidance', 'temperature', 'top_k'), (float(chosen[0]), float(chosen[1]),
                                                           int(chosen[2]))))
  sampler, timesteps, eta, guidance = chosen
  return {'sampler': sampler, 'steps': len(timesteps), 'eta': float(eta),
          'guidance': float(guidance)}


def sweep_figure(sweep: list[dict], title: str, path: str) -> None:
  """Faithfulness against Fréchet distance, one labelled point per guidance scale."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(4.5, 3.5))
  fd = [s['fd'] for s in sweep]
  faithful = [s['faithful'] for s in sweep]
  ax.plot(fd, faithful, 'o-')
  for s in sweep:
    ax.annotate(f"w={s['guidance']:g}", (s['fd'], s['faithful']), textcoords='offset points',
                xytext=(4, 4), fontsize=8)
  ax.set_xlabel(f'{FEATURES} Fréchet distance (test split)')
  ax.set_ylabel('faithful (digits and positions)')
  ax.set_title(f'{title}: guidance sweep')
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
