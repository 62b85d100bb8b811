"""Does one augmentation beat another on held-out images, and which one to recommend.

A comparison is of final models' test errors (%) over seeds, the same data, model and recipe on
both sides: the difference of the means against two standard errors of that difference. Beyond
them it is a win or a loss; within, no clear difference. The recommendation never asks for more
effort than the evidence pays for: of the arms that no other arm beats, the one that costs least
(no augmentation, the baseline, TrivialAugment, the search-free schedule, a search of one's
own). So it is never an arm
that is clearly worse than another one trained, no augmentation included. A published schedule
is compared with but not recommended: it exists for CIFAR and SVHN, not for a user's images.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

BEATS, UNCLEAR, WORSE = "beats", "no clear difference", "worse"
# The arms a recommendation chooses from, least effort first (`pba demo`'s names).
EFFORT = ("none", "baseline", "trivialaugment", "ramp", "pba")
# For people, by arm.
ARM_NAMES = {"pba": "the searched schedule", "baseline": "the baseline",
             "trivialaugment": "TrivialAugment", "ramp": "the search-free schedule",
             "none": "no augmentation",
             "published": "the published schedule"}


@dataclass(frozen=True)
class Comparison:
    """One arm's test errors against another's."""

    ours: tuple[float, ...]
    theirs: tuple[float, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "ours", tuple(self.ours))
        object.__setattr__(self, "theirs", tuple(self.theirs))

    @property
    def gain(self) -> float:
        """Test-error points ours is better by (negative: worse)."""
        return statistics.mean(self.theirs) - statistics.mean(self.ours)

    @property
    def standard_error(self) -> float | None:
        """Of the difference of the means: Welch's with two or more seeds a side; with one seed
        on one side, the other side's variance stands for both (the pooled estimate of the
        two-sample t-test); None with one seed a side."""
        n, m = len(self.ours), len(self.theirs)
        if n >= 2 and m >= 2:
            return math.sqrt(statistics.variance(self.ours) / n
                             + statistics.variance(self.theirs) / m)
        if max(n, m) < 2:
            return None
        variance = statistics.variance(self.ours if n >= 2 else self.theirs)
        return math.sqrt(variance / n + variance / m)

    @property
    def outcome(self) -> str | None:
        """BEATS, UNCLEAR or WORSE by two standard errors; None without a standard error."""
        se = self.standard_error
        if se is None:
            return None
        if abs(self.gain) <= 2 * se:
            return UNCLEAR
        return BEATS if self.gain > 0 else WORSE

    def describe(self) -> str:
        """'44.50% against 48.00% test error, 3.50 points better, more than two standard errors
        of the difference (2 x 0.41; 3 vs 3 seeds)'."""
        se = self.standard_error
        gap = (f"{statistics.mean(self.ours):.2f}% against {statistics.mean(self.theirs):.2f}% "
               f"test error, {abs(self.gain):.2f} points {'better' if self.gain > 0 else 'worse'}")
        seeds = f"{len(self.ours)} vs {len(self.theirs)} seeds"
        if se is None:
            return f"{gap} ({seeds}: too few for a standard error; train more seeds)"
        within = "more than" if self.outcome != UNCLEAR else "within"
        return f"{gap}, {within} two standard errors of the difference (2 x {se:.2f}; {seeds})"


def recommend(errors: Mapping[str, Sequence[float]]) -> str:
    """The least-effort arm of EFFORT (among those with test errors) that no other arm beats."""
    arms = [arm for arm in EFFORT if errors.get(arm)]
    if not arms:
        raise ValueError("no arm has a test error to recommend from")
    for arm in arms:
        if not any(Comparison(errors[other], errors[arm]).outcome == BEATS
                   for other in arms if other != arm):
            return arm
    raise AssertionError("the arm with the lowest mean error is beaten by none")  # unreachable


def advice(recommended: str, vs_baseline: str | None,
           held_on: tuple[int, int] | None = None) -> str:
    """What to do next, in plain words, given the recommended arm and the searched schedule's
    outcome against the baseline. `held_on` (k, n): k of the n sets of seeds behind the
    recommendation recommend the same arm each on its own (None: one set)."""
    if recommended == "pba":
        if held_on is None or held_on[1] < 2:
            return ("Train with the searched schedule: no cheaper choice comes close. Check "
                    "the verdict on seeds it has not seen with `--first-seed`.")
        agreeing, sets = held_on
        if agreeing == sets:
            return ("Train with the searched schedule: no cheaper choice comes close, on each "
                    f"of the {sets} sets of seeds.")
        return ("Train with the searched schedule: no cheaper choice comes close on all the "
                f"seeds together, but taken one at a time the sets of seeds recommend it in "
                f"{agreeing} of {sets} (the table by set): more seeds would settle it.")
    cheaper = {
        "trivialaugment": "TrivialAugment does as well as the searched schedule with no search "
                          "at all: use it (`--augment trivialaugment`).",
        "ramp": "The search-free schedule (every op, its strength raised over training) does "
                "as well as the searched schedule with no search at all: use it "
                "(`--augment ramp`).",
        "baseline": "Train with the baseline (`--augment baseline`): nothing here clearly beats "
                    "it.",
        "none": "Train without augmentation (`--augment none`): nothing here clearly beats it.",
    }[recommended]
    if vs_baseline == WORSE:
        why = "The searched schedule is worse than the baseline here."
    else:
        why = "The searched schedule did not pay off clearly here."
    return (f"{why} {cheaper} A search pays off where the model overfits its images: a larger "
            "final model (the paper searched small and trained large), a longer search, more "
            "epochs per image, or more seeds to settle a close call.")
