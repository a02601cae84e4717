"""`python -m argus …`: the CLI, for when the `argus` script is not on PATH (e.g. a child
process started with this interpreter)."""

from argus.workers.cli import main

main()
