"""The per-command parsers, in process: every `genvision ...` command line of README.md
parses with its command's own flags (nothing runs), `genvision COMMAND --help` lists exactly
that command's flags, and state does not leak from one in-process run to the next."""

import re
import shlex

import pytest

from genvision_jax import cli, main
from genvision_jax.cli import common
from tests.conftest import REPO

# Placeholders of the README's synopses, and the values the test puts in their place.
PLACEHOLDERS = [('experiments/X.py', 'experiments/dcgan_mnist.py'), ('=$d', '=runs/mm/seed_0'),
                ('--num=N', '--num=3'), ('--seed=S', '--seed=1'), ('--step=K', '--step=2')]
ALTERNATIVES = re.compile(r'(--\w+=)([\w.]+(?:\|[\w.]+)+)')  # --mode=slerp|lerp


def _expand(line: str) -> list[str]:
  for old, new in PLACEHOLDERS:
    line = line.replace(old, new)
  line = line.replace('[', ' ').replace(']', ' ')  # optional flags: take them all
  m = ALTERNATIVES.search(line)
  if not m:
    return [line]
  return [v for alt in m.group(2).split('|')
          for v in _expand(line[:m.start()] + m.group(1) + alt + line[m.end():])]


def readme_command_lines() -> list[str]:
  """Every `genvision COMMAND ...` of README.md: in fenced code blocks (one per line, `\\`
  continuations joined, after `&&` or `do`, up to `;` or a `#` comment) and in inline code."""
  text = (REPO / 'README.md').read_text()
  found = []
  pattern = re.compile(r'genvision (?:%s)\b[^;#`]*' % '|'.join(cli.COMMANDS))
  fenced = re.split(r'^\s*```.*$', text, flags=re.M)
  for i, part in enumerate(fenced):
    if i % 2:  # inside a fenced block
      for line in part.replace('\\\n', ' ').splitlines():
        found += [m.group(0) for m in pattern.finditer(line)]
    else:
      for span in re.findall(r'`([^`]+)`', part):
        found += [m.group(0) for m in pattern.finditer(span.replace('\n', ' '))]
  return [' '.join(line.split()) for line in found]


def test_readme_has_the_command_lines_this_test_expects():
  lines = readme_command_lines()
  commands = {line.split()[1] for line in lines}
  assert commands == set(cli.COMMANDS), commands  # every command appears in the README
  assert len(lines) >= 15, lines
  assert any('--config.gan.loss=minimax' in line for line in lines)  # continuation joined


@pytest.mark.parametrize('line', readme_command_lines())
def test_every_readme_command_line_parses(line, monkeypatch):
  monkeypatch.chdir(REPO)
  for variant in _expand(line):
    _, command, *args = shlex.split(variant)  # a quoted --prompt="..." is one argument
    module = main.command_module(command)
    positional = common.parse(command, module, args)
    for arg in args:  # each flag given is set, to the value given
      if not arg.startswith('--'):
        continue
      name, _, value = arg[2:].partition('=')
      if name.startswith('config.'):  # an override: the loaded config holds it
        node = module.FLAGS.config
        for key in name.split('.')[1:]:
          node = node[key]
        assert str(node) == value, (variant, name)
        continue
      flag = module.FLAGS[name[2:] if name.startswith('no') and not value else name]
      assert flag.present, (variant, name)
      if value and name != 'config':
        assert flag.value == flag.parser.parse(value), (variant, name)
    assert all(not a.startswith('--') for a in positional)
    if command == 'compare':
      assert positional and len(positional) == len([a for a in args if not a.startswith('-')])


OWN_FLAGS = {
    'train': {'config', 'workdir', 'seeds', 'coordinator_address', 'num_processes',
              'process_id', 'distributed', 'allow_config_change'},
    'sample': {'workdir', 'num', 'out', 'seed', 'step', 'ema', 'label', 'class_grid',
               'sampler', 'steps', 'eta', 'guidance', 'prompt', 'temperature', 'top_k'},
    'interpolate': {'workdir', 'rows', 'steps', 'mode', 'arithmetic', 'out', 'seed', 'label',
                    'step', 'ema', 'from_images', 'from_split', 'pairs', 'terms', 'manifold',
                    'traversal'},
    'encode': {'workdir', 'images', 'split', 'num', 'out', 'scatter', 'reconstruct', 'step'},
    'decode': {'workdir', 'codes', 'key', 'out', 'ncol', 'step', 'ema'},
    'evaluate': {'workdir', 'num_samples', 'metrics', 'features', 'inception_weights',
                 'reference_split', 'bootstrap', 'iwae_samples', 'bpd_examples', 'seed', 'step',
                 'ema', 'nearest_k', 'kid_subset_size', 'resize', 'prior', 'prior_steps',
                 'prior_eta', 'prior_guidance', 'prior_resamples', 'prior_jump', 'prior_step',
                 'prior_name', 'guidance', 'guidance_sweep', 'sweep_samples', 'feature_weights',
                 'sampler', 'steps', 'nfe_sweep', 'sweep_samplers'},
    'translate': {'workdir', 'input', 'split', 'num', 'samples', 'out', 'seed', 'step', 'ema'},
    'compare': {'out', 'metrics'},
    'bpd': {'workdir', 'num', 'seed', 'step', 'ema', 'estimator', 't_samples', 'ode_steps',
            'dequantization'},
    'likelihoods': {'num', 'seed', 'step', 'ema', 'iwae_samples', 'bpd_examples', 'out'},
    'finetune': {'workdir', 'labels', 'seeds', 'steps', 'batch_size', 'learning_rate', 'mode',
                 'step', 'out'},
    'reconstruction': {'out'},
    'study': {'config', 'workdir'},
    'report': {'out', 'humaneval'},
    'humaneval': {'runs', 'real', 'db', 'host', 'port', 'images', 'trials', 'attention_every',
                  'seed', 'out', 'min_attention', 'bootstrap'},
    'pgm': {'out', 'seed', 'flips', 'num', 'dae', 'gibbs_sweeps', 'train_num', 'sizes',
            'repeats', 'alpha', 'C', 'pcd_steps', 'prior', 'vae'},
    'prepare': {'dataset', 'data_dir'},
    'watermark': {'workdir', 'out', 'scheme', 'seed', 'num', 'key_seed', 'key', 'run', 'radius',
                  'pattern', 'steps', 'fpr', 'attacks', 'regen_run'},
    'neighbours': {'workdir', 'out', 'num', 'features', 'k', 'show', 'seed', 'inception_weights',
                   'subset', 'make_subset', 'avoid'},
    'detect': {'runs', 'model', 'out', 'num', 'train_steps', 'noise', 'unseen', 'attacks', 'seed'},
    'attribute': {'runs', 'out', 'num', 'test_num', 'train_steps', 'sizes', 'seed'},
    'stylize': {'workdir', 'content', 'style', 'out', 'features', 'weights', 'size', 'steps',
                'optimizer', 'learning_rate', 'content_weight', 'style_weight', 'tv_weight',
                'init', 'content_layer', 'style_layers', 'preserve_color', 'log_every', 'seed'},
}


@pytest.mark.parametrize('command', cli.COMMANDS)
def test_command_help_lists_only_its_own_flags(command, capsys):
  assert main.run(['genvision', command, '--help']) == 0
  out = capsys.readouterr().out
  listed = set(re.findall(r'^  --(?:\[no\])?(\w+):', out, flags=re.M))
  assert listed == OWN_FLAGS[command]
  assert out.startswith(f'  genvision {command}')


def test_usage_lists_every_command(capsys):
  assert main.run(['genvision', '--help']) == 0
  out = capsys.readouterr().out
  assert all(f'genvision {c} ' in out for c in cli.COMMANDS)
  assert main.run(['genvision']) == 2


def test_flag_meanings_differ_by_command_and_do_not_leak_between_runs():
  """--steps is DDIM steps for sample (default: the run's) and images per strip for
  interpolate (default 8); a second parse starts from the defaults, not the first's values."""
  sample, interpolate = main.command_module('sample'), main.command_module('interpolate')
  common.parse('sample', sample, ['--workdir=a', '--steps=50', '--noema'])
  assert sample.FLAGS.steps == 50 and not sample.FLAGS.ema
  common.parse('interpolate', interpolate, ['--workdir=a'])
  assert interpolate.FLAGS.steps == 8
  common.parse('sample', sample, ['--workdir=b'])
  assert sample.FLAGS.steps is None and sample.FLAGS.ema and sample.FLAGS.workdir == 'b'


@pytest.mark.parametrize('argv,message', [
    (['sample', '--workdir=x', '--rows=3'], "genvision sample: error: Unknown command line "
                                            "flag 'rows'"),
    (['train', '--workdir=x', '--num=3'], "genvision train: error: Unknown command line flag "
                                          "'num'"),
    (['bpd', 'extra'], "genvision bpd: error: unexpected arguments ['extra']"),
    (['sample'], 'genvision sample: error: sample needs --workdir=DIR of a trained run'),
    (['prepare'], 'genvision prepare: error: prepare needs --dataset=NAME'),
    (['compare'], 'genvision compare: error: compare needs run or group directories'),
])
def test_usage_errors_are_one_line_with_exit_code_2(argv, message, capsys):
  assert main.run(['genvision', *argv]) == 2
  err = capsys.readouterr().err
  assert err.startswith(message) and len(err.strip().splitlines()) == 1, err


def test_train_records_the_command_of_each_seed_run():
  train = main.command_module('train')
  argv = ['--config=experiments/dcgan_mnist.py', '--workdir', 'runs/d', '--seeds=3',
          '--config.train.seed=5', '--config.train.num_steps=7']
  assert train.command_line(argv) == 'genvision train ' + ' '.join(
      ['--config=experiments/dcgan_mnist.py', '--workdir', 'runs/d', '--seeds=3',
       '--config.train.seed=5', '--config.train.num_steps=7'])
  assert train.command_line(argv, 'runs/d/seed_1', 6) == (
      'genvision train --config=experiments/dcgan_mnist.py --config.train.num_steps=7 '
      '--workdir=runs/d/seed_1 --config.train.seed=6')
