"""The Parti transformer: causal masking, text dependence, and KV-cache decoding equal to full
recomputation."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genvision_jax.models.parti import PartiTransformer

KW = dict(vocab_size=20, max_tokens=6, num_codes=12, num_positions=10, text_width=16,
          text_depth=1, width=16, depth=2, num_heads=2)


def _setup():
  net = PartiTransformer(**KW)
  tokens = jnp.array([[3, 4, 5, 0, 0, 0], [7, 0, 0, 0, 0, 0]])
  inputs = jax.random.randint(jax.random.key(1), (2, 10), 0, 13)
  params = net.init(jax.random.key(0), tokens, inputs)['params']
  # Redraw every parameter so no zero-initialized layer hides a dependence.
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(2), len(leaves))
  params = jax.tree.unflatten(tree, [0.3 * jax.random.normal(k, x.shape)
                                     for k, x in zip(keys, leaves)])
  return net, params, tokens, inputs


def test_position_t_never_sees_later_tokens_but_sees_the_text():
  net, params, tokens, inputs = _setup()
  logits = net.apply({'params': params}, tokens, inputs)
  chex.assert_shape(logits, (2, 10, 12))
  changed = inputs.at[:, 6].set((inputs[:, 6] + 1) % 13)
  other = net.apply({'params': params}, tokens, changed)
  np.testing.assert_allclose(other[:, :6], logits[:, :6], atol=1e-5)  # before: unchanged
  assert np.abs(other[:, 6:] - logits[:, 6:]).max() > 1e-3            # from t on: changed
  text = net.apply({'params': params}, tokens.at[0, 1].set(9), inputs)
  assert np.abs(text[0, 0] - logits[0, 0]).max() > 1e-3  # the first position reads the text


def test_kv_cache_decoding_equals_full_recomputation():
  net, params, tokens, inputs = _setup()
  full = net.apply({'params': params}, tokens, inputs)
  dec = PartiTransformer(**KW, decode=True)
  context, mask, _ = dec.apply({'params': params}, tokens, method=dec.encode_text)
  cache = dec.init(jax.random.key(0), tokens, inputs)['cache']
  steps = []
  for i in range(inputs.shape[1]):
    out, mutated = dec.apply({'params': params, 'cache': cache}, inputs[:, i:i + 1], context,
                             mask, method=dec.decode_codes, mutable=['cache'])
    cache = mutated['cache']
    steps.append(out[:, 0])
  np.testing.assert_allclose(jnp.stack(steps, 1), full, atol=1e-4)


# -- the method: a smoke run on a smoke tokenizer, trained through the CLI ---------------------

from genvision_jax import configs, training  # noqa: E402
from genvision_jax.data import digit_scenes  # noqa: E402
from genvision_jax.methods import parti as parti_method  # noqa: E402
from tests.conftest import experiment, run_main  # noqa: E402


@pytest.fixture(scope='module')
def parti_run(scenes_dir, tmp_path_factory):
  root = tmp_path_factory.mktemp('parti')
  tokenizer = str(root / 'vq')
  r = run_main('train', f'--config={experiment("tti/vqvae_digits.py")}:smoke',
               f'--workdir={tokenizer}', f'--config.data.data_dir={scenes_dir}')
  assert r.returncode == 0, r.stderr[-3000:]
  workdir = str(root / 'parti')
  r = run_main('train', f'--config={experiment("tti/parti_digits.py")}:smoke',
              f'--workdir={workdir}', f'--config.data.data_dir={scenes_dir}',
              f'--config.parti.tokenizer={tokenizer}')
  assert r.returncode == 0, r.stderr[-3000:]
  return tokenizer, workdir


def test_codes_computed_once_equal_the_per_batch_codes_and_train_the_same(parti_run,
                                                                          scenes_dir):
  from genvision_jax import data as data_lib  # pylint: disable=g-import-not-at-top
  _, workdir = parti_run
  _, method, state = training.load_run(workdir)
  arrays = data_lib.load_split('digit_scenes/two', 'train', 32, scenes_dir).arrays()
  arrays = {k: v[:40] for k, v in arrays.items()}
  method.ENCODE_CHUNK = 16  # 40 images: two full chunks and a padded one
  codes = method.derived_fields(state, arrays)['codes']
  images = data_lib.to_model_range(arrays['image'])
  np.testing.assert_array_equal(codes, method.image_codes(state, jnp.asarray(images)))
  batch = {'image': jnp.asarray(images[:8]), 'tokens': jnp.asarray(arrays['tokens'][:8])}
  _, m_encoded = jax.jit(method.train_step)(state, batch)
  _, m_cached = jax.jit(method.train_step)(state, {**batch, 'codes': jnp.asarray(codes[:8])})
  assert float(m_cached['loss']) == float(m_encoded['loss'])
  _, m_other = jax.jit(method.train_step)(state, {**batch, 'codes': jnp.asarray(codes[8:16])})
  assert float(m_other['loss']) != float(m_encoded['loss'])  # the step does read the codes


def _prompt_tokens(n):
  tokens = jnp.asarray(digit_scenes.tokenize('a thick 3 to the left of a small 7'))
  return jnp.repeat(tokens[None], n, 0)


def test_greedy_guided_kv_cache_sampling_equals_full_recomputation(parti_run):
  _, workdir = parti_run
  _, method, state = training.load_run(workdir)
  # Random weights (scale 1, no output bias: smaller ones give one code everywhere), so the
  # text moves the logits and guidance changes about a quarter of the greedy codes.
  leaves = jax.tree_util.tree_flatten_with_path(state.ema_params)[0]
  keys = jax.random.split(jax.random.key(3), len(leaves))
  params = jax.tree.unflatten(jax.tree.structure(state.ema_params), [
      0 * x if 'logits' in jax.tree_util.keystr(p) and 'bias' in jax.tree_util.keystr(p)
      else jax.random.normal(k, x.shape) for k, (p, x) in zip(keys, leaves)])
  tokens = _prompt_tokens(2).at[1, 1].set(5)
  w = 1.5
  codes = method.sample_codes(params, tokens, jax.random.key(0), w, 0.0, 0)
  # The same by hand: the full (teacher-forcing) network on the prefix, guided logits, argmax.
  n = method.num_positions

  @jax.jit
  def next_code(padded, i):
    cond = method.model.apply({'params': params}, tokens, padded)[:, i]
    uncond = method.model.apply({'params': params}, jnp.zeros_like(tokens), padded)[:, i]
    return jnp.argmax((1 + w) * cond - w * uncond, -1).astype(jnp.int32), cond

  padded = jnp.full((2, n), method.bos, jnp.int32)
  expected, unguided = [], []
  for i in range(n):
    code, cond = next_code(padded, i)
    expected.append(code)
    unguided.append(jnp.argmax(cond, -1))
    if i + 1 < n:
      padded = padded.at[:, i + 1].set(code)
  np.testing.assert_array_equal(codes, jnp.stack(expected, 1))
  assert (jnp.stack(unguided, 1) != codes).mean() > 0.05  # guidance changed codes
  assert len(np.unique(codes)) > 1
  # top_k = 1 is greedy whatever the temperature
  np.testing.assert_array_equal(
      method.sample_codes(params, tokens, jax.random.key(7), w, 2.0, 1), codes)


def test_filter_logits_top_k_and_temperature():
  logits = jnp.array([[1.0, 4.0, 2.0, 3.0]])
  out = parti_method.filter_logits(logits, 2.0, 2)
  np.testing.assert_allclose(out, [[-np.inf, 2.0, -np.inf, 1.5]])
  np.testing.assert_allclose(parti_method.filter_logits(logits, 0.5, 0), logits * 2)
  np.testing.assert_allclose(parti_method.guided_logits(logits, 0 * logits, 2.0), 3 * logits)
  uncond = jnp.array([[0.5, -1.0, 2.0, 0.0]])  # (1 + w) cond - w uncond, by hand at w = 2
  np.testing.assert_allclose(parti_method.guided_logits(logits, uncond, 2.0),
                             [[2.0, 14.0, 2.0, 9.0]])


def test_teacher_forcing_inputs_and_loss(parti_run):
  _, workdir = parti_run
  _, method, state = training.load_run(workdir)
  codes = jnp.array([[4, 1, 2], [0, 3, 3]])
  np.testing.assert_array_equal(method.teacher_inputs(codes),
                                [[method.bos, 4, 1], [method.bos, 0, 3]])
  images = jnp.zeros((2, *method.image_shape))
  batch = {'image': images, 'tokens': _prompt_tokens(2)}
  codes = method.image_codes(state, images)
  logits = method.model.apply({'params': state.ema_params}, batch['tokens'],
                              method.teacher_inputs(codes))
  by_hand = jnp.take_along_axis(jax.nn.log_softmax(logits), codes[..., None], -1).sum((1, 2))
  np.testing.assert_allclose(method.log_likelihood(state, batch), by_hand, rtol=1e-5)


def test_run_keeps_working_without_its_tokenizer_directory(parti_run, scenes_dir, tmp_path):
  tokenizer, workdir = parti_run
  _, method, state = training.load_run(workdir)
  before = training.generate_images(method, state, 2, seed=1, label=_prompt_tokens(2))
  assert before.shape == (2, 32, 64, 1) and np.isfinite(before).all()
  import shutil  # pylint: disable=g-import-not-at-top
  moved = str(tmp_path / 'elsewhere')
  shutil.move(tokenizer, moved)  # the tokenizer's parameters live in the run's checkpoint
  try:
    _, method, state = training.load_run(workdir)
    after = training.generate_images(method, state, 2, seed=1, label=_prompt_tokens(2))
    np.testing.assert_array_equal(after, before)
    # Training resumes too (on a copy of the run), with the tokenizer it was trained with.
    copy = str(tmp_path / 'copy')
    shutil.copytree(workdir, copy)
    config = training.read_config(copy)
    config.unlock()
    config.train.num_steps += 2
    result = training.train_and_evaluate(config, copy, verbose=False)
    assert result.step == config.train.num_steps
    _, _, resumed = training.load_run(copy)
    chex.assert_trees_all_equal(resumed.tokenizer.params, state.tokenizer.params)
    # A new run whose tokenizer is missing is refused before anything is written.
    config = configs.load(experiment('tti/parti_digits.py') + ':smoke',
                          {'parti.tokenizer': tokenizer, 'data.data_dir': scenes_dir})
    with pytest.raises(FileNotFoundError, match='tokenizer run'):
      training.train_and_evaluate(config, str(tmp_path / 'new'), verbose=False)
    assert not (tmp_path / 'new').exists()
  finally:
    shutil.move(moved, tokenizer)


def test_sample_from_a_prompt(parti_run, tmp_path, capsys):
  tokenizer, workdir = parti_run
  from genvision_jax import main  # pylint: disable=g-import-not-at-top
  out = tmp_path / 's.png'
  assert main.run(['genvision', 'sample', f'--workdir={workdir}', '--num=2', f'--out={out}',
                   '--prompt=an upright 8 to the right of a 1', '--top_k=4',
                   '--temperature=0.5']) == 0
  from PIL import Image  # pylint: disable=g-import-not-at-top
  assert Image.open(out).size[0] > Image.open(out).size[1]
  assert main.run(['genvision', 'sample', f'--workdir={workdir}', '--num=2', '--steps=4',
                   '--prompt=a 1']) == 2
  assert 'do not apply to an autoregressive' in capsys.readouterr().err
  assert main.run(['genvision', 'sample', f'--workdir={tokenizer}', '--num=2',
                   '--temperature=0.5']) == 2  # a run without sampling settings
  assert "--temperature do not apply to" in capsys.readouterr().err


def test_faithfulness_score_by_hand():
  from genvision_jax.evaluation import faithfulness  # pylint: disable=g-import-not-at-top
  asked = [digit_scenes.parse('a thick 3 to the left of a small 7'),
           digit_scenes.parse('a 3 to the right of a 7'), digit_scenes.parse('a thin 1')]
  words = lambda size, thick: {'size': size, 'thickness': thick, 'slant': 'upright'}
  read = {'digit': [[3, 7], [3, 7], [1]],
          'words': [[words('large', 'thick'), words('large', None)],
                    [words('small', 'thin'), None], [words('small', None)]]}
  s = faithfulness.score(asked, read)
  np.testing.assert_array_equal(s['faithful'], [1, 0, 1])       # the second: 7 then 3 asked
  np.testing.assert_array_equal(s['digit_accuracy'], [1, 0, 1])
  np.testing.assert_array_equal(s['thickness_agreement'], [1, np.nan, 0])
  np.testing.assert_array_equal(s['size_agreement'], [0, np.nan, np.nan])


def test_evaluate_reads_real_canvases_and_writes_the_sweep(parti_run):
  from genvision_jax.evaluation import runner  # pylint: disable=g-import-not-at-top
  _, workdir = parti_run
  r = runner.evaluate_run(workdir, num_samples=12, guidance_sweep=[0, 2], bootstrap=20,
                          verbose=False)
  m = r['metrics']
  for split in ('test', 'test_heldout'):
    assert 0 <= m[f'{split}/faithful'] <= 1
    assert m[f'{split}/faithful_real'] >= 0.75  # the reader on real canvases
    assert m[f'{split}/digits_cnn_slots/fd'] > 0
  assert m['test/faithful'] < m['test/faithful_real']  # 6 steps of a tiny model
  import os  # pylint: disable=g-import-not-at-top
  assert os.path.isfile(os.path.join(workdir, 'eval', 'guidance_sweep.png'))
  sweep = r['details']['guidance_sweep']
  assert [s['guidance'] for s in sweep] == [0.0, 2.0]
  # w = 2 is the main evaluation's w: the same samples, the same numbers
  assert sweep[1]['fd'] == m['test/digits_cnn_slots/fd'] and sweep[1]['faithful'] == m[
      'test/faithful']
  assert sweep[0]['fd'] != sweep[1]['fd']


def test_guidance_sweep_on_fewer_prompts(parti_run):
  from genvision_jax.evaluation import runner  # pylint: disable=g-import-not-at-top
  _, workdir = parti_run
  with pytest.raises(runner.EvaluationError, match='--sweep_samples'):
    runner.evaluate_run(workdir, num_samples=12, sweep_samples=10, verbose=False)
  r = runner.evaluate_run(workdir, num_samples=12, guidance_sweep=[2], sweep_samples=10,
                          bootstrap=0, verbose=False)
  (row,) = r['details']['guidance_sweep']
  # w = 2 is the main w, but on the first 10 of the 12 prompts: sampled again, other numbers
  assert row['prompts'] == 10 and row['guidance'] == 2.0
  assert row['fd'] != r['metrics']['test/digits_cnn_slots/fd']
