"""README.md points only at files that exist in this repository."""

import re

from tests.conftest import REPO


def _readme() -> str:
  return (REPO / 'README.md').read_text()


def test_readme_links_no_file_outside_the_repository():
  assert not re.findall(r'\.\./', _readme())


def test_readme_paths_exist():
  """Every repository path the README names (`experiments/...py`, `genvision_jax/...`,
  `notebooks/...`, `benchmarks/...`, `tests/...`) exists; braces expand as in the shell."""
  paths = set()
  for match in re.findall(r'(?<![\w/.])((?:experiments|genvision_jax|notebooks|benchmarks|tests)'
                          r'/[\w/{},.*-]+)', _readme()):
    match = match.rstrip('.,')
    brace = re.search(r'\{([^}]*)\}', match)
    names = ([match[:brace.start()] + n + match[brace.end():] for n in brace.group(1).split(',')]
             if brace else [match])
    placeholder = re.compile(r'(?<![A-Za-z])X(?![A-Za-z])|NAME')  # experiments/X.py, ...
    paths.update(n for n in names if '*' not in n and not placeholder.search(n))
  missing = sorted(p for p in paths if not (REPO / p.split(':')[0]).exists())
  assert paths and not missing, missing
