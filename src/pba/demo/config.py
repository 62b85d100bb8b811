"""What the demo runs (`DemoConfig`): the search, then every arm's final models on sets of seeds
the search did not use; `DEMO`, the configuration `pba demo` runs by default."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from pba.core.errors import UserError
from pba.search import SearchConfig, preset

THIS_SCHEDULE = "pba"  # the arm trained with the search's own schedule
PUBLISHED = "published"
SEARCH_FREE = "ramp"  # the search-free schedule (pba.augmentation.ramp)
# The arms of the comparison, in the table's order: name -> `pba train --augment` mode.
ARMS = {THIS_SCHEDULE: "pba", SEARCH_FREE: "ramp", "baseline": "baseline",
        "trivialaugment": "trivialaugment", PUBLISHED: "pba", "none": "none"}
DEFAULT_FIRST_SEED = 1  # the search's members derive their seeds from its seed 0
# How the search ranks its members, changeable per demo (`pba demo --metric/--selection`):
# SearchConfig fields, with "arms" the values `DemoConfig.values` holds beside the regime.
VARIANTS = ("metric", "selection")


@dataclass(frozen=True)
class DemoConfig:
    """What the demo runs: the search (a preset, its data and the changes to it), then every
    arm's final models in one recipe."""

    preset: str  # the search (pba.search.PRESETS)
    model: str  # of the final models
    epochs: int
    lr: float
    weight_decay: float
    seeds: dict[str, int]  # arm -> final models in a set of seeds (first, first + 1, ...)
    dataset: str | None = None  # None: the preset's
    search: dict = dataclasses.field(default_factory=dict)  # SearchConfig fields to change

    def __post_init__(self) -> None:
        unknown = set(self.seeds) - set(ARMS)
        if unknown:
            raise UserError(f"unknown arm(s) {sorted(unknown)}; known: {', '.join(ARMS)}")
        if self.seeds.get(THIS_SCHEDULE, 0) < 1:
            raise UserError(f"the demo judges its searched schedule: the {THIS_SCHEDULE!r} arm "
                           "needs seeds")
        small = {arm: n for arm, n in self.seeds.items() if n < 1}
        if small:
            raise UserError(f"every arm trains at least one seed, got {small}")

    def search_config(self) -> SearchConfig:
        dataset = {} if self.dataset is None else {"dataset": self.dataset}
        return preset(self.preset).replace(**self.search | dataset)

    def values(self) -> dict:
        """What it runs, by `pba.budget.PLANNED` name, the searched "model" and "image_size",
        the search's VARIANTS and the "arms" (arm -> seeds in a set)."""
        search = self.search_config()
        return {"model": search.model, "population": search.population,
                "epochs": search.epochs, "interval": search.interval,
                "train_size": search.train_size, "val_size": search.val_size,
                "batch_size": search.batch_size, "final_model": self.model,
                "final_epochs": self.epochs, "image_size": search.image_size,
                **{name: getattr(search, name) for name in VARIANTS}, "arms": dict(self.seeds)}

    def final_models(self, reference: bool) -> int:
        """Final models in one set of seeds."""
        return sum(n for arm, n in self.seeds.items() if arm != PUBLISHED or reference)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, doc: dict) -> DemoConfig:
        """The config of demo.json (whose first seeds are kept beside it)."""
        try:
            return cls(**{key: value for key, value in doc.items() if key != "first_seed"})
        except TypeError as err:
            raise UserError(f"not a demo config: {err}") from None


def parse_arms(text: str, default: DemoConfig) -> dict[str, int]:
    """`--arms`: comma-separated arms, each ARM or ARM:SEEDS (seeds in a set; default:
    `default`'s count, else 3), e.g. "pba,ramp,trivialaugment,none:3"."""
    seeds: dict[str, int] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        arm, _, count = part.partition(":")
        if arm not in ARMS:
            raise UserError(f"unknown arm {arm!r} in --arms; known: {', '.join(ARMS)}")
        if arm in seeds:
            raise UserError(f"--arms names {arm!r} twice")
        try:
            seeds[arm] = int(count) if count else default.seeds.get(arm, 3)
        except ValueError:
            raise UserError(f"--arms: {part!r} is not ARM or ARM:SEEDS") from None
    # Checked as the demo will check them, in the table's order.
    return dataclasses.replace(default, seeds={a: seeds[a] for a in ARMS if a in seeds}).seeds


# Chosen by measurement on 2 CPU cores (docs/benchmarks.md, the benchmark "Without a budget:
# the demo's first regime"): the search's WRN-10-1 population
# on 1,000 images, the final models a WRN-10-2 on the same images ("search small, train large",
# as the paper did): the larger model overfits more, so a searched schedule pays off beyond the
# seeds' noise, where a WRN-10-1 final model gains little or nothing over the baseline. The
# schedule (50 search epochs) is stretched to the final models' 64. The published schedule's
# arm trains only when `reference` names it (one model more); the search-free schedule's
# arm gives way, under a budget, to the final models' floor of epochs (`pba.budget.power`).
DEMO = DemoConfig(preset="quick", model="wrn_10_2", epochs=64, lr=0.1, weight_decay=5e-4,
                  seeds={THIS_SCHEDULE: 3, SEARCH_FREE: 3, "baseline": 3, "trivialaugment": 3,
                         PUBLISHED: 1, "none": 1})
# How long `DEMO` takes depends on the machine (docs/benchmarks.md has the figures).
DEMO_TIME = ("Without --budget it runs that regime whatever it takes (tens of minutes on a "
             "CPU; docs/benchmarks.md); `make demo` gives it --budget 15m.")


def seed_set(demo: DemoConfig, first_seed: int) -> dict[str, list[int]]:
    """The seeds of each arm in the set that starts at `first_seed`."""
    return {arm: list(range(first_seed, first_seed + n)) for arm, n in demo.seeds.items()}


def set_order(demo: DemoConfig, first_seed: int) -> list[tuple[str, int]]:
    """(arm, seed) of a set, the k-th seed of every arm before any arm's (k+1)-th."""
    seeds = seed_set(demo, first_seed)
    return [(arm, seeds[arm][k]) for k in range(max(demo.seeds.values()))
            for arm in ARMS if k < len(seeds.get(arm, ()))]


def none_is_baseline(demo: DemoConfig, search: SearchConfig) -> bool:
    """The baseline decided on the data is no augmentation, and the baseline arm trains: its
    final models are the none arm's too (none trains no models of its own)."""
    return "baseline" in demo.seeds and not search.settled_baseline().parts
