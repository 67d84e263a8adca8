"""Text-to-image diffusion: caption dropout, the guidance formula, a smoke run trained on the
captioned digit scenes, sampling from a prompt and its errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genvision_jax import configs, training
from genvision_jax.data import digit_scenes
from genvision_jax.methods.tti import TextDiffusionMethod
from tests.conftest import experiment, run_main

SMOKE = experiment('tti/diffusion_digits.py') + ':smoke'


@pytest.fixture(scope='module')
def tti_run(scenes_dir, tmp_path_factory):
  config = configs.load(SMOKE, {'data.data_dir': scenes_dir})
  workdir = str(tmp_path_factory.mktemp('tti') / 'run')
  result = training.train_and_evaluate(config, workdir, verbose=False)
  return workdir, result


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
  params = state.ema_params
  cond = method.model.apply({'params': params}, xt, t, tokens)
  uncond = method.model.apply({'params': params}, xt, t, jnp.zeros_like(tokens))
  w = 2.5
  np.testing.assert_allclose(method.network_output(params, xt, t, tokens, w),
                             (1 + w) * cond - w * uncond, atol=1e-4)
  np.testing.assert_allclose(method.network_output(params, xt, t, tokens, 0.0), cond,
                             atol=1e-5)
  assert np.isfinite(result.metrics['loss'])


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
