"""Reproduce the paper's reduced CIFAR-10 table: a PBA search, then WRN-28-10 with 5 augmentations.
`pba reproduce`.

    # 1. here, where the data is: the data and the published schedule, as one folder to carry
    pba reproduce prepare --out carry/
    # 2. on the GPU machine, repeated until it prints "complete" (exit 0; 75 = stopped for time)
    pba reproduce run --carry carry/ --out runs/rcifar10 --budget-s 540 --export "$OUT"
    # the identical pipeline, CPU-sized (4 x WRN-10-1 for 4 epochs on 512 images, then five
    # WRN-10-1 for 2 epochs), from a small folder: 500 test images keep evaluation short
    pba reproduce prepare --out /tmp/carry-dry --val-size 512 --test-size 500
    OMP_NUM_THREADS=1 pba reproduce run --dry-run --carry /tmp/carry-dry --out /tmp/dry
    # (one thread: on a busy 2-core machine, 4x faster than two)

    from pba.reproduce import prepare, run
    if __name__ == "__main__":  # each stage's process is spawned, and imports this script first
        prepare("carry/", reference="rcifar10_16_wrn.txt")
        complete = run("carry/", "runs/rcifar10", budget_s=540, export="out/")

Stages, each a directory under --out, in this order:
  search         `run_search` of the paper-rcifar10 preset: 16 x WRN-40-2, 200 epochs, on the
                 paper's 4,000 training images, scored on the carried validation subset (the
                 paper scores on the other 46,000; see VAL_SIZE)
  pba_search     `pba.runs.training_run.fit`: WRN-28-10, 200 epochs, lr 0.05, wd 5e-3 with
                 this search's schedule
  pba_reference  ... with the published schedule (rcifar10_16_wrn.txt, a 200-epoch search)
  baseline       ... with pad-crop, flip and Cutout only
  autoaugment    ... torchvision's AutoAugment (CIFAR-10 policy), then the baseline
  randaugment    ... torchvision's RandAugment (N=2, M=9), then the baseline
then results.md and results.json under --out: the test errors beside the paper's, the search's
cost and each model's training time and device.

Resuming: a stage whose result exists is skipped; an unfinished one continues with the library's
own resume (`resume_search`, `fit(..., resume=True)`). Each stage runs in a child process (a
fresh interpreter, multiprocessing's spawn) that the parent watches (`supervisor`): with a
budget, once a stage has written a resume point (the search's state.json after a round, the
training's metrics.jsonl after an epoch) and the next round or epoch would not end in time, the
child is interrupted there (SIGINT; killed STOP_WAIT_S later), and `run` reports the pipeline
incomplete, which `pba reproduce run` exits with 75 so that the next command, the same one,
continues. Children also give the GPU's memory back between stages.

Between machines: a fresh GPU machine starts bare, and checkpoints (a WRN-28-10's is ~300 MB, the
search's 16 members ~300 MB) cannot travel through the 64 MiB carry limit. --export DIR writes
DIR/state.tar.gz (--out without checkpoints), results.md and results.json; put state.tar.gz into
the carried folder and `run` unpacks it when --out does not exist yet. Finished stages survive
that trip; an unfinished training starts again from epoch 0 and an unfinished search from round
0 (both are announced), so a stage must finish within one machine's lease.

`plan` holds what runs and its sizes, `carry` the carried folder and the state archive, `stages`
what each stage's child runs, `supervisor` the child processes and their watchdog, `pipeline`
the run, `table` the results.
"""

from pba.reproduce.carry import DATA_FILE, STATE_FILE, VAL_SIZE, prepare
from pba.reproduce.pipeline import INCOMPLETE, run
from pba.reproduce.plan import FINALS, REFERENCE_FILE, STAGES
from pba.reproduce.supervisor import FAILED, INTERRUPTED, start, supervise
from pba.reproduce.table import PROGRESS, RESULTS_JSON, RESULTS_MD

__all__ = [
    "DATA_FILE",
    "FAILED",
    "FINALS",
    "INCOMPLETE",
    "INTERRUPTED",
    "PROGRESS",
    "REFERENCE_FILE",
    "RESULTS_JSON",
    "RESULTS_MD",
    "STAGES",
    "STATE_FILE",
    "VAL_SIZE",
    "prepare",
    "run",
    "start",
    "supervise",
]
