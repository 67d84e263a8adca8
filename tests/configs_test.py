"""Configs: shared fields validated by `configs`, each method's sections by the method itself
(found through `methods.METHODS`), and run directories written before a field existed."""

import json

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from genvision_jax import configs
from genvision_jax import main
from genvision_jax import methods
from genvision_jax import training
from tests.conftest import experiment


@flax.struct.dataclass
class TinyState:
  step: jax.Array
  mean: jax.Array
  velocity: jax.Array
  rng: jax.Array


class TinyMethod:
  """A new method family defined here only: it fits one image (the data mean) by gradient
  descent with momentum on the squared error. It owns its `tiny` config section: validation
  and the default of a field added "later" (`momentum`)."""

  minibatches_per_step = None
  LATER_DEFAULTS = {'tiny': {'momentum': 0.0}}

  @staticmethod
  def default_sections():
    return {'tiny': ml_collections.ConfigDict(dict(learning_rate=0.5, momentum=0.0))}

  @staticmethod
  def validate_config(config, check) -> None:
    t = config.tiny
    check.need(t.learning_rate > 0, f'tiny.learning_rate must be > 0 (got {t.learning_rate!r})')
    check.need(0.0 <= t.momentum < 1.0, f'tiny.momentum must be in [0, 1) (got {t.momentum!r})')

  def __init__(self, config, image_shape, num_classes=0):
    del num_classes
    self.image_shape = tuple(image_shape)
    self.learning_rate = float(config.tiny.learning_rate)
    self.momentum = float(config.tiny.momentum)

  def create_state(self, rng, example_batch=None):
    del example_batch
    zeros = jnp.zeros(self.image_shape, jnp.float32)
    return TinyState(step=jnp.zeros((), jnp.int32), mean=zeros, velocity=zeros, rng=rng)

  def train_step(self, state, batch):
    x = batch['image']
    loss, grad = jax.value_and_grad(lambda m: jnp.mean((x - m) ** 2))(state.mean)
    velocity = self.momentum * state.velocity - self.learning_rate * grad
    state = state.replace(step=state.step + 1, mean=state.mean + velocity, velocity=velocity)
    return state, {'loss': loss}

  def generate(self, state, rng, num: int):
    del rng
    return jnp.broadcast_to(jnp.clip(state.mean, -1.0, 1.0), (num, *self.image_shape))

  def decode(self, state, z):
    return self.generate(state, None, z.shape[0])


def _tiny_config(**tiny):
  config = configs.method_config('tiny')
  config.tiny.update(tiny)
  configs.smoke_schedule(config)
  config.train.num_steps = 1
  config.lock()
  return config


@pytest.fixture
def tiny(monkeypatch):
  """The one registry line a new method adds."""
  monkeypatch.setitem(methods.METHODS, 'tiny', TinyMethod)


def test_a_new_method_validates_its_own_section(tiny):
  del tiny
  configs.validate(_tiny_config())
  with pytest.raises(configs.ConfigError) as e:
    configs.validate(_tiny_config(learning_rate=0.0, momentum=1.5))
  assert 'tiny.learning_rate must be > 0 (got 0.0)' in str(e.value)
  assert 'tiny.momentum must be in [0, 1) (got 1.5)' in str(e.value)
  # The shared fields are still checked by configs, in the same one error.
  config = _tiny_config(learning_rate=0.0)
  with config.unlocked():
    config.train.batch_size = 0
  with pytest.raises(configs.ConfigError, match='(?s)train.batch_size.*tiny.learning_rate'):
    configs.validate(config)


def test_a_new_method_trains_resumes_and_samples_without_other_changes(tiny, tmp_path):
  """The loop trains it one step (the update checked by hand), its run directory written
  before the `momentum` field existed reloads with the method's default, and it samples."""
  del tiny
  config = _tiny_config()
  result = training.train_and_evaluate(config, str(tmp_path), verbose=False)
  assert result.step == 1
  t = config.train
  batch = training.open_data(config).minibatches(0, 1, t.batch_size, t.seed)['image'][0]
  # One step from m = 0 on mean((x - m)^2): m1 = lr * 2 * mean_b(x) / (H W C).
  want = 0.5 * 2.0 * batch.mean(axis=0) / batch[0].size
  np.testing.assert_allclose(np.asarray(result.state.mean), want, rtol=1e-5, atol=1e-7)
  record = json.load(open(tmp_path / 'config.json'))
  del record['tiny']['momentum']
  json.dump(record, open(tmp_path / 'config.json', 'w'))
  loaded, method, state = training.load_run(str(tmp_path))
  assert loaded.tiny.momentum == 0.0 and method.momentum == 0.0
  np.testing.assert_array_equal(np.asarray(state.mean), np.asarray(result.state.mean))
  images = training.generate_images(method, state, 4)
  assert images.shape == (4, *np.asarray(state.mean).shape)
  # The command line samples it too (in process), through the same registry.
  out = tmp_path / 'grid.png'
  assert main.run(['genvision', 'sample', f'--workdir={tmp_path}', '--num=4',
                   f'--out={out}']) == 0
  assert out.stat().st_size > 0


def test_old_gan_run_directory_gets_the_gan_fields_added_since():
  """A GAN config.json written before the later gan/model fields existed loads with the
  values that reproduce it (GANMethod.LATER_DEFAULTS), and validates."""
  record = configs.load(experiment('dcgan_mnist.py:smoke')).to_dict()
  for key in ('penalty', 'penalty_weight', 'clip_value', 'began_gamma', 'began_lambda_k'):
    del record['gan'][key]
  for key in ('g_norm', 'conditional', 'd_layers', 'd_spectral_norm'):
    del record['model'][key]
  del record['train']['profile_steps']
  config = configs.validate(configs.from_dict(record))
  assert config.gan.penalty == 'none' and config.gan.began_gamma == 0.5
  assert config.model.g_norm == 'batch' and config.model.d_layers == 2
  assert not config.model.conditional and config.train.profile_steps == 0
  with pytest.raises(AttributeError):  # locked: a typo stays an error
    config.gan.penalti = 'x'


@pytest.mark.parametrize('name', sorted(methods.METHODS))
def test_every_method_owns_default_sections_that_validate_and_cover_its_upgrades(name):
  """`method_config(name)` is a complete config (the VAE's Bernoulli default needs binary
  data); every field a method upgrades old run directories with is one of its sections'."""
  config = configs.method_config(name)
  if name == 'vae':
    config.data.binarize = 'dynamic'
  configs.validate(config)
  method = methods.METHODS[name]
  for section, fields in method.LATER_DEFAULTS.items():
    assert set(fields) <= set(config[section]), (section, set(fields) - set(config[section]))


def test_method_config_names_the_known_methods():
  with pytest.raises(configs.ConfigError,
                     match=r"method must be one of \['autoencoder', 'diffusion', 'fast_style', 'gan'"):
    configs.method_config('gann')

