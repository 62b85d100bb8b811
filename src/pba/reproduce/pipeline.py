"""`run`: the stages of `pba reproduce` in order, each in a child process under the watchdog
(`pba.reproduce.supervisor`), within a time budget, then the results table."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from pba.core.device import resolve_device
from pba.core.errors import UserError
from pba.data import load_dataset
from pba.reproduce.carry import DATA_FILE, STATE_FILE, export_state, unpack_state
from pba.reproduce.plan import REFERENCE_FILE, STAGES, dry_plan, paper_plan
from pba.reproduce.stages import (
    is_done,
    progress_printer,
    restart_if_unresumable,
    stage,
    stage_job,
)
from pba.reproduce.supervisor import start, supervise
from pba.reproduce.table import RESULTS_MD, record_process, write_results

INCOMPLETE = 75  # exit status when stopped for the budget (EX_TEMPFAIL: run again)
RESERVE_S = 20.0  # of the budget, kept to stop a child and write the table and the archive
MIN_START_S = 60.0  # no stage is started with less left: its start-up alone takes a good part


def run(
    carry: str | Path,
    out: str | Path,
    *,
    budget_s: float | None = None,
    stages: Sequence[str] = STAGES,
    device: str = "auto",
    dry_run: bool = False,
    export: str | Path | None = None,
) -> bool:
    """Run or continue `stages` (of STAGES, run in the pipeline's order) from the `prepare`d
    folder `carry` into `out`, within `budget_s` seconds if given, then write results.md and
    results.json (and, with `export`, the state archive and the results there). Returns
    whether every stage asked for has finished; False: run it again to continue."""
    started = time.monotonic()
    deadline = None if budget_s is None else started + budget_s - RESERVE_S
    unknown = [name for name in stages if name not in STAGES]
    if unknown:
        raise UserError(f"unknown stage(s) {', '.join(unknown)}; known: {', '.join(STAGES)}")
    stages = [name for name in STAGES if name in stages]
    plan = dry_plan() if dry_run else paper_plan()
    carry, out = Path(carry), Path(out)
    data_file, reference = carry / DATA_FILE, carry / REFERENCE_FILE
    for needed in (data_file, reference):
        if not needed.is_file():
            raise UserError(f"{needed} is missing: write the folder with "
                           f"`pba reproduce prepare --out {carry}`")
    # Fails now on a bad file or sizes, not minutes into a stage.
    data = load_dataset(f"npz:{data_file}", train_size=plan.train_size, val_size=plan.val_size)
    if (carry / STATE_FILE).is_file() and not out.exists():
        unpack_state(carry / STATE_FILE, out)
    out.mkdir(parents=True, exist_ok=True)
    label = device_label(device)
    complete = True
    try:
        for name in stages:
            s = stage(out, name)
            if is_done(s):
                print(f"[reproduce] {name}: done, skipped", flush=True)
                continue
            if name == "pba_search" and not is_done(stage(out, "search")):
                print(f"[reproduce] {name}: waits for the search", flush=True)
                complete = False
                continue
            if deadline is not None and deadline - time.monotonic() < MIN_START_S:
                print(f"[reproduce] {name}: too little of the budget left to start", flush=True)
                complete = False
                break
            restart_if_unresumable(s)
            j = stage_job(s, plan, data_file, reference, device)
            print(f"[reproduce] {name}: {j.what}", flush=True)
            began = time.monotonic()
            try:
                ended = supervise(start(j.target, *j.args), s.path / s.resume_point, deadline,
                                  on_resume_point=progress_printer(s))
            finally:
                record_process(out, name, time.monotonic() - began, label)
            if is_done(s):
                continue
            if ended.error is not None:
                raise UserError(f"stage {name}: {ended.error}")
            if ended.interrupted:
                complete = False
                break
            raise UserError(f"stage {name} failed with exit status {ended.status} (its output is "
                           "above)")
    finally:
        table = write_results(out, plan, data, stages)
        if export is not None:
            export_state(out, Path(export))
    print(table)
    if complete:
        print(f"[reproduce] complete: {out / RESULTS_MD}")
    else:
        print("[reproduce] not complete: run the same command again to continue")
    return complete



def device_label(device: str) -> str:
    """What the stages will run on, for the table; fails now where `device` is not there."""
    resolved = resolve_device(device)
    if resolved.type == "cuda":
        return torch.cuda.get_device_name(resolved)
    return f"cpu ({os.cpu_count()} cores)"
