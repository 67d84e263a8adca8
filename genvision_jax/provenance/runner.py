"""The provenance drivers behind `genvision watermark`: they read run directories, write JSON
and figures (the only I/O of provenance/).

Tree-Ring (`treering_*`): a diffusion run generates with a keyed x_T by deterministic DDIM;
detection inverts an image with the same run and tests the key (treering.score).
"""

from __future__ import annotations

import functools
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from genvision_jax.provenance import ProvenanceError
from genvision_jax import attacks as attacks_lib
from genvision_jax.provenance import statistics
from genvision_jax.provenance import treering


def _say(verbose):
  return print if verbose else (lambda *a, **k: None)


def load_diffusion_run(workdir: str, step: int | None = None):
  """(config, method, state) of a diffusion run with square images, or ProvenanceError."""
  from genvision_jax.training import load_run, read_config  # pylint: disable=g-import-not-at-top
  config = read_config(workdir)
  if config.method != 'diffusion':
    raise ProvenanceError(f'Tree-Ring watermarks need a diffusion run (its DDIM noise carries '
                          f'the key); {workdir} holds a {config.method!r} run: train '
                          'experiments/ddpm_mnist.py')
  if config.diffusion.get('process', 'ddpm') != 'ddpm':
    raise ProvenanceError(f'Tree-Ring, DDIM inversion and regeneration are built on the discrete '
                          f'ddpm process; {workdir} uses {config.diffusion.process!r}: train '
                          'experiments/ddpm_mnist.py')
  config, method, state = load_run(workdir, step)
  shape = method.image_shape
  if shape[0] != shape[1]:
    raise ProvenanceError(f'Tree-Ring needs square images; {workdir} makes {shape[0]}x{shape[1]}')
  return config, method, state


class TreeRing:
  """A diffusion run with one Tree-Ring key: keyed generation, inversion and scores."""

  def __init__(self, method, state, key_seed: int = 0, radius: int = 4, pattern: str = 'rand',
               steps: int | None = None, channel: int = -1):
    self.method, self.state = method, state
    self.n = method.image_shape[0]
    self.radius, self.pattern, self.key_seed, self.channel = radius, pattern, key_seed, channel
    self.key = treering.make_key(self.n, radius, pattern, key_seed)
    _, timesteps, _, _ = method.sample_settings('ddim', steps, 0.0, 0.0)
    self.steps = len(timesteps)
    num_classes = method.num_classes
    # the state is an argument, not a closed-over constant baked into the compiled programs
    self._decode = jax.jit(functools.partial(method.decode, steps=steps))
    self._invert = jax.jit(functools.partial(method.invert, steps=steps))
    self.num_classes = num_classes

  def noise(self, seed: int, num: int, watermark: bool) -> jnp.ndarray:
    x_T = jax.random.normal(jax.random.PRNGKey(seed), (num, *self.method.image_shape))
    return treering.inject(x_T, self.key, self.radius, self.channel) if watermark else x_T

  def generate(self, x_T, seed: int, chunk: int = 250) -> np.ndarray:
    labels = (np.random.default_rng(seed).integers(0, self.num_classes, len(x_T))
              if self.num_classes else None)
    out = []
    for s in range(0, len(x_T), chunk):
      z = x_T[s:s + chunk].reshape(min(chunk, len(x_T) - s), -1)
      out.append(np.asarray(self._decode(self.state, z,
                                         None if labels is None else labels[s:s + chunk])))
    return np.concatenate(out)

  def invert(self, images, chunk: int = 250) -> np.ndarray:
    return np.concatenate([np.asarray(self._invert(self.state,
                                                   jnp.asarray(images[s:s + chunk], jnp.float32)))
                           for s in range(0, len(images), chunk)])

  def score(self, images) -> dict[str, np.ndarray]:
    return treering.score(self.invert(images), self.key, self.radius, self.channel)

  def describe(self) -> dict:
    return {'scheme': 'treering', 'pattern': self.pattern, 'radius': self.radius,
            'key_seed': self.key_seed, 'channel': self.channel, 'inversion_steps': self.steps,
            'masked_coefficients': int(treering.disc_mask(self.n, self.radius).sum())}


def _rates(wm: dict, negatives: dict[str, dict], fpr: float, num_resamples: int) -> dict:
  """Detection figures of one attack setting from per-image 'p_value' and 'score' (higher =
  more watermarked) of the watermarked images and of each negative set: the TPR of the test
  p <= fpr with its realized FPR on each negative set, the score's AUC against each, and the
  TPR at the empirical threshold of each negative set."""
  out = {'tpr_p': statistics.rate_interval(int(np.sum(wm['p_value'] <= fpr)),
                                           len(wm['p_value']))._asdict(),
         'median_p_value': float(np.median(wm['p_value']))}
  if 'bit_accuracy' in wm:
    out['bit_accuracy'] = float(np.mean(wm['bit_accuracy']))
  for name, neg in negatives.items():
    out[f'fpr_p/{name}'] = statistics.rate_interval(int(np.sum(neg['p_value'] <= fpr)),
                                                    len(neg['p_value']))._asdict()
    out[f'auc/{name}'] = statistics.roc_auc(wm['score'], neg['score'], num_resamples)
    out[f'tpr_empirical/{name}'] = statistics.tpr_at_fpr(wm['score'], neg['score'], fpr)
  return out


def _attack_table(score_fn, sets: dict, attacks: dict, fpr: float, seed: int, regen,
                  num_resamples: int, say) -> dict:
  """{attack: [row per strength]}: score_fn(images) -> {'p_value', 'score', ...} on the attacked
  'keyed', 'unkeyed' and 'real' sets."""
  table = {}
  for name, strengths in attacks.items():
    for strength in strengths:
      scores = {k: score_fn(attacks_lib.apply(name, v, strength, seed, regen))
                for k, v in sets.items()}
      row = _rates(scores['keyed'], {'unkeyed': scores['unkeyed'], 'real': scores['real']},
                   fpr, num_resamples)
      table.setdefault(name, []).append({'strength': float(strength), **row})
      say(f'{name} {strength:g}: TPR(p<={fpr:g}) {row["tpr_p"]["rate"]:.3f}, FPR unkeyed '
          f'{row["fpr_p/unkeyed"]["rate"]:.3f}, real {row["fpr_p/real"]["rate"]:.3f}, AUC '
          f'{row["auc/unkeyed"]["auc"]:.3f}')
  return table


def _regen_attack(attacks: dict, regen_run: str | None, image_shape):
  """(method, state) of the regeneration attack's diffusion run when 'regen' is swept."""
  if 'regen' not in attacks:
    return None
  if not regen_run:
    raise ProvenanceError('the regeneration attack needs --regen_run=DIFFUSION_RUN')
  _, rmethod, rstate = load_diffusion_run(regen_run)
  if tuple(rmethod.image_shape) != tuple(image_shape):
    raise ProvenanceError(f'--regen_run makes {rmethod.image_shape} images, the watermarked '
                          f'images are {tuple(image_shape)}')
  return rmethod, rstate


def _default_attacks(attacks, regen_run):
  return attacks or {k: v for k, v in attacks_lib.STRENGTHS.items()
                     if k != 'regen' or regen_run}


def _real_images(config, num: int) -> np.ndarray:
  from genvision_jax import data as data_lib  # pylint: disable=g-import-not-at-top
  d = config.data
  real = data_lib.load_split(d.name, 'test', d.image_size, d.data_dir or None,
                             d.resize_method).arrays()['image'][:num]
  return np.asarray(data_lib.to_model_range(real), np.float32)


def treering_evaluate(workdir: str, out: str, num: int = 200, key_seed: int = 0,
                      radius: int = 4, pattern: str = 'rand', steps: int | None = None,
                      fpr: float = 1e-3, attacks=None, seed: int = 0, regen_run: str | None = None,
                      num_resamples: int = 200, verbose: bool = True) -> dict:
  """The robustness table of a Tree-Ring key on a diffusion run: num keyed samples against num
  unkeyed samples (the same x_T without the key) and num real test images, under every attack
  and strength; quality cost (PSNR/SSIM keyed vs unkeyed, digits_cnn Frechet distance of each to
  the test split). Writes OUT/treering.json, treering.png, samples.png."""
  say = _say(verbose)
  attacks = _default_attacks(attacks, regen_run)
  tic = time.time()
  config, method, state = load_diffusion_run(workdir)
  tr = TreeRing(method, state, key_seed, radius, pattern, steps)
  regen = _regen_attack(attacks, regen_run, method.image_shape)
  real = _real_images(config, num)
  t0 = time.time()
  x_T = tr.noise(seed, num, watermark=False)
  clean = tr.generate(x_T, seed)
  keyed = tr.generate(treering.inject(x_T, tr.key, radius, tr.channel), seed)
  gen_seconds = time.time() - t0
  say(f'generated {num} keyed and {num} unkeyed samples in {gen_seconds:.1f}s')
  quality = _quality(keyed, clean, config)
  t_inv = time.time()

  def score(images):
    s = tr.score(images)
    return {**s, 'score': -s['l1']}

  table = _attack_table(score, {'keyed': keyed, 'unkeyed': clean, 'real': real}, attacks, fpr,
                        seed, regen, num_resamples, say)
  result = {'run': os.path.abspath(workdir), 'watermark': tr.describe(), 'num': num, 'fpr': fpr,
            'seed': seed, 'regen_run': regen_run and os.path.abspath(regen_run),
            'quality': quality, 'attacks': table,
            'seconds': {'generate_both': gen_seconds, 'detect_all': time.time() - t_inv,
                        'total': time.time() - tic},
            'command': ('genvision watermark evaluate --scheme=treering '
                        f'--workdir={workdir} --out={out} --num={num} --key_seed={key_seed} '
                        f'--radius={radius} --pattern={pattern} --fpr={fpr:g} --seed={seed}'
                        + (f' --regen_run={regen_run}' if regen_run else ''))}
  _write_evaluation(out, 'treering', 'Tree-Ring', result, clean, keyed)
  return result


def _write_evaluation(out: str, name: str, label: str, result: dict, clean, keyed) -> None:
  """OUT/NAME.json, the robustness figure OUT/NAME.png and OUT/samples.png (rows: unwatermarked,
  watermarked, 10 x |difference|)."""
  from genvision_jax import viz  # pylint: disable=g-import-not-at-top
  from genvision_jax.training import rundir  # pylint: disable=g-import-not-at-top
  os.makedirs(out, exist_ok=True)
  rundir.write_json(os.path.join(out, f'{name}.json'), result)
  robustness_figure({label: result['attacks']}, result['fpr'], os.path.join(out, f'{name}.png'))
  diff = np.clip(10 * np.abs(keyed[:8] - clean[:8]), 0, 2) - 1
  viz.save_image_grid(np.concatenate([clean[:8], keyed[:8], diff]),
                      os.path.join(out, 'samples.png'), ncol=8)


def _quality(keyed, clean, config) -> dict:
  """PSNR/SSIM of watermarked against unwatermarked images, and the Frechet-distance change."""
  from genvision_jax.evaluation import translation  # pylint: disable=g-import-not-at-top
  psnr, ssim = translation.psnr_ssim(keyed, clean)
  return {'psnr_keyed_vs_unkeyed': float(np.mean(psnr)),
          'ssim_keyed_vs_unkeyed': float(np.mean(ssim)), **_fd_change(keyed, clean, config)}


def _fd_change(keyed, clean, config) -> dict:
  """digits_cnn Frechet distance of keyed and unkeyed samples to the test split (grey digits)."""
  if keyed.shape[-1] != 1:
    return {}
  from genvision_jax import data as data_lib  # pylint: disable=g-import-not-at-top
  from genvision_jax.evaluation import metrics  # pylint: disable=g-import-not-at-top
  from genvision_jax.features import digits  # pylint: disable=g-import-not-at-top
  from genvision_jax.evaluation.runner import center_crop  # pylint: disable=g-import-not-at-top
  net = digits.DigitFeatures()
  d = config.data
  test = data_lib.load_split(d.name, 'test', d.image_size, d.data_dir or None,
                             d.resize_method).arrays()['image']
  test = np.asarray(data_lib.to_model_range(test), np.float32)

  def feats(x):
    x = center_crop(x, 28) if x.shape[1] > 28 and d.resize_method == 'pad' else x
    return np.asarray(net(x)['features'], np.float64)

  ref = feats(test)
  fd_k = metrics.frechet_distance_from_features(ref, feats(keyed))
  fd_c = metrics.frechet_distance_from_features(ref, feats(clean))
  return {'fd_keyed': fd_k, 'fd_unkeyed': fd_c, 'fd_change': fd_k - fd_c,
          'fd_reference': f'digits_cnn, {len(test)} test images'}


def robustness_figure(tables: dict[str, dict], fpr: float, path: str) -> None:
  """One panel per attack: TPR at the chosen FPR against attack strength, one line per
  watermark (tables: watermark name -> attack -> rows)."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  names = [a for a in attacks_lib.ATTACKS if a != 'none' and any(a in t for t in tables.values())]
  cols = min(4, max(1, len(names)))
  rows = max(1, -(-len(names) // cols))
  fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
  for ax, attack in zip(axes.flat, names):
    for wm, table in tables.items():
      if attack not in table:
        continue
      xs = [r['strength'] for r in table[attack]]
      ys = [r['tpr_p']['rate'] for r in table[attack]]
      lo = [r['tpr_p']['low'] for r in table[attack]]
      hi = [r['tpr_p']['high'] for r in table[attack]]
      line, = ax.plot(xs, ys, 'o-', label=wm)
      ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.2)
      clean = table.get('none')
      if clean:
        ax.axhline(clean[0]['tpr_p']['rate'], color=line.get_color(), ls=':', lw=0.8)
    ax.set_title(attack)
    ax.set_xlabel(attacks_lib.STRENGTH_LABELS.get(attack, 'strength'))
    ax.set_ylim(-0.02, 1.02)
    if attack == 'jpeg':
      ax.invert_xaxis()
  for ax in axes.flat[len(names):]:
    ax.axis('off')
  axes[0, 0].set_ylabel(f'TPR at FPR {fpr:g}')
  axes[0, 0].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def _save_images(out: str, images, names=None) -> None:
  """images [N, H, W, C] in [-1, 1] as 8-bit PNGs OUT/images/NAME (000.png ... by default) and
  their grid OUT/grid.png."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from genvision_jax import viz  # pylint: disable=g-import-not-at-top
  os.makedirs(os.path.join(out, 'images'), exist_ok=True)
  names = names or [f'{i:03d}.png' for i in range(len(images))]
  for name, img in zip(names, attacks_lib.to_uint8(images)):
    Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).save(
        os.path.join(out, 'images', name))
  viz.save_image_grid(images, os.path.join(out, 'grid.png'))


def treering_embed(workdir: str, out: str, num: int, key_seed: int = 0, radius: int = 4,
                   pattern: str = 'rand', steps: int | None = None, seed: int = 0) -> int:
  """num keyed samples of the diffusion run as OUT/images/000.png ..., their grid OUT/grid.png
  and OUT/watermark.json (the key's settings: detection needs them and the run)."""
  from genvision_jax.training import rundir  # pylint: disable=g-import-not-at-top
  _, method, state = load_diffusion_run(workdir)
  tr = TreeRing(method, state, key_seed, radius, pattern, steps)
  images = tr.generate(tr.noise(seed, num, watermark=True), seed)
  _save_images(out, images)
  rundir.write_json(os.path.join(out, 'watermark.json'),
                    {'run': os.path.abspath(workdir), 'num': num, 'seed': seed,
                     **tr.describe()}, indent=1)
  return num


def treering_detect(workdir: str, images, key_seed: int, radius: int, pattern: str,
                    steps: int | None = None, fpr: float = 1e-3, files=None,
                    out: str | None = None) -> list[dict]:
  """Per image: L1 distance to the key, p-value and the decision p < fpr; with out, writes
  OUT/detect.json and OUT/detect.png (-log10 p per image against the threshold)."""
  from genvision_jax.training import rundir  # pylint: disable=g-import-not-at-top
  _, method, state = load_diffusion_run(workdir)
  tr = TreeRing(method, state, key_seed, radius, pattern, steps)
  s = tr.score(np.asarray(images, np.float32))
  files = files or [f'image {i}' for i in range(len(images))]
  rows = [{'image': files[i], 'l1': float(s['l1'][i]), 'p_value': float(s['p_value'][i]),
           'watermarked': bool(s['p_value'][i] < fpr)} for i in range(len(images))]
  if out:
    os.makedirs(out, exist_ok=True)
    rundir.write_json(os.path.join(out, 'detect.json'),
                      {'run': os.path.abspath(workdir), 'fpr': fpr, **tr.describe(),
                       'images': rows}, indent=1)
    _p_value_figure(rows, fpr, os.path.join(out, 'detect.png'))
  return rows


def _p_value_figure(rows, fpr: float, path: str) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  values = [-np.log10(max(r['p_value'], 1e-300)) for r in rows]
  fig, ax = plt.subplots(figsize=(max(4, 0.25 * len(rows) + 2), 3))
  ax.bar(range(len(rows)), values, color=['C3' if r['watermarked'] else 'C0' for r in rows])
  ax.axhline(-np.log10(fpr), color='k', ls='--', lw=1, label=f'p = {fpr:g}')
  ax.set_xlabel('image')
  ax.set_ylabel('-log10 p (key present)')
  ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


# -- image attribution by nearest neighbours, memorization -----------------------------------

FEATURE_SPACES = ('pixels', 'digits_cnn', 'inception')


def _features(space: str, images, inception_weights: str | None = None) -> np.ndarray:
  """Rows of the feature space `space` for images [N, H, W, C] in [-1, 1]."""
  if space == 'pixels':
    return np.asarray(images, np.float64).reshape(len(images), -1)
  if space == 'digits_cnn' and images.shape[-1] != 1:
    raise ProvenanceError('digits_cnn features are for grey digits; use --features=pixels or '
                          'inception')
  from genvision_jax.evaluation import runner as ev_runner  # pylint: disable=g-import-not-at-top
  try:
    net, key, _ = ev_runner.feature_network(space, inception_weights)
  except (ev_runner.EvaluationError, FileNotFoundError, ValueError) as e:
    raise ProvenanceError(str(e)) from None
  return np.asarray(net(np.asarray(images, np.float32))[key], np.float64)


def neighbours(workdir: str, out: str, num: int = 1000, features=('pixels', 'digits_cnn'),
               k: int = 5, show: int = 8, images=None, seed: int = 0,
               inception_weights: str | None = None, verbose: bool = True,
               subset: str | None = None, make_subset: str | None = None,
               avoid: str | None = None) -> dict:
  """The nearest training images of generated samples (or of `images`) in each feature space,
  and the run's memorization statistic (memorization.memorization) against the test split.
  Writes OUT/neighbours.json, OUT/neighbours_SPACE.png (strips: sample | k nearest training
  images) and OUT/memorization.png (1-NN distances of samples and test images).

  `subset` (a .npy of training-split indices): also the share of the samples, and of the test
  images, whose nearest training image lies in it (memorization.subset_share), per space; the
  reference is always the whole split, also for a run trained with data.exclude.
  `make_subset` first writes that file (refused if it exists) by a rule: 'cluster:K:I' (the
  I-th largest of K k-means clusters of the training images' digits_cnn features; pixels for
  colour data) or 'random:SIZE:SEED' (none of the indices in the .npy `avoid`)."""
  from genvision_jax import data as data_lib  # pylint: disable=g-import-not-at-top
  from genvision_jax.evaluation import runner as ev_runner  # pylint: disable=g-import-not-at-top
  from genvision_jax.provenance import memorization  # pylint: disable=g-import-not-at-top
  from genvision_jax.training import load_run, rundir  # pylint: disable=g-import-not-at-top
  say = _say(verbose)
  unknown = [f for f in features if f not in FEATURE_SPACES]
  if unknown:
    raise ProvenanceError(f'unknown feature spaces {unknown}; use some of {FEATURE_SPACES}')
  tic = time.time()
  config, method, state = load_run(workdir)
  d = config.data
  split = lambda name: np.asarray(data_lib.to_model_range(data_lib.load_split(  # noqa: E731
      d.name, name, d.image_size, d.data_dir or None, d.resize_method).arrays()['image']),
                                  np.float32)
  train, test = split(d.split), split('test')
  chosen = None
  if make_subset:
    chosen = _make_subset(make_subset, subset, train, avoid, inception_weights)
    say(f'wrote {subset}: {len(chosen)} training images ({make_subset})')
  elif subset:
    try:
      chosen = data_lib.read_exclude(subset, len(train), f'{d.name} {d.split}')
    except data_lib.DatasetError as e:
      raise ProvenanceError(str(e).replace('data.exclude', '--subset')) from None
  if images is None:
    images = ev_runner._generate(method, state, num, seed, True)  # pylint: disable=protected-access
    source = f'{num} samples of the run (seed {seed})'
  else:
    images = np.asarray(images, np.float32)
    if images.shape[1:] != train.shape[1:]:
      raise ProvenanceError(f'the images are {images.shape[1:]}, the run\'s data '
                            f'{train.shape[1:]}')
    source = f'{len(images)} given images'
  say(f'{source}; {len(train)} training and {len(test)} test images')
  result = {'run': os.path.abspath(workdir), 'source': source, 'k': k, 'spaces': {},
            'reference': f'{d.name} {d.split} split ({len(train)} images); median over the '
                         f'test split ({len(test)} images)'}
  excluded = (rundir.read_data_info(workdir) or {}).get('excluded')
  if excluded is not None:
    result['run_excluded'] = len(excluded)
  if chosen is not None:
    result['subset'] = {'file': os.path.abspath(subset), 'size': len(chosen),
                        'rule': make_subset or 'given', 'spaces': {}}
  os.makedirs(out, exist_ok=True)
  figure_data = {}
  for space in features:
    t0 = time.time()
    f_train = _features(space, train, inception_weights)
    f_gen = _features(space, images, inception_weights)
    f_test = _features(space, test, inception_weights)
    near = memorization.nearest(f_gen, f_train, k)
    test_near = memorization.nearest(f_test, f_train, 1)
    test_d = test_near.distances[:, 0]
    stats_ = memorization.memorization(near.distances[:, 0], test_d)
    result['spaces'][space] = {
        **stats_, 'seconds': time.time() - t0,
        'examples': [{'nearest_train_indices': near.indices[i].tolist(),
                      'distances': near.distances[i].tolist()} for i in range(min(show,
                                                                                   len(images)))]}
    say(f'{space}: {stats_["fraction_closer"]:.3f} of the samples are closer to a training '
        f'image than the median test image (p = {stats_["p_value"]:.2g}; Z_U '
        f'{stats_["z_u"]:.2f})')
    if chosen is not None:
      shares = {'samples': memorization.subset_share(near.indices, chosen),
                'test': memorization.subset_share(test_near.indices, chosen)}
      result['subset']['spaces'][space] = shares
      say(f'{space}: {shares["samples"]["share"]:.3f} of the samples and '
          f'{shares["test"]["share"]:.3f} of the test images have their nearest training '
          f'image in the subset ({len(chosen)} of {len(train)})')
    _strip_figure(images[:show], train, near, os.path.join(out, f'neighbours_{space}.png'))
    figure_data[space] = (near.distances[:, 0], test_d, stats_['median_test_distance'])
  _memorization_figure(figure_data, os.path.join(out, 'memorization.png'))
  result['seconds'] = time.time() - tic
  rundir.write_json(os.path.join(out, 'neighbours.json'), result, indent=1)
  return result


def _make_subset(rule: str, path: str | None, train, avoid: str | None,
                 inception_weights: str | None) -> np.ndarray:
  """Writes the training-split indices chosen by `rule` (see `neighbours`) to `path`."""
  from genvision_jax import data as data_lib  # pylint: disable=g-import-not-at-top
  from genvision_jax.provenance import memorization  # pylint: disable=g-import-not-at-top
  if not path:
    raise ProvenanceError('--make_subset writes the file named by --subset=FILE.npy; give it')
  if os.path.exists(path):
    raise ProvenanceError(f'--subset={path} exists; --make_subset never overwrites a subset '
                          '(a run trained without it names it): choose a new file name')
  if not path.endswith('.npy'):
    raise ProvenanceError(f'--subset={path} must end in .npy')
  parts = rule.split(':')
  try:
    if parts[0] == 'cluster' and len(parts) == 3:
      space = 'digits_cnn' if train.shape[-1] == 1 else 'pixels'
      chosen = memorization.cluster_subset(_features(space, train, inception_weights),
                                           int(parts[1]), int(parts[2]))
    elif parts[0] == 'random' and len(parts) == 3:
      avoided = data_lib.read_exclude(avoid, len(train), 'the training split') if avoid else None
      chosen = memorization.random_subset(len(train), int(parts[1]), int(parts[2]), avoided)
    else:
      raise ValueError('unknown rule')
  except (ValueError, data_lib.DatasetError) as e:
    raise ProvenanceError(f'--make_subset={rule}: {e}; use cluster:K:I (the I-th largest of '
                          'K k-means clusters, e.g. cluster:20:0) or random:SIZE:SEED') from None
  from genvision_jax.training import rundir  # pylint: disable=g-import-not-at-top
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with rundir.atomic_open(path, 'wb') as f:
    np.save(f, chosen.astype(np.int64))
  return chosen


def _strip_figure(images, train, near, path: str) -> None:
  """One row per image: the image, then its k nearest training images (distance above)."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  rows, k = len(images), near.indices.shape[1]
  fig, axes = plt.subplots(rows, k + 1, figsize=(1.1 * (k + 1), 1.2 * rows), squeeze=False)
  show = lambda ax, x: ax.imshow(np.clip((x + 1) / 2, 0, 1).squeeze(),  # noqa: E731
                                 cmap='gray' if x.shape[-1] == 1 else None, vmin=0, vmax=1)
  for i in range(rows):
    show(axes[i, 0], images[i])
    axes[i, 0].set_title('query', fontsize=7)
    for j in range(k):
      show(axes[i, j + 1], train[near.indices[i, j]])
      axes[i, j + 1].set_title(f'{near.distances[i, j]:.3g}', fontsize=7)
  for ax in axes.flat:
    ax.axis('off')
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def _memorization_figure(data: dict, path: str) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(1, len(data), figsize=(4 * len(data), 3), squeeze=False)
  for ax, (space, (gen, test, median)) in zip(axes[0], data.items()):
    bins = np.linspace(0, max(gen.max(), test.max()), 40)
    ax.hist(test, bins, alpha=0.5, density=True, label='test images')
    ax.hist(gen, bins, alpha=0.5, density=True, label='samples')
    ax.axvline(median, color='k', ls='--', lw=1, label='median test')
    ax.set_title(f'{space}: {np.mean(gen < median):.2f} closer')
    ax.set_xlabel('distance to nearest training image')
  axes[0, 0].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


# -- bit watermarks (HiDDeN runs) ------------------------------------------------------------


def load_hidden_run(workdir: str, step: int | None = None):
  """(config, BitWatermark) of a trained HiDDeN run, or ProvenanceError."""
  from genvision_jax.provenance import bits  # pylint: disable=g-import-not-at-top
  from genvision_jax.training import load_run, read_config  # pylint: disable=g-import-not-at-top
  config = read_config(workdir)
  if config.method != 'hidden':
    raise ProvenanceError(f'--scheme=hidden needs a HiDDeN run; {workdir} holds a '
                          f'{config.method!r} run: train experiments/provenance/hidden_mnist.py')
  config, method, state = load_run(workdir, step)
  return config, bits.BitWatermark(method, state)


def _generator_samples(run: str, num: int, seed: int, image_shape) -> np.ndarray:
  """num samples of a generator run, which must make images of the watermark's shape."""
  from genvision_jax.evaluation import runner as ev_runner  # pylint: disable=g-import-not-at-top
  from genvision_jax.training import load_run  # pylint: disable=g-import-not-at-top
  _, method, state = load_run(run)
  shape = tuple(getattr(method, 'image_shape', ()))
  if shape and shape != tuple(image_shape):
    raise ProvenanceError(f'{run} makes {shape} images; the watermark run was trained on '
                          f'{tuple(image_shape)}: train a HiDDeN run on that data')
  try:
    return ev_runner._generate(method, state, num, seed, True)  # pylint: disable=protected-access
  except ValueError as e:
    raise ProvenanceError(f'{run} cannot generate images ({e})') from None


def hidden_embed(workdir: str, out: str, key: np.ndarray, run: str | None = None,
                 images=None, num: int = 16, seed: int = 0, files=None) -> int:
  """Watermarks num samples of the generator `run` (or the given images) with the key; writes
  OUT/images/000.png ... (the given files' names when images come from files), OUT/grid.png
  and OUT/watermark.json."""
  from genvision_jax.provenance import bits as bits_lib  # pylint: disable=g-import-not-at-top
  from genvision_jax.training import rundir  # pylint: disable=g-import-not-at-top
  _, wm = load_hidden_run(workdir)
  if images is None:
    if not run:
      raise ProvenanceError('watermark embed --scheme=hidden needs --run=GENERATOR_RUN or '
                            'image files')
    images = _generator_samples(run, num, seed, wm.image_shape)
  marked = wm.embed(images, key)
  _save_images(out, marked, [os.path.splitext(os.path.basename(f))[0] + '.png' for f in files]
               if files else None)
  rundir.write_json(os.path.join(out, 'watermark.json'),
                    {'scheme': 'hidden', 'watermark_run': os.path.abspath(workdir),
                     'generator_run': run and os.path.abspath(run), 'num': len(marked),
                     'key': bits_lib.key_string(key), 'seed': seed}, indent=1)
  return len(marked)


def hidden_detect(workdir: str, images, key: np.ndarray, fpr: float = 1e-3, files=None,
                  out: str | None = None) -> list[dict]:
  """Per image: matching bits, bit accuracy, binomial p-value and the decision p <= fpr
  (k >= tau); with out, OUT/detect.json and OUT/detect.png."""
  _, wm = load_hidden_run(workdir)
  return _bit_detect(wm, key, images, fpr, files, out,
                     {'scheme': 'hidden', 'watermark_run': os.path.abspath(workdir)})


def _bit_detect(wm, key, images, fpr: float, files, out: str | None, header: dict) -> list[dict]:
  """The rows of a bit watermark's detection (and OUT/detect.json, detect.png with out)."""
  from genvision_jax.provenance import bits as bits_lib  # pylint: disable=g-import-not-at-top
  from genvision_jax.training import rundir  # pylint: disable=g-import-not-at-top
  s = wm.score(images, key)
  files = files or [f'image {i}' for i in range(len(images))]
  rows = [{'image': files[i], 'matches': int(s['matches'][i]),
           'bit_accuracy': float(s['bit_accuracy'][i]), 'p_value': float(s['p_value'][i]),
           'watermarked': bool(s['p_value'][i] <= fpr)} for i in range(len(files))]
  if out:
    os.makedirs(out, exist_ok=True)
    rundir.write_json(os.path.join(out, 'detect.json'),
                      {**header, 'fpr': fpr, 'key': bits_lib.key_string(key),
                       'num_bits': wm.num_bits,
                       'threshold_matches': statistics.bit_threshold(wm.num_bits, fpr),
                       'images': rows}, indent=1)
    _p_value_figure(rows, fpr, os.path.join(out, 'detect.png'))
  return rows


def hidden_evaluate(workdir: str, out: str, run: str, num: int = 200, key_seed: int = 0,
                    fpr: float = 1e-3, attacks=None, seed: int = 0,
                    regen_run: str | None = None, num_resamples: int = 200,
                    verbose: bool = True) -> dict:
  """The robustness table of a HiDDeN key on the samples of a generator run: num watermarked
  samples against the same samples unwatermarked and num real test images, under every attack;
  the null check of the binomial test on unwatermarked images; quality cost. Writes
  OUT/hidden.json, hidden.png, samples.png."""
  from genvision_jax.provenance import bits as bits_lib  # pylint: disable=g-import-not-at-top
  say = _say(verbose)
  attacks = _default_attacks(attacks, regen_run)
  tic = time.time()
  config, wm = load_hidden_run(workdir)
  regen = _regen_attack(attacks, regen_run, wm.image_shape)
  key = bits_lib.key_bits(wm.num_bits, key_seed)
  clean = _generator_samples(run, num, seed, wm.image_shape)
  real = _real_images(config, num)
  t0 = time.time()
  keyed = wm.embed(clean, key)
  embed_seconds = time.time() - t0
  quality = _quality(keyed, clean, config)
  null = {name: bits_lib.null_check(wm.score(images, key)['matches'], wm.num_bits)
          for name, images in (('unkeyed', clean), ('real', real))}
  t_det = time.time()

  def score(images):
    s = wm.score(images, key)
    return {**s, 'score': s['matches'].astype(np.float64)}

  table = _attack_table(score, {'keyed': keyed, 'unkeyed': clean, 'real': real}, attacks, fpr,
                        seed, regen, num_resamples, say)
  result = {'watermark_run': os.path.abspath(workdir), 'generator_run': os.path.abspath(run),
            'watermark': {'scheme': 'hidden', 'num_bits': wm.num_bits,
                          'key': bits_lib.key_string(key), 'key_seed': key_seed,
                          'threshold_matches': statistics.bit_threshold(wm.num_bits, fpr)},
            'num': num, 'fpr': fpr, 'seed': seed,
            'regen_run': regen_run and os.path.abspath(regen_run), 'quality': quality,
            'null_check': null, 'attacks': table,
            'seconds': {'embed': embed_seconds, 'detect_all': time.time() - t_det,
                        'total': time.time() - tic},
            'command': ('genvision watermark evaluate --scheme=hidden '
                        f'--workdir={workdir} --run={run} --out={out} --num={num} '
                        f'--key_seed={key_seed} --fpr={fpr:g} --seed={seed}'
                        + (f' --regen_run={regen_run}' if regen_run else ''))}
  _write_evaluation(out, 'hidden', 'HiDDeN', result, clean, keyed)
  return result


# -- Stable Signature runs (method 'signature') ----------------------------------------------


def load_signature_run(workdir: str, step: int | None = None):
  """(config, method, state, BitWatermark of its extractor, key) of a Stable Signature run."""
  from genvision_jax.provenance import bits  # pylint: disable=g-import-not-at-top
  from genvision_jax.training import load_run, read_config  # pylint: disable=g-import-not-at-top
  config = read_config(workdir)
  if config.method != 'signature':
    raise ProvenanceError(f'--scheme=signature needs a Stable Signature run; {workdir} holds a '
                          f'{config.method!r} run: train experiments/provenance/'
                          'signature_mnist.py')
  config, method, state = load_run(workdir, step)
  wm = bits.BitWatermark(method.extractor, state.extractor)
  key = bits.key_bits(wm.num_bits, int(config.signature.key_seed))
  return config, method, state, wm, key


def signature_detect(workdir: str, images, fpr: float = 1e-3, files=None,
                     out: str | None = None) -> list[dict]:
  """hidden_detect with the run's extractor and key."""
  _, _, _, wm, key = load_signature_run(workdir)
  return _bit_detect(wm, key, images, fpr, files, out,
                     {'scheme': 'signature', 'run': os.path.abspath(workdir)})


def signature_evaluate(workdir: str, out: str, num: int = 200, fpr: float = 1e-3,
                       attacks=None, seed: int = 0, regen_run: str | None = None,
                       num_resamples: int = 200, verbose: bool = True) -> dict:
  """The robustness table of a Stable Signature run: num samples of the tuned generator
  against the original generator's samples from the same latents and num real test images,
  under every attack; the binomial null check; quality cost (PSNR/SSIM tuned vs original
  from the same latents, Frechet distance change). Writes OUT/signature.json, signature.png,
  samples.png."""
  from genvision_jax.evaluation import runner as ev_runner  # pylint: disable=g-import-not-at-top
  from genvision_jax.provenance import bits as bits_lib  # pylint: disable=g-import-not-at-top
  say = _say(verbose)
  attacks = _default_attacks(attacks, regen_run)
  tic = time.time()
  config, method, state, wm, key = load_signature_run(workdir)
  regen = _regen_attack(attacks, regen_run, wm.image_shape)
  t0 = time.time()
  keyed = np.asarray(ev_runner._generate(method, state, num, seed, True), np.float32)  # pylint: disable=protected-access
  clean = np.asarray(ev_runner._generate(method.generator, state.generator, num, seed, True),  # pylint: disable=protected-access
                     np.float32)
  gen_seconds = time.time() - t0
  real = _real_images(config, num)
  quality = _quality(keyed, clean, config)
  null = {name: bits_lib.null_check(wm.score(images, key)['matches'], wm.num_bits)
          for name, images in (('unkeyed', clean), ('real', real))}
  t_det = time.time()

  def score(images):
    s = wm.score(images, key)
    return {**s, 'score': s['matches'].astype(np.float64)}

  table = _attack_table(score, {'keyed': keyed, 'unkeyed': clean, 'real': real}, attacks, fpr,
                        seed, regen, num_resamples, say)
  result = {'run': os.path.abspath(workdir),
            'generator_run': config.signature.generator,
            'extractor_run': config.signature.extractor,
            'watermark': {'scheme': 'signature', 'num_bits': wm.num_bits,
                          'key': bits_lib.key_string(key),
                          'key_seed': int(config.signature.key_seed),
                          'threshold_matches': statistics.bit_threshold(wm.num_bits, fpr)},
            'num': num, 'fpr': fpr, 'seed': seed,
            'regen_run': regen_run and os.path.abspath(regen_run), 'quality': quality,
            'null_check': null, 'attacks': table,
            'seconds': {'generate_both': gen_seconds, 'detect_all': time.time() - t_det,
                        'total': time.time() - tic},
            'command': (f'genvision watermark evaluate --scheme=signature --workdir={workdir} '
                        f'--out={out} --num={num} --fpr={fpr:g} --seed={seed}'
                        + (f' --regen_run={regen_run}' if regen_run else ''))}
  _write_evaluation(out, 'signature', 'Stable Signature', result, clean, keyed)
  return result


def signature_embed(workdir: str, out: str, num: int = 16, seed: int = 0) -> int:
  """num samples of a Stable Signature run (they carry its key) as OUT/images/000.png ...,
  OUT/grid.png and OUT/watermark.json."""
  from genvision_jax.evaluation import runner as ev_runner  # pylint: disable=g-import-not-at-top
  from genvision_jax.provenance import bits as bits_lib  # pylint: disable=g-import-not-at-top
  from genvision_jax.training import rundir  # pylint: disable=g-import-not-at-top
  _, method, state, _, key = load_signature_run(workdir)
  images = np.asarray(ev_runner._generate(method, state, num, seed, True))  # pylint: disable=protected-access
  _save_images(out, images)
  rundir.write_json(os.path.join(out, 'watermark.json'),
                    {'scheme': 'signature', 'run': os.path.abspath(workdir), 'num': num,
                     'seed': seed, 'key': bits_lib.key_string(key)}, indent=1)
  return num
