"""Flax linen architectures: no losses, no optimizers."""

from genvision_jax.models import began, dcgan, layers, patchgan, progan, unet, vae
from genvision_jax.models.began import AutoencoderDiscriminator
from genvision_jax.models.dcgan import Discriminator as DCGANDiscriminator
from genvision_jax.models.dcgan import Generator as DCGANGenerator
from genvision_jax.models.mlp_denoiser import MLPDenoiser
from genvision_jax.models.patchgan import PatchDiscriminator
from genvision_jax.models.unet import UNet
from genvision_jax.models.vae import VAE

GENERATORS = {'dcgan': DCGANGenerator, 'progan': progan.Generator,
              'began': began.PaperGenerator, 'infogan': began.InfoGANGenerator}
DISCRIMINATORS = {'dcgan': DCGANDiscriminator, 'patchgan': PatchDiscriminator,
                  'began': AutoencoderDiscriminator, 'progan': progan.Discriminator}
# BEGAN's autoencoder discriminator, keyed by config.model.began_arch.
BEGAN_AUTOENCODERS = {'dcgan': AutoencoderDiscriminator, 'paper': began.PaperAutoencoder,
                      'infogan': began.InfoGANAutoencoder}

# Denoisers of the diffusion method, keyed by config.model.architecture.
DENOISERS = {'unet': UNet, 'mlp': MLPDenoiser}
