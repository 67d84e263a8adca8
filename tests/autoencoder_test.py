"""Autoencoders (methods/autoencoder.py): k-sparse codes, the denoising corruptions, PCA as the
SVD subspace, a linear autoencoder reaching PCA's error, class-balanced label subsets and the
fine-tuning protocol, and the experiments/ae configs through the CLI."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from genvision_jax import configs, finetune, methods, tasks
from genvision_jax.methods.autoencoder import k_sparse
from tests.conftest import experiment, run_main


def _method(name='ae_mnist.py:smoke', shape=(28, 28, 1), **overrides):
  config = configs.load(experiment(f'ae/{name}'), overrides)
  configs.validate(config)
  return config, methods.create(config, shape)


def test_k_sparse_keeps_exactly_k_per_example_and_passes_gradients_only_through_them():
  code = jax.random.normal(jax.random.key(0), (6, 20))
  out = np.asarray(k_sparse(code, 5))
  assert np.all(np.sum(out != 0, axis=1) == 5)
  top = np.sort(np.asarray(code), axis=1)[:, -5:]  # the kept values are the 5 largest
  np.testing.assert_array_equal(np.sort(out[out != 0].reshape(6, 5), axis=1), top)
  w = jax.random.normal(jax.random.key(1), (6, 20))
  grad = np.asarray(jax.grad(lambda c: jnp.sum(k_sparse(c, 5) * w))(code))
  np.testing.assert_array_equal(grad, np.where(out != 0, np.asarray(w), 0.0))
  # Ties: still exactly k.
  assert int(np.sum(np.asarray(k_sparse(jnp.zeros((2, 8)) + 1.0, 3)) != 0)) == 6


def test_masking_noise_drops_pixels_to_black_at_the_configured_rate():
  task = tasks.default_config()
  task.update(dict(name='denoising', noise='masking', mask_prob=0.3))
  x = jax.random.uniform(jax.random.key(0), (64, 28, 28, 1), minval=-0.9, maxval=1.0)
  pair = tasks.degrade(task, x, jax.random.key(1))
  noisy, clean = np.asarray(pair['input']), np.asarray(x)
  dropped = noisy != clean
  assert np.all(noisy[dropped] == -1.0)
  n, k = dropped.size, int(dropped.sum())  # binomial test of the rate (two-sided)
  assert stats.binomtest(k, n, 0.3).pvalue > 1e-3
  again = tasks.degrade(task, x, jax.random.key(1))['input']
  np.testing.assert_array_equal(again, noisy)  # the key decides
  task.noise = 'gaussian'
  task.noise_std = 0.4
  resid = np.asarray(tasks.degrade(task, x, jax.random.key(2))['input']) - clean
  assert abs(resid.std() - 0.4) < 0.01 and abs(resid.mean()) < 0.01


def test_pca_baseline_is_the_projection_on_the_top_singular_vectors():
  """fitted_baselines' PCA (scikit-learn) equals the projection on the k leading right
  singular vectors of the centred training matrix (jnp.linalg.svd)."""
  _, m = _method('ae_mnist.py:code8,smoke')
  rng = np.random.default_rng(0)
  train = np.clip(rng.normal(0, 0.3, (300, 28, 28, 1)) @ np.ones((1, 1)), -1, 1)
  test = np.clip(rng.normal(0, 0.3, (20, 28, 28, 1)), -1, 1).astype(np.float32)
  pca = m.fitted_baselines(train)['pca']
  out = pca({'input': test, 'target': test})
  flat = train.reshape(300, -1)
  mean = flat.mean(0)
  _, _, vt = np.linalg.svd(np.asarray(jnp.asarray(flat - mean)), full_matrices=False)
  v = vt[:8].T
  expected = np.clip((test.reshape(20, -1) - mean) @ v @ v.T + mean, -1, 1)
  np.testing.assert_allclose(out.reshape(20, -1), expected, atol=1e-4)


def test_linear_autoencoder_reaches_pcas_error():
  """Baldi & Hornik: a linear autoencoder trained on the squared error spans the principal
  subspace, so its test error approaches PCA's at the same code size (here within 5 %) on
  low-rank data plus noise."""
  _, m = _method('ae_mnist.py:linear,smoke', shape=(8, 8, 1),
                 **{'optim.learning_rate': 0.01, 'model.code_dim': 4})
  rng = np.random.default_rng(1)
  basis = rng.normal(size=(6, 64)) * np.array([3, 2.5, 2, 1.5, 0.4, 0.3])[:, None]
  def draw(n):
    return np.clip(0.1 * (rng.normal(size=(n, 6)) @ basis + 0.05 * rng.normal(size=(n, 64))),
                   -1, 1).reshape(n, 8, 8, 1).astype(np.float32)
  train, test = draw(2000), draw(500)
  state = m.create_state(jax.random.key(0))
  step = jax.jit(m.train_step)
  for i in range(1500):
    idx = rng.integers(0, len(train), 256)
    state, _ = step(state, {'image': jnp.asarray(train[idx])})
  ae_mse = float(np.mean((np.asarray(m.translate(state, jnp.asarray(test))) - test)**2))
  pca_out = m.fitted_baselines(train)['pca']({'input': test, 'target': test})
  pca_mse = float(np.mean((pca_out - test)**2))
  assert pca_mse < ae_mse < 1.05 * pca_mse


def test_encode_then_decode_is_the_reconstruction():
  _, m = _method('dae_mnist.py:smoke')
  state = m.create_state(jax.random.key(0))
  x = jax.random.uniform(jax.random.key(1), (3, 28, 28, 1), minval=-1.0)
  code, logvar = m.encode(state, x)
  assert code.shape == (3, 32) and logvar is None
  np.testing.assert_allclose(m.decode(state, code), m.translate(state, x), atol=1e-6)
  with pytest.raises(ValueError, match='no prior to sample from'):
    m.generate(state, jax.random.key(0), 4)


def test_bad_autoencoder_configs_are_refused_with_the_fix():
  for overrides, message in (({'ae.sparsity': 'k_sparse', 'ae.k': 100}, 'ae.k must be'),
                             ({'ae.sparsity': 'dropout'}, 'ae.sparsity must be one of'),
                             ({'task.name': 'inpainting'}, 'an autoencoder reconstructs'),
                             ({'model.architecture': 'rnn'}, 'model.architecture')):
    config = configs.load(experiment('ae/ae_mnist.py:smoke'), overrides)
    with pytest.raises(configs.ConfigError, match=message):
      configs.validate(config)


def test_balanced_subsets():
  labels = np.repeat(np.arange(10), 50)
  for n in (10, 100, 35):
    idx = finetune.balanced_subset(labels, n, seed=3)
    counts = np.bincount(labels[idx], minlength=10)
    assert len(idx) == n == len(set(idx)) and counts.max() - counts.min() <= 1
  np.testing.assert_array_equal(finetune.balanced_subset(labels, 100, 1),
                                finetune.balanced_subset(labels, 100, 1))
  assert not np.array_equal(finetune.balanced_subset(labels, 100, 1),
                            finetune.balanced_subset(labels, 100, 2))
  with pytest.raises(ValueError, match='cannot cover 10 classes'):
    finetune.balanced_subset(labels, 5, 0)


def test_finetuning_starts_from_the_runs_encoder_and_the_baseline_from_scratch():
  """The pre-trained arm's features are the run's codes (its linear probe is scikit-learn's
  logistic regression on `encode`, refitted here independently); fine-tuning learns a task
  whose class is written in the image (a bright block per class) in both arms."""
  from sklearn.linear_model import LogisticRegression  # pylint: disable=g-import-not-at-top
  from sklearn.preprocessing import StandardScaler  # pylint: disable=g-import-not-at-top
  _, m = _method()
  state = m.create_state(jax.random.key(0))
  rng = np.random.default_rng(0)
  labels = np.repeat(np.arange(10), 30)
  images = np.clip(rng.normal(-0.8, 0.1, (300, 28, 28, 1)), -1, 1).astype(np.float32)
  for i, c in enumerate(labels):
    images[i, 7 * (c // 4):7 * (c // 4) + 7, 7 * (c % 4):7 * (c % 4) + 7] = 1.0
  data = {'image': images, 'label': labels}
  np.testing.assert_allclose(m.encoder_features(m.encoder_params(state.params), images[:5]),
                             m.encode(state, images[:5])[0], atol=1e-6)
  quiet = lambda *a: None
  probe = finetune.label_efficiency(m, state, data, data, labels=(20,), seeds=1, mode='linear',
                                    say=quiet)['results'][0]
  subset = finetune.balanced_subset(labels, 20, 0)
  feats = np.asarray(m.encode(state, images)[0], np.float64)
  scaler = StandardScaler().fit(feats[subset])
  clf = LogisticRegression(C=1.0, max_iter=5000).fit(scaler.transform(feats[subset]),
                                                    labels[subset])
  assert probe['pretrained'][0] == pytest.approx(
      np.mean(clf.predict(scaler.transform(feats)) == labels), abs=1e-9)
  tuned = finetune.label_efficiency(m, state, data, data, labels=(50,), seeds=2, steps=200,
                                    say=quiet)['results'][0]
  assert len(tuned['pretrained']) == len(tuned['scratch']) == 2
  assert min(tuned['pretrained'] + tuned['scratch']) > 0.9
  assert tuned['welch'] is not None and tuned['pretrained_summary']['n'] == 2


# ----------------------------------------------------------------------------------------------
# Through the CLI: the four configs train; evaluate, finetune and reconstruction on them.


@pytest.fixture(scope='session')
def ae_runs(tmp_path_factory):
  root = tmp_path_factory.mktemp('ae_runs')
  runs = {}
  for name in ('ae_mnist', 'dae_mnist', 'sparse_ae_mnist', 'ksparse_ae_mnist'):
    runs[name] = str(root / name)
    r = run_main('train', f'--config={experiment(f"ae/{name}.py:smoke")}',
                f'--workdir={runs[name]}')
    assert r.returncode == 0, r.stderr[-2000:]
  return runs


def test_autoencoder_runs_evaluate_finetune_and_plot(ae_runs, tmp_path, capsys):
  from genvision_jax import main  # trained through the CLI; the commands run in process

  def cli(*args):
    code = main.run(['genvision', *args])
    out = capsys.readouterr()
    return code, out.out, out.err

  dae = ae_runs['dae_mnist']
  code, out, err = cli('evaluate', f'--workdir={dae}')
  assert code == 0, err[-2000:]
  assert 'baseline/pca' in out and 'denoising curve' in out
  curve = json.load(open(os.path.join(dae, 'eval', 'denoising_curve.json')))
  assert curve['noise'] == 'gaussian' and len(curve['psnr']['pca']) == len(curve['levels'])
  assert os.path.isfile(os.path.join(dae, 'eval', 'baselines', 'pca', 'eval', 'metrics.json'))
  ae = ae_runs['ae_mnist']
  assert cli('evaluate', f'--workdir={ae}')[0] == 0
  png = tmp_path / 'recon.png'
  code, out, err = cli('reconstruction', ae, dae, f'--out={png}')
  assert code == 0, err[-2000:]
  table = json.load(open(tmp_path / 'recon.json'))
  assert set(table) == {'AE', 'DAE (gaussian 0.5; noisy input)', 'PCA'} and os.path.isfile(png)
  code, out, err = cli('finetune', f'--workdir={ae}', '--labels=10,20', '--seeds=2',
                       '--steps=5', f'--out={tmp_path / "ft"}')
  assert code == 0, err[-2000:]
  result = json.load(open(tmp_path / 'ft' / 'finetune.json'))
  assert [row['labels'] for row in result['results']] == [10, 20]
  assert 'Welch p=' in out and os.path.isfile(tmp_path / 'ft' / 'finetune.png')
  code, out, err = cli('finetune', f'--workdir={ae}', '--labels=5')
  assert code != 0 and 'cannot cover 10 classes' in err

