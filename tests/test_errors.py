"""The error hierarchy: a user's mistake is a UserError (a ValueError; the CLI exits 2), a run
that cannot continue a RunStopped (exit 1, what was kept and how to continue), anything else a
bug (exit 70 with the traceback and a request to report it)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import pba
from pba.augmentation.policy import Policy
from pba.cli.main import main
from pba.core.directory import RunDirectory
from pba.core.errors import PBAError, RunStopped, UserError
from pba.search.pbt import exploit_pairs


def test_a_users_mistake_is_a_value_error_and_a_pba_error() -> None:
    with pytest.raises(ValueError, match="policy entry 0"):
        Policy((11,) + (0,) * 59)
    with pytest.raises(UserError):
        pba.load_schedule("no/such/file.json")
    assert issubclass(UserError, PBAError) and issubclass(RunStopped, PBAError)
    assert not issubclass(RunStopped, ValueError)  # `except ValueError` is for inputs only
    assert pba.UserError is UserError and pba.RunStopped is RunStopped


def test_a_diverged_population_stops_the_run() -> None:
    with pytest.raises(RunStopped, match="diverged"):
        exploit_pairs([math.nan] * 4, 0.25, np.random.default_rng(0))


def test_a_refused_write_stops_the_run_and_says_what_was_kept(tmp_path: Path) -> None:
    class Dir(RunDirectory):
        kind = "test"

        def resume_hint(self) -> str:
            return "pba test --resume X"

        def kept(self) -> str:
            return "the epochs before it are kept"

    with pytest.raises(RunStopped, match="kept: fix the cause .* pba test --resume X"):
        with Dir(tmp_path).writing("metrics.jsonl"):
            raise OSError(28, "No space left on device")


@pytest.mark.parametrize(("error", "status", "says"), [
    (UserError("--epochs must be >= 1"), 2, "pba train: error: --epochs must be >= 1"),
    (RunStopped("diverged; kept: x"), 1, "pba train: stopped: diverged; kept: x"),
    (RuntimeError("an invariant broke"), 70, "internal error: this is a bug in pba"),
])
def test_the_command_line_exits_by_kind(monkeypatch, capsys, error: Exception, status: int,
                                        says: str) -> None:
    import pba.cli.train_cmd as train_cmd

    def fail(args) -> int:
        raise error

    monkeypatch.setattr(train_cmd, "run", fail)
    assert main(["train", "--dataset", "reduced_cifar10", "--model", "wrn_10_1", "--out",
                 "unused"]) == status
    err = capsys.readouterr().err
    assert says in err
    assert ("Traceback" in err) == (status == 70)  # only a bug shows its traceback
