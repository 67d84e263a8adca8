"""Diffusion maths, independent of networks: the discrete Gaussian diffusion of Ho et al.
(`discrete`), processes as Gaussian paths -- DDPM, continuous VP, flow matching, EDM
(`processes`) --, samplers that solve their reverse ODE/SDE (`samplers`) and Monte-Carlo
estimates of the variational bound (`likelihood`).

The names of the discrete module are re-exported here (`diffusion.GaussianDiffusion`, ...),
as they were when it was the module `genvision_jax/diffusion.py`.
"""

from genvision_jax.diffusion import likelihood, processes, samplers
from genvision_jax.diffusion.discrete import (PREDICTIONS, SCHEDULES, VARIANCES,
                                              GaussianDiffusion, cosine_alpha_bar, cosine_betas,
                                              guided_output, linear_betas, make_betas,
                                              sampling_timesteps)

__all__ = ['GaussianDiffusion', 'PREDICTIONS', 'SCHEDULES', 'VARIANCES', 'cosine_alpha_bar',
           'cosine_betas', 'guided_output', 'likelihood', 'linear_betas', 'make_betas',
           'processes', 'samplers', 'sampling_timesteps']
