"""Sizing a search, or the whole demo, to a wall-clock budget: `--budget 15m`.

    plan = plan_budget(preset("quick").replace(dataset="folder:photos"), 900, time.monotonic(),
                       final_model="wrn_10_2", final_models=10)   # loads, measures, plans
    config = preset("quick").replace(**plan.regime.search_changes())

    rates = {m: measure_rates(m, image_size=(32, 32), ...) for m in ("wrn_10_1", "wrn_10_2")}
    plan = plan_run(900, 20.0, facts, rates, model="wrn_10_1", final_model="wrn_10_2")

`rates` measures how fast this device trains and scores the models at the data's image size
(a few steps of each, as many models at once as the run trains); `regime` predicts the time
of a regime from those rates; `planner` picks the richest regime of a short ladder that the
budget fills with epochs; `refit` refits the demo's final models' epochs to the time the
search left.
"""

from pba.budget.planner import (
    PLANNED,
    Plan,
    batch_for,
    final_epochs_for,
    parse_duration,
    plan_budget,
    plan_run,
    split_sizes,
)
from pba.budget.rates import Rates, measure_rates
from pba.budget.refit import pace, refit_final_epochs
from pba.budget.regime import Facts, Regime, data_facts

__all__ = [
    "PLANNED",
    "Facts",
    "Plan",
    "Rates",
    "Regime",
    "batch_for",
    "data_facts",
    "final_epochs_for",
    "measure_rates",
    "pace",
    "parse_duration",
    "plan_budget",
    "plan_run",
    "refit_final_epochs",
    "split_sizes",
]
