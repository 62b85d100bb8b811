"""The planner: the richest regime of a short ladder (`TIERS`) that a budget fills with
epochs (`plan_run`), and `plan_budget`, which loads the data, measures this device, plans and
says what the plan's verdict can show (`pba.budget.power`).

The time of a regime is predicted from this device's measured rates (`Regime.seconds`). What
the verdict needs comes first: final models that train MIN_FINAL_EPOCHS epochs, then the
search. The chosen tier is the richest that holds the final models' floor and a search of
GOOD_EPOCHS or more; else, the floor kept, the tier with the longest search (a slower device
shrinks the search, not the final models); else the tier whose final models train longest,
beside a search of MIN_EPOCHS. The ladder starts from the regime the demo was measured in (8 x
WRN-10-1 on 1,000 images, final models a larger WRN): few training images, so that the model
fits them and augmentation matters, batches small enough for MIN_STEPS steps an epoch, and a
validation split large enough that the selection has signal. A budget that cannot fit the
leanest tier at MIN_EPOCHS is refused with the smallest that can. Every value the user gave
stays as given.
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

from pba.budget.power import MIN_FINAL_EPOCHS, power_statement
from pba.budget.rates import Rates, measure_rates
from pba.budget.regime import SAFETY, Facts, Regime, data_facts
from pba.core.device import resolve_device
from pba.core.errors import PBAError, UserError
from pba.core.formatting import duration
from pba.core.options import DEFAULTS, RunOptions
from pba.core.parallel import default_workers
from pba.core.precision import resolve_precision
from pba.core.timing import LOADING, MEASURING, Stopwatch
from pba.data import load_dataset
from pba.reporting.progress import loading_bar
from pba.search import SearchConfig
from pba.training.loop import images_per_epoch

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*(s|sec|secs|m|min|mins|h|hr|hrs)?\s*$")
_UNIT = {"s": 1, "sec": 1, "secs": 1, "m": 60, "min": 60, "mins": 60, "h": 3600, "hr": 3600,
         "hrs": 3600}

MIN_EPOCHS = 16  # of a search: 8 rounds of 2 epochs, below which PBT has nothing to select on
GOOD_EPOCHS = 32  # a richer tier is taken only where the budget gives it this many
MAX_EPOCHS = 200  # the paper's search length
FINAL_EPOCH_RATIO = 64 / 50  # final models train longer than the search, as the demo measured
ROUNDS = 17  # rounds a search aims at (the quick preset's 50 epochs / 3)
MAX_VAL = 2000  # validation images: a member's accuracy within about 1 point (1 SE)
# The most of a search round's time that scoring the members may take: a search spends at
# least 85% of its time training (the 15-minute demos, docs/benchmarks.md). Where the rates
# would give it more, the validation split shrinks, down to MIN_VAL (a member's accuracy
# within about 2.2 points), then the rounds grow longer.
EVAL_SHARE = 0.15
MIN_VAL = 500
VAL_FRACTION = 4  # at least 1/4 of a small pool validates
MAX_VAL_FRACTION_OF_TRAIN = 2  # and never more than twice the training images


def parse_duration(text: str) -> float:
    """Seconds of "90s", "12m", "1.5h" or a bare number of seconds."""
    match = _DURATION.match(str(text).lower())
    if match is None or float(match.group(1)) <= 0:
        raise UserError(f"a budget is a positive duration such as 90s, 12m or 1h; got {text!r}")
    return float(match.group(1)) * _UNIT[match.group(2) or "s"]


def plan_budget(
    search: SearchConfig, budget_s: float, started: float, *, final_model: str | None = None,
    final_models: int = 0, optional_final_models: int = 0,
    given: Mapping[str, int | str] | None = None, options: RunOptions = DEFAULTS,
    watch: Stopwatch | None = None,
) -> Plan:
    """Load `search`'s data, measure this device on its models and plan a run of `budget_s`
    seconds counted from `started` (`time.monotonic()`): the search and, with `final_model`,
    `final_models` final models (`plan_run`). The last `optional_final_models` of them are
    left out where the others reach MIN_FINAL_EPOCHS only without them (the plan's
    `facts.final_models` says how many it kept). `options` say where the run trains (its
    device, precision and workers are what is measured); the plan is printed with
    `options.progress`; `watch` times the loading and the measuring (`pba.core.timing`)."""
    watch = watch or Stopwatch()
    options = options.starting()
    progress = options.progress
    with watch.phase(LOADING):
        data = load_dataset(search.dataset, options.data_dir, download=options.download,
                            image_size=search.image_size, progress=loading_bar(progress))
    facts = data_facts(search, data, final_models if final_model else 0)
    resolved = resolve_device(options.device)
    measure = {"image_size": tuple(data.train.images.shape[-2:]),
               "num_classes": data.num_classes, "batch_size": search.batch_size,
               "device": resolved, "precision": resolve_precision(options.precision, resolved),
               "workers": options.workers or default_workers(search.population, resolved)}
    models = [search.model]
    if final_model is not None and final_models:
        final_model = str((given or {}).get("final_model", final_model))
        models.append(final_model)
    if progress:
        print(f"measuring how fast this device trains {' and '.join(dict.fromkeys(models))} "
              f"at {measure['image_size'][0]}x{measure['image_size'][1]} ...", flush=True)
    with watch.phase(MEASURING):
        rates = {m: measure_rates(m, **measure) for m in dict.fromkeys(models)}
    plan = plan_run(budget_s, time.monotonic() - started, facts, rates, model=search.model,
                    final_model=final_model, given=given,
                    optional_final_models=optional_final_models)
    facts = plan.facts
    regime, need = plan.regime, None
    if regime.final_model and regime.final_epochs < MIN_FINAL_EPOCHS:
        need = budget_for_final_floor(plan.spent_s, facts, rates, model=search.model,
                                      final_model=regime.final_model, given=given)
    plan = dataclasses.replace(plan, power=power_statement(regime, need))
    if progress:
        print(plan.describe(), flush=True)
    return plan


@dataclass(frozen=True)
class Tier:
    """One rung of the ladder: what the epochs then fill."""

    population: int
    train_size: int
    final_large: bool  # the final models are the larger model (search small, train large)


# From the leanest to the richest. The fourth is the demo's measured regime.
TIERS = (Tier(4, 500, False), Tier(8, 500, False), Tier(8, 1000, False), Tier(8, 1000, True),
         Tier(8, 2000, True), Tier(16, 4000, True), Tier(16, 8000, True))
PLANNED = ("population", "epochs", "interval", "train_size", "val_size", "batch_size",
           "final_model", "final_epochs")
MIN_STEPS = 7  # batches an epoch at least (the demo's 1,000 images in batches of 128)


@dataclass(frozen=True)
class Plan:
    """A regime chosen for a budget, why, and what it should take."""

    budget_s: float
    spent_s: float  # before the plan: data loading and measuring
    facts: Facts
    regime: Regime
    seconds: dict[str, float]  # predicted, per stage
    reasons: tuple[str, ...]  # one line per choice
    rates: tuple[Rates, ...]
    power: tuple[str, ...] = ()  # what the verdict can show (`pba.budget.power`)

    @property
    def expected_s(self) -> float:
        return self.spent_s + sum(self.seconds.values())

    def to_dict(self) -> dict:
        return {"budget_s": self.budget_s, "spent_before_plan_s": self.spent_s,
                "expected_s": self.expected_s, "facts": dataclasses.asdict(self.facts),
                "regime": self.regime.to_dict(),
                "seconds": self.seconds, "reasons": list(self.reasons),
                "rates": [r.to_dict() for r in self.rates], "power": list(self.power)}

    def describe(self) -> str:
        rates = "; ".join(f"{r.model} {r.train:.0f} img/s training, {r.evaluate:.0f} scoring "
                          f"({r.workers} at once, {r.image_size[0]}x{r.image_size[1]})"
                          for r in self.rates)
        stages = ", ".join(f"{name.replace('_', ' ')} {duration(s)}"
                           for name, s in self.seconds.items())
        return "\n".join([
            f"plan for a budget of {duration(self.budget_s)} (measured: {rates})",
            *(f"  {line}" for line in self.reasons),
            f"  expected: {duration(self.expected_s)} ({stages}, "
            f"{duration(self.spent_s)} already spent loading and measuring)",
            *(f"  {line}" for line in self.power),
        ])


def plan_run(
    budget_s: float, spent_s: float, facts: Facts, rates: Mapping[str, Rates], *, model: str,
    final_model: str | None = None, given: Mapping[str, int | str] | None = None,
    optional_final_models: int = 0,
) -> Plan:
    """The regime for a run of `budget_s` seconds of which `spent_s` are spent: a search of
    `model` and, when `final_model` is given (the larger one the ladder's richer tiers train),
    `facts.final_models` final models, of which the last `optional_final_models` are left out
    where the others reach MIN_FINAL_EPOCHS only without them (the plan's `facts` says how
    many it kept). Values in `given` (PLANNED names) are kept as they are; where they alone
    exceed the budget the plan says so instead of refusing. Raises PBAError when even the
    leanest regime needs more than the budget, naming the smallest that fits."""
    plan = _plan_run(budget_s, spent_s, facts, rates, model=model, final_model=final_model,
                     given=given)
    if optional_final_models and plan.regime.final_model and \
            plan.regime.final_epochs < MIN_FINAL_EPOCHS:
        fewer = dataclasses.replace(facts, final_models=facts.final_models
                                    - optional_final_models)
        lean = _plan_run(budget_s, spent_s, fewer, rates, model=model,
                         final_model=final_model, given=given)
        if lean.regime.final_epochs >= MIN_FINAL_EPOCHS:
            why = (f"{optional_final_models} optional final models left out: with them the "
                   f"final models would train {plan.regime.final_epochs} epochs, fewer than "
                   f"the {MIN_FINAL_EPOCHS} the verdict needs")
            return dataclasses.replace(lean, reasons=(*lean.reasons, why))
    return plan


def _plan_run(
    budget_s: float, spent_s: float, facts: Facts, rates: Mapping[str, Rates], *, model: str,
    final_model: str | None, given: Mapping[str, int | str] | None,
) -> Plan:
    given = dict(given or {})
    unknown = set(given) - set(PLANNED)
    if unknown:
        raise UserError(f"cannot plan around {sorted(unknown)}; plannable: {', '.join(PLANNED)}")
    left = budget_s * SAFETY - spent_s
    fill = [_fill(tier, left, facts, rates, model, final_model, given) for tier in TIERS]
    fill = [f for f in fill if f is not None]
    if not fill:
        raise UserError("no training images to plan with")
    epochs_given = "epochs" in given or "final_epochs" in given

    def floored(regime: Regime) -> bool:
        return not regime.final_model or regime.final_epochs >= MIN_FINAL_EPOCHS

    fitting = [regime for regime, fits in fill if fits]
    # What matters most for the verdict first: final models that train long enough, then the
    # search. The richest tier that holds both the final models' floor and GOOD_EPOCHS of
    # search; else, the floor kept, the tier with the longest search (a slower device shrinks
    # the search, not the final models); else the tier whose final models train longest.
    chosen = next((r for r in reversed(fitting) if floored(r) and
                   (r.epochs >= GOOD_EPOCHS or epochs_given)), None)
    if chosen is None and any(floored(r) for r in fitting):
        chosen = max((r for r in fitting if floored(r)), key=lambda r: r.epochs)
    if chosen is None and fitting:  # the most final epochs, then the longest search
        chosen = max(fitting, key=lambda r: (r.final_epochs, r.epochs))
    if chosen is None:
        leanest = fill[0][0]
        if set(given) & {"population", "epochs", "train_size", "val_size", "final_epochs"}:
            chosen = leanest  # the user's values win; the plan says it runs over
        else:
            need = (spent_s + sum(leanest.seconds(facts, rates).values())) / SAFETY
            raise UserError(
                f"a budget of {duration(budget_s)} is too small to learn anything on "
                f"this device: the smallest regime ({_summary(leanest)}) needs about "
                f"{duration(need)}; give --budget {math.ceil(need / 60)}m or more")
    seconds = chosen.seconds(facts, rates)
    plan = Plan(budget_s, spent_s, facts, chosen, seconds, (), tuple(rates[m] for m in
                                                             dict.fromkeys(_models(chosen))))
    return dataclasses.replace(plan, reasons=tuple(_reasons(plan, facts, given)))


def budget_for_final_floor(
    spent_s: float, facts: Facts, rates: Mapping[str, Rates], *, model: str,
    final_model: str, given: Mapping[str, int | str] | None = None,
) -> float | None:
    """The smallest budget, in whole minutes (as seconds), whose plan on these rates trains
    the final models MIN_FINAL_EPOCHS epochs or more; None beyond a day."""
    def reaches(minutes: int) -> bool:
        try:
            plan = plan_run(minutes * 60.0, spent_s, facts, rates, model=model,
                            final_model=final_model, given=given)
        except PBAError:
            return False
        return plan.regime.final_epochs >= MIN_FINAL_EPOCHS

    low, high = 1, 24 * 60
    if not reaches(high):
        return None
    while low < high:  # the least minutes that reach it: more time never plans fewer epochs
        middle = (low + high) // 2
        low, high = (low, middle) if reaches(middle) else (middle + 1, high)
    return low * 60.0


def _fill(
    tier: Tier, left: float, facts: Facts, rates: Mapping[str, Rates], model: str,
    final_model: str | None, given: Mapping[str, int | str],
) -> tuple[Regime, bool] | None:
    """The tier's regime with as many epochs as `left` seconds hold (within MIN_EPOCHS ..
    MAX_EPOCHS), and whether it fits; None where the pool is too small for the tier to differ
    from a leaner one (its training images capped)."""
    sizes = split_sizes(tier.train_size, facts)
    if sizes is None:
        return None
    train = int(given.get("train_size", sizes[0]))
    val = int(given.get("val_size", sizes[1]))
    if final_model is None or not facts.final_models:
        final = None
    elif "final_model" in given:
        final = str(given["final_model"])
    else:
        final = final_model if tier.final_large else model
    batch = int(given.get("batch_size", batch_for(train, facts.batch_size)))
    base = Regime(int(given.get("population", tier.population)), MIN_EPOCHS, 2, train, val,
                  model, batch, final, 0, facts.final_models if final else 0)

    def regime(epochs: int, floor: int) -> Regime:
        epochs = int(given.get("epochs", epochs))
        interval = int(given.get("interval", max(2, round(epochs / ROUNDS))))
        scored = val
        if facts.own_val is None and "val_size" not in given:
            scored, interval = scoring_share(val, interval, images_per_epoch(train, batch),
                                             rates[model], fixed_interval="interval" in given)
        final_epochs = int(given.get("final_epochs", final_epochs_for(epochs, floor)))
        return dataclasses.replace(base, epochs=epochs, interval=min(interval, epochs),
                                   val_size=scored, final_epochs=final_epochs if final else 0)

    def total(epochs: int, floor: int) -> float:
        return sum(regime(epochs, floor).seconds(facts, rates).values())

    if total(MIN_EPOCHS, 0) > left:
        return regime(MIN_EPOCHS, 0), False
    # The final models' floor: MIN_FINAL_EPOCHS where the budget holds them beside the
    # shortest search, else as many as it holds; the search takes the rest.
    floor, most = 0, MIN_FINAL_EPOCHS if final else 0
    while floor < most:  # time grows with the final epochs
        middle = (floor + most + 1) // 2
        floor, most = (middle, most) if total(MIN_EPOCHS, middle) <= left else (floor, middle - 1)
    low, high = MIN_EPOCHS, MAX_EPOCHS  # the most epochs that fit: time grows with them
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if total(middle, floor) <= left else (low, middle - 1)
    return regime(low, floor), True


def scoring_share(
    val: int, interval: int, per_epoch: int, rates: Rates, *, fixed_interval: bool = False,
) -> tuple[int, int]:
    """The validation images and the interval that keep the members' scoring within
    EVAL_SHARE of a round's time at these rates: the validation split cut first (to no fewer
    than MIN_VAL images), then, unless `fixed_interval`, the rounds made longer."""
    # Scoring `n` images takes n / evaluate seconds, a round's training interval * per_epoch
    # / train: the most images the share allows in a round of `interval` epochs.
    ratio = EVAL_SHARE / (1 - EVAL_SHARE) * per_epoch * rates.evaluate / rates.train
    scored = min(val, max(MIN_VAL, math.floor(ratio * interval)))
    if not fixed_interval:
        interval = max(interval, math.ceil(scored / ratio))
    return scored, interval


def final_epochs_for(epochs: int, floor: int) -> int:
    """The final models' epochs beside a search of `epochs`: FINAL_EPOCH_RATIO of them, at
    least `floor` (MIN_FINAL_EPOCHS where the budget holds it beside the shortest search, else
    as many as it holds)."""
    return max(round(epochs * FINAL_EPOCH_RATIO), floor)


def split_sizes(train_size: int, facts: Facts) -> tuple[int, int] | None:
    """Training and validation images for a wish of `train_size` training images: capped so
    that at least a quarter of a small pool validates (at most MAX_VAL images, at most twice
    the training images); a folder's own val/ as it is. None when the pool is too small."""
    if facts.own_val is not None:
        return min(train_size, facts.pool), facts.own_val
    train = min(train_size, facts.pool - max(1, facts.pool // VAL_FRACTION))
    if train < 1:
        return None
    return train, min(MAX_VAL, facts.pool - train, MAX_VAL_FRACTION_OF_TRAIN * train)


def batch_for(train_size: int, largest: int) -> int:
    """`largest`, halved (down to 16) until an epoch of `train_size` images has MIN_STEPS
    batches: with 500 images and batches of 128 an epoch is 3 steps, and a short run
    learns next to nothing."""
    batch = largest
    while batch > 16 and train_size // batch < MIN_STEPS:
        batch //= 2
    return batch


def _models(regime: Regime) -> list[str]:
    return [regime.model] + ([regime.final_model] if regime.final_model else [])


def _summary(regime: Regime) -> str:
    text = (f"{regime.population} x {regime.model}, {regime.train_size} training images, "
            f"{regime.epochs} epochs")
    if regime.final_model:
        text += (f", then {regime.final_models} x {regime.final_model} for "
                 f"{regime.final_epochs} epochs")
    return text


def _reasons(plan: Plan, facts: Facts, given: Mapping[str, int | str]) -> list[str]:
    r = plan.regime
    mine = "as given" if "train_size" in given else (
        f"of {facts.pool:,} available: few enough that {r.model} fits them, so augmentation "
        "matters, as in the demo's measured regime")
    lines = [f"training images {r.train_size:,}: {mine}"]
    if "val_size" in given:
        why = "as given"
    elif facts.own_val is not None:
        why = "the folder's own val/"
    else:
        why = (f"the members' ranking: one member's accuracy within about "
               f"{100 * math.sqrt(0.25 / max(r.val_size, 1)):.1f} points (1 SE at 50%); "
               f"at most {MAX_VAL:,} and twice the training images; a quarter of a small pool "
               f"at least; few enough that scoring takes at most {EVAL_SHARE:.0%} of a round "
               f"(at least {MIN_VAL:,})")
    lines.append(f"validation images {r.val_size:,}: {why}")
    lines.append(f"population {r.population}: " + ("as given" if "population" in given else
                 f"8 where the budget fills {GOOD_EPOCHS} or more epochs with it, else 4"))
    lines.append(f"batch size {r.batch_size}: " + ("as given" if "batch_size" in given else
                 f"{r.train_size // r.batch_size} steps an epoch (at least {MIN_STEPS} where "
                 "batches of 16 or more allow)"))
    lines.append(f"search epochs {r.epochs}, a round every {r.interval}: " + (
        "as given" if "epochs" in given else
        f"as many as the budget holds (at least {MIN_EPOCHS}); about {ROUNDS} rounds, so that "
        f"lineages mix, each long enough that scoring takes at most {EVAL_SHARE:.0%} of it"))
    if r.final_model:
        lines.append(f"final models {r.final_models} x {r.final_model} for {r.final_epochs} "
                     "epochs: " + ("as given" if "final_model" in given else (
                         "a larger model than the search's (search small, train large), "
                         "affordable at this budget" if r.final_model != r.model else
                         "the search's model: a larger one would leave too few epochs"))
                     + ("" if "final_epochs" in given else
                        f"; at least {MIN_FINAL_EPOCHS} where the budget holds them (fewer did "
                        "not separate a schedule from the baseline), else "
                        f"{FINAL_EPOCH_RATIO:.2f} x the search's epochs; the schedule is "
                        "stretched to them"))
    if plan.expected_s > plan.budget_s:
        lines.append(f"the values given take about {duration(plan.expected_s)}, more "
                     f"than the budget of {duration(plan.budget_s)}: they win")
    return lines
