"""The demo's final models refitted to the time the search left (`refit_final_epochs`)."""

from __future__ import annotations

import math
from collections.abc import Mapping

from pba.budget.power import MIN_FINAL_EPOCHS
from pba.budget.rates import Rates
from pba.budget.regime import FINAL_SLOWER, OVERHEAD_S, SAFETY, Facts, Regime
from pba.training.loop import images_per_epoch

# The final models' epochs, refitted to the time the search left, stay within these multiples
# of the planned ones (the schedule stretches to them), as does the search's pace
# taken to predict theirs.
REFIT_RANGE = (0.5, 1.6)


def pace(actual_s: float, predicted_s: float) -> float:
    """How many times its predicted time a stage took, within the inverse of REFIT_RANGE (a
    stage far off its prediction says little more about the next one)."""
    low, high = REFIT_RANGE
    return min(1 / low, max(1 / high, actual_s / predicted_s))


def refit_final_epochs(
    regime: Regime, facts: Facts, rates: Mapping[str, Rates], left_s: float, slowdown: float,
) -> int:
    """The final models' epochs that end them within `left_s` seconds (less the safety
    margin), when the search ran `slowdown` times as long as predicted (so the final models
    likely will too), within REFIT_RANGE of the planned epochs; a plan at MIN_FINAL_EPOCHS keeps
    them where the time left holds them without the margin."""
    final = rates[regime.final_model]
    waves = math.ceil(regime.final_models / final.workers)
    per_epoch = images_per_epoch(regime.train_size, regime.batch_size) / final.train
    fixed = facts.test / final.evaluate

    def fitting(margin: float) -> int:
        return math.floor(((left_s * margin / slowdown - OVERHEAD_S) / FINAL_SLOWER / waves
                           - fixed) / per_epoch)

    epochs = fitting(SAFETY)
    if regime.final_epochs >= MIN_FINAL_EPOCHS:
        # Planned at the floor the verdict needs: keep it where the time left holds it
        # without the safety margin (a search a few percent slow would otherwise cost it).
        epochs = max(epochs, min(MIN_FINAL_EPOCHS, fitting(1.0)))
    low, high = REFIT_RANGE
    return max(math.ceil(regime.final_epochs * low),
               min(epochs, round(regime.final_epochs * high)))
