"""The training recipe (spec sections 4 and 8), one function for `pba train` and every search.

    recipe = default_recipe("reduced_cifar10", "wrn_28_10", precision="bf16")
    augment = make_augment("pba", data, recipe, schedule=load_schedule(path, 200))
    state = init_state("wrn_28_10", data.num_classes, recipe, seed=0, device="cuda")
    state, metrics = train(state, data.train, recipe.epochs, augment, recipe,
                           mean=data.mean, std=data.std)
    print(evaluate(state.model, data.test, mean=data.mean, std=data.std,
                   precision=recipe.precision))

SGD with Nesterov momentum 0.9 and L2 weight decay; the learning rate follows a cosine from the
base rate to 0 over every iteration of the whole run, with no warm-up (WRNs on SVHN: the
reference code's step schedule, see LR_SCHEDULES); gradients are clipped at global norm 5; each
epoch reshuffles and drops the last partial batch.

Everything a run needs to continue lives in `TrainState` (model, optimiser, epoch, and the one
generator that draws the data order and every augmentation), and the learning rate is a function
of (epoch, step) and the recipe. So training E epochs in one call equals any split into shorter
calls (search rounds, resumes), and the PBT search clones a member with `copy.deepcopy(state)`.

Images stay uint8 until the model: the training set lives on the training device (uploaded once
on CUDA) and the batched augmentation runs there, in the main process. On the CPU that is a
fraction of a step (a busy PBA policy plus crop/flip/Cutout augments about 5k images/s on one
core; the smallest model, WRN-10-1, trains at about 1k), so DataLoader workers would only take
cores from the model.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pba import models
from pba.atomic import atomic_path
from pba.baseline import check_request
from pba.baseline import resolve as resolve_baseline
from pba.data import DatasetSplits, ImageSet, normalize
from pba.errors import PBAError
from pba.parallel import seeded_global_rng
from pba.policy import Policy
from pba.precision import autocast, check_resolved, memory_format
from pba.schedule import Schedule
from pba.transforms import apply_policy

AUGMENT_MODES = ("none", "baseline", "pba", "autoaugment", "randaugment", "trivialaugment")
# cosine: from the base rate to 0 over every iteration; step: the reference code's SVHN WRN
# schedule, the base rate for the first half of the run, x0.1 to three quarters, x0.01 after
# (epochs 80 and 120 of its 160).
LR_SCHEDULES = ("cosine", "step")
STEP_LR = ((0.5, 1.0), (0.75, 0.1), (1.0, 0.01))  # (end of the phase as a run fraction, factor)
CHECKPOINT_FORMAT = "pba.checkpoint"

Triple = tuple[float, float, float]
# (uint8 batch on the training device, epoch of the run, generator) -> augmented uint8 batch
Augment = Callable[[torch.Tensor, int, torch.Generator], torch.Tensor]


@dataclass
class Recipe:
    """The hyperparameters of one training run; `epochs` is the length of the whole run."""

    epochs: int
    lr: float
    weight_decay: float
    batch_size: int = 128
    momentum: float = 0.9
    nesterov: bool = True
    grad_clip: float = 5.0
    # The baseline after the policy (pba.baseline): parts such as "crop,flip", "none" or "auto"
    # (decided on the data, pba.baseline_check); None: the dataset's. Cutout's side likewise.
    baseline: str | None = None
    cutout_size: int | None = None
    precision: str = "fp32"  # "fp32" or "bf16" (see pba.precision; resolve "auto" first)
    lr_schedule: str = "cosine"  # one of LR_SCHEDULES

    def __post_init__(self) -> None:
        check_resolved(self.precision)
        check_request(self.baseline)
        if self.cutout_size is not None and self.cutout_size < 1:
            raise PBAError(f"the Cutout size must be >= 1 pixel, got {self.cutout_size}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise PBAError(f"unknown learning-rate schedule {self.lr_schedule!r}; known: "
                           f"{', '.join(LR_SCHEDULES)}")
        if self.epochs < 1 or self.batch_size < 1:
            raise PBAError(f"epochs and batch size must be >= 1, got {self.epochs}, "
                           f"{self.batch_size}")
        if self.lr <= 0 or self.weight_decay < 0 or self.grad_clip <= 0:
            raise PBAError(f"need lr > 0, weight decay >= 0 and grad clip > 0, got {self.lr}, "
                           f"{self.weight_decay}, {self.grad_clip}")


# (lr, weight decay) of the paper's final models (spec section 8; the full-dataset rows follow
# the reference implementation's scripts). Any other pair gets the search's setting below.
_PAPER_LR_WD: dict[tuple[str, str], tuple[float, float]] = {
    ("reduced_cifar10", "wrn_28_10"): (0.05, 5e-3),
    ("reduced_cifar10", "shake_shake_26_2x96d"): (0.025, 2.5e-3),
    ("reduced_svhn", "wrn_28_10"): (0.05, 1e-2),
    ("reduced_svhn", "shake_shake_26_2x96d"): (0.025, 5e-3),
    ("cifar10", "wrn_28_10"): (0.1, 5e-4),
    ("cifar10", "shake_shake_26_2x32d"): (0.01, 1e-3),
    ("cifar10", "shake_shake_26_2x96d"): (0.01, 1e-3),
    ("cifar10", "shake_shake_26_2x112d"): (0.01, 1e-3),
    ("cifar10", "pyramidnet_272_200"): (0.05, 5e-5),
    ("cifar100", "wrn_28_10"): (0.1, 5e-4),
    ("cifar100", "shake_shake_26_2x96d"): (0.01, 2.5e-3),
    ("cifar100", "pyramidnet_272_200"): (0.025, 5e-4),
    ("svhn", "wrn_28_10"): (0.005, 1e-3),
    ("svhn", "shake_shake_26_2x96d"): (0.01, 1.5e-4),
}


def default_recipe(dataset: str, model: str, *, precision: str = "fp32") -> Recipe:
    """The paper's recipe for `model` on `dataset`, so that its table rows need no other flag.

    SVHN-family runs last 160 epochs, CIFAR-family and folder runs
    200, Shake-Shake and PyramidNet on full CIFAR 1,800; PyramidNet uses batches of 64. Pairs the
    paper did not train get the search's lr 0.1 and weight decay 5e-4 (SVHN: 5e-3). WRNs on
    SVHN use the step learning-rate schedule, as the reference code trained them (spec
    section 8); everything else the cosine.
    """
    svhn = "svhn" in dataset.split(":")[0]
    lr, wd = _PAPER_LR_WD.get((dataset, model), (0.1, 5e-3 if svhn else 5e-4))
    long_run = dataset in ("cifar10", "cifar100") and model.startswith(("shake", "pyramid"))
    return Recipe(
        epochs=160 if svhn else 1800 if long_run else 200,
        lr=lr,
        weight_decay=wd,
        batch_size=64 if model.startswith("pyramidnet") else 128,
        precision=precision,
        lr_schedule="step" if svhn and model.startswith("wrn_") else "cosine",
    )


def make_augment(
    mode: str, data: DatasetSplits, recipe: Recipe, *, schedule: Schedule | Policy | None = None
) -> Augment:
    """The training augmentation `mode`, one of AUGMENT_MODES, for `data` under `recipe`.

    'baseline' is `recipe.baseline` (None: the dataset's, `data.baseline`; see pba.baseline);
    'pba' applies `schedule` (a Schedule stretched to `recipe.epochs`, or one fixed Policy as a
    search member trains with) before the baseline; 'autoaugment' (CIFAR-10 policy),
    'randaugment' and 'trivialaugment' are torchvision's, each image drawing its own ops, before
    the baseline; 'none' returns the images as they are.
    """
    if mode not in AUGMENT_MODES:
        raise PBAError(f"unknown augmentation {mode!r}; known: {', '.join(AUGMENT_MODES)}")
    if (mode == "pba") != (schedule is not None):
        raise PBAError("augmentation 'pba' needs a schedule, and only 'pba' uses one")
    fill = data.fill
    baseline = resolve_baseline(recipe.baseline, recipe.cutout_size, data.baseline)

    if mode == "none":
        return lambda images, epoch, generator: images
    if mode == "baseline":
        return lambda images, epoch, generator: baseline(images, fill, generator)
    if mode == "pba":
        if isinstance(schedule, Policy):
            schedule = Schedule((schedule,))
        policies = schedule.stretch(recipe.epochs).policies  # fails now, not at epoch 150

        def pba(images: torch.Tensor, epoch: int, generator: torch.Generator) -> torch.Tensor:
            return baseline(apply_policy(images, policies[epoch], fill, generator), fill, generator)

        return pba

    from torchvision.transforms import v2

    transform = {
        "autoaugment": lambda: v2.AutoAugment(v2.AutoAugmentPolicy.CIFAR10, fill=list(fill)),
        "randaugment": lambda: v2.RandAugment(fill=list(fill)),
        "trivialaugment": lambda: v2.TrivialAugmentWide(fill=list(fill)),
    }[mode]()

    def torchvision_augment(
        images: torch.Tensor, epoch: int, generator: torch.Generator
    ) -> torch.Tensor:
        # torchvision picks one op per call and draws from the global RNG: call it per image, on
        # the CPU (cheap for 32x32 images), with the global RNG seeded from our generator.
        seed = int(torch.randint(2**62, (1,), generator=generator, device=generator.device))
        with seeded_global_rng(seed):
            out = torch.stack([transform(image) for image in images.cpu()])
        return baseline(out.to(images.device), fill, generator)

    return torchvision_augment


@dataclass
class TrainState:
    """Everything that determines the rest of a run. `copy.deepcopy` clones it (PBT exploit);
    `state_dict()` / `load_state_dict()` move it through checkpoints."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    generator: torch.Generator  # on the training device: data order and all augmentation
    epoch: int = 0  # epochs completed

    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "epoch": self.epoch,
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.epoch = state["epoch"]


def init_state(
    model_name: str, num_classes: int, recipe: Recipe, *, seed: int, device: str | torch.device
) -> TrainState:
    """A fresh model and optimiser on `device`; `seed` fixes the weights and the data stream."""
    device = torch.device(device)
    # Two independent streams from one seed, so that weights and data order are unrelated.
    model_seed, data_seed = (int(s) for s in np.random.SeedSequence(seed).generate_state(2))
    with seeded_global_rng(model_seed):  # the models draw their init from the global RNG
        model = models.build(model_name, num_classes)
    model = model.to(device, memory_format=memory_format(recipe.precision))
    # Weight decay as coupled L2 in the optimiser: the same update as wd/2 * |w|^2 in the loss.
    # It is added after clipping, so clipping bounds the data gradient alone.
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=recipe.lr,
        momentum=recipe.momentum,
        nesterov=recipe.nesterov,
        weight_decay=recipe.weight_decay,
    )
    generator = torch.Generator(device).manual_seed(data_seed)
    return TrainState(model, optimizer, generator)


def resolve_device(device: str) -> torch.device:
    """'auto' is the GPU when there is one, else the CPU; other names are torch's."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise PBAError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise PBAError(f"device {device!r} asked for, but this machine has no usable CUDA GPU")
    return resolved


def images_per_epoch(images: int, batch_size: int) -> int:
    """Images one epoch trains on: every epoch drops the last partial batch."""
    return images // batch_size * batch_size


def cosine_lr(base_lr: float, step: int, total_steps: int) -> float:
    """The learning rate of iteration `step` (0-based) of `total_steps`: base_lr down to ~0."""
    return 0.5 * base_lr * (1 + math.cos(math.pi * step / total_steps))


def learning_rate(recipe: Recipe, epoch: int, step: int, steps: int) -> float:
    """The rate of iteration `step` (0-based) of epoch `epoch` (0-based) of `recipe`'s run, with
    `steps` iterations an epoch: cosine per iteration, or the step schedule per epoch."""
    if recipe.lr_schedule == "cosine":
        return cosine_lr(recipe.lr, epoch * steps + step, recipe.epochs * steps)
    factor = next(f for end, f in STEP_LR if epoch < end * recipe.epochs or end == 1.0)
    return recipe.lr * factor


def train(
    state: TrainState,
    train_set: ImageSet,
    epochs: int,
    augment: Augment,
    recipe: Recipe,
    *,
    mean: Triple,
    std: Triple,
    progress: Callable[[int], None] | None = None,
) -> tuple[TrainState, list[dict]]:
    """Train `epochs` more epochs of the run `recipe` describes; return the state (updated in
    place) and one metrics dict per epoch.

    The device is the model's; pass a `train_set` already on it to skip the upload per call.
    `progress(n)` is called after each step with its n images. A non-finite loss does not stop
    training: the epoch's `nonfinite_steps` counts it and its `train_loss` is nan or inf.
    """
    if state.epoch + epochs > recipe.epochs:
        raise ValueError(f"epoch {state.epoch} + {epochs} exceeds the run's {recipe.epochs}")
    device = next(state.model.parameters()).device
    images, labels = train_set.images.to(device), train_set.labels.to(device)
    batch = recipe.batch_size
    steps = len(labels) // batch  # drop the last partial batch
    if steps == 0:
        raise PBAError(f"{len(labels)} training images do not fill one batch of {batch}")
    model, optimizer, generator = state.model, state.optimizer, state.generator
    params = [p for p in model.parameters() if p.requires_grad]
    layout = memory_format(recipe.precision)
    model.train()
    metrics = []
    for _ in range(epochs):
        start = time.perf_counter()
        order = torch.randperm(len(labels), generator=generator, device=generator.device)
        order = order.to(device)
        # Sums stay on the device: one host sync per epoch, not per step.
        loss_sum = torch.zeros((), device=device)
        grad_norm_sum = torch.zeros((), device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        nonfinite = torch.zeros((), dtype=torch.int64, device=device)
        for i in range(steps):
            lr = learning_rate(recipe, state.epoch, i, steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            index = order[i * batch : (i + 1) * batch]
            x = augment(images[index], state.epoch, generator)
            x = normalize(x, mean, std).contiguous(memory_format=layout)
            y = labels[index]
            with autocast(device, recipe.precision):
                logits = model(x)
            loss = F.cross_entropy(logits.float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm_sum += nn.utils.clip_grad_norm_(params, recipe.grad_clip)
            optimizer.step()
            loss_sum += loss.detach()
            correct += (logits.argmax(1) == y).sum()
            nonfinite += ~torch.isfinite(loss.detach())
            if progress is not None:
                progress(len(y))
        loss_total = loss_sum.item()  # waits for the device, so the time below is true
        elapsed = time.perf_counter() - start
        state.epoch += 1
        metrics.append({
            "epoch": state.epoch,
            "train_loss": loss_total / steps,
            "train_acc": correct.item() / (steps * batch),
            "lr": lr,  # of the epoch's last step
            "grad_norm": grad_norm_sum.item() / steps,  # mean before clipping
            "nonfinite_steps": int(nonfinite.item()),
            "images_per_s": steps * batch / elapsed,
            "time_s": elapsed,
        })
    return state, metrics


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: ImageSet,
    *,
    mean: Triple,
    std: Triple,
    precision: str = "fp32",
    batch_size: int = 1024,
) -> dict:
    """Accuracy (fraction) and mean cross-entropy of `model` on `data` (images only normalised),
    computed in `precision` (the run's: see `Recipe.precision`)."""
    if len(data) == 0:
        raise PBAError("cannot evaluate on an empty set of images")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    for start in range(0, len(data), batch_size):
        x = data.images[start : start + batch_size].to(device, non_blocking=True)
        y = data.labels[start : start + batch_size].to(device, non_blocking=True)
        x = normalize(x, mean, std).contiguous(memory_format=memory_format(precision))
        with autocast(device, precision):
            logits = model(x).float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum")
        correct += (logits.argmax(1) == y).sum()
    model.train(was_training)
    return {"accuracy": correct.item() / len(data), "loss": loss_sum.item() / len(data)}


def save_checkpoint(path: str | Path, state: TrainState, extra: dict) -> None:
    """Write `state` and `extra` (plain Python values) to `path` atomically."""
    doc = {"format": CHECKPOINT_FORMAT, "state": state.state_dict(), "extra": extra}
    with atomic_path(path) as tmp:
        torch.save(doc, tmp)


def load_checkpoint(path: str | Path, state: TrainState) -> dict:
    """Load the checkpoint at `path` into `state` (built for the same model, on any device of
    the type it was written on) and return its `extra`."""
    path = Path(path)
    if not path.is_file():
        raise PBAError(f"no checkpoint at {path}")
    try:
        doc = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated or foreign files fail in many ways inside torch.load
        raise PBAError(f"{path} is not a readable checkpoint: {_first_line(err)}") from None
    if not isinstance(doc, dict) or doc.get("format") != CHECKPOINT_FORMAT:
        raise PBAError(f"{path} is not a pba training checkpoint")
    try:
        state.load_state_dict(doc["state"])
    except (KeyError, RuntimeError, ValueError) as err:
        raise PBAError(f"{path} does not fit this run: {_first_line(err)}") from None
    return doc["extra"]


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]
