"""User-facing errors: the CLI prints their message and exits non-zero, without a traceback."""


class MorphError(Exception):
    """Bad input or a failed precondition; the message says what to fix."""
