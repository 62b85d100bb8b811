"""How much a searched schedule's quality depends on the search's seed, under each selection rule.

    python benchmarks/selection_spread.py --out runs/selection     # the demo's regime, seeds 0-2
    python benchmarks/selection_spread.py --out runs/small --epochs 30 --interval 2 \\
        --train-size 500 --val-size 1000 --final-model wrn_10_1 --final-epochs 30 --final-seeds 1

For every rule and search seed, one search in the quick preset's regime (the demo's; the flags
change it for both rules alike), then final models with its schedule (the demo's model and
recipe unless told otherwise) on the same final seeds: the test error of each schedule (mean
over the final seeds), and how those spread over the search seeds (mean +- sd).
A rule whose schedules spread less is less at the mercy of the seed; one whose schedules are
better on average selects better. Also printed: how many exploits each search made (under
truncation every bottom member copies; under significant only clear differences do).

Everything resumes: run the same command again to continue; finished searches and models are
kept. The demo's regime takes hours on 2 CPU cores (six searches and twelve final models).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from pba.core.options import RunOptions
from pba.demo import DEMO
from pba.reporting.recorders import search_recorders
from pba.runs.final_models import Arm, FinalSettings, final_job, train_finals
from pba.runs.training_run import read_result
from pba.search import preset, rundir
from pba.search.pbt import SELECTIONS
from pba.search.presets import SearchConfig
from pba.search.rundir import SearchDir
from pba.search.runner import resume_search, run_search


def search(out: Path, config: SearchConfig, rule: str, seed: int, progress: bool) -> Path:
    """The finished search of `config` with `rule` and `seed` under `out` (run, continued or
    kept)."""
    run_dir = out / f"{rule}-seed{seed}"
    if (run_dir / rundir.SCHEDULE).is_file():
        return run_dir
    if (run_dir / rundir.CONFIG).is_file():
        resume_search(run_dir, recorders=search_recorders(progress=progress))
    else:
        run_search(config.replace(seed=seed, selection=rule), run_dir,
                   recorders=search_recorders(progress=progress))
    return run_dir


def final_models(run_dir: Path, model: str, epochs: int, seeds: list[int],
                 progress: bool) -> list[float]:
    """Test errors of `model` trained `epochs` epochs with `run_dir`'s schedule on `seeds`, in
    the demo's recipe otherwise."""
    config = SearchDir.open(run_dir).config()["search"]
    settings = FinalSettings(config["dataset"], model, epochs, DEMO.lr, DEMO.weight_decay,
                             config["batch_size"], val_size=0, train_size=config["train_size"])
    arm = Arm("pba", run_dir / rundir.SCHEDULE)
    outs = {seed: run_dir / "final" / f"seed{seed}" for seed in seeds}
    jobs = [final_job("pba", seed, out, settings, arm) for seed, out in outs.items()
            if read_result(out) is None]
    if jobs:
        train_finals(jobs, options=RunOptions(progress=progress))
    return [read_result(run_dir / "final" / f"seed{s}")["test_error"] for s in seeds]


def exploits(run_dir: Path) -> int:
    with (run_dir / rundir.LOG).open() as f:
        return sum(json.loads(line)["event"] == "exploit" for line in f)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="where the runs go")
    parser.add_argument("--rules", nargs="+", choices=SELECTIONS, default=list(SELECTIONS))
    parser.add_argument("--search-seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--final-seeds", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--epochs", type=int, help="of the search (default: the preset's)")
    parser.add_argument("--interval", type=int, help="default: the preset's")
    parser.add_argument("--train-size", type=int, help="default: the preset's")
    parser.add_argument("--val-size", type=int, help="default: the preset's")
    parser.add_argument("--final-model", default=DEMO.model)
    parser.add_argument("--final-epochs", type=int, default=DEMO.epochs)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()
    progress = not args.no_progress
    changes = {key: getattr(args, key) for key in ("epochs", "interval", "train_size", "val_size")
               if getattr(args, key) is not None}
    config = preset(DEMO.preset).replace(**changes)
    rows, spread = [], {}
    for rule in args.rules:
        for seed in args.search_seeds:
            run_dir = search(args.out, config, rule, seed, progress)
            errors = final_models(run_dir, args.final_model, args.final_epochs,
                                  args.final_seeds, progress)
            rows.append((rule, seed, exploits(run_dir), errors))
            spread.setdefault(rule, []).append(statistics.mean(errors))
    print(f"\nselection spread: {config.population} x {config.model}, {config.epochs} epochs "
          f"on {config.train_size} images, ranked on {config.val_size}; final models "
          f"{args.final_model} x {args.final_epochs} epochs on seeds {args.final_seeds}")
    print("| rule | search seed | exploits | test error % per final seed | mean |")
    print("| --- | --- | --- | --- | --- |")
    for rule, seed, count, errors in rows:
        print(f"| {rule} | {seed} | {count} | {', '.join(f'{e:.2f}' for e in errors)} | "
              f"{statistics.mean(errors):.2f} |")
    print("\n| rule | search seeds | mean of the schedules' errors | sd over search seeds |")
    print("| --- | --- | --- | --- |")
    for rule, means in spread.items():
        sd = statistics.stdev(means) if len(means) > 1 else float("nan")
        print(f"| {rule} | {len(means)} | {statistics.mean(means):.2f} | {sd:.2f} |")


if __name__ == "__main__":
    main()
