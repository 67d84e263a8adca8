"""`genvision evaluate` and `genvision compare`: the evaluation driver around the pure metrics.

evaluate_run(workdir) samples the run's latest checkpoint, embeds samples and reference
images with a feature network, and writes

  DIR/eval/metrics.json      {'protocol': {...}, 'metrics': {name: value},
                              'intervals': {name: [low, high]}, 'details': {...}}
  DIR/eval/per_example.npz   per-reference-example values (paired across runs evaluated on the
                             same reference set) and bootstrap replicates of set-level metrics
  DIR/eval/samples.png, DIR/eval/class_histogram.png

Metric names carry the feature network: `digits_cnn/fd` is the Fréchet distance in the
features of the shipped digit classifier (offline; comparable only with other `digits_cnn`
numbers); `inception/fd` is FID proper (pytorch-fid's network and weights, given by path).

Protocol (recorded in metrics.json): `num_samples` generated samples (default 5,000; 1,000 for
diffusion runs, see `DIFFUSION_NUM_SAMPLES`); KID as mean and std over `kid_subsets` = 100
subsets of `kid_subset_size` rows (default min(1000, N/2); larger than N/2 is refused); the
Inception-Score formula on `is_splits` = 10 splits of the samples shuffled with the seed;
precision, recall, density and coverage with one `nearest_k` = 5; the Inception resize mode
(`inception_resize`: pytorch_fid or clean). `details[<net>/fd_rank_deficient]` is true when the
Fréchet distance came from no more samples than feature dimensions (it also warns).

compare(paths) reads those files for runs, or for groups of runs (a directory whose
subdirectories are the seeds of one model, as `genvision train --seeds=N` writes them), and
tests the differences: across seeds with Welch's t-test (Lucic et al. 2018 compare
distributions over seeds), within single runs with the paired bootstrap of the notes on
per-example values, one-sided in the direction of the observed winner with the two-sided p
beside it.

Reference features are cached by content hash (images + feature weights) in
$GENVISION_CACHE (default ~/.cache/genvision_jax).
"""

import hashlib
import json
import os
import time
import warnings

import jax
import numpy as np
import scipy.linalg

from genvision_jax import features as features_lib
from genvision_jax.evaluation import likelihoods
from genvision_jax.evaluation import metrics as M
from genvision_jax.evaluation import significance as S

FEATURE_NETWORKS = features_lib.names()
# Inception input resizing: pytorch-fid's bilinear F.interpolate, or clean-fid's PIL bicubic.
RESIZE_MODES = ('pytorch_fid', 'clean')
# Generated samples when --num_samples is not given: 5,000 where generation takes seconds (GAN,
# VAE); 1,000 for diffusion runs: DDIM-50 sampling of experiments/ddpm_mnist.py's U-Net took
# 0.89-1.21 s per image on the shared 2-core CPU under load (chunks of 500 and 100, load
# average ~17-23; 0.31 s per image when quieter: 1,000 in 307 s), so 1,000 samples take 5-20
# min there and 5,000 would take 25-100 min. KID then uses subsets of 500.
DEFAULT_NUM_SAMPLES = 5000
DIFFUSION_NUM_SAMPLES = 1000
SLOW_SAMPLING_METHODS = {'diffusion': DIFFUSION_NUM_SAMPLES,
                         'latent_diffusion': DIFFUSION_NUM_SAMPLES}
DEFAULT_NEAREST_K = 5       # one k for precision, recall, density and coverage (prdc's)
DEFAULT_KID_SUBSETS = 100   # torch-fidelity's kid_subsets
DEFAULT_IS_SPLITS = 10      # torch-fidelity's isc_splits
METRIC_GROUPS = ('fd', 'kid', 'manifold', 'c2st', 'score', 'modes', 'likelihood', 'identity')
# Groups computed without the generated samples of the feature metrics.
OWN_SAMPLES = ('likelihood', 'identity')
EVAL_DIR = 'eval'
# Direction of each metric (for tests and tables); names are matched on their last part.
HIGHER_IS_BETTER = {
    'fd': False, 'kid': False, 'precision': True, 'recall': True, 'density': True,
    'coverage': True, 'c2st_accuracy': False, 'score': True, 'classes_covered': True,
    'kl_data_to_samples': False, 'kl_samples_to_data': False, 'iwae': True, 'elbo': True,
    'bits_per_dim': False, 'nn_distance': False, 'error_rate': False, 'identity_generated': True,
    'psnr': True, 'ssim': True, 'accuracy': True, 'correct': True, 'mse': False,  # i2i
    'ciede2000': False, 'colourfulness_error': False,  # image-to-image, colour (colour.py)
    'faithful': True, 'digit_accuracy': True, 'size_agreement': True,  # text-to-image
    'thickness_agreement': True, 'slant_agreement': True,              # (faithfulness.py)
    'total': False, 'content': False, 'style': False, 'tv': False,  # style transfer's losses
}
# Metrics tabulated by compare without a better direction (closer to the target's is better).
DESCRIPTIVE = ('colourfulness', 'colourfulness_target')


class EvaluationError(ValueError):
  """An evaluation cannot run as asked; the message names the cause and the fix."""


def cache_dir() -> str:
  return os.path.expanduser(os.environ.get('GENVISION_CACHE', '~/.cache/genvision_jax'))


def default_num_samples(method_name: str) -> int:
  """--num_samples when not given: `DEFAULT_NUM_SAMPLES`, or the smaller count of a method with
  slow sampling (`SLOW_SAMPLING_METHODS`)."""
  return SLOW_SAMPLING_METHODS.get(method_name, DEFAULT_NUM_SAMPLES)


def metric_settings(num_samples: int, groups, seed: int, nearest_k: int = DEFAULT_NEAREST_K,
                    kid_subset_size: int | None = None, kid_subsets: int = DEFAULT_KID_SUBSETS,
                    is_splits: int = DEFAULT_IS_SPLITS,
                    reference_examples: int | None = None) -> dict:
  """The checked settings of the set-level metrics for `num_samples` generated samples, as
  recorded in the protocol of metrics.json (and passed to `feature_metrics`).

  KID: `kid_subsets` subsets of `kid_subset_size` rows (default min(1000, N/2), N the smaller of
  `num_samples` and `reference_examples`); a size above N/2 is refused, not shrunk. IS: the samples are shuffled (seeded) and cut into `is_splits`
  splits, as torch-fidelity. Precision/recall/density/coverage: one `nearest_k`.
  """
  out = {}
  if 'kid' in groups:
    rows = min(num_samples, reference_examples or num_samples)
    size = (M.default_kid_subset_size(rows) if kid_subset_size is None
            else int(kid_subset_size))
    try:
      M.check_kid_subset_size(size, rows)
    except ValueError as e:
      raise EvaluationError(f'{e} (--kid_subset_size, --num_samples)') from None
    if kid_subsets < 2:
      raise EvaluationError(f'--kid_subsets={kid_subsets}: a std over subsets needs at least 2')
    out.update(kid_subsets=int(kid_subsets), kid_subset_size=size)
  if 'score' in groups:
    if not 1 <= is_splits <= num_samples // 2:
      raise EvaluationError(f'Inception Score splits={is_splits} must be between 1 and half '
                            f'the {num_samples} samples')
    out.update(is_splits=int(is_splits), is_split_size=num_samples // is_splits,
               is_shuffle='numpy RandomState(seed).permutation', is_shuffle_seed=int(seed))
  if 'manifold' in groups:
    if not 1 <= nearest_k < num_samples:
      raise EvaluationError(f'--nearest_k={nearest_k} must be between 1 and the number of '
                            f'samples - 1 ({num_samples - 1})')
    out['nearest_k'] = int(nearest_k)
  return out


def feature_network(name: str, inception_weights: str | None, resize: str = 'pytorch_fid',
                    feature_weights: dict | None = None):
  """(network, key of its feature output, fingerprint of its weights) for a registered feature
  network (genvision_jax.features); the network maps images in [-1, 1] to a dict of outputs.
  `feature_weights`: {name: path} (--feature_weights); `inception_weights`: --inception_weights."""
  try:
    net = features_lib.load(name, features_lib.weights_for(name, feature_weights,
                                                           inception_weights),
                            **({'resize': resize} if name == 'inception' else {}))
  except features_lib.FeatureError as e:
    raise EvaluationError(str(e)) from None
  return net, 'features', net.fingerprint


def reference_features(name: str, net, feature_key: str, fingerprint: str,
                       images_uint8: np.ndarray, to_model_range,
                       variant: str = '') -> dict[str, np.ndarray]:
  """Features and logits of the reference images, computed once per (images, weights
  `fingerprint`, `variant`: the input pipeline, e.g. the Inception resize mode). A network
  without a classifier head gives logits of shape [N, 0]."""
  key = hashlib.sha256()
  key.update(images_uint8.tobytes())
  key.update(str(images_uint8.shape).encode())
  key.update(fingerprint.encode())
  if variant:
    key.update(variant.encode())
  path = os.path.join(cache_dir(), 'reference', f'{name}_{key.hexdigest()[:24]}.npz')
  if os.path.isfile(path):
    try:
      with np.load(path, allow_pickle=False) as f:
        return {'features': f['features'], 'logits': f['logits']}
    except (OSError, ValueError, KeyError):
      pass  # unreadable cache entry: recompute and overwrite it
  out = net(to_model_range(images_uint8))
  result = {'features': out[feature_key], 'logits': logits_of(out)}
  os.makedirs(os.path.dirname(path), exist_ok=True)
  tmp = path + f'.tmp{os.getpid()}.npz'
  np.savez(tmp, **result)
  os.replace(tmp, path)
  return result


def logits_of(out: dict) -> np.ndarray:
  """A network's logits, or [N, 0] for a network without a classifier head."""
  if 'logits' in out:
    return out['logits']
  return np.zeros((len(next(iter(out.values()))), 0), np.float32)


def _generate(method, state, num: int, seed: int, use_ema: bool, chunk: int = 500,
              sampling: dict | None = None):
  from genvision_jax.training import generate_images  # pylint: disable=g-import-not-at-top
  import inspect  # pylint: disable=g-import-not-at-top
  kwargs = ({'use_ema': use_ema} if 'use_ema' in inspect.signature(method.generate).parameters
            else {})
  kwargs.update(sampling or {})
  parts = []
  for i, start in enumerate(range(0, num, chunk)):
    parts.append(generate_images(method, state, min(chunk, num - start), seed * 1000 + i,
                                 **kwargs))
  return np.concatenate(parts)


def center_crop(images, size: int):
  """The central size x size window of NHWC images (32 px padded digits -> the classifier's 28)."""
  top = (images.shape[1] - size) // 2
  left = (images.shape[2] - size) // 2
  return images[:, top:top + size, left:left + size]


def _nearest_distances(reference, generated, block: int = 2048) -> np.ndarray:
  """Distance from each reference feature vector to its nearest generated one, [N_ref]."""
  g2 = np.sum(generated**2, axis=1)
  out = []
  for i in range(0, len(reference), block):
    r = reference[i:i + block]
    d2 = np.sum(r**2, axis=1)[:, None] + g2[None, :] - 2.0 * r @ generated.T
    out.append(np.sqrt(np.maximum(d2.min(axis=1), 0.0)))
  return np.concatenate(out)


def feature_metrics(prefix: str, real: dict, fake: dict, groups, rng_seed: int,
                    bootstrap: int, num_classes: int, real_labels=None,
                    settings: dict | None = None):
  """Metrics of generated vs reference features (+ logits): (values, intervals, per-example,
  details), names prefixed with the feature network. `settings`: `metric_settings` (defaults
  for the number of generated samples when None)."""
  values, intervals, per_example, details = {}, {}, {}, {}
  rf, ff = np.asarray(real['features'], np.float64), np.asarray(fake['features'], np.float64)
  if settings is None:
    settings = metric_settings(len(ff), groups, rng_seed)
  if 'fd' in groups:
    values[f'{prefix}/fd'] = M.frechet_distance_from_features(rf, ff)  # warns if rank-deficient
    details[f'{prefix}/fd_rank_deficient'] = bool(min(len(rf), len(ff)) <= rf.shape[1])
    if bootstrap:
      mu_r, sigma_r = M.feature_statistics(rf)
      fd = lambda f: M.frechet_distance(mu_r, sigma_r, *M.feature_statistics(f))
      # normal interval: resampling shifts a plug-in distance up (S.bootstrap_interval)
      b = S.bootstrap_interval(fd, ff, num_resamples=bootstrap, rng=rng_seed, method='normal')
      intervals[f'{prefix}/fd'] = [max(b.low, 0.0), b.high]
      per_example[f'{prefix}/fd_bootstrap'] = b.values
  if 'kid' in groups:
    try:
      kid = M.kernel_inception_distance(rf, ff, num_subsets=settings['kid_subsets'],
                                        subset_size=settings['kid_subset_size'], rng=rng_seed)
    except ValueError as e:
      raise EvaluationError(str(e)) from None
    values[f'{prefix}/kid'] = kid.mean
    values[f'{prefix}/kid_std'] = kid.std
  if 'manifold' in groups:
    manifold = M.manifold_metrics(rf, ff, k=settings['nearest_k'])
    values.update({f'{prefix}/{k}': v for k, v in manifold._asdict().items()})
    per_example[f'{prefix}/nn_distance'] = _nearest_distances(rf, ff)
  if 'c2st' in groups:
    c2st = M.classifier_two_sample_test(rf, ff, rng=rng_seed)
    values[f'{prefix}/c2st_accuracy'] = c2st.accuracy
    values[f'{prefix}/c2st_p_value'] = c2st.p_value
  if 'score' in groups and np.shape(fake['logits'])[-1]:  # a network with a classifier head
    score = M.inception_score(fake['logits'], splits=settings['is_splits'],
                              rng=np.random.RandomState(rng_seed))
    values[f'{prefix}/score'] = score.mean
    values[f'{prefix}/score_std'] = score.std
  if 'modes' in groups and num_classes and real_labels is not None and prefix == 'digits_cnn':
    data_dist = np.bincount(real_labels, minlength=num_classes) / len(real_labels)
    modes = M.mode_coverage(np.argmax(fake['logits'], -1), data_dist, min_count=1)
    values[f'{prefix}/classes_covered'] = int(modes.num_covered)
    values[f'{prefix}/kl_data_to_samples'] = modes.kl_data_to_samples
    values[f'{prefix}/kl_samples_to_data'] = modes.kl_samples_to_data
    details['class_histogram'] = modes.histogram.tolist()
    details['data_class_distribution'] = data_dist.tolist()
  return values, intervals, per_example, details


def evaluate_run(workdir: str, num_samples: int | None = None, metrics=None, features=None,
                 seed: int = 0, use_ema: bool = True, step: int | None = None,
                 reference_split: str = 'train', inception_weights: str | None = None,
                 iwae_samples: int = 64, bootstrap: int = 200, verbose: bool = True,
                 bpd_examples: int = 100, nearest_k: int = DEFAULT_NEAREST_K,
                 kid_subset_size: int | None = None, kid_subsets: int = DEFAULT_KID_SUBSETS,
                 is_splits: int = DEFAULT_IS_SPLITS, resize: str = 'pytorch_fid',
                 prior: dict | None = None, guidance: float | None = None,
                 guidance_sweep=None, sweep_samples: int | None = None,
                 feature_weights: dict | None = None, sampling: dict | None = None,
                 nfe_sweep=None, sweep_samplers=None) -> dict:
  """Evaluates a run directory; writes DIR/eval/ and returns the metrics.json content.

  features: names registered in genvision_jax.features; feature_weights: {name: weight file}
  for the networks that need one (inception also takes `inception_weights`).

  prior: image-to-image runs only, an unconditional diffusion run guided by the task's
  measurements as one more baseline (`translation.load_prior`).

  sampling: diffusion runs, {'sampler', 'steps'} of the samples (default: the run's config).
  nfe_sweep: diffusion runs, budgets of network evaluations; every sampler of `sweep_samplers`
  (default all the process takes) draws `sweep_samples` (default 500) samples at each, and
  eval/nfe_sweep.json / .png record FD and precision/recall against NFE (`nfe_sweep`).

  num_samples None: `default_num_samples` of the run's method. nearest_k, kid_subset_size,
  kid_subsets, is_splits: see `metric_settings`; resize: the Inception input resize
  (`RESIZE_MODES`). All are recorded in the protocol."""
  from genvision_jax import data as data_lib  # pylint: disable=g-import-not-at-top
  from genvision_jax import viz  # pylint: disable=g-import-not-at-top
  from genvision_jax.training import load_run  # pylint: disable=g-import-not-at-top
  groups = tuple(metrics or METRIC_GROUPS)
  unknown = sorted(set(groups) - set(METRIC_GROUPS))
  if unknown:
    raise EvaluationError(f'unknown metrics {unknown}; choose from {", ".join(METRIC_GROUPS)}')
  if num_samples is not None and num_samples < 10:
    raise EvaluationError(f'--num_samples must be >= 10 (got {num_samples})')
  if resize not in RESIZE_MODES:
    raise EvaluationError(f'--resize={resize!r}: use one of {", ".join(RESIZE_MODES)}')
  unknown = sorted(set(features or ()) - set(FEATURE_NETWORKS))
  if unknown:
    raise EvaluationError(f'unknown feature networks {unknown}; use one of '
                          f'{", ".join(FEATURE_NETWORKS)}')
  tic = time.time()
  say = print if verbose else (lambda *a, **k: None)
  config, method, state = load_run(workdir, step)
  if metrics and 'identity' in groups and not hasattr(method, 'paired_latents'):
    raise EvaluationError(f"--metrics=identity measures SD-GAN's identity preservation; this "
                          f"run's method is {config.method!r} (drop 'identity')")
  if hasattr(method, 'translate'):  # image-to-image: the test split, the run and its baselines
    from genvision_jax.evaluation import translation  # pylint: disable=g-import-not-at-top
    if metrics or num_samples is not None:
      raise EvaluationError(f'{workdir} holds an image-to-image run ({config.method!r}): it is '
                            'evaluated on its whole test split with one protocol (PSNR, SSIM, '
                            'accuracy, FD, precision/recall); drop --metrics and --num_samples')
    return translation.evaluate_translation(  # features: translation.feature_networks
        workdir, config, method, state, seed=seed, use_ema=use_ema, bootstrap=bootstrap,
        features=features, nearest_k=nearest_k, say=say, inception_weights=inception_weights,
        prior=prior, feature_weights=feature_weights)
  if config.method == 'fast_style':  # perceptual losses of the stylized test split
    from genvision_jax.evaluation import style_eval  # pylint: disable=g-import-not-at-top
    if metrics or num_samples is not None or features or prior:
      raise EvaluationError(f'{workdir} holds a fast style-transfer run: it is evaluated on its '
                            'whole test split with one protocol (content, style and TV losses '
                            'in its own feature network); drop --metrics, --num_samples, '
                            '--features and --prior')
    return style_eval.evaluate_fast_style(workdir, config, state, bootstrap, seed, say)
  text_to_image = getattr(method, 'conditioning_key', None) == 'tokens'
  if sweep_samples is not None and (not (guidance_sweep or nfe_sweep) or sweep_samples < 10):
    raise EvaluationError(f'--sweep_samples sets the samples of each --guidance_sweep or '
                          f'--nfe_sweep point: give it with one of them and >= 10 (got '
                          f'{sweep_samples})')
  sweep_points = None
  if sampling or nfe_sweep or sweep_samplers:
    if not hasattr(method, 'nfe') or text_to_image:
      raise EvaluationError(f'--sampler, --steps, --nfe_sweep and --sweep_samplers apply to '
                            f'diffusion runs; {workdir} holds a {config.method!r} run')
    if sweep_samplers and not nfe_sweep:
      raise EvaluationError('--sweep_samplers chooses the samplers of --nfe_sweep: give both')
    from genvision_jax.evaluation import nfe_sweep as sweep_lib  # pylint: disable=g-import-not-at-top
    try:
      if sampling:
        method.sample_settings(**sampling)
      if nfe_sweep:
        sweep_points = sweep_lib.check_settings(
            method, nfe_sweep, sweep_samplers or sweep_lib.default_samplers(method))
    except ValueError as e:
      raise EvaluationError(str(e)) from None
  if (guidance is not None or guidance_sweep) and not text_to_image:
    raise EvaluationError(f'--guidance and --guidance_sweep apply to text-to-image runs; '
                          f'{workdir} holds a {config.method!r} run')
  if text_to_image:  # prompt faithfulness and quality on the test (and held-out) captions
    from genvision_jax.evaluation import faithfulness  # pylint: disable=g-import-not-at-top
    if metrics or prior or (features and tuple(features) != (faithfulness.FEATURES,)):
      raise EvaluationError(f'{workdir} holds a text-to-image run ({config.method!r}): it is '
                            'evaluated with one protocol (faithfulness, attributes, FD and '
                            'precision/recall in digits_cnn_slots features); drop --metrics, '
                            '--features and --prior')
    if num_samples is not None and num_samples < 10:
      raise EvaluationError(f'--num_samples must be >= 10 (got {num_samples})')
    return faithfulness.evaluate_text_to_image(
        workdir, config, method, state, num_samples=num_samples, seed=seed, use_ema=use_ema,
        bootstrap=bootstrap, nearest_k=nearest_k, say=say, guidance=guidance,
        guidance_sweep=guidance_sweep, sweep_samples=sweep_samples)
  if prior:
    raise EvaluationError(f'--prior guides a diffusion prior with the measurements of an '
                          f'image-to-image task; {workdir} holds a {config.method!r} run, which '
                          'has no task: pass --workdir=I2I_RUN (pix2pix, palette)')
  num_samples_default = num_samples is None
  if num_samples_default:
    num_samples = default_num_samples(config.method)
  d = config.data
  ref = data_lib.load_split(d.name, reference_split, d.image_size, d.data_dir or None,
                            d.resize_method)
  settings = metric_settings(num_samples, groups, seed, nearest_k, kid_subset_size, kid_subsets,
                             is_splits, reference_examples=ref.num_examples)
  ref_arrays = ref.arrays()
  if features is None:
    features = ('digits_cnn',) if ref.image_shape[-1] == 1 else ('inception',)

  values, intervals, per_example, details = {}, {}, {}, {}
  likelihood_protocol = {}
  gen_seconds = 0.0
  if set(groups) - set(OWN_SAMPLES):
    # The feature networks first: a missing weight file is refused before minutes of sampling.
    nets = {name: feature_network(name, inception_weights, resize, feature_weights)
            for name in features}
    t0 = time.time()
    images = _generate(method, state, num_samples, seed, use_ema, sampling=sampling)
    gen_seconds = time.time() - t0
    say(f'generated {num_samples} samples in {gen_seconds:.1f}s')
    out_dir = os.path.join(workdir, EVAL_DIR)
    os.makedirs(out_dir, exist_ok=True)
    viz.save_image_grid(images[:64], os.path.join(out_dir, 'samples.png'))
    for name in features:
      t0 = time.time()
      net, key, weights = nets[name]
      ref_images, fake_images = ref_arrays['image'], images
      if name == 'digits_cnn' and d.resize_method == 'pad' and d.image_size > 28:
        # Digits padded onto a larger canvas: crop the 28 px centre the classifier knows.
        ref_images, fake_images = center_crop(ref_images, 28), center_crop(images, 28)
      real = reference_features(name, net, key, weights, ref_images, data_lib.to_model_range,
                                variant=f'resize={resize}' if name == 'inception' else '')
      out = net(fake_images)
      fake = {'features': out[key], 'logits': logits_of(out)}
      with warnings.catch_warnings():  # sqrtm of ReLU features' (singular) covariances
        warnings.simplefilter('ignore', scipy.linalg.LinAlgWarning)
        v, i, p, det = feature_metrics(name, real, fake, groups, seed, bootstrap,
                                       ref.num_classes,
                                       ref_arrays['label'] if ref.num_classes else None,
                                       settings=settings)
      values.update(v)
      intervals.update(i)
      per_example.update(p)
      details.update(det)
      say(f'{name}: features and metrics in {time.time() - t0:.1f}s')
  if 'identity' in groups and hasattr(method, 'paired_latents'):
    v, i, p, det = _identity_metrics(method, state, ref_arrays, d, num_samples, seed, use_ema)
    values.update(v)
    intervals.update(i)
    per_example.update(p)
    details.update(det)
    say('identity preservation (same digits_cnn class): ' + ', '.join(
        f'{k.split("_")[-1]} {x:.3f}' for k, x in v.items()))
  if 'likelihood' in groups and hasattr(method, 'log_importance_weights'):
    t0 = time.time()
    test = data_lib.load_split(d.name, 'test', d.image_size, d.data_dir or None,
                               d.resize_method).arrays()
    # The test digits as the likelihood sees them (binarized reproducibly with a recorded seed).
    x, likelihood_protocol = method.likelihood_data(data_lib.to_model_range(test['image']), seed)
    x = np.asarray(x)
    log_w = likelihoods.vae_log_weights(method, state, x, iwae_samples, seed)
    iwae, elbo = M.iwae_bound(log_w), M.elbo_from_log_weights(log_w)
    values['iwae'], values['elbo'] = float(iwae.mean()), float(elbo.mean())
    per_example['iwae'], per_example['elbo'] = iwae, elbo
    if likelihood_protocol['discrete']:  # a probability of discrete data: bits/dim
      for name, nats in (('iwae', iwae), ('elbo', elbo)):
        per_example[f'{name}/bits_per_dim'] = M.bits_per_dim(nats, int(np.prod(x.shape[1:])))
        values[f'{name}/bits_per_dim'] = float(per_example[f'{name}/bits_per_dim'].mean())
    likelihood_protocol.update(iwae_samples=iwae_samples, split='test', examples=len(x),
                               units='iwae, elbo: nats per image; */bits_per_dim: bits/dim')
    details['iwae_samples'] = iwae_samples
    say(f'IWAE (k={iwae_samples}) and ELBO on {len(x)} test images in {time.time() - t0:.1f}s')
  if 'likelihood' in groups and config.method == 'diffusion':
    total, bpd_protocol = _diffusion_bits_per_dim(workdir, int(jax.device_get(state.step)),
                                                  use_ema, seed, bpd_examples, say)
    likelihood_protocol = {k: bpd_protocol.get(k) for k in (
        'estimator', 't_samples', 'network_calls_per_example', 'how', 'split', 'num_examples',
        'process')}
    values['bits_per_dim'] = float(total.mean())
    half = 1.96 * total.std(ddof=1) / np.sqrt(len(total)) if len(total) > 1 else 0.0
    intervals['bits_per_dim'] = (values['bits_per_dim'] - half, values['bits_per_dim'] + half)
    per_example['bits_per_dim'] = total
    details['bits_per_dim_examples'] = len(total)

  if sweep_points:
    name = features[0]
    net, key, weights = feature_network(name, inception_weights, resize, feature_weights)
    real = reference_features(name, net, key, weights, ref_arrays['image'],
                              data_lib.to_model_range,
                              variant=f'resize={resize}' if name == 'inception' else '')
    n_sweep = sweep_samples or 500
    record = sweep_lib.run(
        method, state, sweep_points,
        lambda kw: _generate(method, state, n_sweep, seed, use_ema, sampling=kw),
        lambda images: net(images)[key], real['features'], nearest_k, say)
    record['protocol'] = {'samples': n_sweep, 'seed': seed, 'features': name,
                          'checkpoint_step': int(jax.device_get(state.step)),
                          'reference_split': reference_split, 'nearest_k': nearest_k}
    out_dir = os.path.join(workdir, EVAL_DIR)
    os.makedirs(out_dir, exist_ok=True)
    from genvision_jax.training import rundir  # pylint: disable=g-import-not-at-top
    rundir.write_json(os.path.join(out_dir, 'nfe_sweep.json'), record, indent=1)
    sweep_lib.figure(record, f'{os.path.basename(os.path.abspath(workdir))}: {n_sweep} samples '
                     f'per point, {name} features', os.path.join(out_dir, 'nfe_sweep.png'))
    details['nfe_sweep'] = {'recommended': record['recommended'],
                            'nfe_to_reach_reference': record['nfe_to_reach_reference']}
    say(f"nfe sweep: recommended {record['recommended']} "
        f"({record['nfe_to_reach_reference'].get(record['recommended'], {})})")
  if hasattr(method, 'nfe') and not text_to_image:
    details['sampling'] = dict(zip(('sampler', 'steps'), _sampling_of(method, sampling)))
    details['sampling']['nfe'] = method.nfe(**(sampling or {}))

  result = {
      'protocol': {
          'workdir': os.path.abspath(workdir), 'checkpoint_step': int(jax.device_get(state.step)),
          'weights': 'ema' if use_ema and 'use_ema' in _generate_params(method) else 'raw',
          'num_samples': num_samples, 'num_samples_default': num_samples_default,
          'seed': seed, 'dataset': d.name, **settings,
          **({'inception_resize': resize} if 'inception' in features else {}),
          'reference_split': reference_split, 'reference_examples': ref.num_examples,
          'feature_networks': list(features), 'metrics': list(groups),
          'bootstrap_resamples': bootstrap, 'method': config.method,
          'seconds': round(time.time() - tic, 1), 'generate_seconds': round(gen_seconds, 1),
      },
      'metrics': {k: float(v) for k, v in values.items()},
      'intervals': {k: [float(a), float(b)] for k, (a, b) in intervals.items()},
      'details': details,
  }
  if likelihood_protocol:
    result['protocol']['likelihood'] = likelihood_protocol
  out_dir = os.path.join(workdir, EVAL_DIR)
  os.makedirs(out_dir, exist_ok=True)
  from genvision_jax.training import rundir  # pylint: disable=g-import-not-at-top
  rundir.write_json(os.path.join(out_dir, 'metrics.json'), result, indent=1)
  np.savez(os.path.join(out_dir, 'per_example.npz'), **per_example)
  if 'class_histogram' in details:
    _class_histogram_figure(details, os.path.join(out_dir, 'class_histogram.png'))
  return result


def _sampling_of(method, sampling: dict | None) -> tuple[str, int]:
  """(sampler, steps) a diffusion run samples with under `sampling` (config defaults)."""
  sampling = sampling or {}
  sampler = sampling.get('sampler') or method.sampler
  if sampler == 'ddpm':
    return sampler, method.num_timesteps
  return sampler, int(sampling.get('steps') or method.sample_steps)


def _identity_metrics(method, state, ref_arrays, d, num_pairs, seed, use_ema):
  """SD-GAN's identity preservation (`evaluation.identity`) with the digit classifier, on
  num_pairs pairs of each kind; real pairs from the reference split's labels."""
  from genvision_jax import data as data_lib  # pylint: disable=g-import-not-at-top
  from genvision_jax.features import digits  # pylint: disable=g-import-not-at-top
  from genvision_jax.evaluation import identity  # pylint: disable=g-import-not-at-top
  net = digits.DigitFeatures()
  crop = d.resize_method == 'pad' and d.image_size > 28  # the 28 px centre the net knows

  def classify(images):
    return np.argmax(net(center_crop(images, 28) if crop else images)['logits'], -1)
  real = data_lib.to_model_range(ref_arrays['image'])
  return identity.identity_preservation(method, state, classify, real, ref_arrays['label'],
                                        num_pairs, seed, use_ema)


def _diffusion_bits_per_dim(workdir, step, use_ema, seed, num, say):
  """(per-example bound, its protocol) in bits/dim of a diffusion run on the first `num` test
  examples: reused from `genvision bpd`'s files when they match the checkpoint, weights and
  seed, computed (and written there) otherwise with the default Monte-Carlo estimator."""
  from genvision_jax.training import diffusion_eval  # pylint: disable=g-import-not-at-top
  path = os.path.join(workdir, diffusion_eval.RESULT_FILE)
  values_path = os.path.join(workdir, diffusion_eval.PER_EXAMPLE_FILE)
  if os.path.exists(path) and os.path.exists(values_path):
    with open(path) as f:
      p = json.load(f)['protocol']
    if (p['checkpoint_step'], p['weights'], p['seed'], p['split'], p['num_examples'],
        p.get('estimator', 'exact'), p.get('t_samples_default')) == (
            step, 'ema' if use_ema else 'raw', seed, 'test', num, 'mc', True):
      say(f'bits/dim: reusing {path}')
      return np.load(values_path), p
  t0 = time.time()
  try:
    record = diffusion_eval.evaluate_bits_per_dim(workdir, num, step, use_ema, seed)
  except ValueError as e:
    raise EvaluationError(str(e)) from None
  say(f"bits/dim {record['bits_per_dim']:.4f} on {record['protocol']['num_examples']} test "
      f'examples in {time.time() - t0:.1f}s')
  return np.load(values_path), record['protocol']


def _generate_params(method):
  import inspect  # pylint: disable=g-import-not-at-top
  return inspect.signature(method.generate).parameters


def _class_histogram_figure(details, path):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  hist = np.asarray(details['class_histogram'], np.float64)
  data = np.asarray(details['data_class_distribution'])
  fig, ax = plt.subplots(figsize=(6, 3))
  ks = np.arange(len(hist))
  ax.bar(ks - 0.2, hist / max(hist.sum(), 1), 0.4, label='samples (digits_cnn class)')
  ax.bar(ks + 0.2, data, 0.4, label='reference data')
  ax.set_xticks(ks)
  ax.set_xlabel('class')
  ax.set_ylabel('fraction')
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


# ------------------------------------------------------------------------------------------
# compare


def _eval_file(run_dir: str) -> str:
  return os.path.join(run_dir, EVAL_DIR, 'metrics.json')


def load_model(path: str) -> dict:
  """{'name', 'runs': [run dirs], 'metrics': [per-run metrics dicts], 'per_example': [...]}
  for a run directory or a group directory of seeded runs."""
  path = os.path.normpath(path)
  if os.path.isfile(_eval_file(path)):
    runs = [path]
  elif os.path.isdir(path):
    runs = sorted(os.path.join(path, s) for s in os.listdir(path)
                  if os.path.isfile(_eval_file(os.path.join(path, s))))
    trained = sorted(s for s in os.listdir(path)
                     if os.path.isdir(os.path.join(path, s, 'checkpoints')))
    missing = [s for s in trained if not os.path.isfile(_eval_file(os.path.join(path, s)))]
    if missing or not runs:
      todo = missing or ([path] if os.path.isdir(os.path.join(path, 'checkpoints')) else [])
      if todo:
        raise EvaluationError(
            f'{path}: not evaluated yet ({", ".join(todo)}); run `genvision evaluate '
            f'--workdir={os.path.join(path, todo[0]) if missing else path}` first')
      raise EvaluationError(f'{path} is neither an evaluated run nor a directory of them')
  else:
    raise EvaluationError(f'{path} does not exist')
  out = {'name': os.path.basename(path), 'path': path, 'runs': runs, 'metrics': [],
         'intervals': [], 'per_example': [], 'protocol': []}
  for r in runs:
    with open(_eval_file(r)) as f:
      m = json.load(f)
    out['metrics'].append(m['metrics'])
    out['intervals'].append(m.get('intervals', {}))
    out['protocol'].append(m['protocol'])
    pe, arrays = os.path.join(r, EVAL_DIR, 'per_example.npz'), {}
    if os.path.isfile(pe):
      with np.load(pe, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    out['per_example'].append(arrays)
  return out


def higher_is_better(name: str) -> bool | None:
  return HIGHER_IS_BETTER.get(name.split('/')[-1])


def compare(paths, metric_names=None, out: str | None = None, num_resamples: int = 10_000,
            confidence: float = 0.95) -> dict:
  """Table, intervals and pairwise tests of the models at `paths`; writes a figure (and a
  JSON next to it) when `out` is given. Returns the result dict with a 'table' string."""
  if len(paths) < 1:
    raise EvaluationError('compare needs at least one run or group directory')
  models = [load_model(p) for p in paths]
  names = [m['name'] for m in models]
  if len(set(names)) < len(names):
    names = [m['path'] for m in models]
  protocols = {(p['dataset'], p['reference_split'], tuple(p['feature_networks']),
                p.get('num_samples', p.get('reference_examples')))
               for m in models for p in m['protocol']}
  common = set.intersection(*[set(k) for m in models for k in m['metrics']])
  wanted = [n for n in sorted(common)
            if higher_is_better(n) is not None or n.split('/')[-1] in DESCRIPTIVE]
  if metric_names:
    bad = sorted(set(metric_names) - common)
    if bad:
      raise EvaluationError(f'metrics {bad} are not in every evaluation; available: '
                            f'{sorted(common)}')
    wanted = list(metric_names)
  rows = {}
  for name, m in zip(names, models):
    row = {}
    for metric in wanted:
      vals = np.array([r[metric] for r in m['metrics']], np.float64)
      if len(vals) >= 2:
        s = S.seed_summary(vals, confidence=confidence)
        row[metric] = {'mean': s.mean, 'std': s.std, 'low': s.t_low, 'high': s.t_high,
                       'n': len(vals), 'interval': f't{int(confidence * 100)}', 'values':
                       vals.tolist()}
      else:
        ci = m['intervals'][0].get(metric)
        row[metric] = {'mean': float(vals[0]), 'std': None, 'n': 1,
                       'low': ci[0] if ci else None, 'high': ci[1] if ci else None,
                       'interval': 'bootstrap' if ci else None, 'values': vals.tolist()}
    rows[name] = row

  tests = []
  for i in range(len(models)):
    for j in range(i + 1, len(models)):
      a, b = models[i], models[j]
      for metric in wanted:
        va = np.array([r[metric] for r in a['metrics']])
        vb = np.array([r[metric] for r in b['metrics']])
        if len(va) >= 2 and len(vb) >= 2:
          t = S.welch_test(va, vb)
          tests.append({'a': names[i], 'b': names[j], 'metric': metric, 'test': 'welch',
                        'p_value': t.p_value if np.isfinite(t.p_value) else None,
                        'difference': t.mean_diff})
      if len(a['runs']) == 1 and len(b['runs']) == 1:  # single runs: paired bootstrap
        for key in sorted(set(a['per_example'][0]) & set(b['per_example'][0])):
          if key.endswith('_bootstrap'):
            continue
          xa, xb = a['per_example'][0][key], b['per_example'][0][key]
          if xa.shape != xb.shape:
            continue  # not the same reference examples: not paired
          tests.append(_paired_test(names[i], names[j], xa, xb, key, num_resamples))

  table = _format_table(names, wanted, rows, tests, protocols)
  result = {'models': {n: m['runs'] for n, m in zip(names, models)}, 'rows': rows,
            'tests': tests, 'table': table, 'protocols': [list(p) for p in protocols]}
  if out:
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    primary = next((w for w in wanted if w.endswith('/fd')), wanted[0] if wanted else None)
    if primary:
      by_model = {}
      for n, m in zip(names, models):
        if len(m['runs']) >= 2:
          by_model[n] = [r[primary] for r in m['metrics']]
        else:
          boot = m['per_example'][0].get(primary.replace('/fd', '/fd_bootstrap'))
          by_model[n] = list(boot) if boot is not None else [m['metrics'][0][primary]]
      S.histogram_figure(by_model, primary, out)
    with open(os.path.splitext(out)[0] + '.json', 'w') as f:
      json.dump({k: v for k, v in result.items()}, f, indent=1, default=float)
  return result


def _paired_test(name_a: str, name_b: str, xa, xb, key: str, num_resamples: int) -> dict:
  """The paired bootstrap of two single runs on per-example values, as the one-sided test of
  the model that did better on these examples over the other ('a' is the observed winner), with
  the two-sided p beside it: never the uninformative p ~ 1 of testing the loser over the
  winner."""
  hib = bool(higher_is_better(key))
  r = S.paired_bootstrap(xa, xb, num_resamples=num_resamples, higher_is_better=hib)
  if r.better == 'b':  # the same draws (same seed) with the roles swapped
    name_a, name_b = name_b, name_a
    r = S.paired_bootstrap(xb, xa, num_resamples=num_resamples, higher_is_better=hib)
  return {'a': name_a, 'b': name_b, 'metric': f'{key} (per example)', 'test': 'paired_bootstrap',
          'p_value': r.p_value, 'p_value_two_sided': r.p_value_two_sided, 'difference': r.delta,
          'better': r.better, 'winner': name_a if r.better == 'a' else None,
          'resamples': int(num_resamples)}


def _fmt_p(p: float, resolution: float | None) -> str:
  """A bootstrap p-value as printed: 'p < RESOLUTION' when no resample reached the statistic
  (p = 0 says only that p is below the test's resolution — 1/B one-sided, 2/B two-sided with B
  resamples — not that it is 0)."""
  if p == 0 and resolution:
    return f'p < {resolution:.4g}'
  return f'p = {p:.4g}'


def _fmt(x):
  if x is None:
    return '-'
  return f'{x:.4g}'


def _format_table(names, wanted, rows, tests, protocols) -> str:
  lines = []
  if len(protocols) > 1:
    lines.append('WARNING: the evaluations differ in protocol (dataset, reference split, '
                 f'feature networks, sample count): {sorted(protocols)}')
  width = max([len(n) for n in names] + [8])
  for metric in wanted:
    hib = higher_is_better(metric)
    arrow = ('(no better direction)' if hib is None else
             '(higher is better)' if hib else '(lower is better)')
    lines.append(f'{metric} {arrow}')
    for n in names:
      r = rows[n][metric]
      ci = (f'[{_fmt(r["low"])}, {_fmt(r["high"])}] {r["interval"]}' if r['low'] is not None
            else '')
      sd = f' sd {_fmt(r["std"])}' if r['std'] is not None else ''
      lines.append(f'  {n:<{width}}  {_fmt(r["mean"]):>10}  {ci}{sd}  (n={r["n"]})')
  if tests:
    lines.append('pairwise tests')
    for t in tests:
      if t['p_value'] is None:
        p = 'no test (constant over the seeds of both)'
      elif t['test'] == 'paired_bootstrap' and t['better'] == 'a':
        b = t.get('resamples')
        p = (f'{t["a"]} better: one-sided {_fmt_p(t["p_value"], b and 1 / b)}, two-sided '
             f'{_fmt_p(t["p_value_two_sided"], b and 2 / b)} ({b} resamples)')
      elif t['test'] == 'paired_bootstrap':
        b = t.get('resamples')
        p = ('no difference on these examples: two-sided '
             f'{_fmt_p(t["p_value_two_sided"], b and 2 / b)}')
      else:
        p = f'p = {t["p_value"]:.4g}'
      lines.append(f'  {t["a"]} vs {t["b"]}  {t["metric"]}: {t["test"]} {p} '
                   f'(difference a - b = {_fmt(t["difference"])})')
  return '\n'.join(lines)
