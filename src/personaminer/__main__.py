"""``python -m personaminer``: the command line."""

from personaminer.cli import main

main()
