"""The `pba` command: argument parsing only; every subcommand calls the library."""

from pba.cli.main import main

__all__ = ["main"]
