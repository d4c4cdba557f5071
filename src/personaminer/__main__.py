"""``python -m personaminer``: the command line."""

from personaminer.cli import main

raise SystemExit(main())
