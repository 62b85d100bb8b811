"""Entry point of the `pba` command: one subparser per module in this package."""

from __future__ import annotations

import argparse
import sys
import traceback

from pba.core.allocator import keep_freed_memory
from pba.core.errors import PBAError, RunStopped

# Each module has `add_parser(subparsers)` and `run(args) -> int`; imported lazily so that
# `pba plot` does not pay for importing the training stack.
SUBCOMMANDS = ("demo", "search", "train", "apply", "plot", "report", "reproduce")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(
        prog="pba",
        description="Population Based Augmentation: learn augmentation policy schedules with "
        "Population Based Training and train models with them.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"pba.cli.{name}_cmd")
        module.add_parser(sub).set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    keep_freed_memory()  # pba's own process: see pba.core.allocator
    try:
        return args._run(args)
    except RunStopped as err:
        print(f"pba {args.command}: stopped: {err}", file=sys.stderr)
        return 1
    except PBAError as err:  # a UserError, or another error raised on purpose
        print(f"pba {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"pba {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception:
        # Not an error pba raises on purpose: a broken invariant, a bug.
        traceback.print_exc()
        print(f"pba {args.command}: internal error: this is a bug in pba; please report it "
              "with the traceback above and the command that caused it", file=sys.stderr)
        return 70


if __name__ == "__main__":
    sys.exit(main())
