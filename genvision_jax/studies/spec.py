"""Study configs: a grid of runs (groups of experiment configs x seeds, optionally x random
hyperparameter trials), one evaluation protocol and what to compare.

A study config is a Python file with `get_config(arg=None)` returning an ml_collections
ConfigDict (see `experiments/studies/gan_losses_mnist.py`):

  groups          name -> {config: experiment path relative to the study file ('../gan/wgan_mnist.py',
                  ':VARIANT' allowed), overrides: ('train.num_steps=2000', ...)}
  overrides       'KEY=VALUE' strings applied to every group (before the group's own)
  seeds           train.seed of each run, e.g. (0, 1, 2)
  budget_seconds  0: every run trains its config's train.num_steps (equal steps); > 0: equal
                  wall-clock, train.num_steps = budget x the group's measured steps/s
                  (`calibration_steps` timed steps after compilation, once, recorded)
  search          num_trials (0: none), seed, space: ('KEY', 'log_uniform'|'uniform', low,
                  high) or ('KEY', 'choice', (v1, v2, ...)): each trial is a group per group
                  (Lucic et al.'s random search), named GROUP@tK
  evaluation      num_samples, metrics, features, seed: `genvision evaluate`'s protocol
  primary_metric  the metric of the ranking and the distribution figure ('digits_cnn/fd')
  alpha           family-wise error rate of the Holm-corrected pairwise tests
  reference       source, table: a published table of the groups (e.g. Lucic et al.'s FIDs),
                  set beside our ranking with Spearman's rank correlation

Every run is an ordinary run directory DIR/runs/GROUP/seed_S (a group directory is what
`genvision compare` takes); its command line is recorded, so a study's every number can be
reproduced without the study.
"""

import ast
import dataclasses
import importlib.util
import math
import os
import re

import ml_collections
import numpy as np

from genvision_jax import configs

NAME_RE = re.compile(r'^[A-Za-z0-9_][A-Za-z0-9_.-]*$')
DISTRIBUTIONS = ('log_uniform', 'uniform', 'choice')


class StudyError(configs.ConfigError):
  """A study config that cannot run (a clear error before any training)."""


@dataclasses.dataclass(frozen=True)
class RunSpec:
  """One run of a study: its group, seed, experiment and overrides (KEY=VALUE strings)."""
  group: str
  seed: int
  experiment: str           # path[:variant], absolute
  overrides: tuple[str, ...]

  @property
  def rel_dir(self) -> str:
    return os.path.join('runs', self.group, f'seed_{self.seed}')

  def command(self, study_dir: str, repo: str | None = None) -> str:
    """The `genvision train` command line of this run."""
    exp = self.experiment
    if repo:
      path, sep, arg = exp.partition(':')
      rel = os.path.relpath(path, repo)
      if not rel.startswith('..'):
        exp = rel + sep + arg
    flags_ = ' '.join(f'--config.{o}' for o in self.overrides)
    return (f'genvision train --config={exp} --workdir={os.path.join(study_dir, self.rel_dir)}'
            + (f' {flags_}' if flags_ else ''))


def default_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.name = ''
  c.groups = ml_collections.ConfigDict()
  c.overrides = ()
  c.seeds = (0, 1, 2)
  c.budget_seconds = 0.0
  c.calibration_steps = 50
  c.search = ml_collections.ConfigDict({'num_trials': 0, 'seed': 0, 'space': ()})
  c.evaluation = ml_collections.ConfigDict(
      {'num_samples': 5000, 'metrics': ('fd', 'manifold'), 'features': ('digits_cnn',),
       'seed': 0})
  c.primary_metric = 'digits_cnn/fd'
  c.alpha = 0.05
  # A published table to set the ranking beside (group name -> value of the same metric kind).
  c.reference = ml_collections.ConfigDict({'source': '', 'table': ml_collections.ConfigDict()})
  return c


def group(config: str, overrides=()) -> ml_collections.ConfigDict:
  """One group of a study: an experiment (relative to the study file) and its overrides."""
  return ml_collections.ConfigDict({'config': config, 'overrides': tuple(overrides)})


def load(spec: str, overrides: dict | None = None) -> tuple[ml_collections.ConfigDict, str]:
  """Loads 'path/to/study.py[:arg]' with dotted overrides; returns (config, its folder)."""
  path, _, arg = spec.partition(':')
  if not os.path.isfile(path):
    raise StudyError(f'study config {path} does not exist')
  module_spec = importlib.util.spec_from_file_location('_genvision_study', path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  try:
    config = module.get_config(arg) if arg else module.get_config()
  except ValueError as e:
    raise StudyError(f'{spec}: {e}') from None
  config.lock()
  for key, value in (overrides or {}).items():
    configs.set_field(config, key, value)
  validate(config)
  return config, os.path.dirname(os.path.abspath(path))


def split_override(text: str) -> tuple[str, str]:
  key, sep, value = str(text).partition('=')
  if not sep or not key:
    raise StudyError(f"override {text!r} is not KEY=VALUE (e.g. 'train.num_steps=2000')")
  return key.strip(), value.strip()


def coerce(old, text: str):
  """`text` as a value of the type of the config field's current value `old`."""
  if isinstance(old, bool):
    if text.lower() not in ('true', 'false', '1', '0'):
      raise ValueError(f'{text!r} is not a boolean')
    return text.lower() in ('true', '1')
  if isinstance(old, int):
    return int(text)
  if isinstance(old, float):
    return float(text)
  if isinstance(old, str):
    return text
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def apply_overrides(config, overrides) -> None:
  """config[KEY] = VALUE for each 'KEY=VALUE' (typed like the field); ConfigError if not."""
  for text in overrides:
    key, value = split_override(text)
    node = config
    *parents, leaf = key.split('.')
    try:
      for p in parents:
        node = node[p]
      old = node[leaf]
    except (KeyError, AttributeError, TypeError):
      raise StudyError(f"override {text!r}: unknown config key '{key}'") from None
    try:
      configs.set_field(config, key, coerce(old, value))
    except (ValueError, TypeError) as e:
      raise StudyError(f'override {text!r}: {e}') from None


def validate(c) -> None:
  if not len(c.groups):
    raise StudyError('the study names no groups (config.groups)')
  for name, g in c.groups.items():
    if not NAME_RE.match(name):
      raise StudyError(f'group name {name!r}: use letters, digits, _ . -')
    if set(g.keys()) != {'config', 'overrides'}:
      raise StudyError(f"group {name!r} must have exactly 'config' and 'overrides' (use "
                       'spec.group(...))')
    for o in tuple(g.overrides) + tuple(c.overrides):
      split_override(o)
  seeds = tuple(c.seeds)
  if not seeds or len(set(seeds)) != len(seeds) or any(
      not isinstance(s, int) or s < 0 for s in seeds):
    raise StudyError(f'seeds must be distinct non-negative integers (got {seeds})')
  if c.budget_seconds < 0:
    raise StudyError(f'budget_seconds must be >= 0 (got {c.budget_seconds})')
  if c.calibration_steps < 2:
    raise StudyError(f'calibration_steps must be >= 2 (got {c.calibration_steps})')
  if c.search.num_trials < 0:
    raise StudyError(f'search.num_trials must be >= 0 (got {c.search.num_trials})')
  for dim in c.search.space:
    if len(dim) < 3 or dim[1] not in DISTRIBUTIONS:
      raise StudyError(f'search dimension {dim!r}: use (KEY, log_uniform|uniform, low, high) '
                       'or (KEY, choice, (values...))')
    if dim[1] != 'choice' and not (len(dim) == 4 and dim[2] < dim[3] and
                                   (dim[1] == 'uniform' or dim[2] > 0)):
      raise StudyError(f'search dimension {dim!r}: needs 0 < low < high (log) or low < high')
  if c.search.num_trials and not c.search.space:
    raise StudyError('search.num_trials > 0 needs search.space')
  if not 0 < c.alpha < 1:
    raise StudyError(f'alpha must be in (0, 1) (got {c.alpha})')
  if c.evaluation.num_samples < 10:
    raise StudyError(f'evaluation.num_samples must be >= 10 (got {c.evaluation.num_samples})')


def _format(value) -> str:
  if isinstance(value, float):
    return f'{value:.6g}'
  return str(value)


def search_trials(c) -> list[tuple[str, ...]]:
  """The overrides of each random-search trial (seeded; the same for every group)."""
  rng = np.random.default_rng(c.search.seed)
  trials = []
  for _ in range(c.search.num_trials):
    overrides = []
    for dim in c.search.space:
      key, kind = dim[0], dim[1]
      if kind == 'choice':
        value = dim[2][int(rng.integers(len(dim[2])))]
      elif kind == 'log_uniform':
        value = float(math.exp(rng.uniform(math.log(dim[2]), math.log(dim[3]))))
      else:
        value = float(rng.uniform(dim[2], dim[3]))
      overrides.append(f'{key}={_format(value)}')
    trials.append(tuple(overrides))
  return trials


def expand(c, folder: str, steps: dict[str, int] | None = None) -> list[RunSpec]:
  """Every run of the study, seed-major (every group's first seed, then every group's second,
  ...: a study stopped early has the widest picture). `steps`: the calibrated train.num_steps
  of each group (equal wall-clock budgets)."""
  trials = search_trials(c) if c.search.num_trials else [()]
  runs = []
  for seed in c.seeds:
    for name, g in c.groups.items():
      path, sep, arg = g.config.partition(':')
      experiment = os.path.normpath(os.path.join(folder, path)) + sep + arg
      for k, trial in enumerate(trials):
        gname = f'{name}@t{k}' if c.search.num_trials else name
        base = tuple(c.overrides) + tuple(g.overrides) + trial
        if steps is not None:
          base += (f'train.num_steps={steps[name]}',)
        runs.append(RunSpec(gname, int(seed), experiment, base + (f'train.seed={seed}',)))
  return runs


def load_experiment(run: RunSpec):
  """The run's locked experiment config with its overrides applied (ConfigError if bad)."""
  config = configs.load(run.experiment)
  apply_overrides(config, run.overrides)
  return config
