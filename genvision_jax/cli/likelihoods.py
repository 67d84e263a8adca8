"""`genvision likelihoods`: one likelihood table over runs (simple models, VAEs, diffusion),
each on the same protocol (evaluation/likelihoods.py); writes RUN/eval/likelihood.json."""

from absl import flags

from genvision_jax.cli import common

SYNOPSIS = """\
  genvision likelihoods RUN ... [--seed=S] [--iwae_samples=K] [--num=N] [--bpd_examples=M]
      [--out=TABLE.md]   (NLL in nats/image and bits/dim of the test split)"""

POSITIONAL = True  # the run directories

FLAGS = flags.FlagValues()
_SEED = common.define_seed(FLAGS, 'Seed of the test binarization, the dequantization noise, '
                           "the VAE's latent samples and diffusion's x_t draws.")
_IWAE = flags.DEFINE_integer('iwae_samples', 5000, 'Importance samples per image for VAEs '
                             '(k = 1 and 50 are estimated from the same samples).',
                             flag_values=FLAGS)
_NUM = flags.DEFINE_integer('num', None, 'Test images (the first N; default: the whole split) '
                            'for simple models and VAEs.', flag_values=FLAGS)
_BPD = flags.DEFINE_integer('bpd_examples', 100, 'Test images of the diffusion bound (T '
                            'network passes each).', flag_values=FLAGS)
_OUT = flags.DEFINE_string('out', None, 'Also write the markdown table to this file.',
                           flag_values=FLAGS)
_STEP = common.define_step(FLAGS)
_EMA = common.define_ema(FLAGS)


def main(positional: list[str]) -> None:
  if not positional:
    raise common.UsageError('likelihoods needs run directories: genvision likelihoods RUN ...')
  if _IWAE.value < 1:
    raise common.UsageError(f'--iwae_samples must be >= 1 (got {_IWAE.value})')
  from genvision_jax.evaluation import likelihoods  # pylint: disable=g-import-not-at-top
  records = [likelihoods.evaluate_run(run, seed=_SEED.value, iwae_samples=_IWAE.value,
                                      num=_NUM.value, step=_STEP.value, use_ema=_EMA.value,
                                      bpd_examples=_BPD.value)
             for run in positional]
  table = likelihoods.format_table(records)
  print(table)
  if _OUT.value:
    from genvision_jax.training import rundir  # pylint: disable=g-import-not-at-top
    rundir.write_text(_OUT.value, table + '\n')
    print(f'wrote {_OUT.value}')
