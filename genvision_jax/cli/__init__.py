"""The `genvision` commands, one module per command (`genvision COMMAND` runs
`genvision_jax/cli/COMMAND.py`).

Each command module defines
  SYNOPSIS   its usage lines for `genvision --help`,
  FLAGS      its own `absl.flags.FlagValues` (so `genvision COMMAND --help` lists only its flags),
  main(positional) -> None   the command, raising the errors of `common.run_command`,
and optionally `precheck(args)` (run before flag parsing) and `POSITIONAL = True` (it takes
positional arguments). `common` defines the shared flags (workdir, seed, step, ema), the
error boundary and the exit codes. Adding a command is a new module and its name below.
"""

COMMANDS = ('train', 'sample', 'interpolate', 'encode', 'decode', 'translate', 'evaluate',
            'compare', 'bpd', 'likelihoods', 'finetune', 'reconstruction', 'study', 'report',
            'humaneval', 'pgm', 'prepare', 'watermark', 'neighbours', 'detect',
            'attribute', 'stylize')
