"""Stable Signature (Fernandez et al. 2023) on the offline digits: a trained GAN generator (or
VAE decoder) fine-tuned so that its images carry the 32-bit key of `signature.key_seed`, read by
a trained HiDDeN extractor; temperature 10, image loss 50 x MSE to the original generator's
images; Adam 1e-4, 64 latents per step, 1,500 steps. (At image weight 1 and Adam 5e-4 the key
was read at 0.93 bit accuracy after 500 steps but the tuned generator's images were ruined:
PSNR 9.7 dB to the originals, digits_cnn FD 930 against 140.)

  genvision train --config=experiments/provenance/signature_mnist.py --workdir=runs/sig \
      --config.signature.generator=runs/dcgan --config.signature.extractor=runs/hidden32
  genvision watermark evaluate --scheme=signature --workdir=runs/sig --out=robust_sig

Variants: `smoke` (a few steps, for the tests; the runs still have to be given).
"""

from genvision_jax.configs import method_config, smoke_schedule, variants as parse_variants

VARIANTS = ('smoke',)


def get_config(arg=None):
  chosen = parse_variants(arg, VARIANTS, 'signature_mnist')
  c = method_config('signature')
  c.signature.image_weight = 50.0
  c.optim.learning_rate = 1e-4
  c.train.num_steps = 1500
  c.train.batch_size = 64
  c.train.sample_every = 500
  c.train.checkpoint_every = 500
  if 'smoke' in chosen:
    # a few steps: the faster, quality-blind recipe, so that the key shows up at all
    c.signature.image_weight = 1.0
    c.optim.learning_rate = 5e-4
    smoke_schedule(c)
    c.train.num_samples = 4
  return c
