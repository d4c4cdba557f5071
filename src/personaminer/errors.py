"""The one user-error class.

An error whose message is a complete instruction for the user (what is wrong, what to do)
derives from :class:`UserError`; the CLI prints it as one line and exits 1. Anything else that
escapes a command is a bug or a failure of the machine (see ``personaminer.cli.main``).
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input, a bad option, a workspace or model that cannot be used: the message says what to do."""
