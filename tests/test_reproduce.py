"""pba reproduce (pba.reproduce): the carried data file, the stages' child processes and their
watchdog, the command line, the dry run end to end, resuming.

Real CIFAR-10 from $PBA_DATA_DIR (conftest: else ../shared/data); nothing is downloaded.
"""

from __future__ import annotations

import json
import shutil
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from pba import reproduce
from pba.cli.main import main
from pba.core.atomic import write_text_atomic
from pba.core.errors import PBAError
from pba.data import DatasetSplits, ImageSet, channel_stats, load_dataset, save_npz
from pba.data.datasets import default_baseline

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO.parent / "shared" / "reference" / reproduce.REFERENCE_FILE
VAL, TEST = 512, 500  # a small carried folder, so that the dry run evaluates quickly


@pytest.fixture(scope="module")
def carry(data_dir: Path, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("carry")
    argv = ["reproduce", "prepare", "--out", str(folder), "--data-dir", str(data_dir),
            "--reference", str(REFERENCE), "--val-size", str(VAL), "--test-size", str(TEST)]
    assert main(argv) == 0
    return folder


def _same_images(a: ImageSet, b: ImageSet) -> None:
    assert torch.equal(a.images, b.images)
    assert torch.equal(a.labels, b.labels)


def test_npz_round_trip_keeps_splits_and_statistics(carry, data_dir):
    source = load_dataset("reduced_cifar10", data_dir, val_size=VAL)
    copy = load_dataset(f"npz:{carry / reproduce.DATA_FILE}")
    _same_images(copy.train, source.train)
    _same_images(copy.val, source.val)
    _same_images(copy.test, ImageSet(source.test.images[:TEST], source.test.labels[:TEST]))
    assert (copy.mean, copy.std, copy.fill) == (source.mean, source.std, source.fill)
    assert copy.mean == (0.49056774, 0.48116026, 0.44726052)  # the paper's, not recomputed
    assert (copy.name, copy.num_classes, copy.baseline) == (
        source.name, source.num_classes, source.baseline)
    assert (carry / reproduce.REFERENCE_FILE).read_text() == REFERENCE.read_text()

    # A cut training set gets its own statistics, as load_dataset gives any other subset.
    cut = load_dataset(f"npz:{carry / reproduce.DATA_FILE}", train_size=256, val_size=0)
    _same_images(cut.train, ImageSet(source.train.images[:256], source.train.labels[:256]))
    assert cut.val is None
    assert (cut.mean, cut.std) == channel_stats(source.train.images[:256])


def test_npz_errors(tmp_path, cifar_images):
    images = ImageSet(cifar_images[:8], torch.arange(8) % 10)
    data = DatasetSplits("tiny", images, None, images, 10, (0.5,) * 3, (0.25,) * 3,
                         default_baseline("cifar10"))
    path = save_npz(tmp_path / "tiny.npz", data)
    assert load_dataset(f"npz:{path}").val is None
    with pytest.raises(PBAError, match="train_size"):
        load_dataset(f"npz:{path}", train_size=9)
    with pytest.raises(PBAError, match="no dataset file"):
        load_dataset(f"npz:{tmp_path / 'missing.npz'}")
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(PBAError, match="not a pba dataset file"):
        load_dataset(f"npz:{tmp_path / 'other.npz'}")


def _write_resume_points(path: Path) -> None:
    """A stage's stand-in: a resume point every 0.3 s for 30 s, written atomically as the
    stages write theirs (an interrupt between truncating and writing would leave it empty)."""
    for i in range(100):
        time.sleep(0.3)
        write_text_atomic(path, str(i))


def _fail() -> None:
    raise PBAError("no such thing")


def test_budget_interrupts_the_child_just_after_a_resume_point(tmp_path):
    marker = tmp_path / "state.json"
    child = reproduce.start(_write_resume_points, marker)
    while not marker.exists():  # its start-up (a fresh interpreter importing torch) is not timed
        assert child.process.is_alive()
        time.sleep(0.05)
    started = time.monotonic()
    status, interrupted, error = reproduce.supervise(child, marker, deadline=started + 2.0)
    assert interrupted and status == reproduce.INTERRUPTED and error is None
    assert time.monotonic() - started < 10
    assert 1 <= int(marker.read_text()) < 10


def test_a_childs_pbaerror_reaches_the_parent_in_one_line(tmp_path):
    ended = reproduce.supervise(reproduce.start(_fail), tmp_path / "state.json", deadline=None)
    assert ended == (reproduce.FAILED, False, "no such thing")


def test_command_line_help_errors_and_the_budget_status(carry, tmp_path, capsys):
    for argv in (["reproduce", "--help"], ["reproduce", "run", "--help"]):
        with pytest.raises(SystemExit) as stop:
            main(argv)
        assert stop.value.code == 0
        assert "--budget-s" in capsys.readouterr().out
    out = tmp_path / "run"
    assert main(["reproduce", "run", "--carry", str(tmp_path / "missing"), "--out",
                 str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pba reproduce: error: ") and err.count("\n") == 1
    assert "pba reproduce prepare --out" in err and not out.exists()
    # Too little of the budget to start a stage: nothing runs, and the status says "again".
    assert main(["reproduce", "run", "--dry-run", "--carry", str(carry), "--out", str(out),
                 "--device", "cpu", "--budget-s", "30"]) == reproduce.INCOMPLETE
    assert "too little of the budget left to start" in capsys.readouterr().out
    doc = json.loads((out / reproduce.RESULTS_JSON).read_text())
    assert {row["status"] for row in doc["rows"]} == {"pending"}
    assert not (out / reproduce.PROGRESS).exists()


def test_dry_run_end_to_end_then_skips_finished_stages(carry, tmp_path, capsys, monkeypatch):
    # One thread per stage: on a busy 2-core machine two threads each run 4x slower (measured).
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out, export = tmp_path / "run", tmp_path / "export"
    argv = ["reproduce", "run", "--dry-run", "--carry", str(carry), "--out", str(out), "--device",
            "cpu", "--export", str(export)]
    assert main(argv) == 0
    table = (out / reproduce.RESULTS_MD).read_text()
    doc = json.loads((out / reproduce.RESULTS_JSON).read_text())
    assert [row["stage"] for row in doc["rows"]] == list(reproduce.FINALS)
    for row in doc["rows"]:
        assert 0 <= row["test_error"] <= 100 and row["status"] == "done"
        assert row["epochs_done"] == row["epochs"] == 2
        assert f"| {row['augmentation']} | {row['test_error']:.2f} |" in table
    assert doc["search"]["status"] == "done" and doc["search"]["wall_s"] > 0
    assert doc["data"] == doc["data"] | {"train": 512, "val": VAL, "test": TEST}
    assert "| 12.82 |" in table  # the paper's PBA figure beside ours
    with tarfile.open(export / reproduce.STATE_FILE) as tar:
        names = tar.getnames()
    assert "./search/schedule.json" in names and "./baseline/result.json" in names
    assert not [n for n in names if n.endswith(".pt")]  # checkpoints stay behind
    progress = (out / reproduce.PROGRESS).read_text()

    # Again: every stage is skipped, nothing is trained, the table is the same.
    capsys.readouterr()
    started = time.monotonic()
    assert main(argv) == 0
    assert time.monotonic() - started < 20
    printed = capsys.readouterr().out
    assert printed.count("done, skipped") == len(reproduce.STAGES)
    assert (out / reproduce.RESULTS_MD).read_text() == table
    assert (out / reproduce.PROGRESS).read_text() == progress

    # On a fresh machine: the exported state, carried, restores the finished stages.
    shutil.copyfile(export / reproduce.STATE_FILE, carry / reproduce.STATE_FILE)
    fresh = tmp_path / "fresh"
    try:
        assert main(["reproduce", "run", "--dry-run", "--carry", str(carry), "--out", str(fresh),
                     "--device", "cpu"]) == 0
    finally:
        (carry / reproduce.STATE_FILE).unlink()
    assert capsys.readouterr().out.count("done, skipped") == len(reproduce.STAGES)
    assert (fresh / reproduce.RESULTS_MD).read_text() == table
