""""Are GANs Created Equal?" (Lucic et al. 2018) on the offline digits: the notes' GAN loss
table (minimax, non-saturating, WGAN, WGAN-GP, LS-GAN, DRAGAN, BEGAN) and hinge, each its
experiments/gan/ config, x 3 seeds at equal steps (2,000 each), every run evaluated by
digits_cnn Frechet distance, precision/recall and mode coverage on 5,000 samples; the ranking
with t-intervals, Welch tests Holm-corrected over the 28 pairs, and Lucic et al.'s MNIST FIDs
beside it.

  genvision study --config=experiments/studies/gan_losses_mnist.py --workdir=runs/study_losses
  genvision study --config=experiments/studies/gan_losses_mnist.py:budget --workdir=runs/study_budget
  genvision report runs/study_losses --out=losses.html

Variants: `budget` (equal wall-clock per run instead of equal steps: each loss trains for
`budget_seconds`, its step count set from its measured steps/s — WGAN's 5 critic updates make its
step dearer), `search` (Lucic et al.'s random search: 4 trials of the learning rate and Adam's
beta1 per loss, one seed each), `smoke` (two losses, two seeds, a few steps of tiny models, for
the tests).
"""

from genvision_jax.configs import variants as parse_variants
from genvision_jax.studies.spec import default_config, group

VARIANTS = ('budget', 'search', 'smoke')
LOSSES = ('minimax', 'non_saturating', 'wgan', 'wgan_gp', 'lsgan', 'dragan', 'began', 'hinge')
# Lucic et al. (2018), Table 2: best FID on MNIST (Inception features, full MNIST, 100
# hyperparameter samples per model); hinge is not in their table.
LUCIC_MNIST_FID = {'non_saturating': 6.8, 'wgan': 6.7, 'minimax': 9.8, 'wgan_gp': 20.3,
                   'dragan': 7.6, 'began': 13.1, 'lsgan': 7.8}


def get_config(arg=None):
  chosen = parse_variants(arg, VARIANTS, 'gan_losses_mnist')
  c = default_config()
  c.name = 'gan_losses_mnist'
  smoke = 'smoke' in chosen
  losses = ('non_saturating', 'hinge') if smoke else LOSSES
  for loss in losses:
    c.groups[loss] = group(f'../gan/{loss}_mnist.py' + (':smoke' if smoke else ''))
  c.overrides = ('train.num_steps=2000', 'train.sample_every=1000')
  c.seeds = (0, 1, 2)
  c.evaluation.num_samples = 5000
  c.evaluation.metrics = ('fd', 'manifold', 'modes')
  c.evaluation.features = ('digits_cnn',)
  c.primary_metric = 'digits_cnn/fd'
  c.reference.source = ("Lucic et al. 2018, Table 2: MNIST FID (Inception), best of 100 "
                        "hyperparameter samples on 60,000 digits")
  c.reference.table = {k: v for k, v in LUCIC_MNIST_FID.items() if k in losses}
  if 'budget' in chosen:
    c.name += '_budget'
    c.budget_seconds = 240.0  # about what the non-saturating loss needs for 2,000 steps
    c.calibration_steps = 100
  if 'search' in chosen:
    c.name += '_search'
    c.seeds = (0,)
    c.search.num_trials = 4
    c.search.seed = 0
    c.search.space = (('optim.g.learning_rate', 'log_uniform', 5e-5, 1e-3),
                      ('optim.d.learning_rate', 'log_uniform', 5e-5, 1e-3),
                      ('optim.g.b1', 'choice', (0.0, 0.5, 0.9)))
  if smoke:
    c.overrides = ('train.num_steps=6', 'train.sample_every=6', 'train.checkpoint_every=3')
    c.seeds = (0, 1)
    c.evaluation.num_samples = 64
    c.evaluation.metrics = ('fd', 'modes')
    c.budget_seconds = 2.0 if 'budget' in chosen else 0.0
    c.calibration_steps = 4
    c.search.num_trials = 2 if 'search' in chosen else 0
  return c
