"""Denoising autoencoder (Vincent et al. 2008) on the offline digits: ae_mnist.py's network
trained to map a corrupted digit to the clean one (`task.name='denoising'`): Gaussian noise of
sigma 0.5 in [-1, 1] units (default) or, with `masking`, masking noise (each pixel set to black
with probability 0.25), or, with `flip`, binary salt-and-pepper (the digit binarized and each
pixel flipped with probability 0.1: the corruption of the MRF denoising of `genvision pgm
denoise`, which takes this run with --dae). `evaluate` measures denoising on the test split beside PCA (the noisy
digit projected on 32 principal components) and a Gaussian filter, and writes the PSNR-vs-noise
figure `eval/denoising_curve.png` (DAE, PCA, the noisy input; `autoencoders.denoising_curve`).

Variants: those of ae_mnist.py (code size, ...) and `masking`, `flip`, `smoke`.

  genvision train --config=experiments/ae/dae_mnist.py --workdir=runs/dae32
  genvision evaluate --workdir=runs/dae32
"""

from genvision_jax.configs import import_experiment


def get_config(arg=None):
  c, variants = import_experiment('ae_mnist', __file__).build(arg, 'dae_mnist',
                                                               ('masking', 'flip'))
  c.task.name = 'denoising'
  c.task.noise = ('masking' if 'masking' in variants else 'flip' if 'flip' in variants
                  else 'gaussian')
  c.task.noise_std = 0.5
  c.task.mask_prob = 0.25
  c.task.flip_prob = 0.1
  return c
