"""A child process and its watchdog: `start` runs a function in a fresh interpreter, `supervise`
waits for it and, with a deadline, interrupts it (SIGINT, as Ctrl-C would) just after it writes
a resume point when the next unit of work would not end in time. The child's PBAError reaches
the parent as one line. `pba reproduce` runs each stage so.

    child = start(train_stage, out)                 # `train_stage` importable by name
    ended = supervise(child, out / "metrics.jsonl", deadline=time.monotonic() + 500)
    ended.interrupted, ended.status, ended.error
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import NamedTuple

from pba.core.allocator import keep_freed_memory
from pba.core.errors import PBAError

SAFETY = 1.25  # the next round or epoch is assumed to take this much longer than the last
POLL_S = 0.5
STOP_WAIT_S = 60.0  # after the interrupt, before the child is killed
# A child's exit status when interrupted, and when it stopped on a PBAError (the CLI's).
INTERRUPTED, FAILED = 130, 2


@dataclass(frozen=True)
class Child:
    """A child process, and the end of the pipe its PBAError comes through."""

    process: BaseProcess
    errors: Connection


class Exit(NamedTuple):
    status: int  # the child's exit code (negative: the signal that ended it)
    interrupted: bool  # by the watchdog
    error: str | None  # the PBAError the child stopped with


def start(target: Callable[..., None], *args: object) -> Child:
    """`target(*args)` in a fresh interpreter (spawn: nothing of this process's CUDA state or
    threads is inherited, and its GPU memory is given back when it exits). `target` must be
    importable by name."""
    context = multiprocessing.get_context("spawn")
    errors, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child_main, args=(target, args, sender))
    process.start()
    sender.close()  # this process's copy: the child's exit then ends the pipe
    return Child(process, errors)


def _child_main(target: Callable[..., None], args: tuple, errors: Connection) -> None:
    # Line by line, so that in a log the child's lines and the watchdog's stay in order.
    sys.stdout.reconfigure(line_buffering=True)
    keep_freed_memory()  # a fresh interpreter of pba's own (pba.core.allocator)
    try:
        target(*args)
    except KeyboardInterrupt:  # the watchdog's stop (or Ctrl-C): resume points are intact
        sys.exit(INTERRUPTED)
    except PBAError as err:
        errors.send(str(err))
        sys.exit(FAILED)


def supervise(
    child: Child,
    resume_point: Path,
    deadline: float | None,
    on_resume_point: Callable[[], None] | None = None,
) -> Exit:
    """Wait for `child`; with a `deadline` (time.monotonic()), interrupt it just after it
    writes `resume_point` when the next unit of work would not end by then, or at the
    deadline. A child still running when this process is interrupted is stopped too."""
    try:
        interrupted = _watch(child.process, resume_point, deadline, on_resume_point)
    finally:
        if child.process.is_alive():
            os.kill(child.process.pid, signal.SIGINT)
            child.process.join(STOP_WAIT_S)
            if child.process.is_alive():
                child.process.kill()
                child.process.join()
    error = None
    if child.errors.poll():  # data, or the end of the pipe
        try:
            error = child.errors.recv()
        except EOFError:
            pass
    child.errors.close()
    return Exit(child.process.exitcode, interrupted, error)


def _watch(
    process: BaseProcess,
    resume_point: Path,
    deadline: float | None,
    on_resume_point: Callable[[], None] | None,
) -> bool:
    """Until `process` ends (False) or should be stopped (True)."""

    def mark() -> tuple[int, int] | None:
        try:
            st = resume_point.stat()
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_mtime_ns  # atomic writes replace the file: a new inode

    last_mark, last_time = mark(), time.monotonic()
    while True:
        process.join(POLL_S)
        if process.exitcode is not None:
            return False
        now, current = time.monotonic(), mark()
        why = None
        if current != last_mark:
            # A resume point, just written. The last unit's duration (the first one's includes
            # the start-up, so it errs long) predicts the next.
            unit = now - last_time
            last_mark, last_time = current, now
            if on_resume_point is not None:
                on_resume_point()
            if deadline is not None and now + SAFETY * unit > deadline:
                why = f"at a resume point: the next ~{unit:.0f} s would pass the budget"
        if why is None and deadline is not None and now >= deadline:
            why = "at the budget's end: the unit under way will be redone"
        if why is not None:
            print(f"[reproduce] stopping {why}", flush=True)
            return True
