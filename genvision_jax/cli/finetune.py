"""`genvision finetune`: the label-efficiency curve of a trained encoder (autoencoder, denoising
autoencoder, VAE): a classifier head trained on N labelled digits on top of the pre-trained
encoder vs the same network from scratch, over seeds (`genvision_jax.finetune`). Writes
RUN/finetune/MODE/{finetune.json, finetune.png}."""

import os

from absl import flags

from genvision_jax.cli import common

SYNOPSIS = """\
  genvision finetune --workdir=RUN [--labels=10,100,1000] [--seeds=5] [--steps=300]
      [--mode=finetune|linear]   (accuracy vs labels: pre-trained encoder vs scratch)"""

FLAGS = flags.FlagValues()
_WORKDIR = common.define_workdir(FLAGS, 'Run directory of a trained autoencoder or VAE.')
_LABELS = flags.DEFINE_list('labels', ['10', '100', '1000'], 'Labelled training digits N '
                            '(class-balanced subsets).', flag_values=FLAGS)
_SEEDS = flags.DEFINE_integer('seeds', 5, 'Seeds per N (subset, minibatches, head and scratch '
                              'initialization).', flag_values=FLAGS)
_STEPS = flags.DEFINE_integer('steps', 300, 'Adam steps per classifier.', flag_values=FLAGS)
_BATCH = flags.DEFINE_integer('batch_size', 64, 'Minibatch size (at most N).',
                              flag_values=FLAGS)
_LR = flags.DEFINE_float('learning_rate', 1e-3, 'Adam learning rate.', flag_values=FLAGS)
_MODE = flags.DEFINE_enum('mode', 'finetune', ['finetune', 'linear'], "'finetune': train "
                          "encoder and head; 'linear': the head on frozen features.",
                          flag_values=FLAGS)
_STEP = common.define_step(FLAGS)
_OUT = flags.DEFINE_string('out', None, 'Output directory (default RUN/finetune/MODE).',
                           flag_values=FLAGS)


def _labels() -> list[int]:
  try:
    labels = [int(v) for v in _LABELS.value]
  except ValueError:
    raise common.UsageError(f'--labels must be integers, e.g. --labels=10,100,1000 (got '
                            f'{",".join(_LABELS.value)})') from None
  if not labels or min(labels) < 1:
    raise common.UsageError(f'--labels must be positive integers (got {labels})')
  return labels


def main(positional: list[str]) -> None:
  del positional
  workdir = common.require_workdir(_WORKDIR, 'finetune')
  labels = _labels()
  for name, value in (('--seeds', _SEEDS.value), ('--steps', _STEPS.value),
                      ('--batch_size', _BATCH.value)):
    if value < 1:
      raise common.UsageError(f'{name} must be >= 1 (got {value})')
  from genvision_jax import data as data_lib  # pylint: disable=g-import-not-at-top
  from genvision_jax import finetune  # pylint: disable=g-import-not-at-top
  from genvision_jax.training import load_run, rundir  # pylint: disable=g-import-not-at-top
  config, method, state = load_run(workdir, _STEP.value)
  if not hasattr(method, 'encoder_features'):
    raise common.UsageError(f'{workdir} is a {config.method!r} run, which has no encoder to '
                            'fine-tune: use an autoencoder (experiments/ae/) or VAE run')
  d = config.data
  splits = {}
  for split in ('train', 'test'):
    arrays = data_lib.load_split(d.name, split, d.image_size, d.data_dir or None,
                                 d.resize_method).arrays()
    splits[split] = {'image': data_lib.to_model_range(arrays['image']),
                     'label': arrays['label']}
  out = _OUT.value or os.path.join(workdir, 'finetune', _MODE.value)
  try:
    result = finetune.label_efficiency(
        method, state, splits['train'], splits['test'], labels=labels, seeds=_SEEDS.value,
        steps=_STEPS.value, batch_size=_BATCH.value, learning_rate=_LR.value,
        mode=_MODE.value)
  except ValueError as e:
    raise common.UsageError(str(e)) from None
  result['protocol']['workdir'] = os.path.abspath(workdir)
  result['protocol']['method'] = config.method
  os.makedirs(out, exist_ok=True)
  rundir.write_json(os.path.join(out, 'finetune.json'), result, indent=1)
  finetune.figure(result, os.path.join(out, 'finetune.png'),
                  f'{config.method} {os.path.basename(os.path.abspath(workdir))} '
                  f'({_MODE.value}, {_SEEDS.value} seeds)')
  for r in result['results']:
    p = (r.get('welch') or {}).get('p_value')
    print(f"N={r['labels']:>5}  pre-trained {_summary(r['pretrained_summary'], r['pretrained'])}"
          f"  scratch {_summary(r['scratch_summary'], r['scratch'])}"
          + (f'  Welch p={p:.3g}' if p is not None else ''))
  print(f"wrote {os.path.join(out, 'finetune.json')} and finetune.png")


def _summary(summary, values) -> str:
  if not summary:
    return f'{values[0]:.3f}'
  return f"{summary['mean']:.3f} [{summary['t_low']:.3f}, {summary['t_high']:.3f}]"
