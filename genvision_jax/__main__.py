"""`python -m genvision_jax ...` is the `genvision` command."""

from genvision_jax.main import main

main()
