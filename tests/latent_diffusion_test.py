"""Latent diffusion on a smoke autoencoder run: the codes computed once and scaled by 1 / the
first batch's std (by hand), the scale kept afterwards, samples decoded by the autoencoder,
the run directory loading and sampling on its own, and a missing or wrong autoencoder run
refused with a message naming the field."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genvision_jax import configs, training
from tests.conftest import experiment


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  root = tmp_path_factory.mktemp('ldm')
  ae = root / 'ae'
  training.train_and_evaluate(configs.load(experiment('ae/ae_mnist.py:smoke'), {}), str(ae),
                              verbose=False)
  ldm = root / 'ldm'
  config = configs.load(experiment('latent_diffusion_mnist.py:flow,smoke'),
                        {'latent.autoencoder': str(ae)})
  result = training.train_and_evaluate(config, str(ldm), verbose=False)
  return ae, ldm, result


def test_codes_are_scaled_by_the_first_batch_and_samples_are_decoded(runs):
  ae, ldm, result = runs
  _, method, state = training.load_run(str(ldm))
  assert int(state.step) == 6
  _, ae_method, ae_state = training.load_run(str(ae))
  images = jax.random.uniform(jax.random.key(0), (16, 28, 28, 1), minval=-1, maxval=1)
  codes = ae_method.encode(ae_state, images)[0]
  np.testing.assert_allclose(method.codes(state, images), codes, rtol=1e-5, atol=1e-6)
  # Step 0 sets the scale to 1 / std of its batch's codes; later steps keep it.
  fresh = state.replace(step=jnp.zeros((), jnp.int32))
  stepped, metrics = jax.jit(method.train_step)(fresh, {'latent': codes, 'image': images})
  np.testing.assert_allclose(stepped.latent_scale, 1.0 / np.std(np.asarray(codes)), rtol=1e-5)
  again, _ = jax.jit(method.train_step)(stepped, {'latent': 3 * codes, 'image': images})
  np.testing.assert_allclose(again.latent_scale, stepped.latent_scale)
  assert np.isfinite(float(metrics['loss']))
  # The trained run's scale is a real measurement, not the initial 1.
  assert float(state.latent_scale) != 1.0 and np.isfinite(float(state.latent_scale))
  # generate = the autoencoder's decoder of the unscaled sampled codes.
  out = method.generate(state, jax.random.key(1), 3, steps=4)
  assert out.shape == (3, 28, 28, 1) and float(jnp.abs(out).max()) <= 1.0
  z = super(type(method), method).generate(state, jax.random.key(1), 3, steps=4)
  assert z.shape == (3, method.latent_dim)
  np.testing.assert_allclose(
      out, jnp.clip(ae_method.decode(ae_state, z / state.latent_scale), -1, 1), atol=1e-5)


def test_the_autoencoder_run_is_checked(runs, tmp_path):
  ae, _, _ = runs
  config = configs.load(experiment('latent_diffusion_mnist.py:smoke'),
                        {'latent.autoencoder': str(tmp_path / 'missing')})
  with pytest.raises(FileNotFoundError,
                     match="the autoencoder run of this 'latent_diffusion' run cannot be read"):
    training.train_and_evaluate(config, str(tmp_path / 'run'), verbose=False)
  assert not (tmp_path / 'run').exists()  # refused before the run directory is touched
  config = configs.load(experiment('latent_diffusion_mnist.py:smoke'),
                        {'latent.autoencoder': str(ae), 'diffusion.clip_denoised': True})
  with pytest.raises(configs.ConfigError, match='clip_denoised must be False'):
    configs.validate(config)
