"""The VQ-VAE image tokenizer of the Parti-style text-to-image model, on the captioned digit
scenes: 32 x 64 canvases -> 8 x 16 = 128 codes of a 256-entry EMA codebook (dead codes
restarted every 100 steps), MSE reconstruction, commitment 0.25, width 32, 1,500 steps
(23 min at 1.13 steps/s on two CPU cores): reconstruction MSE 0.0083 on 500 test canvases,
99.4 % of the codes in use, perplexity 185; the digit reader finds the prompt in 0.910 of the
reconstructions (0.930 of the real canvases), which bounds the faithfulness of the Parti model
on top. (Width 64 and 2,000 steps reached MSE 0.0061 and 0.92, but at 0.32 steps/s: 104 min.)

  genvision train --config=experiments/tti/vqvae_digits.py --workdir=runs/vqvae_digits
  genvision train --config=experiments/tti/vqvae_digits.py:smoke --workdir=/tmp/vq_smoke

Variants: `loss` (the codebook learned by the codebook loss instead of EMA), `vqgan` (VQGAN:
a PatchGAN on reconstructions with the adaptive adversarial weight 0.5 from step 1,000;
`--config.vq.adversarial_start`), `smoke`.
"""

from genvision_jax.configs import method_config, smoke_schedule, variants as parse_variants

VARIANTS = ('loss', 'vqgan', 'smoke')


def get_config(arg=None):
  chosen = parse_variants(arg, VARIANTS, 'vqvae_digits')
  c = method_config('vqvae')
  c.data.name = 'digit_scenes/two'
  c.data.image_size = 32
  c.model.width = 32
  c.train.num_steps = 1500
  c.train.batch_size = 32
  c.train.sample_every = 500
  c.train.checkpoint_every = 500
  if 'loss' in chosen:
    c.vq.codebook = 'loss'
  if 'vqgan' in chosen:
    c.vq.adversarial_weight = 0.5
    c.vq.adversarial_start = 1000
  if 'smoke' in chosen:
    c.model.num_codes = 16
    c.model.code_dim = 8
    c.model.width = 8
    c.vq.restart_every = 2
    c.model.d_width = 8
    c.vq.adversarial_start = min(c.vq.adversarial_start, 2)
    smoke_schedule(c)
    c.train.num_samples = 4
  return c
