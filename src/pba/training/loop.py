"""The training loop (docs/algorithm.md §4, §10), one function for `pba train` and every search.

    recipe = default_recipe("reduced_cifar10", "wrn_28_10", precision="bf16")     # .recipes
    augment = make_augment("pba", data, recipe, schedule=load_schedule(path, 200))  # .augment
    state = init_state("wrn_28_10", data.num_classes, recipe, seed=0, device="cuda")
    state, metrics = train(state, data.train, recipe.epochs, augment, recipe,
                           mean=data.mean, std=data.std)
    print(evaluate(state.model, data.test, mean=data.mean, std=data.std,
                   precision=recipe.precision))

SGD with Nesterov momentum 0.9 and L2 weight decay, the learning rate of `pba.training.recipes`;
gradients are clipped at global norm 5; each epoch reshuffles and drops the last partial batch.

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

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pba import models
from pba.core.atomic import save_torch_atomic
from pba.core.errors import UserError
from pba.core.parallel import seeded_global_rng
from pba.core.precision import autocast, memory_format
from pba.data import ImageSet, normalize
from pba.data.imageset import Triple
from pba.training.augment import Augment
from pba.training.recipes import Recipe, learning_rate

CHECKPOINT_FORMAT = "pba.checkpoint"


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
    model_name: str, num_classes: int, recipe: Recipe, *, seed: int, device: str | torch.device,
    image_size: tuple[int, int] | None = None,
) -> TrainState:
    """A fresh model and optimiser on `device`; `seed` fixes the weights and the data stream.
    `image_size` (height, width) is the data's: networks sized at construction (ViT) are built
    for it, and sizes a network cannot take are refused here (`pba.models.build`)."""
    device = torch.device(device)
    # Two independent streams from one seed, so that weights and data order are unrelated.
    model_seed, data_seed = (int(s) for s in np.random.SeedSequence(seed).generate_state(2))
    with seeded_global_rng(model_seed):  # the models draw their init from the global RNG
        model = models.build(model_name, num_classes, image_size)
    model = model.to(device, memory_format=memory_format(recipe.precision, device))
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



def images_per_epoch(images: int, batch_size: int) -> int:
    """Images one epoch trains on: every epoch drops the last partial batch."""
    return images // batch_size * batch_size



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
        raise UserError(f"{len(labels)} training images do not fill one batch of {batch}")
    model, optimizer, generator = state.model, state.optimizer, state.generator
    params = [p for p in model.parameters() if p.requires_grad]
    layout = memory_format(recipe.precision, device)
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


def epoch_by_epoch(
    state: TrainState,
    train_set: ImageSet,
    augment: Augment,
    recipe: Recipe,
    *,
    mean: Triple,
    std: Triple,
    evaluations: Callable[[int], dict[str, ImageSet]],
    progress: Callable[[int], None] | None = None,
) -> Iterator[dict]:
    """Train the rest of `recipe`'s run one epoch at a time and yield each epoch's metrics,
    with `{split}_acc` and `{split}_loss` for every split that `evaluations(epoch)` names
    (split -> images) after that epoch, and `eval_time_s`. The loop of `pba train` and of a
    Ray member; each persists the state after every yield."""
    while state.epoch < recipe.epochs:
        _, (metrics,) = train(state, train_set, 1, augment, recipe, mean=mean, std=std,
                              progress=progress)
        start = time.perf_counter()
        for split, images in evaluations(state.epoch).items():
            scores = evaluate(state.model, images, mean=mean, std=std, precision=recipe.precision)
            metrics |= {f"{split}_acc": scores["accuracy"], f"{split}_loss": scores["loss"]}
        metrics["eval_time_s"] = time.perf_counter() - start
        yield metrics


EVAL_BATCH = 1024  # on a GPU, and the most on a CPU
# On a CPU, the most bytes one activation of an evaluation batch may take: half of glibc's
# largest mmap threshold, so that with `pba.core.allocator.keep_freed_memory` every activation is
# carved from the heap and reused batch after batch instead of mapped, faulted in and unmapped
# (benchmarks/cpu_speed.py: WRN-10-1 on 10,000 images, 1,024 a batch 4.1 million minor faults,
# 128 a batch a few hundred, 2-4x the images/s).
CPU_ACTIVATION_BYTES = 16 * 1024 * 1024
MIN_EVAL_BATCH = 8


def largest_activation_bytes(model: nn.Module, image: torch.Tensor, precision: str) -> int:
    """The bytes of the largest output of any module of `model` for one normalised `image`
    (C, H, W), in `precision`: what one image adds to an evaluation batch's largest buffer."""
    largest = 0

    def hook(_module: nn.Module, _inputs: object, output: object) -> None:
        nonlocal largest
        if isinstance(output, torch.Tensor):
            largest = max(largest, output.numel() * output.element_size())

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    device = image.device
    try:
        with torch.no_grad(), autocast(device, precision):
            model(image[None].contiguous(memory_format=memory_format(precision, device)))
    finally:
        for handle in handles:
            handle.remove()
    return largest


def evaluation_batch(per_image_bytes: int, device: torch.device) -> int:
    """Images an evaluation batch holds: EVAL_BATCH on a GPU; on a CPU the largest power of two
    up to it whose largest activation (`per_image_bytes` an image) stays within
    CPU_ACTIVATION_BYTES, and at least MIN_EVAL_BATCH."""
    if device.type != "cpu":
        return EVAL_BATCH
    batch = EVAL_BATCH
    while batch > MIN_EVAL_BATCH and batch * per_image_bytes > CPU_ACTIVATION_BYTES:
        batch //= 2
    return batch


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: ImageSet,
    *,
    mean: Triple,
    std: Triple,
    precision: str = "fp32",
    batch_size: int | None = None,
) -> dict:
    """Accuracy (fraction) and mean cross-entropy of `model` on `data` (images only normalised),
    computed in `precision` (the run's: see `Recipe.precision`), `batch_size` images at a time
    (default: `evaluation_batch` for this model and device)."""
    if len(data) == 0:
        raise UserError("cannot evaluate on an empty set of images")
    device = next(model.parameters()).device
    layout = memory_format(precision, device)
    was_training = model.training
    model.eval()
    if batch_size is None:
        first = normalize(data.images[:1].to(device), mean, std)[0]
        batch_size = evaluation_batch(largest_activation_bytes(model, first, precision), device)
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    for start in range(0, len(data), batch_size):
        x = data.images[start : start + batch_size].to(device, non_blocking=True)
        y = data.labels[start : start + batch_size].to(device, non_blocking=True)
        x = normalize(x, mean, std).contiguous(memory_format=layout)
        with autocast(device, precision):
            logits = model(x).float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum")
        correct += (logits.argmax(1) == y).sum()
    model.train(was_training)
    return {"accuracy": correct.item() / len(data), "loss": loss_sum.item() / len(data)}


def save_checkpoint(path: str | Path, state: TrainState, extra: dict) -> None:
    """Write `state` and `extra` (plain Python values) to `path` atomically."""
    doc = {"format": CHECKPOINT_FORMAT, "state": state.state_dict(), "extra": extra}
    save_torch_atomic(doc, path)


def load_checkpoint(path: str | Path, state: TrainState) -> dict:
    """Load the checkpoint at `path` into `state` (built for the same model, on any device of
    the type it was written on) and return its `extra`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no checkpoint at {path}")
    try:
        doc = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated or foreign files fail in many ways inside torch.load
        raise UserError(f"{path} is not a readable checkpoint: {_first_line(err)}") from None
    if not isinstance(doc, dict) or doc.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{path} is not a pba training checkpoint")
    try:
        state.load_state_dict(doc["state"])
    except (KeyError, RuntimeError, ValueError) as err:
        raise UserError(f"{path} does not fit this run: {_first_line(err)}") from None
    return doc["extra"]


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]
