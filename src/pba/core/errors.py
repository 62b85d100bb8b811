"""What pba raises on purpose, by who can act on it.

    try:
        fit(config, out)
    except UserError:      # the input was wrong (also a ValueError): fix it, run again
        ...
    except RunStopped:     # the run cannot go on as it is: the message says what was kept
        ...                # and the command that continues it

Both are `PBAError`s, whose message is written for people: the command line prints it without a
traceback (exit status 2 for a `UserError`, 1 for a `RunStopped`). Anything else that escapes
pba, a `RuntimeError` or a failed assertion, is a broken invariant: a bug, which the command
line reports with its traceback and a request to report it.
"""


class PBAError(Exception):
    """An error pba raises on purpose, explained in its message."""


class UserError(PBAError, ValueError):
    """A mistake in the user's input (a flag, a setting, a file, an image, a directory) that
    the message explains: nothing was lost, and the same command with the input fixed runs."""


class RunStopped(PBAError):
    """A run that started cannot continue as it is (its population diverged, the disk refused
    a write, members failed more often than allowed). The message says what was kept and how
    to continue."""
