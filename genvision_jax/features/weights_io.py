"""Reading weight files without unpickling anything: .npz with `allow_pickle=False`, PyTorch
files with `torch.load(weights_only=True)` (torch is needed only for those)."""

from collections.abc import Mapping

import numpy as np


def read_arrays(path: str, error: type[Exception], convert_command: str) -> dict[str, np.ndarray]:
  """The raw name -> numpy array dict of an existing weight file: an .npz, or a PyTorch
  .pth/.pt state dict. An unreadable file, or a .pth without torch installed, raises `error`
  with the fix (`convert_command`: how to make a torch-free .npz of it)."""
  if path.endswith('.npz'):
    try:
      with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}
    except ValueError as e:
      raise error(f"cannot read '{path}' as an .npz of arrays: {e}") from e
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise error(
        f"reading the PyTorch file '{path}' needs torch, which is not installed. Either "
        'install torch (pip install torch), or convert the file once on a machine that has '
        f'it and pass the .npz: {convert_command}') from e
  try:
    state = torch.load(path, map_location='cpu', weights_only=True)
  except Exception as e:  # torch raises UnpicklingError, RuntimeError, ... on a bad file.
    raise error(
        f"cannot read '{path}' as a PyTorch state dict with torch.load(weights_only=True): "
        f'{type(e).__name__}: {e}') from e
  if not isinstance(state, Mapping):
    raise error(f"'{path}' holds a {type(state).__name__}, not a state dict")
  return {k: (v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v))
          for k, v in state.items()}



def kernel_from_torch(array):
  """PyTorch layout -> flax kernel: OIHW -> HWIO (conv), [out, in] -> [in, out] (Linear)."""
  return array.transpose(2, 3, 1, 0) if array.ndim == 4 else array.T


def torch_shape(flax_shape):
  """The PyTorch shape of a flax kernel's: HWIO -> OIHW, [in, out] -> [out, in]."""
  s = tuple(flax_shape)
  return (s[3], s[2], s[0], s[1]) if len(s) == 4 else s[::-1]


def summarize(names, limit: int = 8) -> str:
  """Up to `limit` sorted names and how many more (for error messages)."""
  names = sorted(names)
  more = f', ... ({len(names) - limit} more)' if len(names) > limit else ''
  return ', '.join(names[:limit]) + more
