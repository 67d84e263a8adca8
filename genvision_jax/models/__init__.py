"""Flax linen architectures: no losses, no optimizers."""

from genvision_jax.models import began, dcgan, layers, patchgan, unet, vae
from genvision_jax.models.dcgan import Discriminator as DCGANDiscriminator
from genvision_jax.models.dcgan import Generator as DCGANGenerator
from genvision_jax.models.unet import UNet
from genvision_jax.models.vae import VAE

GENERATORS = {'dcgan': DCGANGenerator}
from genvision_jax.models.patchgan import PatchDiscriminator

from genvision_jax.models.began import AutoencoderDiscriminator

DISCRIMINATORS = {'dcgan': DCGANDiscriminator, 'patchgan': PatchDiscriminator,
                  'began': AutoencoderDiscriminator}

# Denoisers of the diffusion method, keyed by config.model.architecture.
DENOISERS = {'unet': UNet}
