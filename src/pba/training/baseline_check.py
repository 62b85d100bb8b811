"""Deciding the baseline on the data itself: `--baseline auto`, the default for image folders.

The paper's crop, flip and Cutout were chosen for CIFAR. On a user's own images any of them may
hurt (a flip on text, a 16-pixel square over small objects), so before a search or a final model
on a folder, pba trains one short run per arm and scores it on the validation split:

  none, each candidate part alone, and (when more than one beats none) those parts together.

An arm "beats none" when its validation accuracy exceeds none's by more than two standard
errors of the difference of two accuracies on that many images (sqrt(2 p (1 - p) / n), p being
none's): one seed each, a smaller gap is noise. Of none and the arms that beat it, the most
accurate wins, ties going to fewer parts. So the baseline pba picks is never worse than no
augmentation on the images it measured, and on a model that has learnt nothing yet (every arm
at chance) it is none. The runs are short (at most CHECK_EPOCHS epochs, the learning rate
decaying over them): augmentation pays off more in long runs, so the check leans to fewer
parts, which is the safe side. It is a decision, recorded with its scores in config.json, not
a claim about the parts.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from pba.augmentation.baseline import AUTO, Baseline, resolve
from pba.core.errors import UserError
from pba.core.parallel import default_workers, map_parallel
from pba.data import DatasetSplits
from pba.data.datasets import FOLDER_PREFIX
from pba.training.augment import make_augment
from pba.training.loop import evaluate, images_per_epoch, init_state, train
from pba.training.recipes import Recipe

CHECK_EPOCHS = 30


@dataclass(frozen=True)
class BaselineCheck:
    """What the check measured and chose."""

    chosen: Baseline
    accuracy: dict[str, float]  # validation accuracy per arm, keyed by str(Baseline)
    model: str
    epochs: int
    images: int  # validation images scored

    def to_dict(self) -> dict:
        return {"chosen": str(self.chosen), "cutout_size": self.chosen.cutout_size,
                "val_accuracy": self.accuracy, "model": self.model, "epochs": self.epochs,
                "val_images": self.images}

    @classmethod
    def from_dict(cls, doc: dict) -> BaselineCheck:
        return cls(Baseline.parse(doc["chosen"], doc["cutout_size"]), doc["val_accuracy"],
                   doc["model"], doc["epochs"], doc["val_images"])

    def describe(self) -> str:
        """One line for people: the choice, then every arm's score."""
        scores = ", ".join(f"{arm} {acc:.4f}" for arm, acc in self.accuracy.items())
        return (f"baseline {self.chosen.describe()}, decided on the data ({self.model}, "
                f"{self.epochs} epochs an arm, validation accuracy of {self.images} images: "
                f"{scores})")


def settle(
    requested: str | None, cutout_size: int | None, data: DatasetSplits, *, model: str,
    recipe: Recipe, seed: int, device: torch.device, workers: int | None = None,
    progress: bool = True,
) -> tuple[Baseline, BaselineCheck | None]:
    """The baseline a run on `data` trains with: `requested` (parts, 'none', 'auto', or None
    for the dataset's: 'auto' on image folders) with Cutout side `cutout_size` (None: the
    dataset's), and the check behind it when 'auto' ran one (printed with `progress`)."""
    if requested is None and data.name.startswith(FOLDER_PREFIX):
        requested = AUTO
    if requested != AUTO:
        return resolve(requested, cutout_size, data.baseline), None
    check = check_baseline(data, resolve(None, cutout_size, data.baseline), model=model,
                           recipe=recipe, seed=seed, device=device, workers=workers,
                           progress=progress)
    if progress:
        print(check.describe())
    return check.chosen, check


def check_baseline(
    data: DatasetSplits, candidate: Baseline, *, model: str, recipe: Recipe, seed: int,
    device: torch.device, workers: int | None = None, progress: bool = True,
) -> BaselineCheck:
    """Score the arms of the module docstring for `candidate`'s parts with `model` trained by
    `recipe` (cut to CHECK_EPOCHS), `workers` arms at once (default: one per CPU core)."""
    from tqdm import tqdm

    if data.val is None:
        raise UserError("--baseline auto is decided on the validation split, and this run has "
                       "none: give a --val-size, or name the parts (for example --baseline "
                       "crop,flip)")
    epochs = min(recipe.epochs, CHECK_EPOCHS)
    recipe = dataclasses.replace(recipe, epochs=epochs)
    train_set, val_set = data.train.to(device), data.val.to(device)
    norm = {"mean": data.mean, "std": data.std}
    arms = [candidate.only()] + [candidate.only(part) for part in candidate.parts]
    per_arm = epochs * images_per_epoch(len(train_set), recipe.batch_size)
    bar = tqdm(total=len(arms) * per_arm, unit="img", unit_scale=True, dynamic_ncols=True,
               desc="baseline check", disable=None if progress else True)

    def score(arm: Baseline) -> float:
        arm_recipe = dataclasses.replace(recipe, baseline=str(arm), cutout_size=arm.cutout_size)
        state = init_state(model, data.num_classes, arm_recipe, seed=seed, device=device,
                           image_size=tuple(data.train.images.shape[-2:]))
        state, _ = train(state, train_set, epochs, make_augment("baseline", data, arm_recipe),
                         arm_recipe, progress=bar.update, **norm)
        return evaluate(state.model, val_set, precision=recipe.precision, **norm)["accuracy"]

    with bar:
        workers = default_workers(len(arms), device) if workers is None else workers
        accuracy = dict(zip(map(str, arms), map_parallel(score, arms, workers), strict=True))
        gap = margin(accuracy["none"], len(val_set))
        together = combined(candidate, accuracy, gap)
        if together is not None:
            bar.total += per_arm
            arms.append(together)
            accuracy[str(together)] = score(together)
    return BaselineCheck(best(arms, accuracy, gap), accuracy, model, epochs, len(val_set))


def margin(accuracy: float, images: int) -> float:
    """How much an arm must beat none's `accuracy` on `images` by: two standard errors of the
    difference of two such accuracies."""
    return 2 * math.sqrt(2 * accuracy * (1 - accuracy) / images)


def combined(candidate: Baseline, accuracy: dict[str, float], gap: float) -> Baseline | None:
    """The parts of `candidate` that each beat none by more than `gap`, together, when more
    than one does."""
    helpful = [part for part in candidate.parts if accuracy[part] - accuracy["none"] > gap]
    return candidate.only(*helpful) if len(helpful) > 1 else None


def best(arms: list[Baseline], accuracy: dict[str, float], gap: float) -> Baseline:
    """Of none and the arms that beat it by more than `gap`, the most accurate; of equals,
    the one with the fewest parts."""
    none = accuracy["none"]
    qualified = [a for a in arms if not a.parts or accuracy[str(a)] - none > gap]
    return max(qualified, key=lambda arm: (accuracy[str(arm)], -len(arm.parts)))
