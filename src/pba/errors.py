"""User-facing errors: the CLI prints their message and exits with status 2, no traceback."""


class PBAError(Exception):
    """A mistake in the user's input (a file, a flag, an image) that we can explain in one line."""
