"""The VQ tokenizer: nearest codes, the straight-through estimator and the VQ losses' gradients
by hand, perplexity, shapes."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genvision_jax import losses
from genvision_jax.models import vqvae


def test_nearest_codes_by_brute_force():
  rng = np.random.default_rng(0)
  z, book = rng.normal(size=(5, 7, 3)), rng.normal(size=(11, 3))
  brute = np.argmin(((z[..., None, :] - book) ** 2).sum(-1), axis=-1)
  np.testing.assert_array_equal(vqvae.nearest_codes(jnp.asarray(z), jnp.asarray(book)), brute)


def test_straight_through_and_vq_loss_gradients():
  q = vqvae.VectorQuantizer(num_codes=4, code_dim=2)
  z_e = jnp.array([[[0.9, 0.1], [-0.4, 0.5], [2.0, -1.0]]])  # [1, 3, 2]
  params = q.init(jax.random.key(0), z_e)
  book = params['params']['codebook']
  w = jnp.array([[[1.0, 2.0], [3.0, -1.0], [0.5, 0.25]]])
  out = q.apply(params, z_e)
  np.testing.assert_allclose(out['z_q'], out['e'], atol=1e-6)  # forward: the codes
  np.testing.assert_allclose(out['e'], book[out['codes']], atol=1e-6)
  # Backward: d sum(w * z_q) / d z_e = w (straight through), nothing to the codebook.
  g_z, g_p = jax.grad(lambda z, p: jnp.sum(w * q.apply(p, z)['z_q']), argnums=(0, 1))(
      z_e, params)
  np.testing.assert_allclose(g_z, w)
  assert float(jnp.abs(g_p['params']['codebook']).max()) == 0
  n = z_e.size  # the losses are means over positions and dimensions
  e = out['e']
  # Codebook loss: gradient 2 (e - z_e) / n to the chosen codes, none to the encoder.
  g_z, g_e = jax.grad(lambda z, e: losses.vq_codebook_loss(z, e).sum(), argnums=(0, 1))(z_e, e)
  np.testing.assert_allclose(g_e, 2 * (e - z_e) / n, rtol=1e-5)
  assert float(jnp.abs(g_z).max()) == 0
  # Commitment loss: gradient 2 (z_e - e) / n to the encoder, none to the codes.
  g_z, g_e = jax.grad(lambda z, e: losses.vq_commitment_loss(z, e).sum(), argnums=(0, 1))(
      z_e, e)
  np.testing.assert_allclose(g_z, 2 * (z_e - e) / n, rtol=1e-5)
  assert float(jnp.abs(g_e).max()) == 0
  assert float(losses.vq_commitment_loss(z_e, e)[0]) == pytest.approx(
      float(jnp.mean((z_e - e) ** 2)))


def test_perplexity():
  k = 8
  uniform = jax.nn.one_hot(jnp.arange(64) % k, k)
  assert float(losses.codebook_perplexity(uniform)) == pytest.approx(k, rel=1e-4)
  assert float(losses.codebook_perplexity(jax.nn.one_hot(jnp.zeros(64, int), k))) == (
      pytest.approx(1.0, rel=1e-4))


@pytest.mark.parametrize('ema', [False, True])
def test_vqvae_shapes_and_round_trip_of_codes(ema):
  net = vqvae.VQVAE(channels=1, num_codes=16, code_dim=8, width=8, downsamples=2, ema=ema)
  x = jax.random.uniform(jax.random.key(1), (2, 32, 64, 1), minval=-1, maxval=1)
  variables = net.init(jax.random.key(0), x)
  assert ('vq' in variables) == ema
  out = net.apply(variables, x)
  chex.assert_shape(out['codes'], (2, 8, 16))
  chex.assert_shape(out['reconstruction'], (2, 32, 64, 1))
  codes = net.apply(variables, x, method=net.encode)
  np.testing.assert_array_equal(codes, out['codes'])
  decoded = net.apply(variables, codes, method=net.decode_codes)
  # The decoder's output is linear (trained against [-1, 1] targets); decoded images clip it.
  np.testing.assert_allclose(decoded, np.clip(out['reconstruction'], -1, 1), atol=1e-5)


def test_ema_codebook_update_by_hand():
  from genvision_jax.methods.vqvae import ema_codebook_update
  stats = {'cluster_size': jnp.array([1.0, 1.0]), 'embed_sum': jnp.array([[0.0], [1.0]])}
  z = jnp.array([[2.0], [4.0], [9.0]])
  one_hot = jnp.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])  # all to code 0
  new = ema_codebook_update(stats, z, one_hot, decay=0.5, eps=0.0)
  np.testing.assert_allclose(new['cluster_size'], [0.5 + 1.5, 0.5])
  np.testing.assert_allclose(new['embed_sum'], [[0.5 * 0 + 0.5 * 15], [0.5]])
  np.testing.assert_allclose(new['codebook'], [[7.5 / 2.0], [1.0]])  # unused code kept


def test_dead_codes_are_those_rarely_used_since_the_last_check():
  """Deadness is counted over the window since the last check, not read off the EMA usage: an
  EMA usage that starts at 1 and decays by 0.99 per step stays above any small threshold for
  hundreds of steps, and the first 400 steps of vqvae_digits ran on 5 of 256 codes."""
  from genvision_jax.methods.vqvae import restart_dead_codes
  stats = {'cluster_size': jnp.array([0.9, 0.99, 2.0]), 'embed_sum': jnp.array([[3.0], [1.0], [4.0]]),
           'codebook': jnp.array([[3.0], [1.0], [2.0]]), 'window_usage': jnp.array([5.0, 1.5, 0.0])}
  z = jnp.array([[7.0], [8.0], [9.0], [10.0]])
  restarted, dead = restart_dead_codes(stats, z, jax.random.key(0), threshold=1.0, steps=2)
  assert int(dead) == 2  # 1.5 and 0 assignments in 2 steps; the EMA usage says 0.99 and 2
  np.testing.assert_allclose(restarted['codebook'][0], [3.0])
  new = restarted['codebook'][1:, 0]
  assert set(np.asarray(new).tolist()) <= {7.0, 8.0, 9.0, 10.0} and new[0] != new[1]  # distinct
  np.testing.assert_allclose(restarted['cluster_size'], [0.9, 1.0, 1.0])
  np.testing.assert_allclose(restarted['embed_sum'][1:], restarted['codebook'][1:])
  np.testing.assert_allclose(restarted['window_usage'], 0.0)


@pytest.mark.parametrize('codebook', ['ema', 'loss'])
def test_data_initialised_codebook_is_used_from_the_first_step(codebook):
  """With vq.init='data' the first step sets the codebook to K distinct encoder outputs of the
  batch, so most codes are in use at once; a U(-1/K, 1/K) codebook sits at the origin, far from
  the encoder's outputs, and the nearest-code rule picks a handful of them."""
  from genvision_jax import configs
  from genvision_jax.methods.vqvae import VQVAEMethod
  from tests.conftest import experiment
  config = configs.load(experiment('tti/vqvae_digits.py') + ':smoke',
                        {'vq.codebook': codebook, 'model.num_codes': 64})
  method = VQVAEMethod(config, (32, 64, 1))
  x = jnp.tanh(jax.random.normal(jax.random.key(1), (8, 32, 64, 1)))
  state = method.create_state(jax.random.key(0))
  state, _ = jax.jit(method.train_step)(state, {'image': x})
  codes = np.asarray(method.encode_codes(state, x)).ravel()
  p = np.bincount(codes, minlength=64)[np.unique(codes)] / codes.size
  # Perplexity of the codes of the batch: 53 of 64 here; 10 (EMA) and 13 (codebook loss) with
  # the U(-1/K, 1/K) start.
  assert np.exp(-np.sum(p * np.log(p))) > 32
  z_e = method.model.apply(method._variables(state.params, state.vq), x,
                           method=method.model.encoder_outputs)
  if codebook == 'ema':  # the rows are encoder outputs of step 0 (moved by one EMA step)
    assert float(jnp.std(state.vq['codebook'])) > 0.3 * float(jnp.std(z_e))


@pytest.mark.parametrize('codebook', ['ema', 'loss'])
def test_tokenizer_step_reduces_its_loss_on_a_fixed_batch(codebook):
  from genvision_jax import configs
  from genvision_jax.methods.vqvae import VQVAEMethod
  from tests.conftest import experiment
  config = configs.load(experiment('tti/vqvae_digits.py') + ':smoke',
                        {'vq.codebook': codebook, 'optim.learning_rate': 3e-3})
  method = VQVAEMethod(config, (32, 64, 1))
  state = method.create_state(jax.random.key(0))
  # Patches of 4 x 4 constant pixels (+-0.8): what one code per position can represent.
  signs = jnp.sign(jax.random.normal(jax.random.key(1), (8, 8, 16, 1)))
  x = 0.8 * jnp.repeat(jnp.repeat(signs, 4, axis=1), 4, axis=2)
  step = jax.jit(method.train_step)
  first = None
  for _ in range(30):
    state, metrics = step(state, {'image': x})
    first = first if first is not None else float(metrics['reconstruction'])
  assert float(metrics['reconstruction']) < 0.7 * first
  assert 1.0 <= float(metrics['perplexity']) <= 16.0 + 1e-4
  chex.assert_shape(method.encode_codes(state, x), (8, 8, 16))


def test_tokenizer_learns_sparse_canvases_instead_of_collapsing_to_the_background():
  """Canvases that are mostly background (like the digit scenes: ~7 % ink): the first
  tokenizer (ReLU encoder and decoder, tanh output) went blank within 100 steps, its gradient
  vanishing (reconstruction = the all-background MSE, for good); the GroupNorm + SiLU networks
  keep learning and get well below the blank canvas's error."""
  from genvision_jax import configs
  from genvision_jax.methods.vqvae import VQVAEMethod
  from tests.conftest import experiment
  config = configs.load(experiment('tti/vqvae_digits.py'), {'model.width': 8,
                                                             'model.num_codes': 64})
  method = VQVAEMethod(config, (32, 64, 1))
  rng = np.random.default_rng(0)
  x = -np.ones((8, 32, 64, 1), np.float32)
  for image in x:  # six strokes of 2 x 6 pixels per canvas
    for _ in range(6):
      r, c = rng.integers(4, 26), rng.integers(4, 58)
      if rng.random() < 0.5:
        image[r:r + 2, c:c + 6] = 1.0
      else:
        image[r:r + 6, c:c + 2] = 1.0
  blank = float(np.mean((x + 1.0)**2))
  state = method.create_state(jax.random.key(0))
  step = jax.jit(method.train_step)
  for _ in range(120):
    state, metrics = step(state, {'image': jnp.asarray(x)})
  # 0.72 of the blank error here; the ReLU/tanh tokenizer: 1.00 with a gradient norm of 0.01.
  assert float(metrics['reconstruction']) < 0.85 * blank


def test_tokenizer_smoke_config_trains_through_the_cli(scenes_dir, tmp_path):
  """The VQGAN variant (the plain tokenizer is trained through the CLI by the Parti tests):
  its discriminator state is checkpointed and restored with the rest."""
  from tests.conftest import experiment, run_main
  args = ('train', f'--config={experiment("tti/vqvae_digits.py")}:vqgan,smoke',
          f'--workdir={tmp_path / "vq"}', f'--config.data.data_dir={scenes_dir}')
  r = run_main(*args)
  assert r.returncode == 0, r.stderr[-2000:]
  import json
  last = json.loads((tmp_path / 'vq' / 'metrics.jsonl').read_text().splitlines()[-1])
  assert last['step'] == 6 and 1.0 <= last['perplexity'] <= 16.0 + 1e-4
  assert 0.0 < last['codebook_usage'] <= 1.0
  assert last['d_loss'] > 0.0 and last['adaptive_weight'] > 0.0
  r = run_main(*args, '--config.train.num_steps=8')  # resumes from the step-6 checkpoint
  assert r.returncode == 0, r.stderr[-2000:]
  assert 'resumed from' in r.stdout + r.stderr


def test_vqgan_adaptive_weight_and_discriminator_schedule():
  """The VQGAN option: lambda = ||grad_W L_rec|| / (||grad_W L_G|| + 1e-4) * weight at the
  decoder's output layer W (found here by its shape, independently of the method's lookup);
  the discriminator stays put before vq.adversarial_start and learns after it."""
  from genvision_jax import configs
  from genvision_jax.methods.vqvae import VQGANState, VQVAEMethod
  from tests.conftest import experiment
  config = configs.load(experiment('tti/vqvae_digits.py') + ':vqgan,smoke',
                        {'vq.adversarial_start': 2})
  method = VQVAEMethod(config, (32, 64, 1))
  x = jnp.tanh(jax.random.normal(jax.random.key(1), (4, 32, 64, 1)))
  state = method.create_state(jax.random.key(0))
  assert isinstance(state, VQGANState)

  def terms(params):
    out = method.model.apply(method._variables(params, state.vq), x)
    rec = jnp.mean((out['reconstruction'] - x)**2)
    logits = method.discriminator.apply({'params': state.d_params}, out['reconstruction'])
    return rec, jnp.mean(-logits)  # hinge's generator term

  def output_kernel(grads):
    kernels = [v['kernel'] for v in grads['decoder'].values()
               if isinstance(v, dict) and 'kernel' in v and v['kernel'].shape[-1] == 1]
    assert len(kernels) == 1
    return kernels[0]

  g_rec = output_kernel(jax.grad(lambda p: terms(p)[0])(state.params))
  g_gan = output_kernel(jax.grad(lambda p: terms(p)[1])(state.params))
  expected = 0.5 * np.linalg.norm(g_rec) / (np.linalg.norm(g_gan) + 1e-4)
  np.testing.assert_allclose(method._adaptive_lambda(state, x), expected, rtol=1e-4)

  step = jax.jit(method.train_step)
  d0 = state.d_params
  state, metrics = step(state, {'image': x})
  state, metrics = step(state, {'image': x})
  chex.assert_trees_all_equal(state.d_params, d0)  # steps 0 and 1: before the start
  assert float(metrics['d_loss']) == 0.0
  state, metrics = step(state, {'image': x})
  assert float(metrics['d_loss']) > 0.0 and float(metrics['adaptive_weight']) > 0.0
  assert not np.allclose(jax.tree.leaves(state.d_params)[0], jax.tree.leaves(d0)[0])
  assert np.isfinite(float(metrics['g_adversarial']))
