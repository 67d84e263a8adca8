"""`genvision humaneval`: a blinded two-alternative rating page (serve) and its analysis
(analyze); genvision_jax/studies/humaneval.py and webapp.py."""

import os

from absl import flags

from genvision_jax.cli import common

SYNOPSIS = """\
  genvision humaneval serve --runs=A,B[,...] [--real] [--db=humaneval.sqlite] [--port=8000]
      [--host=127.0.0.1] [--images=100] [--trials=20] [--attention_every=5]
  genvision humaneval analyze DB [--out=DIR] [--min_attention=1.0] [--bootstrap=1000]"""

POSITIONAL = True  # serve | analyze DB

FLAGS = flags.FlagValues()
_RUNS = flags.DEFINE_list('runs', None, 'serve: trained generative runs to rate.',
                          flag_values=FLAGS)
_REAL = flags.DEFINE_boolean('real', False, 'serve: real vs generated trials ("which one was '
                             'made by a model?") instead of model vs model.', flag_values=FLAGS)
_DB = flags.DEFINE_string('db', 'humaneval.sqlite', 'serve: the session database (SQLite); an '
                          'existing one resumes its session.', flag_values=FLAGS)
_HOST = flags.DEFINE_string('host', '127.0.0.1', 'serve: interface to bind (default: this '
                            'machine only).', flag_values=FLAGS)
_PORT = flags.DEFINE_integer('port', 8000, 'serve: TCP port.', flag_values=FLAGS)
_IMAGES = flags.DEFINE_integer('images', 100, 'serve: images pooled per model and of real test '
                               'images (and of noise).', flag_values=FLAGS)
_TRIALS = flags.DEFINE_integer('trials', 20, 'serve: trials per rater.', flag_values=FLAGS)
_ATTENTION = flags.DEFINE_integer('attention_every', 5, 'serve: every k-th trial is an '
                                  'attention check (real vs noise); 0: none.',
                                  flag_values=FLAGS)
_SEED = common.define_seed(FLAGS, 'Seed of the sampled pool and the noise images.')
_OUT = flags.DEFINE_string('out', None, 'analyze: directory for humaneval.json and '
                           'humaneval.png (default: next to DB).', flag_values=FLAGS)
_MIN_ATTENTION = flags.DEFINE_float('min_attention', 1.0, 'analyze: raters with a lower '
                                    'attention-check accuracy are excluded.', flag_values=FLAGS)
_BOOTSTRAP = flags.DEFINE_integer('bootstrap', 1000, 'analyze: bootstrap resamples of the '
                                  'Bradley-Terry intervals.', flag_values=FLAGS)


def serve(runs: list[str]) -> None:
  from genvision_jax.studies import humaneval  # pylint: disable=g-import-not-at-top
  if not runs:
    raise common.UsageError('humaneval serve needs --runs=RUN[,RUN...]')
  if _IMAGES.value < 2 or _TRIALS.value < 1 or _ATTENTION.value < 0:
    raise common.UsageError('--images must be >= 2, --trials >= 1, --attention_every >= 0')
  if not 0 < _PORT.value < 65536:
    raise common.UsageError(f'--port must be in 1..65535 (got {_PORT.value})')
  mode = 'real' if _REAL.value else 'pair'
  names = humaneval.model_names(runs)
  for run in names.values():
    if not os.path.isdir(os.path.join(run, 'checkpoints')):
      raise common.UsageError(f'{run} is not a trained run (no checkpoints/)')
  db_path = _DB.value
  exists = os.path.isfile(db_path)
  db = humaneval.connect(db_path, create=True)
  try:
    meta = humaneval.read_meta(db)
    if meta:
      wanted = {name: os.path.abspath(r) for name, r in names.items()}
      if meta['runs'] != wanted or meta['mode'] != mode:
        raise common.UsageError(
            f'{db_path} holds a session of {sorted(meta["runs"])} ({meta["mode"]} mode): rerun '
            'with the same --runs and --real to resume it, or pass a new --db')
      print(f'resuming the session in {db_path}', flush=True)
    else:
      models, real = humaneval.build_pool(list(names.values()), _IMAGES.value, _SEED.value)
      humaneval.create_session(db, models, real, mode, _TRIALS.value, _ATTENTION.value,
                               _SEED.value, {n: os.path.abspath(r) for n, r in names.items()})
  except BaseException:
    db.close()
    if not exists and os.path.isfile(db_path) and not humaneval.read_meta(
        humaneval.connect(db_path)):
      for suffix in ('', '-wal', '-shm'):
        if os.path.exists(db_path + suffix):
          os.remove(db_path + suffix)
    raise
  db.close()
  import uvicorn  # pylint: disable=g-import-not-at-top
  from genvision_jax.studies import webapp  # pylint: disable=g-import-not-at-top
  app = webapp.create_app(db_path)
  print(f'serving http://{_HOST.value}:{_PORT.value}/ (answers in {db_path}; Ctrl-C stops)',
        flush=True)
  uvicorn.run(app, host=_HOST.value, port=_PORT.value, log_level='warning')


def analyze(db_path: str) -> None:
  from genvision_jax.studies import humaneval  # pylint: disable=g-import-not-at-top
  from genvision_jax.training import rundir  # pylint: disable=g-import-not-at-top
  if not 0 <= _MIN_ATTENTION.value <= 1:
    raise common.UsageError(f'--min_attention must be in [0, 1] (got {_MIN_ATTENTION.value})')
  result = humaneval.analyze(db_path, _MIN_ATTENTION.value, _BOOTSTRAP.value, _SEED.value)
  out = _OUT.value or os.path.dirname(os.path.abspath(db_path))
  os.makedirs(out, exist_ok=True)
  rundir.write_json(os.path.join(out, 'humaneval.json'), result, indent=1)
  r = result['raters']
  print(f'{r["total"]} raters, {len(r["excluded"])} excluded by attention checks; '
        f'{result["trials_used"]} trials used')
  for q in result['pairs']:
    print(f'{q["a"]} preferred to {q["b"]}: {q["wins_a"]}/{q["n"]} = {q["rate"]:.3f} '
          f'[{q["low"]:.3f}, {q["high"]:.3f}] Wilson, binomial p = {q["p_value"]:.4g}')
  for q in result['fooling']:
    print(f'{q["model"]} fooling rate: {q["fooled"]}/{q["n"]} = {q["rate"]:.3f} '
          f'[{q["low"]:.3f}, {q["high"]:.3f}] Wilson, binomial p (0.5) = {q["p_value"]:.4g}')
  if result['bradley_terry']:
    for q in result['bradley_terry']['scores']:
      print(f'Bradley-Terry {q["model"]}: {q["score"]:.3f} [{q["low"]:.3f}, {q["high"]:.3f}]')
  if humaneval.figure(result, os.path.join(out, 'humaneval.png')) is not None:
    print(f'wrote {os.path.join(out, "humaneval.png")}')
  print(f'wrote {os.path.join(out, "humaneval.json")}')


def main(positional: list[str]) -> None:
  from genvision_jax.studies import humaneval  # pylint: disable=g-import-not-at-top
  if not positional or positional[0] not in ('serve', 'analyze'):
    raise common.UsageError('humaneval needs a subcommand: serve --runs=A,B | analyze DB')
  try:
    if positional[0] == 'serve':
      serve(list(_RUNS.value or []) + positional[1:])
    else:
      if len(positional) != 2:
        raise common.UsageError('humaneval analyze needs one database: genvision humaneval '
                                'analyze DB')
      analyze(positional[1])
  except humaneval.HumanEvalError as e:
    raise common.UsageError(str(e)) from None
