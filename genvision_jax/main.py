"""The `genvision` command line: a dispatcher only.

`genvision COMMAND ARGS` runs `genvision_jax/cli/COMMAND.py` with its own flags
(`genvision COMMAND --help` lists them); `genvision --help` lists the commands. The shared
flags, the one-line errors and the exit codes are in `genvision_jax/cli/common.py`.
"""

import importlib
import sys

from genvision_jax import cli
from genvision_jax.cli import common


def command_module(command: str):
  """The module of `genvision COMMAND`."""
  return importlib.import_module(f'genvision_jax.cli.{command}')


def usage() -> str:
  lines = [command_module(c).SYNOPSIS.rstrip() for c in cli.COMMANDS]
  return ('usage:\n' + '\n'.join(lines) + '\n\n`genvision COMMAND --help` lists the flags of '
          'one command.\n\nEvery expected failure (bad config, missing dataset, corrupt '
          'checkpoint, non-finite loss,\ninterruption) ends with one line naming the cause and '
          'the fix, and no traceback.')


def run(argv=None) -> int:
  """Entry point of the `genvision` console script; returns the exit code."""
  argv = list(sys.argv if argv is None else argv)
  if len(argv) < 2 or argv[1] in ('-h', '--help', 'help'):
    print(usage())
    return 0 if len(argv) >= 2 else 2
  command = argv[1]
  if command not in cli.COMMANDS:
    print(f'{common.PROG}: error: unknown command {command!r}; use one of '
          f'{", ".join(cli.COMMANDS)}\n{usage()}', file=sys.stderr)
    return 2
  return common.run_command(command, command_module(command), argv[2:])


def main():
  sys.exit(run())


if __name__ == '__main__':
  main()
