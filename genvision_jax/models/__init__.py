"""Flax linen architectures: no losses, no optimizers."""

from genvision_jax.models import dcgan, layers, vae
from genvision_jax.models.dcgan import Discriminator as DCGANDiscriminator
from genvision_jax.models.dcgan import Generator as DCGANGenerator
from genvision_jax.models.vae import VAE

GENERATORS = {'dcgan': DCGANGenerator}
DISCRIMINATORS = {'dcgan': DCGANDiscriminator}
