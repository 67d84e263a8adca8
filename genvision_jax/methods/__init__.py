"""Training methods, one per model family, keyed by `config.method`.

Each method object offers:
  create_state(rng, example_batch=None) -> State     (a flax.struct.dataclass pytree)
  train_step(state, batch) -> (State, metrics)       pure and jit-able
  generate(state, rng, num, **conditioning) -> images in [-1, 1]
  decode(state, z, ...) -> images in [-1, 1] for given latents (generator / VAE decoder /
                           diffusion: deterministic DDIM from x_T)
  minibatches_per_step: None (batch is [B, ...]) or k (batch is [k, B, ...])
and, for its config (static):
  default_sections() -> {section: ConfigDict} at the defaults (`configs.method_config`)
  validate_config(config, check)                 its sections' checks (`configs.validate`)
  LATER_DEFAULTS = {section: {field: value}}     fields added since a run directory was
                                                 written, at the values that reproduce it
  frozen_runs(config) -> {name: workdir}         trained runs it builds on (optional; the
                                                 training layer loads them and passes
                                                 `frozen=` to the constructor)
  frozen_images(config) -> {name: (path, side)}  image files it needs (optional; read and
                                                 kept in RUN/frozen/NAME.png by the training
                                                 layer, passed in `frozen` as FrozenImage)
  frozen_features(config) -> {name: (net, weights)}  feature networks it trains with
                                                 (optional; loaded for training only, None
                                                 in `frozen` when a trained run is loaded)
  derived_fields(state, arrays) -> {name: [N, ...]}  per-example arrays computed once from
                                                 the training split's arrays when training
                                                 starts (optional; the training layer adds
                                                 them to every batch; Parti: its frozen
                                                 tokenizer's codes)
  RESUMABLE_FIELDS = ('section.field', ...)      fields of its sections a resumed run may
                                                 change besides configs.RESUMABLE_FIELDS
                                                 (optional, default (); training/rundir.py)
"""

from genvision_jax.methods.autoencoder import AEState, AutoencoderMethod
from genvision_jax.methods.diffusion import DiffusionMethod, DiffusionState
from genvision_jax.methods.fast_style import FastStyleMethod, FastStyleState
from genvision_jax.methods.gan import GANMethod, GANState
from genvision_jax.methods.hidden import HiddenMethod, HiddenState
from genvision_jax.methods.latent_diffusion import LatentDiffusionMethod, LatentDiffusionState
from genvision_jax.methods.palette import PaletteMethod
from genvision_jax.methods.parti import PartiMethod, PartiState
from genvision_jax.methods.pix2pix import Pix2PixMethod, Pix2PixState
from genvision_jax.methods.progan import ProGANMethod
from genvision_jax.methods.sdgan import SDGANMethod
from genvision_jax.methods.signature import SignatureMethod, SignatureState
from genvision_jax.methods.simple import SimpleMethod, SimpleState
from genvision_jax.methods.tti import TextDiffusionMethod
from genvision_jax.methods.vqvae import VQVAEMethod, VQState
from genvision_jax.methods.vae import VAEMethod, VAEState

METHODS = {'vae': VAEMethod, 'gan': GANMethod, 'sdgan': SDGANMethod, 'progan': ProGANMethod,
           'diffusion': DiffusionMethod, 'pix2pix': Pix2PixMethod, 'palette': PaletteMethod,
           'simple': SimpleMethod, 'autoencoder': AutoencoderMethod,
           'tti_diffusion': TextDiffusionMethod, 'vqvae': VQVAEMethod, 'parti': PartiMethod,
           'hidden': HiddenMethod, 'signature': SignatureMethod, 'fast_style': FastStyleMethod,
           'latent_diffusion': LatentDiffusionMethod}


def create(config, image_shape, num_classes=0, frozen=None):
  """The method object of `config.method` for images of `image_shape` (H, W, C); `frozen`:
  the trained runs it builds on ({name: FrozenRun}, see `frozen_runs`)."""
  if frozen:
    return METHODS[config.method](config, image_shape, num_classes, frozen=frozen)
  return METHODS[config.method](config, image_shape, num_classes)


def frozen_runs(config) -> dict:
  """{name: workdir} of the trained runs the method of `config` builds on (a method declares
  them with a static `frozen_runs(config)`; e.g. Parti's tokenizer); {} for most."""
  fn = getattr(METHODS[config.method], 'frozen_runs', None)
  return dict(fn(config)) if fn is not None else {}


def frozen_images(config) -> dict:
  """{name: (path, longer side)} of the image files the method of `config` needs ({} for
  most; e.g. fast style transfer's style image)."""
  fn = getattr(METHODS[config.method], 'frozen_images', None)
  return dict(fn(config)) if fn is not None else {}


def frozen_features(config) -> dict:
  """{name: (feature network, weights or None)} the method of `config` trains with."""
  fn = getattr(METHODS[config.method], 'frozen_features', None)
  return dict(fn(config)) if fn is not None else {}
