"""--tensorboard: a search's rounds and a training run's epochs as TensorBoard scalars, and a
clear message when the optional extra is missing."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

from pba.cli.main import main
from pba.core.errors import PBAError
from pba.reporting.recorders import search_recorders
from pba.reporting.tensorboard import FOLDER, TensorBoardLog
from pba.search import preset
from pba.search.events import Evaluate, Round, Train
from pba.search.runner import run_search

pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
from tensorboard.backend.event_processing.event_accumulator import (  # noqa: E402
    EventAccumulator,
)


def scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    log = EventAccumulator(str(run_dir / FOLDER))
    log.Reload()
    return {tag: [(e.step, e.value) for e in log.Scalars(tag)] for tag in log.Tags()["scalars"]}


def test_search_rounds_become_scalars_per_member(tmp_path: Path) -> None:
    policy = [0] * 60
    policy[0], policy[2] = 5, 10  # strength 1.5
    events = [
        Train(0, 0, (0, 2), tuple(policy), 2.0, 0.4, 128, 1.0),
        Train(0, 1, (0, 2), (0,) * 60, math.nan, 0.1, 128, 1.0),
        Evaluate(0, 0, 2, 0.25, 2.1, 0.25),
        Evaluate(0, 1, 2, 0.5, math.nan, math.nan),
        Round(0, 2, 1, 0.5, 0.375, 256, 2.0, 0.0),
    ]
    with TensorBoardLog(tmp_path) as board:
        board.search_round(events)
    found = scalars(tmp_path)
    assert found["member_00/train_loss"] == [(2, 2.0)]
    assert found["member_00/policy_strength"] == [(2, 1.5)]
    assert found["member_01/val_accuracy"] == [(2, 0.5)]
    assert "member_01/train_loss" not in found  # a diverged member's null loss is left out
    assert found["population/median_val_accuracy"] == [(2, 0.375)]


def test_pba_train_logs_every_epoch(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(["train", "--dataset", "reduced_cifar10", "--model", "wrn_10_1", "--epochs",
                 "2", "--train-size", "128", "--val-size", "0", "--batch-size", "64",
                 "--precision", "fp32", "--out", str(out), "--tensorboard"]) == 0
    found = scalars(out)
    assert [step for step, _ in found["train/train_loss"]] == [1, 2]
    assert [step for step, _ in found["train/test_acc"]] == [2]  # evaluated after the last


def test_a_missing_extra_is_a_clear_error_before_any_work(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    with pytest.raises(PBAError, match=r"pip install 'pba\[tensorboard\]'"):
        run_search(preset("smoke"), tmp_path / "run",
                   recorders=search_recorders(progress=False, tensorboard=True))
    assert not (tmp_path / "run").exists()
