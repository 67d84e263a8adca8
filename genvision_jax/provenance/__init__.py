"""Provenance: which images a model made, and from what (DESIGN.md: watermarks, detectors,
attribution; they read run directories).

  statistics   the tests: binomial bits, non-central chi^2, TPR at FPR, AUC
  treering     Tree-Ring keys in the Fourier transform of a diffusion model's x_T
  runner       the drivers behind `genvision watermark` (the only I/O here)

The attacks (JPEG, noise, blur, ...) are genvision_jax/attacks.py: the watermark methods train
through them too.
"""


class ProvenanceError(ValueError):
  """A provenance command cannot run as asked (the message names the fix)."""
