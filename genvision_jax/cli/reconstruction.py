"""`genvision reconstruction`: test reconstruction error against code size for evaluated
autoencoder runs, one line per family (AE, DAE, sparse AE, ...) and PCA from their baselines
(`evaluation/autoencoders.py`)."""

from absl import flags

from genvision_jax.cli import common

SYNOPSIS = """\
  genvision reconstruction RUN ... [--out=recon.png]   (test MSE vs code size, with PCA)"""

POSITIONAL = True  # the run directories

FLAGS = flags.FlagValues()
_OUT = flags.DEFINE_string('out', 'reconstruction.png', 'Output figure (PNG); the table goes '
                           'next to it as .json.', flag_values=FLAGS)


def main(positional: list[str]) -> None:
  if not positional:
    raise common.UsageError('reconstruction needs evaluated autoencoder runs: genvision '
                            'reconstruction RUN ...')
  common.check_out_path(_OUT.value)
  import json  # pylint: disable=g-import-not-at-top
  import os  # pylint: disable=g-import-not-at-top
  from genvision_jax.evaluation import autoencoders  # pylint: disable=g-import-not-at-top
  table = autoencoders.code_size_table(positional)
  codes = sorted({c for by_code in table.values() for c in by_code})
  print(f"{'test MSE':<28}" + ''.join(f'{c:>10}' for c in codes))
  for name, by_code in sorted(table.items()):
    print(f'{name:<28}' + ''.join(f'{by_code[c]:>10.5f}' if c in by_code else f"{'':>10}"
                                  for c in codes))
  os.makedirs(os.path.dirname(os.path.abspath(_OUT.value)), exist_ok=True)
  autoencoders.code_size_figure(table, _OUT.value)
  with open(os.path.splitext(_OUT.value)[0] + '.json', 'w') as f:
    json.dump({name: {str(c): v for c, v in by_code.items()} for name, by_code in table.items()},
              f, indent=1)
  print(f'wrote {_OUT.value}')
