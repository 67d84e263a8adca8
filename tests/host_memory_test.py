"""The malloc settings of training.host_memory: in effect where they should be, and they stop
XLA:CPU's per-call buffers from being page-faulted in again on every call."""

import os
import platform
import subprocess
import sys

import pytest

_SCRIPT = r'''
import resource, sys
from genvision_jax.training import host_memory
applied = host_memory.keep_freed_host_memory() if sys.argv[1] == 'keep' else False
import jax, jax.numpy as jnp
f = jax.jit(lambda x: jnp.sum((x @ x.T) @ x))  # x @ x.T: a 64 MB temporary
x = jnp.ones((4096, 64)) * 0.01
for _ in range(3):
  f(x).block_until_ready()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
  f(x).block_until_ready()
faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5
print(applied, faults)
'''


def _untuned_environ(**env) -> dict[str, str]:
  """This process's environment without malloc tuning or the opt-out, plus `env`."""
  return {**{k: v for k, v in os.environ.items()
             if not k.startswith('MALLOC_') and k not in ('GLIBC_TUNABLES',
                                                           'GENVISION_SYSTEM_MALLOC')}, **env}


def _faults_per_call(mode: str) -> tuple[bool, float]:
  out = subprocess.run([sys.executable, '-c', _SCRIPT, mode], capture_output=True, text=True,
                       env=_untuned_environ(), check=True).stdout.split()
  return out[0] == 'True', float(out[1])


@pytest.mark.skipif(platform.system() != 'Linux' or platform.libc_ver()[0] != 'glibc',
                    reason='glibc malloc only')
def test_kept_memory_is_not_faulted_in_again():
  applied, kept = _faults_per_call('keep')
  _, system = _faults_per_call('system')
  assert applied
  # System malloc: mmap + munmap of the temporaries on every call, thousands of page faults.
  assert system > 2000, system
  assert kept < 0.1 * system, (kept, system)


_BIG_TOP = r'''
import ctypes, ctypes.util, resource
from genvision_jax.training import host_memory
assert host_memory.keep_freed_host_memory()
libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
libc.malloc.restype = ctypes.c_void_p
n = 2**31 + 2**28  # 2.25 GiB: freed, it tops the heap above glibc's largest int threshold
faults = []
for _ in range(2):
  before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  block = libc.malloc(ctypes.c_size_t(n))
  ctypes.memset(block, 1, n)
  libc.free(ctypes.c_void_p(block))
  faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(*faults)
'''


@pytest.mark.skipif(platform.system() != 'Linux' or platform.libc_ver()[0] != 'glibc' or
                    os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') < 8 * 2**30,
                    reason='glibc malloc and 8 GiB of memory')
def test_a_freed_heap_top_above_2_gib_is_kept():
  """Steps with > 2 GiB of temporaries (the U-Net at batch 256) must not have them trimmed
  and faulted in again: the second 2.25 GiB block reuses the first one's pages. With the
  trim threshold at 2**31 - 1 this measured 524,288 faults the second time; now 0."""
  out = subprocess.run([sys.executable, '-c', _BIG_TOP], capture_output=True, text=True,
                       env=_untuned_environ(), check=True).stdout.split()
  first, second = map(int, out)
  assert first > 500_000, first     # 2.25 GiB of fresh pages (4 KiB each: 589,824)
  assert second < 0.01 * first, (first, second)


@pytest.mark.parametrize('env,expected', [({}, None), ({'GENVISION_SYSTEM_MALLOC': '1'}, 'False'),
                                          ({'MALLOC_ARENA_MAX': '4'}, 'False'),
                                          ({'GLIBC_TUNABLES': 'glibc.malloc.hugetlb=1'}, 'False')])
def test_opt_out_and_user_tuning_win(env, expected):
  # The module alone (no JAX import): a fresh process per environment.
  script = ('import importlib.util, sys; spec = importlib.util.spec_from_file_location("m", '
            'sys.argv[1]); m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); '
            'print(m.keep_freed_host_memory(), m.keep_freed_host_memory())')
  path = os.path.join(os.path.dirname(__file__), '..', 'genvision_jax', 'training',
                      'host_memory.py')
  out = subprocess.run([sys.executable, '-c', script, path], capture_output=True, text=True,
                       env=_untuned_environ(**env), check=True).stdout.split()
  assert out[0] == out[1]  # applied once, the same answer after
  glibc = platform.system() == 'Linux' and platform.libc_ver()[0] == 'glibc'
  assert out[0] == (expected or str(glibc))
