"""The vectorised engine: the whole population trained as one network, one step for all members.

The members' WRNs are packed along channels (`pba.models.population.PopulationWRN`): grouped
convolutions keep members apart, and every BatchNorm channel belongs to one member, so running
statistics stay per member. Each step feeds member m its own batch, drawn in its own order and
augmented by its own policy with its own generator; the loss is the sum of the members' mean
losses, so each member's gradient is exactly its own. The optimiser is the recipe's (SGD,
Nesterov momentum, coupled L2 weight decay, cosine learning rate, gradient clipping at norm 5)
applied member by member: the clipping norm is each member's own.

Same search semantics as `pba.search.local.LocalEngine`: the members start from the same weights
and generators (same seeds), a clone keeps its own generator, and `save` / `load` write and read
the checkpoints of `pba.training.loop` (so a search can resume on either engine). What differs is
the
order of random draws: a member's epoch is shuffled and augmented in one call at its start (so
the augmentation's host syncs come once per epoch, not in every step), which draws its images
from the same distribution as `pba.training.loop.train`, not identically. With one batch per epoch
the
draws coincide, and the tests compare the engines tensor by tensor.

The uint8 training set lives on the training device; with `recipe.precision` bf16 the steps run
in bf16 autocast with channels_last activations (`pba.core.precision`). On CUDA `compile=True` hands
the network and the optimiser step to `torch.compile`; within an epoch the host waits for the
device only when the epoch's metrics are read.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pba.augmentation.policy import Policy
from pba.core.errors import UserError
from pba.core.precision import autocast, memory_format
from pba.data import DatasetSplits, normalize
from pba.models.population import PopulationWRN, member_rows
from pba.search.members import init_members
from pba.search.pbt import TrainStats, require_validation
from pba.training.augment import make_augment
from pba.training.loop import load_checkpoint, save_checkpoint
from pba.training.recipes import Recipe, learning_rate

EVAL_BATCH = 512  # validation images per member in one forward pass
CLIP_EPS = 1e-6  # as torch.nn.utils.clip_grad_norm_


@torch.no_grad()
def sgd_step(
    params: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor],
    momentum_buffers: Sequence[torch.Tensor],
    lr: torch.Tensor,
    *,
    members: int,
    momentum: float,
    weight_decay: float,
    nesterov: bool,
    max_norm: float,
) -> torch.Tensor:
    """One SGD step of every member, in place; returns each member's gradient norm (P,).

    Every tensor is packed (member-major, see `member_rows`). Member m's gradient is scaled by
    min(1, max_norm / (its norm + 1e-6)), then the update is torch.optim.SGD's with coupled L2
    weight decay: d = g + wd * p; b = momentum * b + d; d = d + momentum * b (Nesterov) or b;
    p -= lr * d. `lr` is a 0-dim tensor, so a changing rate neither syncs nor recompiles.
    """
    grads = [member_rows(g, members) for g in grads]
    norms = torch.stack([torch.linalg.vector_norm(g, dim=tuple(range(1, g.ndim))) for g in grads])
    norm = torch.linalg.vector_norm(norms, dim=0)
    scale = (max_norm / (norm + CLIP_EPS)).clamp(max=1.0)
    for p, g, b in zip(params, grads, momentum_buffers, strict=True):
        p, b = member_rows(p, members), member_rows(b, members)
        d = torch.add(g * scale.view(-1, *[1] * (g.ndim - 1)), p, alpha=weight_decay)
        b.mul_(momentum).add_(d)
        d = d.add(b, alpha=momentum) if nesterov else b
        p.addcmul_(d, lr, value=-1)
    return norm


class VectorizedEngine:
    """A population of WRNs on one device, trained together in one packed network.

    Implements `pba.search.pbt.Engine`; the constructor takes the arguments of `LocalEngine`
    plus `compile` (CUDA only: on the CPU the eager path is used).
    """

    def __init__(
        self,
        data: DatasetSplits,
        model: str,
        recipe: Recipe,
        population: int,
        *,
        seed: int,
        device: str | torch.device,
        progress: Callable[[int], None] | None = None,
        compile: bool = False,
    ) -> None:
        require_validation(data)
        self.device = torch.device(device)
        self.data = data
        self.recipe = recipe
        self.train_set = data.train.to(self.device)
        self.steps = len(data.train) // recipe.batch_size  # each epoch drops the partial batch
        if self.steps == 0:
            raise UserError(f"{len(data.train)} training images do not fill one batch of "
                           f"{recipe.batch_size}")
        self.images_per_epoch = self.steps * recipe.batch_size
        self.progress = progress  # called with the images of every step (all members')
        # The members LocalEngine would build from this seed: same weights, same data streams.
        states = init_members(model, data.num_classes, recipe, population, seed=seed,
                              device=self.device)
        self.memory_format = memory_format(recipe.precision, self.device)
        self.input_dtype = torch.bfloat16 if recipe.precision == "bf16" else torch.float32
        # Normalised once, so that an evaluation is nothing but forward passes (bf16 is the
        # precision autocast gives the first convolution anyway).
        val = data.val.to(self.device)
        self.val_inputs = normalize(val.images, data.mean, data.std).to(self.input_dtype)
        self.val_labels = val.labels
        self.population = PopulationWRN([s.model for s in states])
        self.population.to(memory_format=self.memory_format)
        self.params = list(self.population.parameters())
        self.momentum = [torch.zeros_like(p) for p in self.params]
        self.generators = [s.generator for s in states]
        self.epoch = 0  # epochs completed, the same for every member
        # A standalone member, the go-between for checkpoints in `pba.training.loop`'s format, with
        # a
        # generator of its own (member 0's stays member 0's).
        self._scratch = dataclasses.replace(states[0], generator=torch.Generator(self.device))
        self._forward: Callable[..., torch.Tensor] = self.population
        self._step: Callable[..., torch.Tensor] = sgd_step
        if compile and self.device.type == "cuda":
            self._forward = torch.compile(self.population)
            self._step = torch.compile(sgd_step)

    @property
    def size(self) -> int:
        return self.population.size

    # ---- pba.search.pbt.Engine ----------------------------------------------------------

    def train(self, policies: Sequence[Policy], epochs: int) -> list[TrainStats]:
        """Train every member `epochs` more epochs, member i with `policies[i]`."""
        if len(policies) != self.size:
            raise UserError(f"expected {self.size} policies, got {len(policies)}")
        if self.epoch + epochs > self.recipe.epochs:
            raise UserError(f"epoch {self.epoch} + {epochs} exceeds the run's "
                           f"{self.recipe.epochs}")
        augments = [make_augment("pba", self.data, self.recipe, schedule=p) for p in policies]
        start = time.perf_counter()
        losses, accuracies = [], []
        for _ in range(epochs):
            loss, accuracy = self._train_epoch(augments)
            losses.append(loss)
            accuracies.append(accuracy)
        # Members train at once: each is charged an equal share of the wall time.
        seconds = (time.perf_counter() - start) / self.size
        return [
            TrainStats(loss=float(np.mean(loss)), accuracy=float(np.mean(accuracy)),
                       images=epochs * self.images_per_epoch, seconds=seconds)
            for loss, accuracy in zip(np.transpose(losses), np.transpose(accuracies),
                                      strict=True)
        ]

    @torch.no_grad()
    def evaluate(self) -> list[dict[str, float]]:
        """Every member's validation accuracy and mean cross-entropy."""
        self.population.eval()
        loss_sum = torch.zeros(self.size, device=self.device)
        correct = torch.zeros(self.size, dtype=torch.int64, device=self.device)
        labels = self.val_labels
        for first in range(0, len(labels), EVAL_BATCH):
            x = self.val_inputs[first : first + EVAL_BATCH]
            y = labels[first : first + EVAL_BATCH]
            # Every member sees the same images.
            logits = self._logits(x.expand(self.size, *x.shape))
            loss_sum += _member_losses(logits, y.expand(self.size, -1)).sum(1)
            correct += (logits.argmax(2) == y).sum(1)
        self.population.train()
        n = len(labels)
        return [{"accuracy": c / n, "loss": s / n}
                for c, s in zip(correct.tolist(), loss_sum.tolist(), strict=True)]

    @torch.no_grad()
    def copy(self, source: int, target: int) -> None:
        """Give `target` the weights, BN statistics and momentum of `source`. The target keeps
        its own generator, as in LocalEngine: a clone drawing its source's augmentations would
        explore nothing but the policy."""
        self.population.copy_member(source, target)
        for b in self.momentum:
            rows = member_rows(b, self.size)
            rows[target] = rows[source]

    def save(self, member: int, path: Path, extra: dict) -> None:
        """Write `member` as a `pba.training.loop` checkpoint (readable by LocalEngine too)."""
        scratch = self._scratch
        scratch.model.load_state_dict(self.population.member_state_dict(member))
        for p, b in zip(scratch.model.parameters(), self.momentum, strict=True):
            buffer = member_rows(b, self.size)[member].view_as(p).clone()
            scratch.optimizer.state[p]["momentum_buffer"] = buffer
        scratch.generator.set_state(self.generators[member].get_state())
        scratch.epoch = self.epoch
        save_checkpoint(path, scratch, extra)

    @torch.no_grad()
    def load(self, member: int, path: Path) -> dict:
        """Load `member` from a `pba.training.loop` checkpoint (written by either engine). Members
        train
        in lockstep, so the population takes the checkpoint's epoch: load every member from the
        same round, as `SearchDir.restore` does."""
        scratch = self._scratch
        scratch.optimizer.state.clear()  # a checkpoint from before any step has no buffers
        extra = load_checkpoint(path, scratch)
        self.population.load_member_state_dict(member, scratch.model.state_dict())
        for p, b in zip(scratch.model.parameters(), self.momentum, strict=True):
            buffer = scratch.optimizer.state.get(p, {}).get("momentum_buffer")
            rows = member_rows(b, self.size)
            rows[member] = 0 if buffer is None else buffer.reshape(rows.shape[1:])
        self.generators[member].set_state(scratch.generator.get_state())
        self.epoch = scratch.epoch
        return extra

    # ---- the training loop --------------------------------------------------------------

    def _train_epoch(self, augments: Sequence[Callable]) -> tuple[list[float], list[float]]:
        """One epoch of every member; returns their mean training losses and accuracies."""
        recipe, steps, batch = self.recipe, self.steps, self.recipe.batch_size
        inputs, labels = self._epoch_batches(augments)
        loss_sum = torch.zeros(self.size, device=self.device)
        correct = torch.zeros(self.size, dtype=torch.int64, device=self.device)
        lr = torch.zeros((), device=self.device)
        for i in range(steps):
            lr.fill_(learning_rate(recipe, self.epoch, i, steps))
            y = labels[:, i * batch : (i + 1) * batch]
            logits = self._logits(inputs[:, i * batch : (i + 1) * batch])
            losses = _member_losses(logits, y).mean(1)
            # The sum's gradient with respect to member m's weights is that of m's own loss.
            grads = torch.autograd.grad(losses.sum(), self.params)
            self._step(self.params, grads, self.momentum, lr, members=self.size,
                       momentum=recipe.momentum, weight_decay=recipe.weight_decay,
                       nesterov=recipe.nesterov, max_norm=recipe.grad_clip)
            loss_sum += losses.detach()
            correct += (logits.argmax(2) == y).sum(1)
            if self.progress is not None:
                self.progress(self.size * batch)
        self.epoch += 1
        # The epoch's one wait for the device.
        return (loss_sum / steps).tolist(), (correct / (steps * batch)).tolist()

    def _epoch_batches(self, augments: Sequence[Callable]) -> tuple[torch.Tensor, torch.Tensor]:
        """Every member's epoch, shuffled and augmented by its own generator: normalised images
        (P, steps * batch, C, H, W) and labels (P, steps * batch), batch i at [:, i*B:(i+1)*B].

        The whole epoch at once: the augmentation's host syncs (two per call) and the upload
        of the normalisation constants happen here, none in the steps.
        """
        n = self.images_per_epoch
        images, labels = [], []
        for augment, generator in zip(augments, self.generators, strict=True):
            order = torch.randperm(len(self.train_set), generator=generator,
                                   device=generator.device)[:n].to(self.device)
            images.append(augment(self.train_set.images[order], self.epoch, generator))
            labels.append(self.train_set.labels[order])
        inputs = normalize(torch.stack(images), self.data.mean, self.data.std)
        return inputs.to(self.input_dtype), torch.stack(labels)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        """Float logits (P, N, classes) of normalised images (P, N, C, H, W)."""
        with autocast(self.device, self.recipe.precision):
            return self._forward(x, self.memory_format).float()


def _member_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-image cross-entropy (P, N) of logits (P, N, classes) against labels (P, N)."""
    flat = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none")
    return flat.view(labels.shape)

