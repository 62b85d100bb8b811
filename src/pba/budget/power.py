"""What a budgeted demo's verdict can be expected to show (`power_statement`): how far the
planned regime is from the one where a searched schedule separated from the baseline, the
verdict's expected standard error, and the budget that reaches that regime on this device.

The figures are the 15-minute CIFAR-10 demos measured so far (docs/benchmarks.md, "The
15-minute demo"): WRN-10-1 final models on 500 training images, 3 seeds an arm.
"""

from __future__ import annotations

import math

from pba.budget.regime import Regime
from pba.core.formatting import duration

# The final models' epochs from which the schedule separated from the baseline on two sets of
# seeds (+4.6 and +4.2 points at 112 epochs on a 2-core fp32 CPU); at 42 and 46 neither did.
MIN_FINAL_EPOCHS = 96
SEPARATED_TRAIN = 500  # training images of the regime where the schedule separated
SEPARATED_GAINS = (3.7, 6.3)  # points over the baseline there, at 96 to 124 final epochs
UNSEPARATED = "42-51 final epochs gained under 1 point"
SEED_SD = 0.9  # test-error points between seeds of one arm, pooled over those demos


def verdict_standard_error(seeds: int, sd: float = SEED_SD) -> float:
    """The standard error of the difference of two arms' mean test errors, `seeds` each."""
    return math.sqrt(2 * sd ** 2 / seeds)


def power_statement(regime: Regime, need_s: float | None, seeds: int = 3) -> tuple[str, ...]:
    """Lines saying how a planned regime's final models compare with the regime where a
    schedule separated from the baseline, and, below it, that `need_s` seconds of budget
    reach it on this device (`pba.budget.planner.budget_for_final_floor`; None: no budget
    within a day does)."""
    if regime.final_model is None:
        return ()
    two_se = 2 * verdict_standard_error(seeds)
    images = (f"{regime.train_size:,} images" + ("" if regime.train_size == SEPARATED_TRAIN
              else f" (there: {SEPARATED_TRAIN})"))
    lines = [f"power: final models of {regime.final_epochs} epochs on {images}. On CIFAR-10 "
             f"the searched schedule beat the baseline by {SEPARATED_GAINS[0]}-"
             f"{SEPARATED_GAINS[1]} points with {MIN_FINAL_EPOCHS} or more final epochs; "
             f"{UNSEPARATED}. With {seeds} seeds an arm the verdict's two standard errors are "
             f"about {two_se:.1f} points (seed-to-seed sd {SEED_SD})"]
    if regime.final_epochs >= MIN_FINAL_EPOCHS:
        lines.append("this regime is within the one where the schedule separated")
        return tuple(lines)
    reach = ("no budget within a day reaches it on this device" if need_s is None else
             f"a budget of {duration(need_s)} reaches {MIN_FINAL_EPOCHS} final epochs on this "
             f"device: the same command with --budget {round(need_s / 60)}m and a new --out")
    lines.append(f"this budget is below that regime on this device, so expect no clear "
                 f"difference; {reach}")
    return tuple(lines)
