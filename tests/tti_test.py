"""Text-to-image diffusion: caption dropout, the guidance formula, a smoke run trained on the
captioned digit scenes, sampling from a prompt and its errors."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genvision_jax import configs, training
from genvision_jax.data import digit_scenes
from tests.conftest import experiment, run_main

SMOKE = experiment('tti/diffusion_digits.py') + ':smoke'


@pytest.fixture(scope='module')
def tti_run(scenes_dir, tmp_path_factory):
  """The `:smoke` config trained through the CLI; (workdir, its last logged metrics)."""
  workdir = str(tmp_path_factory.mktemp('tti') / 'run')
  r = run_main('train', f'--config={SMOKE}', f'--workdir={workdir}',
               f'--config.data.data_dir={scenes_dir}')
  assert r.returncode == 0, r.stderr[-3000:]
  with open(f'{workdir}/metrics.jsonl') as f:
    last = [json.loads(line) for line in f if line.strip()][-1]
  return workdir, last


def test_default_vocabulary_size_is_the_datasets():
  config = configs.method_config('tti_diffusion')
  assert config.text.vocab_size == len(digit_scenes.VOCABULARY)
  assert config.text.max_tokens == digit_scenes.MAX_TOKENS


def test_caption_dropout_and_the_guidance_formula(tti_run):
  workdir, result = tti_run
  config, method, state = training.load_run(workdir)
  tokens = jnp.asarray(digit_scenes.tokenize('a thick 3 to the left of a small 7'))[None]
  tokens = jnp.repeat(tokens, 4, 0)
  batch = {'tokens': tokens}
  method.p_uncond = 1.0
  assert (method.train_labels(batch, jax.random.key(0)) == 0).all()
  method.p_uncond = 0.0
  assert (method.train_labels(batch, jax.random.key(0)) == tokens).all()
  xt = jax.random.normal(jax.random.key(1), (4, 32, 64, 1))
  t = jnp.array([10, 200, 500, 900])
  # after a few smoke steps the zero-initialized output conv barely depends on the caption:
  # perturbed weights make cond and uncond differ, so a wrong mixing cannot pass
  leaves, tree = jax.tree.flatten(state.ema_params)
  keys = jax.random.split(jax.random.key(2), len(leaves))
  params = jax.tree.unflatten(tree, [p + 0.05 * jax.random.normal(k, p.shape, p.dtype)
                                     for p, k in zip(leaves, keys)])
  cond = method.model.apply({'params': params}, xt, t, tokens)
  uncond = method.model.apply({'params': params}, xt, t, jnp.zeros_like(tokens))
  assert float(jnp.abs(cond - uncond).max()) > 1e-2
  w = 2.5
  np.testing.assert_allclose(method.network_output(params, xt, t, tokens, w),
                             (1 + w) * cond - w * uncond, atol=1e-4)
  np.testing.assert_allclose(method.network_output(params, xt, t, tokens, 0.0), cond,
                             atol=1e-5)
  assert np.isfinite(result['loss'])


def test_sample_from_a_prompt_and_its_errors(tti_run, tmp_path, capsys):
  workdir, _ = tti_run
  out = tmp_path / 's.png'
  r = run_main('sample', f'--workdir={workdir}', '--prompt=an upright 8 to the right of a 1',
              '--num=2', '--steps=2', f'--out={out}')
  assert r.returncode == 0, r.stderr[-2000:]
  from PIL import Image
  assert Image.open(out).size[0] > Image.open(out).size[1]  # 32 x 64 canvases
  from genvision_jax import main  # the refusal comes before any compilation: in process
  assert main.run(['genvision', 'sample', f'--workdir={workdir}', '--prompt=a purple 3',
                   '--num=2']) == 2
  err = capsys.readouterr().err
  assert "unknown word 'purple'" in err and 'vocabulary is' in err and 'Traceback' not in err
