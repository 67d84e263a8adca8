"""Image grids, training curves and scatter plots of latent codes."""

import json
import math
import os

import numpy as np
from PIL import Image


def image_grid(images, ncol: int | None = None, padding: int = 2, pad_value: float = 1.0):
  """images [N, H, W, C] in [-1, 1] -> one uint8 [rows*H', ncol*W', C] grid (C = 1 or 3)."""
  images = np.asarray(images, np.float32)
  if images.ndim != 4:
    raise ValueError(f'expected images [N, H, W, C], got shape {images.shape}')
  n, h, w, c = images.shape
  ncol = ncol or int(math.ceil(math.sqrt(n)))
  nrow = int(math.ceil(n / ncol))
  grid = np.full((nrow * (h + padding) + padding, ncol * (w + padding) + padding, c),
                 pad_value, np.float32)
  for i in range(n):
    r, col = divmod(i, ncol)
    y, x = padding + r * (h + padding), padding + col * (w + padding)
    grid[y:y + h, x:x + w] = images[i]
  return np.round((np.clip(grid, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)


def save_image_grid(images, path: str, ncol: int | None = None, scale: int = 2,
                    padding: int = 2) -> str:
  """Writes `image_grid(images)` as a PNG (nearest-neighbour upscaled by `scale`)."""
  grid = image_grid(images, ncol, padding)
  pil = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
  if scale > 1:
    pil = pil.resize((pil.width * scale, pil.height * scale), Image.NEAREST)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  from genvision_jax.training import rundir  # pylint: disable=g-import-not-at-top
  with rundir.atomic_open(path, 'wb') as f:  # a reader never sees half a PNG
    pil.save(f, format=Image.registered_extensions().get(
        os.path.splitext(path)[1].lower(), 'PNG'))
  return path


def read_metrics(path: str) -> list[dict]:
  """The records of a run's metrics.jsonl."""
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def plot_metrics(records: list[dict], keys: list[str], path: str | None = None):
  """Line plot of `keys` against step; saved to `path` if given. Returns the figure."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  if path:
    matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, ax = plt.subplots(figsize=(6, 3.5))
  for key in keys:
    pts = [(r['step'], r[key]) for r in records if key in r]
    if pts:
      ax.plot(*zip(*pts), label=key)
  ax.set_xlabel('step')
  ax.legend()
  ax.grid(alpha=0.3)
  fig.tight_layout()
  if path:
    fig.savefig(path, dpi=100)
  return fig


def scatter_codes(codes, labels, path: str | None = None, title: str = ''):
  """Scatter plot of codes [N, D] coloured by class labels [N] (None: one colour), saved to
  `path` if given. D = 2 is drawn as is; D > 2 on the first two principal components of the
  codes (the axes say which). Returns the figure."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  if path:
    matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  codes = np.asarray(codes, np.float64)
  if codes.shape[1] == 2:
    xy, axes = codes, ('$z_1$', '$z_2$')
  else:
    centred = codes - codes.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    xy = centred @ vt[:2].T
    share = s[:2]**2 / np.sum(s**2)
    axes = tuple(f'principal component {i + 1} of z ({100 * v:.0f}% of variance)'
                 for i, v in enumerate(share))
  fig, ax = plt.subplots(figsize=(6, 5.5))
  if labels is None:
    ax.scatter(xy[:, 0], xy[:, 1], s=6)
  else:
    labels = np.asarray(labels)
    for k in np.unique(labels):
      ax.scatter(*xy[labels == k].T, s=6, color=plt.cm.tab10(int(k) % 10), label=str(k))
    ax.legend(markerscale=3, fontsize=8, loc='best', title='class')
  ax.set_xlabel(axes[0])
  ax.set_ylabel(axes[1])
  ax.set_title(title, fontsize=9)
  ax.grid(alpha=0.3)
  fig.tight_layout()
  if path:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    from genvision_jax.training import rundir  # pylint: disable=g-import-not-at-top
    with rundir.atomic_open(path, 'wb') as f:
      fig.savefig(f, dpi=110, format=os.path.splitext(path)[1].lstrip('.').lower() or 'png')
    plt.close(fig)
  return fig
