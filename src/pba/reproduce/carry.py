"""The folder carried to a GPU machine: the data and the published schedule (`prepare`), and the
run's state between machines (`export_state`, `unpack_state`).

A fresh GPU machine starts bare, and checkpoints (a WRN-28-10's is ~300 MB, the search's 16
members ~300 MB) cannot travel through the 64 MiB carry limit: the state archive is the run
without them.
"""

from __future__ import annotations

import dataclasses
import shutil
import tarfile
from pathlib import Path

import torch

from pba.augmentation.schedule import load_schedule
from pba.core.atomic import atomic_path, write_text_atomic
from pba.core.errors import UserError
from pba.data import load_dataset, save_npz
from pba.data.imageset import take
from pba.reproduce.plan import DATASET, REFERENCE_EPOCHS, REFERENCE_FILE
from pba.reproduce.table import RESULTS_JSON, RESULTS_MD

DATA_FILE = "rcifar10.npz"
STATE_FILE = "state.tar.gz"
# The search's validation subset: the next 6,000 images of the paper's shuffled pool. The 4,000
# training and 10,000 test images compress to ~38.5 MiB; 6,000 validation images add ~16.5, so
# that the file (~55 MiB) and the working tree stay under the device's 64 MiB carry limit.
VAL_SIZE = 6000


def prepare(
    out: str | Path,
    reference: str | Path,
    *,
    data_dir: str | Path | None = None,
    val_size: int = VAL_SIZE,
    test_size: int | None = None,
) -> Path:
    """Write the reduced CIFAR-10 splits (with the paper's statistics) and the published
    schedule `reference` into `out`; `data_dir` holds cifar-10-batches-py/ (default
    `pba.data.data_root`'s); `test_size` keeps the first test images only (for dry runs).
    Returns the data file."""
    out = Path(out)
    load_schedule(reference, REFERENCE_EPOCHS)  # fail here, not on the GPU machine
    data = load_dataset(DATASET, data_dir, val_size=val_size)  # the paper's 4,000 and seed
    if test_size is not None:
        if not 1 <= test_size <= len(data.test):
            raise UserError(f"--test-size must be in 1..{len(data.test)}, got {test_size}")
        data = dataclasses.replace(data, test=take(data.test, torch.arange(test_size)))
    out.mkdir(parents=True, exist_ok=True)
    path = save_npz(out / DATA_FILE, data)
    with atomic_path(out / REFERENCE_FILE) as tmp:
        shutil.copyfile(reference, tmp)
    print(f"{path}: {len(data.train)} train, {len(data.val)} validation, {len(data.test)} test "
          f"images, mean {data.mean}, std {data.std}, fill {data.fill}; "
          f"{path.stat().st_size / 2**20:.1f} MiB")
    print(f"{out / REFERENCE_FILE}: the published schedule ({REFERENCE_EPOCHS} search epochs)")
    return path


def unpack_state(archive: Path, out: Path) -> None:
    """A state archive (`export_state`) into the new directory `out`, whole or not at all."""
    partial = out.with_name(f".{out.name}.unpacking")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(partial, filter="data")
    except (tarfile.TarError, OSError) as err:
        shutil.rmtree(partial, ignore_errors=True)
        raise UserError(f"{archive} cannot be unpacked ({err}); export it again or remove "
                       "it to start afresh") from None
    partial.rename(out)
    print(f"[reproduce] unpacked {archive} into {out}", flush=True)


def export_state(out: Path, folder: Path) -> None:
    """`out` without checkpoints, as one archive, with the results beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / STATE_FILE) as tmp, tarfile.open(tmp, "w:gz") as tar:
        tar.add(out, arcname=".", filter=lambda info: None if info.name.endswith(".pt") else info)
    for name in (RESULTS_MD, RESULTS_JSON):
        write_text_atomic(folder / name, (out / name).read_text())
    print(f"[reproduce] exported {folder / STATE_FILE} "
          f"({(folder / STATE_FILE).stat().st_size / 2**20:.1f} MiB) and the results", flush=True)
