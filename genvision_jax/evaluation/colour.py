"""Per-image colour metrics of RGB outputs against their targets (image-to-image evaluation of
colour data, e.g. colorization), computed on the host with scikit-image:

  colour/ciede2000            the CIEDE2000 colour difference (Sharma, Wu & Dalal 2005) of each
                              pixel, `skimage.color.deltaE_ciede2000` of the CIELAB values
                              (`skimage.color.rgb2lab`: sRGB, D65, 2-degree observer), averaged
                              over the image's pixels; lower is better, ~1 is a just noticeable
                              difference, a grey output of a saturated target is tens.
  colour/colourfulness        Hasler & Suesstrunk's (2003) colourfulness of the output:
                              M = sqrt(sd(rg)^2 + sd(yb)^2) + 0.3 sqrt(mean(rg)^2 + mean(yb)^2)
                              over the pixels, rg = R - G, yb = (R + G) / 2 - B, RGB in 0..255
                              (population sd); 0 for any grey image, ~15 'slightly', ~33
                              'moderately', ~59 'quite', ~82 'highly' colourful (their scale).
  colour/colourfulness_error  |M(output) - M(target)| per image; lower is better.

Images are NHWC in [-1, 1] (outputs are clipped to it), 3 channels.
"""

import numpy as np
from skimage import color

CIEDE2000 = 'colour/ciede2000'
COLOURFULNESS = 'colour/colourfulness'
COLOURFULNESS_TARGET = 'colour/colourfulness_target'
COLOURFULNESS_ERROR = 'colour/colourfulness_error'
# CIEDE2000 and the colourfulness error go to per_example.npz (paired by `genvision compare`;
# lower is better, evaluation.runner.HIGHER_IS_BETTER). The outputs' colourfulness itself has
# no better direction (the target's is right) and is reported as a mean only.
MEAN_ONLY = (COLOURFULNESS,)


def _unit(images) -> np.ndarray:
  """[-1, 1] -> [0, 1] float64, clipped."""
  return np.clip((np.asarray(images, np.float64) + 1.0) / 2.0, 0.0, 1.0)


def ciede2000(outputs, targets, chunk: int = 256) -> np.ndarray:
  """Per-image mean CIEDE2000 difference of outputs vs targets, [N] (both NHWC RGB)."""
  a, b = _unit(outputs), _unit(targets)
  if a.shape != b.shape or a.shape[-1] != 3:
    raise ValueError(f'CIEDE2000 needs RGB outputs and targets of one shape, got {a.shape} and '
                     f'{b.shape}')
  out = [color.deltaE_ciede2000(color.rgb2lab(a[i:i + chunk]), color.rgb2lab(b[i:i + chunk]),
                                channel_axis=-1).mean(axis=(1, 2))
         for i in range(0, len(a), chunk)]
  return np.concatenate(out) if out else np.zeros((0,))


def colourfulness(images) -> np.ndarray:
  """Hasler & Suesstrunk's colourfulness M of each RGB image (0..255 scale), [N]."""
  x = 255.0 * _unit(images)
  if x.shape[-1] != 3:
    raise ValueError(f'colourfulness needs RGB images, got {x.shape[-1]} channels')
  r, g, b = x[..., 0], x[..., 1], x[..., 2]
  rg, yb = r - g, 0.5 * (r + g) - b
  axes = (1, 2)
  return (np.sqrt(rg.std(axis=axes)**2 + yb.std(axis=axes)**2)
          + 0.3 * np.sqrt(rg.mean(axis=axes)**2 + yb.mean(axis=axes)**2))


def colour_metrics(outputs, targets, target_colourfulness=None) -> dict[str, np.ndarray]:
  """{CIEDE2000, COLOURFULNESS, COLOURFULNESS_ERROR: per-image values [N]} of outputs vs
  targets (`target_colourfulness`: `colourfulness(targets)` if already computed)."""
  m_target = colourfulness(targets) if target_colourfulness is None else target_colourfulness
  m_out = colourfulness(outputs)
  return {CIEDE2000: ciede2000(outputs, targets), COLOURFULNESS: m_out,
          COLOURFULNESS_ERROR: np.abs(m_out - m_target)}


def summary_lines(metrics: dict[str, dict]) -> list[str]:
  """Lines of a table of the colour metrics, one per candidate ({name: metrics dict})."""
  lines = [f"{'':<22}{'CIEDE2000':>10}{'colourful':>10}{'|dM|':>8}"]
  for name, m in metrics.items():
    lines.append(f'{name:<22}{m[CIEDE2000]:>10.2f}{m[COLOURFULNESS]:>10.2f}'
                 f'{m[COLOURFULNESS_ERROR]:>8.2f}')
  target = next(iter(metrics.values()))[COLOURFULNESS_TARGET]
  lines.append(f"{'targets':<22}{'':>10}{target:>10.2f}")
  return lines
