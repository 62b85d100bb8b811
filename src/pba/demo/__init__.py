"""The whole user story in one call: search a schedule, train final models with it and with the
usual baselines on seeds the search did not use, and report whether it wins. `pba demo`.

    from pba.demo import DEMO, run_demo
    table = run_demo(DEMO, "runs/demo", reference="rcifar10_16_wrn.txt")
    run_demo(DEMO, "runs/demo", first_seed=11)    # the same search, judged on seeds 11, 12, ...
    mine = dataclasses.replace(DEMO, dataset="folder:photos")
    run_demo(mine, "runs/mine", budget=900)        # sized to 15 minutes here (pba.budget)

    DIR/demo.json            what the demo runs (DemoConfig), the published schedule's path, the
                             first seed of every set of final models, the processes' wall time,
                             the budget's plan and measurements and the final models' refit
    DIR/search/              the search's run directory (`pba.search.rundir`): schedule.json,
                             schedule.png, population.png, summary.md, ...
    DIR/final/ARM-seedK/     one `pba.runs.training_run` directory per final model
    DIR/results.json         every arm's test errors, the verdicts, the recommended augmentation
                             (`pba.demo.results`)
    DIR/summary.md           the report: recommendation, verdicts, test errors, the search's cost

`pba report DIR` prints the same report. Every stage resumes: the search from its last round,
each final model from its last epoch; finished ones are kept. On a CPU the final models train
side by side, one per core with one torch thread each (`pba.core.parallel`).

`config` holds what the demo runs (`DemoConfig`, `DEMO`), `record` the directory and demo.json,
`pipeline` the run, `report` and `results` the report; the final models are described as
`pba reproduce` describes its own (`pba.runs.final_models`).
"""

from pba.demo.config import ARMS, DEFAULT_FIRST_SEED, DEMO, DEMO_TIME, DemoConfig, seed_set
from pba.demo.pipeline import run_demo
from pba.demo.record import is_demo_dir
from pba.demo.report import demo_report

__all__ = [
    "ARMS",
    "DEFAULT_FIRST_SEED",
    "DEMO",
    "DEMO_TIME",
    "DemoConfig",
    "demo_report",
    "is_demo_dir",
    "run_demo",
    "seed_set",
]
