"""Fake-image detection, model attribution and Stable Signature: the spectral features against
closed forms, the source classifier separating two synthetic generators and surviving a
save/load, the confusion matrix by hand, Stable Signature starting at the original generator
and reducing its loss, and the CLI of `detect` and `attribute` on smoke runs."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genvision_jax import configs, methods, training
from genvision_jax.provenance import ProvenanceError, detection, forensics
from tests.conftest import experiment, run_main


def test_radial_profile_peaks_at_a_cosines_frequency():
  n = 28
  y = np.arange(n)
  for f in (3, 7, 11):
    img = np.cos(2 * np.pi * f * y / n)[None, :, None, None] * np.ones((1, n, n, 1))
    profile = detection.radial_profile(img)
    assert profile.shape == (1, n // 2 + 1)
    assert int(np.argmax(profile[0, 1:])) + 1 == f
  const = np.full((1, n, n, 1), 0.3)
  p = detection.radial_profile(const)[0]
  assert p[0] == 0.0 and np.all(p[1:] < -20)  # all power at DC


def test_dct_features_of_a_basis_image():
  from scipy import fft as sp_fft
  basis = np.zeros((8, 8))
  basis[2, 5] = 1.0
  img = sp_fft.idctn(basis, norm='ortho')[None, :, :, None]
  f = detection.dct_features(img).reshape(8, 8)
  assert np.unravel_index(np.argmax(f), f.shape) == (2, 5)
  with pytest.raises(ProvenanceError, match='unknown spectral'):
    detection.spectral_features('fourier', img)


def test_confusion_matrix_by_hand():
  m = detection.confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], 3)
  np.testing.assert_array_equal(m, [[1, 1, 0], [0, 1, 0], [1, 0, 2]])


def test_source_classifier_separates_two_generators_and_round_trips(tmp_path):
  rng = np.random.default_rng(0)
  a = np.full((64, 28, 28, 1), 0.5, np.float32) + 0.05 * rng.normal(size=(64, 28, 28, 1))
  b = np.full((64, 28, 28, 1), -0.5, np.float32) + 0.05 * rng.normal(size=(64, 28, 28, 1))
  x = np.concatenate([a, b]).astype(np.float32)
  y = np.r_[np.zeros(64), np.ones(64)].astype(np.int32)
  clf = detection.SourceClassifier(['a', 'b'], (28, 28, 1))
  history = clf.fit(x, y, steps=60, batch_size=32, log_every=20)
  assert history[-1]['loss'] < 0.5 * history[0]['loss']
  assert np.mean(np.argmax(clf.logits(x), -1) == y) == 1.0
  clf.save(str(tmp_path / 'c.npz'))
  again = detection.SourceClassifier.load(str(tmp_path / 'c.npz'))
  np.testing.assert_allclose(again.logits(x[:5]), clf.logits(x[:5]), rtol=1e-6)
  assert again.sources == ['a', 'b'] and again.info['train_steps'] == 60
  (tmp_path / 'bad.npz').write_bytes(b'not a file')
  with pytest.raises(ProvenanceError, match='not a readable classifier'):
    detection.SourceClassifier.load(str(tmp_path / 'bad.npz'))


# -- runs ---------------------------------------------------------------------------------------


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  root = tmp_path_factory.mktemp('forensics')
  out = {}
  for name, spec, overrides in (
      ('gan_a', 'dcgan_mnist.py:smoke', {}),
      ('gan_b', 'dcgan_mnist.py:smoke', {'train.seed': 1}),
      ('hidden', 'provenance/hidden_mnist.py:smoke', {'hidden.warmup_steps': 0})):
    out[name] = str(root / name)
    training.train_and_evaluate(configs.load(experiment(spec), overrides), out[name],
                                verbose=False)
  return out


def test_signature_starts_at_the_generator_and_learns_the_key(runs):
  config = configs.load(experiment('provenance/signature_mnist.py:smoke'), {
      'signature.generator': runs['gan_a'], 'signature.extractor': runs['hidden']})
  configs.validate(config)
  frozen = training.loop.load_frozen_runs(config)
  method = methods.create(config, (28, 28, 1), 10, frozen=frozen)
  state = method.create_state(jax.random.key(0))
  z = jax.random.normal(jax.random.key(1), (4, method.latent_dim))
  np.testing.assert_array_equal(method.decode(state, z),
                                frozen['generator'].method.decode(
                                    jax.tree.map(jnp.asarray, frozen['generator'].state), z))
  step = jax.jit(method.train_step)
  batch = {'image': jnp.zeros((16, 28, 28, 1))}
  state, first = step(state, batch)
  for _ in range(40):
    state, metrics = step(state, batch)
  assert float(metrics['message_loss']) < float(first['message_loss'])
  assert float(metrics['image_loss']) > 0.0  # G' moved away from G
  bad = configs.load(experiment('provenance/signature_mnist.py:smoke'), {
      'signature.generator': runs['hidden'], 'signature.extractor': runs['hidden']})
  with pytest.raises(ValueError, match='tunes a GAN generator or a VAE decoder'):
    methods.create(bad, (28, 28, 1), 10, frozen=training.loop.load_frozen_runs(bad))


def test_cli_detect_and_attribute(runs, tmp_path):
  det = tmp_path / 'det'
  r = run_main('detect', 'train', f'--runs={runs["gan_a"]}', f'--out={det}', '--num=64',
               '--train_steps=20')
  assert r.returncode == 0, r.stderr[-3000:]
  r = run_main('detect', 'evaluate', f'--model={det}', f'--unseen={runs["gan_b"]}',
               f'--out={tmp_path / "ev"}', '--num=32', '--attacks=jpeg')
  assert r.returncode == 0, r.stderr[-3000:]
  ev = json.loads((tmp_path / 'ev' / 'detect_eval.json').read_text())
  assert set(ev['auc']) == {'seen/gan_a', 'unseen/gan_b'}
  assert set(ev['auc']['seen/gan_a']) == {'cnn', 'durall', 'frank'}
  assert len(ev['robustness']['jpeg']) == 5
  att = tmp_path / 'att'
  r = run_main('attribute', f'--runs={runs["gan_a"]},{runs["gan_b"]}', f'--out={att}',
               '--num=32', '--test_num=16', '--train_steps=20', '--sizes=8')
  assert r.returncode == 0, r.stderr[-3000:]
  a = json.loads((att / 'attribute.json').read_text())
  assert np.sum(a['confusion']) == 32 and a['chance'] == 0.5
  assert len(a['accuracy_vs_samples']) == 1
  for f in ('confusion.png', 'accuracy_vs_samples.png'):
    assert (att / f).exists()
  r = run_main('attribute', f'--runs={runs["gan_a"]}', f'--out={att}')
  assert r.returncode == 2 and 'at least two runs' in r.stderr
  assert forensics.DETECTOR_FILE == 'detector.npz'
