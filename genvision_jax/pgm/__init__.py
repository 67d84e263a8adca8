"""Classical probabilistic models in jax (no flax, no optax, no I/O; scipy only for the L-BFGS
of the MRF pseudo-likelihood, a dependency of jax itself).

  simple.py    a product of independent Bernoullis: closed-form MLE, Laplace smoothing
  mixtures.py  mixtures of Bernoullis and Gaussian mixtures (diagonal and full covariance)
               fitted by EM; `run_em` scans EM iterations under jit
  factors.py   discrete factor graphs p(x) = (1/Z) prod_a psi_a(x_a) in log space
  inference.py Z, marginals and MAP by enumeration, variable elimination, belief propagation
               (exact on trees, loopy with damping) and Gibbs sampling, one API
  bayesnet.py  Bayes nets: CPTs, acyclicity, ancestral sampling, likelihood, MLE
  markov.py    Markov chains: stationary distribution, sampling, MLE of the transitions
  mrf.py       grid MRFs (Ising) vectorized: loopy BP, ICM, checkerboard Gibbs, noisy channel,
               pseudo-likelihood learning
  naive_bayes.py  the generative classifier y -> x_d: MLE, Bayes rule, as a Bayes net

Parameters are dicts of arrays (pytrees); every function is pure and jit-able. The data are
rows x [N, D]: binary {0, 1} (or intensities in [0, 1]) for the Bernoulli models, real vectors
for the Gaussian mixtures. Log-likelihoods are in nats, per row.
"""

from genvision_jax.pgm import bayesnet
from genvision_jax.pgm import factors
from genvision_jax.pgm import inference
from genvision_jax.pgm import markov
from genvision_jax.pgm import mixtures
from genvision_jax.pgm import mrf
from genvision_jax.pgm import naive_bayes
from genvision_jax.pgm import simple
