"""Evaluation: sample-quality metrics on feature arrays and the significance tests that say
whether one model is really better than another. The feature networks themselves (Inception,
the digit classifier, VGG, random filters) are in genvision_jax/features/.

  metrics.py        FID, KID, Inception Score, precision/recall, density/coverage, the classifier
                    two-sample test, mode coverage and the IWAE bound; pure functions of arrays
                    (features, logits, labels, log-weights) with float64 statistics.
  identity.py       SD-GAN identity preservation: how often a classifier puts both images of a
                    pair with one z_I in one class, beside real pairs and independent z_I.
  significance.py   the paired bootstrap test of the notes, bootstrap intervals of set-level
                    metrics, intervals and tests across training seeds, histograms.
"""

from genvision_jax.evaluation import metrics
from genvision_jax.evaluation import significance

__all__ = ['metrics', 'significance']
