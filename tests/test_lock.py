"""One process owns a run directory: a second search, resume, train or demo on a live one is
refused naming the owner; a killed owner's lock is taken over; a search that fails before its
first round leaves nothing that blocks the same command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pba.cli.main import main
from pba.core.errors import PBAError
from pba.core.lock import LOCK, owned, owner
from pba.core.options import RunOptions
from pba.reporting.recorders import search_recorders
from pba.search import preset
from pba.search.runner import run_search

PBA = [sys.executable, "-m", "pba.cli.main"]
HOLD = ("import sys, time; from pba.core.lock import owned\n"
        "with owned(sys.argv[1], 'holder'):\n"
        "    print('held', flush=True); time.sleep(60)")


def hold(directory: Path) -> subprocess.Popen:
    """Another process holding `directory`'s lock (until killed)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(directory)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, "the first owner ended early"
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_a_live_owner_is_named_and_a_killed_one_taken_over(tmp_path: Path, capsys) -> None:
    proc = hold(tmp_path)
    try:
        with pytest.raises(PBAError, match=rf"in use by holder \(pid {proc.pid} on "):
            with owned(tmp_path, "second"):
                pass
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert owner(tmp_path)["pid"] == proc.pid  # the killed owner's record stays ...
    with owned(tmp_path, "second"):  # ... but its lock went with it
        assert owner(tmp_path)["pid"] == os.getpid()
    assert f"taking over {tmp_path} from holder (pid {proc.pid}" in capsys.readouterr().err
    assert owner(tmp_path) is None  # released cleanly: nothing to take over next time
    with owned(tmp_path, "third"):
        pass
    assert "taking over" not in capsys.readouterr().err


def test_a_second_resume_of_a_running_search_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "run"
    # Long enough to outlast the second process's start: the smoke preset's 6 epochs end in a
    # few seconds now that evaluation no longer page-faults.
    epochs = 24
    first = subprocess.Popen([*PBA, "search", "--no-progress", "--preset", "smoke", "--epochs",
                              str(epochs), "--out", str(out)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    wait_for(out / "state.json", first)  # its first round is committed; it is still running
    second = subprocess.run([*PBA, "search", "--resume", str(out)], capture_output=True,
                            text=True, timeout=120)
    assert second.returncode == 2
    assert f"in use by pba search (pid {first.pid}" in second.stderr
    assert "Traceback" not in second.stderr
    assert first.wait(timeout=300) == 0, first.stderr.read()
    rounds = [json.loads(line)["round"] for line in (out / "population.jsonl").open()
              if '"event": "round"' in line]
    config = preset("smoke").replace(epochs=epochs)
    assert rounds == list(range(config.pbt().rounds))  # no round written twice


def test_train_and_demo_directories_are_owned_too(tmp_path: Path, capsys) -> None:
    proc = hold(tmp_path / "train")
    try:
        argv = ["train", "--dataset", "reduced_cifar10", "--model", "wrn_10_1", "--epochs", "1",
                "--train-size", "128", "--val-size", "0", "--out", str(tmp_path / "train")]
        assert main(argv) == 2
        assert "in use by holder" in capsys.readouterr().err
        assert not (tmp_path / "train" / "config.json").exists()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    proc = hold(tmp_path / "demo")
    try:
        assert main(["demo", "--out", str(tmp_path / "demo"), "--no-progress"]) == 2
        assert "in use by holder" in capsys.readouterr().err
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def test_a_search_failing_before_its_first_round_can_be_run_again(tmp_path: Path,
                                                                    monkeypatch) -> None:
    out = tmp_path / "run"
    config = preset("smoke").replace(epochs=2)
    with pytest.raises(PBAError, match="not found"):
        run_search(config, out, options=RunOptions(data_dir=tmp_path / "nowhere"),
                   recorders=search_recorders(progress=False))
    assert {p.name for p in out.iterdir()} <= {LOCK}

    from pba.search import runner

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl+C in the first round, after config.json was written

    monkeypatch.setattr(runner.PBT, "run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_search(config, out, recorders=search_recorders(progress=False))
    assert {p.name for p in out.iterdir()} <= {LOCK}
    monkeypatch.undo()
    # the same command, now it can run
    result = run_search(config, out, recorders=search_recorders(progress=False))
    assert len(result.schedule) == 2
