"""What every kind of run directory shares (a search, a training run, a demo, a reproduction):
one owner at a time, and writes that are atomic, durable and explained when they fail.

    class TrainingDir(RunDirectory):
        kind = "training run"
        def resume_hint(self): return f"pba train --resume {self.path}"

    run = TrainingDir("runs/final")
    with run.owned("pba train"):
        run.write_json("config.json", config)

Every file a run writes goes through `pba.core.atomic` (a temporary file, fsync, rename, fsync of
the
directory), by `write_bytes`, `write_text` and `write_json` or inside `writing`. When the OS
refuses a write (a full disk, a quota, a read-only or vanished mount), the error names the
directory, what it keeps and the command that continues it; the files written before are intact.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

from pba.core.atomic import write_bytes_atomic
from pba.core.errors import RunStopped, UserError
from pba.core.lock import owned

CONFIG = "config.json"


class RunDirectory:
    kind: ClassVar[str] = "run"  # what it is, for messages
    # config.json's "format" and "version": what wrote it, so that a reader refuses others'.
    format: ClassVar[str | None] = None
    version: ClassVar[int] = 1

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def write_config(self, doc: dict) -> None:
        """config.json, stamped with this kind's format and version."""
        stamp = {} if self.format is None else {"format": self.format, "version": self.version}
        self.path.mkdir(parents=True, exist_ok=True)
        self.write_json(CONFIG, stamp | doc)

    def read_config(self) -> dict:
        """config.json, checked to be this kind's (a config without a format is accepted where
        the kind has none, as runs written before formats were)."""
        path = self.path / CONFIG
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            doc = None
        if not isinstance(doc, dict) or doc.get("format") != self.format:
            raise UserError(f"{self.path} is not a pba {self.kind} directory (no {CONFIG} "
                           f"written by pba for a {self.kind})")
        if self.format is not None and doc.get("version") != self.version:
            raise UserError(f"{self.path} was written by a pba {self.kind} of format version "
                           f"{doc.get('version')!r}; this pba reads version {self.version}")
        return doc

    def is_finished(self) -> bool:
        """Whether the run is over, by its kind's one marker (the kinds whose parts are resumed
        one by one: a search, a training run)."""
        raise NotImplementedError

    def resume_hint(self) -> str:
        """The command that continues this run after a failure."""
        return "the same command again"

    def kept(self) -> str:
        """What a failed write leaves for the resume, for people."""
        return "the files written before it are kept"

    def owned(self, command: str):
        """Hold the directory's lock for a block (`pba.core.lock`)."""
        return owned(self.path, command)

    @contextmanager
    def writing(self, what: str) -> Iterator[None]:
        """Turn an OS error inside the block (writing `what`) into advice."""
        try:
            yield
        except OSError as err:
            raise RunStopped(
                f"cannot write {what} in {self.path} ({err.strerror or err}); {self.kept()}: "
                f"fix the cause (free some space?) and continue with {self.resume_hint()}"
            ) from None

    def write_bytes(self, name: str, data: bytes) -> None:
        with self.writing(name):
            write_bytes_atomic(self.path / name, data)

    def write_text(self, name: str, text: str) -> None:
        self.write_bytes(name, text.encode())

    def write_json(self, name: str, doc: object) -> None:
        self.write_text(name, json.dumps(doc, indent=2) + "\n")
