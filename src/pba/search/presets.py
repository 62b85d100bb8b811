"""What a search runs: `SearchConfig` (data, model, recipe and PBT settings) and named presets."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from pba.augmentation.baseline import Baseline, legacy, resolve
from pba.core.errors import UserError
from pba.data.datasets import default_baseline
from pba.models import FAMILY_NAMES, is_cifar
from pba.ops.registry import OpSet, load_op_set
from pba.search.pbt import PBTConfig
from pba.training.recipes import Recipe


@dataclass(frozen=True)
class SearchConfig:
    """One search, fully: resuming a run directory rebuilds exactly this from config.json."""

    dataset: str
    model: str
    population: int
    epochs: int
    interval: int
    quantile: float
    lr: float
    weight_decay: float
    # The baseline after the policy (pba.augmentation.baseline): parts such as "crop,flip,cutout",
    # "none",
    # "auto" (decided on the data) or None (the dataset's: "auto" on image folders); a search
    # writes the one it settled on into config.json. Cutout's side likewise (None: the dataset's).
    baseline: str | None = None
    cutout_size: int | None = None
    train_size: int | None = None  # None: the dataset's default (reduced CIFAR-10: 4,000)
    val_size: int | None = None  # None: the dataset's default (reduced CIFAR-10: 46,000)
    batch_size: int = 128
    metric: str = "accuracy"
    seed: int = 0  # member initialisation and data streams, exploit and explore
    lr_schedule: str = "cosine"  # or "step" (pba.training.loop.LR_SCHEDULES)
    ops: str | None = None  # MODULE:NAME or path/to/file.py:NAME of an OpSet; None: the paper's
    selection: str = "truncation"  # who copies whom (pba.search.pbt.SELECTIONS)
    # Images fitted to image_size x image_size (shorter side, then centre crop); None: the
    # dataset's (32 for images read from files, pba.data.datasets.DEFAULT_IMAGE_SIZE).
    image_size: int | None = None

    def __post_init__(self) -> None:
        if self.image_size is not None and self.image_size < 1:
            raise UserError(f"the image size must be >= 1 pixel, got {self.image_size}")
        if not is_cifar(self.model):
            # Members are many short runs of one small network (WRN populations pack into
            # one, pba.models.population); other libraries' networks are for final models.
            raise UserError(f"the search trains the CIFAR networks ({FAMILY_NAMES}), not "
                           f"{self.model!r}: torchvision and timm models are for `pba train "
                           "--model` and the demo's --final-model")
        self.pbt()  # validates the PBT settings (and imports the ops)
        self.recipe()  # and the training ones, before any data is loaded

    def op_set(self) -> OpSet:
        return load_op_set(self.ops)

    def pbt(self) -> PBTConfig:
        return PBTConfig(self.population, self.epochs, self.interval, self.quantile,
                         self.metric, self.seed, self.op_set(), self.selection)

    def recipe(self, precision: str = "fp32") -> Recipe:
        """Every member's recipe: the learning rate decays over the whole search. `precision`
        (resolved, see `pba.core.precision`) is how the machine at hand trains, not what is
        searched,
        so it is not part of the config."""
        return Recipe(epochs=self.epochs, lr=self.lr, weight_decay=self.weight_decay,
                      batch_size=self.batch_size, baseline=self.baseline,
                      cutout_size=self.cutout_size, precision=precision,
                      lr_schedule=self.lr_schedule)

    def settled_baseline(self) -> Baseline:
        """The baseline of a search that has started (config.json holds the settled one)."""
        return resolve(self.baseline, self.cutout_size, default_baseline(self.dataset))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, doc: dict) -> SearchConfig:
        """The config of a config.json; fields added since it was written take their
        defaults (the behaviour of the pba that wrote it)."""
        if isinstance(doc, dict) and "cutout" in doc:  # written before --baseline
            doc = dict(doc)
            cutout = bool(doc.pop("cutout"))
            doc["baseline"] = legacy(default_baseline(str(doc.get("dataset"))), cutout)
        fields = dataclasses.fields(cls)
        names = {f.name for f in fields}
        required = {f.name for f in fields if f.default is dataclasses.MISSING}
        if not isinstance(doc, dict) or not required <= set(doc) <= names:
            raise UserError(f"a search config has the fields {sorted(names)}")
        return cls(**doc)

    def replace(self, **changes: object) -> SearchConfig:
        return dataclasses.replace(self, **changes)


_PAPER = {"model": "wrn_40_2", "population": 16, "interval": 3, "quantile": 0.25, "lr": 0.1}
_CPU = {"model": "wrn_10_1", "dataset": "reduced_cifar10", "quantile": 0.25, "lr": 0.1,
        "weight_decay": 5e-4}

PRESETS: dict[str, SearchConfig] = {
    # The paper's searches (docs/algorithm.md §5): about 5 and 1 GPU-hours. The model is
    # WRN-40-2, as the paper says; the reference code built its "wrn_40_2" at depth 28 (a
    # WRN-28-2, about 2/3 of the compute), which matters when comparing search costs.
    "paper-rcifar10": SearchConfig(dataset="reduced_cifar10", epochs=200, weight_decay=5e-4,
                                   **_PAPER),
    # The reference code searched SVHN with a step learning rate (docs/algorithm.md §12).
    "paper-rsvhn": SearchConfig(dataset="reduced_svhn", epochs=160, weight_decay=5e-3,
                                lr_schedule="step", **_PAPER),
    # The search of `pba demo`, sized for two CPU cores in a regime where augmentation pays off,
    # chosen by measurement (docs/benchmarks.md, "Without a budget: the demo's first
    # regime"): the first 1,000 reduced CIFAR-10
    # training images for 50 epochs, so that WRN-10-1 overfits (without augmentation it
    # reaches 100% training accuracy); 17 rounds, so that lineages mix; a 2,000-image
    # validation subset to rank members on (scoring 46,000 would cost more than the training),
    # on which a member copies another only when it is worse beyond noise.
    "quick": SearchConfig(population=8, epochs=50, interval=3, train_size=1000, val_size=2000,
                          selection="significant", **_CPU),
    # Under a minute on a CPU, for tests: a few members, tiny subsets, small batches.
    "smoke": SearchConfig(population=4, epochs=6, interval=2, train_size=256, val_size=256,
                          batch_size=64, **_CPU),
}


def preset(name: str) -> SearchConfig:
    """The search `name` of PRESETS (smoke, quick, the paper's): change it with `.replace`."""
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    return PRESETS[name]
