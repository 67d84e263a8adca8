"""`genvision bpd`: the variational bound of a diffusion run on the test split, in bits/dim,
written to DIR/eval/bits_per_dim.json."""

import os

from absl import flags

from genvision_jax.cli import common

SYNOPSIS = """\
  genvision bpd --workdir=DIR [--num=N] [--estimator=mc|exact|ode] [--t_samples=32]
      [--ode_steps=50] [--dequantization=uniform|normal] [--step=K] [--noema] [--seed=S]"""

FLAGS = flags.FlagValues()
_WORKDIR = common.define_workdir(FLAGS, 'Run directory of a trained diffusion run.')
_NUM = flags.DEFINE_integer('num', None, 'Test examples (default: the whole split).',
                            flag_values=FLAGS)
_SEED = common.define_seed(FLAGS, 'Random seed of the x_t draws.')
_ESTIMATOR = flags.DEFINE_enum(
    'estimator', 'mc', ['mc', 'exact', 'ode'], 'mc: unbiased Monte-Carlo estimate of the bound '
    '(--t_samples strata of t, antithetic pairs; every process); exact: all T terms (ddpm '
    'process, T network calls per image); ode: the probability-flow ODE likelihood with '
    "Hutchinson's divergence (--ode_steps Heun steps, 2 vjps each; every process).",
    flag_values=FLAGS)
_T_SAMPLES = flags.DEFINE_integer(
    't_samples', None, 'mc: strata of t (ddpm) or of log SNR (vp, flow, edm) per image '
    '(default 32; at most T - 1).', flag_values=FLAGS)
_ODE_STEPS = flags.DEFINE_integer(
    'ode_steps', None, 'ode: Heun steps of the probability-flow ODE (default 50).',
    flag_values=FLAGS)
_DEQUANTIZATION = flags.DEFINE_enum(
    'dequantization', 'uniform', ['uniform', 'normal'], "ode: q of the variational "
    "dequantization within each 8-bit level (normal: N(0, u0^2) truncated to the level, u0 the "
    "ODE's smoothing at its data end; uniform: the whole level).", flag_values=FLAGS)
_STEP = common.define_step(FLAGS)
_EMA = common.define_ema(FLAGS)


def main(positional: list[str]) -> None:
  del positional
  workdir = common.require_workdir(_WORKDIR, 'bpd', 'a trained diffusion run')
  from genvision_jax.training import diffusion_eval  # pylint: disable=g-import-not-at-top
  try:
    record = diffusion_eval.evaluate_bits_per_dim(
        workdir, _NUM.value, _STEP.value, _EMA.value, _SEED.value, log=print,
        estimator=_ESTIMATOR.value, num_t=_T_SAMPLES.value, ode_steps=_ODE_STEPS.value,
        dequantization=_DEQUANTIZATION.value)
  except ValueError as e:
    raise common.UsageError(str(e)) from None
  p = record['protocol']
  print(f"bits/dim {record['bits_per_dim']:.4f} +- {record['stderr'] or 0:.4f} on "
        f"{p['num_examples']} {p['split']} examples (step {p['checkpoint_step']}, "
        f"{p['weights']} weights, {p['estimator']} estimator, "
        f"{record['seconds_per_example']:.2f} s/example); "
        f'wrote {os.path.join(workdir, diffusion_eval.RESULT_FILE)}')
