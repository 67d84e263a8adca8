"""How the host's C allocator treats the memory XLA:CPU frees (glibc malloc on Linux).

XLA:CPU allocates every step's temporary buffers anew: about 120 MB for a DCGAN step at batch
256 on MNIST. glibc serves blocks that large with mmap and hands them back to the kernel on free,
so each step page-faults all of that memory in again. Measured on a 2-core VM: 276 MB of page
faults per DCGAN step at batch 256, and 1.25 -> 1.58 it/s once freed memory is kept
(`benchmarks/run.py`; VAE steps and batch 64 gain less, they fault less). Steps whose
temporaries exceed 2 GiB need the heap's top kept too: the diffusion U-Net at batch 256
faulted 3 GB per step with trimming at a 2 GiB threshold, none without (0.25 -> 0.42 it/s).

`keep_freed_host_memory()` sets glibc's malloc to keep freed memory for reuse: no mmap for large
blocks (M_MMAP_MAX 0), no trimming of the heap's top (M_TRIM_THRESHOLD -1, which mallopt(3)
documents as "disables trimming completely"), a 256 MiB top pad, and one arena (M_ARENA_MAX 1)
so the worker threads of XLA reuse the same heap. The price: the process keeps its peak memory
until it exits. `genvision` commands and `train_and_evaluate` call it; it does nothing off
glibc, when GENVISION_SYSTEM_MALLOC=1, or when the environment already tunes malloc
(MALLOC_*_ variables or GLIBC_TUNABLES), which then wins.
"""

import ctypes
import ctypes.util
import functools
import os
import platform

OPT_OUT = 'GENVISION_SYSTEM_MALLOC'
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -2, -4, -8
_SETTINGS = ((_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, -1), (_M_TOP_PAD, 2**28),
             (_M_ARENA_MAX, 1))
_USER_TUNING = ('MALLOC_ARENA_MAX', 'MALLOC_MMAP_MAX_', 'MALLOC_MMAP_THRESHOLD_',
                'MALLOC_TRIM_THRESHOLD_', 'MALLOC_TOP_PAD_', 'GLIBC_TUNABLES')


@functools.cache
def keep_freed_host_memory() -> bool:
  """Applies the malloc settings of the module doc once per process; returns whether they are
  in effect. Best called before JAX starts its CPU backend (the arena limit only reaches
  threads that have not allocated yet)."""
  if (os.environ.get(OPT_OUT, '') not in ('', '0') or
      any(name in os.environ for name in _USER_TUNING) or
      platform.system() != 'Linux' or platform.libc_ver()[0] != 'glibc'):
    return False
  libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
  return all(libc.mallopt(param, value) == 1 for param, value in _SETTINGS)
