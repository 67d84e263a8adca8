"""`genvision evaluate` / `compare` / `train --seeds` through the CLI, the shipped digit
classifier, the reference-feature cache and the VAE's importance weights."""

import json
import math
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genvision_jax import configs, data, losses, methods, training
from genvision_jax.evaluation import metrics, runner
from genvision_jax.features import digits
from tests.conftest import REPO, run_main

VAE_SMOKE = 'experiments/vae_mnist.py:smoke'
FAST = ['--num_samples=60', '--bootstrap=20', '--iwae_samples=4']


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
  monkeypatch.setenv('GENVISION_CACHE', str(tmp_path / 'cache'))


def test_shipped_digit_classifier_is_accurate_on_held_out_digits(data_dir):
  """The weights file records its test accuracy; recomputing it on the test split agrees."""
  params, info = digits.load_weights()
  assert info['dataset'] == data.DEFAULT_DATASET and info['test_accuracy'] >= 0.95
  test = data.load_split(data.DEFAULT_DATASET, 'test', 28, data_dir).arrays()
  out = digits.DigitFeatures(batch_size=128)(data.to_model_range(test['image']))
  assert out['features'].shape == (len(test['label']), 128)
  accuracy = float(np.mean(np.argmax(out['logits'], -1) == test['label']))
  assert abs(accuracy - info['test_accuracy']) < 1e-6
  del params
  # 32 px padded and RGB inputs are mapped to the network's 28 px grey input.
  rgb = np.repeat(np.pad(data.to_model_range(test['image'][:3]), ((0, 0), (2, 2), (2, 2), (0, 0)),
                         constant_values=-1.0), 3, axis=-1)
  assert digits.DigitFeatures()(rgb)['logits'].shape == (3, 10)


def test_missing_classifier_weights_is_a_clear_error(tmp_path):
  with pytest.raises(FileNotFoundError, match='python -m genvision_jax.features.digits'):
    digits.load_weights(str(tmp_path / 'nope.npz'))


def test_reference_features_are_cached_by_content(tmp_path):
  net = digits.DigitFeatures(batch_size=16)
  images = np.random.default_rng(0).integers(0, 256, (20, 28, 28, 1), dtype=np.uint8)
  a = runner.reference_features('digits_cnn', net, 'features', digits.WEIGHTS, images,
                                data.to_model_range)
  files = os.listdir(tmp_path / 'cache' / 'reference')
  assert len(files) == 1
  b = runner.reference_features('digits_cnn', net, 'features', digits.WEIGHTS, images,
                                data.to_model_range)
  np.testing.assert_array_equal(a['features'], b['features'])
  images[0, 0, 0, 0] ^= 1  # other content -> another entry
  runner.reference_features('digits_cnn', net, 'features', digits.WEIGHTS, images,
                            data.to_model_range)
  assert len(os.listdir(tmp_path / 'cache' / 'reference')) == 2
  # Another input pipeline (e.g. --resize=clean for Inception) -> another entry.
  runner.reference_features('digits_cnn', net, 'features', digits.WEIGHTS, images,
                            data.to_model_range, variant='resize=clean')
  assert len(os.listdir(tmp_path / 'cache' / 'reference')) == 3


def test_vae_importance_weights_give_iwae_above_elbo():
  config = configs.load(str(REPO / VAE_SMOKE))
  method = methods.create(config, (28, 28, 1))
  state = method.create_state(jax.random.key(0))
  x = jax.random.uniform(jax.random.key(1), (5, 28, 28, 1), minval=-1)
  log_w = np.asarray(method.log_importance_weights(state, x, jax.random.key(2), 32),
                     np.float64)
  assert log_w.shape == (5, 32)
  iwae, elbo = metrics.iwae_bound(log_w), metrics.elbo_from_log_weights(log_w)
  assert np.all(iwae >= elbo)
  # k = 1 weights average to the method's own ELBO estimate (same encoder, beta = 1).
  terms = method.elbo_terms(state.params, x, jax.random.key(3))
  np.testing.assert_allclose(np.mean(elbo), float(np.mean(terms[0] - terms[1])), rtol=0.05)


def test_seeds_evaluate_and_compare_through_the_cli(tmp_path):
  group = tmp_path / 'vae'
  proc = run_main('train', f'--config={VAE_SMOKE}', f'--workdir={group}', '--seeds=2')
  assert proc.returncode == 0, proc.stderr
  seeds = sorted(os.listdir(group))
  assert seeds == ['seed_0', 'seed_1']
  assert [json.load(open(group / s / 'config.json'))['train']['seed'] for s in seeds] == [0, 1]

  # compare before evaluating: a clear error naming the command to run.
  proc = run_main('compare', str(group))
  assert proc.returncode == 2 and 'genvision evaluate --workdir=' in proc.stderr, proc.stderr

  for s in seeds:
    # In this process a warning goes to pytest's recorder, not to stderr: catch it here.
    with pytest.warns(UserWarning, match='rank-deficient'):
      proc = run_main('evaluate', f'--workdir={group / s}', *FAST)
    assert proc.returncode == 0, proc.stderr
  result = json.load(open(group / 'seed_0' / 'eval' / 'metrics.json'))
  p, m = result['protocol'], result['metrics']
  assert p['num_samples'] == 60 and p['reference_split'] == 'train'
  assert not p['num_samples_default']
  # KID on 100 subsets of half the samples (they differ: a real std), IS on 10 shuffled
  # splits of 6, one k = 5 for the manifold metrics.
  assert (p['kid_subsets'], p['kid_subset_size']) == (100, 30) and m['digits_cnn/kid_std'] > 0
  assert (p['is_splits'], p['is_split_size'], p['is_shuffle_seed']) == (10, 6, 0)
  assert p['nearest_k'] == 5 and 'inception_resize' not in p
  # 60 samples of 128-d features: a rank-deficient covariance, recorded (and warned about).
  assert result['details']['digits_cnn/fd_rank_deficient'] is True
  # A KID subset of more than half the samples is refused before any sampling.
  with pytest.raises(runner.EvaluationError, match='more than half of the 60 samples'):
    runner.evaluate_run(str(group / 'seed_0'), num_samples=60, kid_subset_size=31)
  assert p['feature_networks'] == ['digits_cnn'] and p['checkpoint_step'] == 6
  for key in ('digits_cnn/fd', 'digits_cnn/kid', 'digits_cnn/precision', 'digits_cnn/recall',
              'digits_cnn/coverage', 'digits_cnn/c2st_accuracy', 'digits_cnn/score',
              'digits_cnn/classes_covered', 'iwae', 'elbo'):
    assert key in m and np.isfinite(m[key]), key
  assert not any(k.endswith('fid') for k in m)  # domain features are never called FID
  assert m['iwae'] >= m['elbo']
  low, high = result['intervals']['digits_cnn/fd']
  assert low <= m['digits_cnn/fd'] * 1.5 and low < high
  for name in ('samples.png', 'class_histogram.png', 'per_example.npz'):
    assert (group / 'seed_0' / 'eval' / name).is_file()

  # Two single runs: paired bootstrap on per-example values; a group of seeds vs a run is
  # tabulated with its t-interval.
  out = tmp_path / 'cmp.png'
  proc = run_main('compare', str(group / 'seed_0'), str(group / 'seed_1'), f'--out={out}')
  assert proc.returncode == 0, proc.stderr
  assert 'paired_bootstrap' in proc.stdout and 'digits_cnn/fd' in proc.stdout
  assert out.is_file() and (tmp_path / 'cmp.json').is_file()
  summary = runner.compare([str(group), str(group / 'seed_0')])
  row = summary['rows']['vae']['digits_cnn/fd']
  assert row['n'] == 2 and row['interval'] == 't95' and row['low'] <= row['mean'] <= row['high']


def test_default_sample_counts_and_metric_settings():
  from genvision_jax.cli import evaluate  # pylint: disable=g-import-not-at-top
  assert evaluate.FLAGS['num_samples'].default is None   # resolved per method by the runner
  assert runner.default_num_samples('gan') == runner.default_num_samples('vae') == 5000
  assert runner.default_num_samples('diffusion') == runner.DIFFUSION_NUM_SAMPLES < 5000
  groups = runner.METRIC_GROUPS
  assert runner.metric_settings(5000, groups, seed=3) == {
      'kid_subsets': 100, 'kid_subset_size': 1000, 'is_splits': 10, 'is_split_size': 500,
      'is_shuffle': 'numpy RandomState(seed).permutation', 'is_shuffle_seed': 3,
      'nearest_k': 5}
  assert runner.metric_settings(1000, groups, 0)['kid_subset_size'] == 500
  assert runner.metric_settings(1000, groups, 0, kid_subset_size=500)['kid_subset_size'] == 500
  with pytest.raises(runner.EvaluationError, match=r'more than half of the 1000 samples'):
    runner.metric_settings(1000, groups, 0, kid_subset_size=501)
  # A reference set smaller than the generated one bounds the subsets too.
  assert runner.metric_settings(5000, groups, 0, reference_examples=900)['kid_subset_size'] == 450
  with pytest.raises(runner.EvaluationError, match='nearest_k'):
    runner.metric_settings(50, groups, 0, nearest_k=50)
  assert runner.metric_settings(50, ['fd'], 0) == {}


def test_feature_metrics_shuffle_is_splits_use_one_k_and_flag_rank_deficiency():
  rng = np.random.default_rng(0)
  real = {'features': rng.normal(size=(300, 6)), 'logits': rng.normal(size=(300, 10))}
  # Generated logits sorted by class: unshuffled splits would each hold one class (IS ~ 1).
  labels = np.repeat(np.arange(10), 20)
  fake = {'features': rng.normal(size=(200, 6)) + 0.3,
          'logits': 8.0 * np.eye(10)[labels] + rng.normal(size=(200, 10))}
  groups = ('fd', 'kid', 'manifold', 'score')
  values, _, _, details = runner.feature_metrics('f', real, fake, groups, rng_seed=4,
                                                 bootstrap=0, num_classes=0)
  shuffled = metrics.inception_score(fake['logits'], 10, rng=np.random.RandomState(4))
  assert values['f/score'] == pytest.approx(shuffled.mean, rel=1e-12)
  assert values['f/score'] > 5 > metrics.inception_score(fake['logits'], 10).mean
  k5 = metrics.manifold_metrics(real['features'], fake['features'], k=5)
  assert [values[f'f/{n}'] for n in k5._fields] == list(k5)
  kid = metrics.kernel_inception_distance(real['features'], fake['features'], 100, 100, rng=4)
  assert (values['f/kid'], values['f/kid_std']) == (kid.mean, kid.std) and kid.std > 0
  assert details['f/fd_rank_deficient'] is False
  values, _, _, details = runner.feature_metrics(
      'f', real, fake, ('manifold',), 4, 0, 0, settings={'nearest_k': 2})
  assert values['f/density'] == metrics.manifold_metrics(real['features'], fake['features'],
                                                         k=2).density
  few = {'features': fake['features'][:5], 'logits': fake['logits'][:5]}
  with pytest.warns(UserWarning, match='rank-deficient'):
    _, _, _, details = runner.feature_metrics('f', real, few, ('fd',), 0, 0, 0)
  assert details['f/fd_rank_deficient'] is True


def _fake_evaluated_run(path, nn_distance, fd):
  os.makedirs(path / 'eval')
  protocol = {'dataset': 'd', 'reference_split': 'train', 'feature_networks': ['digits_cnn'],
              'num_samples': len(nn_distance)}
  (path / 'eval' / 'metrics.json').write_text(json.dumps(
      {'protocol': protocol, 'metrics': {'digits_cnn/fd': fd}, 'intervals': {}, 'details': {}}))
  np.savez(path / 'eval' / 'per_example.npz', **{'digits_cnn/nn_distance': nn_distance})


def test_compare_of_two_runs_tests_the_observed_winner(tmp_path):
  """b is clearly better (smaller nearest-neighbour distances on every reference example):
  the table names b as the winner with a small one-sided p and the two-sided p beside it, never
  the p ~ 1 of "a better than b"."""
  rng = np.random.default_rng(0)
  base = rng.uniform(1.0, 2.0, size=200)
  _fake_evaluated_run(tmp_path / 'a', base + 0.3 + 0.05 * rng.normal(size=200), 9.0)
  _fake_evaluated_run(tmp_path / 'b', base, 5.0)
  result = runner.compare([str(tmp_path / 'a'), str(tmp_path / 'b')], num_resamples=2000)
  (test,) = [t for t in result['tests'] if t['test'] == 'paired_bootstrap']
  assert (test['a'], test['b'], test['winner'], test['better']) == ('b', 'a', 'b', 'a')
  assert test['p_value'] < 0.01 and test['p_value_two_sided'] < 0.01
  assert test['difference'] == pytest.approx(-0.3, abs=0.02)   # b - a, lower is better
  line = next(l for l in result['table'].splitlines() if 'paired_bootstrap' in l)
  assert line.startswith('  b vs a') and 'p = 1' not in line
  # no resample reached the observed gap: p is printed as below the test's resolution, 1/B
  assert test['p_value'] == 0 and test['resamples'] == 2000
  assert 'b better: one-sided p < 0.0005, two-sided p < 0.001 (2000 resamples)' in line


def test_evaluate_rejects_bad_requests(tmp_path):
  proc = run_main('evaluate', f'--workdir={tmp_path / "nothing"}')
  assert proc.returncode == 1 and 'config' in proc.stderr.lower(), proc.stderr
  with pytest.raises(runner.EvaluationError, match='unknown metrics'):
    runner.evaluate_run(str(tmp_path), metrics=['fid_typo'])
  with pytest.raises(runner.EvaluationError, match='does not exist'):
    runner.compare([str(tmp_path / 'missing')])


def test_bits_per_dim_by_hand():
  # -log p(x) / (D ln 2): 1,000 nats on 784 pixels = 1000 / (784 * 0.693147...) = 1.840172
  # bits/dim; a fair coin per binary pixel is 1 bit/dim, a uniform 8-bit pixel 8.
  np.testing.assert_allclose(
      metrics.bits_per_dim([-1000.0, -784 * math.log(2), -784 * math.log(256)], 784),
      [1.840172246, 1.0, 8.0], rtol=1e-9)


@pytest.fixture(scope='module')
def vae_run(tmp_path_factory):
  """A smoke VAE run (Bernoulli on dynamically binarized digits), trained in process."""
  workdir = tmp_path_factory.mktemp('vae_likelihood')
  training.train_and_evaluate(configs.load(str(REPO / VAE_SMOKE)), str(workdir), verbose=False)
  return workdir


def test_vae_likelihood_reports_bits_per_dim_and_names_its_protocol(vae_run):
  result = runner.evaluate_run(str(vae_run), metrics=['likelihood'], seed=3, iwae_samples=4,
                               verbose=False)
  m, p = result['metrics'], result['protocol']['likelihood']
  assert p == {'likelihood': 'bernoulli', 'binarize': 'dynamic', 'binarize_seed': 3,
               'discrete': True, 'iwae_samples': 4, 'split': 'test', 'examples': 500,
               'units': 'iwae, elbo: nats per image; */bits_per_dim: bits/dim'}
  np.testing.assert_allclose(m['iwae/bits_per_dim'], -m['iwae'] / (784 * math.log(2)),
                             rtol=1e-9)
  assert 0 < m['iwae/bits_per_dim'] <= m['elbo/bits_per_dim']
  per_example = np.load(vae_run / 'eval' / 'per_example.npz')
  assert per_example['iwae/bits_per_dim'].shape == (500,)
  # The test split is binarized reproducibly: the same seed gives the same binary digits.
  _, method, _ = training.load_run(str(vae_run))
  x = data.to_model_range(data.load_split(data.DEFAULT_DATASET, 'test', 28).arrays()['image'])
  a, b, c = (np.asarray(method.likelihood_data(x[:50], s)[0]) for s in (3, 3, 4))
  np.testing.assert_array_equal(a, b)
  assert set(np.unique(a)) == {-1.0, 1.0} and (a != c).any()


def test_vae_run_directory_from_before_binarize_loads_samples_and_evaluates(vae_run, tmp_path):
  """A config.json without data.binarize and with the Bernoulli likelihood (written by the
  code before issue 14, which trained it on grey levels) loads as 'bernoulli_grey': the same
  network and samples, its IWAE in nats only (a grey-level cross-entropy has no bits/dim)."""
  old = tmp_path / 'old_vae'
  shutil.copytree(vae_run, old)
  shutil.rmtree(old / 'eval', ignore_errors=True)
  with open(old / 'config.json') as f:
    d = json.load(f)
  del d['data']['binarize']
  with open(old / 'config.json', 'w') as f:
    json.dump(d, f)
  config, method, state = training.load_run(str(old))
  assert (config.model.likelihood, config.data.binarize) == ('bernoulli_grey', 'none')
  _, new_method, new_state = training.load_run(str(vae_run))
  rng = jax.random.key(0)
  np.testing.assert_array_equal(method.generate(state, rng, 4),
                                new_method.generate(new_state, rng, 4))
  # Its log-likelihood is the old one: Bernoulli cross-entropy on the grey levels.
  x = jax.random.uniform(jax.random.key(1), (3, 28, 28, 1), minval=-1.0)
  decoded = method.model.apply({'params': state.params}, jnp.zeros((3, 4)),
                               method=method.model.decode)
  np.testing.assert_allclose(method.log_likelihood(decoded, x),
                             losses.bernoulli_log_likelihood(decoded['logits'], (x + 1) / 2))
  result = runner.evaluate_run(str(old), metrics=['likelihood'], iwae_samples=4, verbose=False)
  assert result['protocol']['likelihood']['likelihood'] == 'bernoulli_grey'
  assert result['protocol']['likelihood']['binarize_seed'] is None
  assert np.isfinite(result['metrics']['iwae']) and not any(
      k.endswith('bits_per_dim') for k in result['metrics'])


def test_evaluate_with_a_network_without_logits_skips_the_score(vae_run):
  """--features=random (no classifier head): Fréchet distance and precision/recall in its
  768-d vector, no Inception-Score formula; an unknown network is refused before sampling."""
  result = runner.evaluate_run(str(vae_run), num_samples=40, metrics=['fd', 'manifold', 'score'],
                               features=['random'], bootstrap=0, verbose=False)
  m = result['metrics']
  assert np.isfinite(m['random/fd']) and m['random/fd'] > 0 and 0 <= m['random/recall'] <= 1
  assert not any(k.startswith('random/score') for k in m)
  assert result['protocol']['feature_networks'] == ['random']
  with pytest.raises(runner.EvaluationError, match='unknown feature networks .*vgg21.*random'):
    runner.evaluate_run(str(vae_run), features=['vgg21'], verbose=False)


def test_compare_of_the_two_text_to_image_families_on_their_committed_evaluations():
  """The README's family comparison, recomputed from results/tti/ (the evaluations of the
  diffusion and Parti runs): per-prompt correctness is the paired per-example metric, Parti is
  the observed winner on test and held-out faithfulness with the README's differences."""
  from tests.conftest import REPO  # pylint: disable=g-import-not-at-top
  root = REPO / 'results' / 'tti'
  result = runner.compare([str(root / 'diffusion_digits'), str(root / 'parti_digits')],
                          num_resamples=2000)
  tests = {t['metric']: t for t in result['tests'] if t['test'] == 'paired_bootstrap'}
  for metric, difference in (('test/faithful', 0.56), ('test_heldout/faithful', 0.334)):
    t = tests[f'{metric} (per example)']
    assert t['winner'] == 'parti_digits' and t['b'] == 'diffusion_digits'
    assert t['difference'] == pytest.approx(difference, abs=1e-9)
    assert t['p_value'] < 0.001
  per = np.load(root / 'parti_digits' / 'eval' / 'per_example.npz')
  assert per['test/faithful'].shape == (500,) and set(np.unique(per['test/faithful'])) <= {0, 1}
  assert per['test/faithful'].mean() == pytest.approx(0.942)
