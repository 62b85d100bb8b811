"""Figures: a schedule over epochs (as the paper's Figures 3-4) and a grid of augmented images."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from pba.augmentation.policy import MAX_PROBABILITY, SLOTS, strength
from pba.augmentation.schedule import Schedule
from pba.core.atomic import atomic_path
from pba.search.events import Evaluate, Event, Exploit, Train


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


def schedule_curves(schedule: Schedule) -> tuple[np.ndarray, np.ndarray]:
    """(epochs, ops) arrays: the probability summed over both slots and the mean magnitude of
    each op at each epoch (the quantities the paper plots)."""
    values = np.array([p.to_list() for p in schedule], dtype=float)  # (E, 4K)
    k = len(schedule.ops)
    pairs = values.reshape(len(schedule), SLOTS, k, 2)
    probability = pairs[..., 0].sum(axis=1) / MAX_PROBABILITY
    magnitude = pairs[..., 1].mean(axis=1)
    return probability, magnitude


def plot_schedule(schedule: Schedule, out: str | Path, title: str | None = None) -> None:
    """Stacked areas of each op's probability and magnitude over the epochs, written as PNG."""
    plt = _pyplot()
    probability, magnitude = schedule_curves(schedule)
    # One step per epoch: repeat the last epoch's values so that it is drawn with its width.
    probability, magnitude = (np.vstack([c, c[-1:]]) for c in (probability, magnitude))
    epochs = np.arange(len(schedule) + 1)
    names = schedule.ops.names
    colours = plt.get_cmap("tab20")(np.linspace(0, 1, len(names), endpoint=False))
    fig, axes = plt.subplots(2, 1, figsize=(10, 8), sharex=True, constrained_layout=True)
    for ax, curves, label in (
        (axes[0], probability, "probability (sum of both slots)"),
        (axes[1], magnitude, "magnitude (mean of both slots)"),
    ):
        ax.stackplot(epochs, curves.T, labels=names, colors=colours, step="post")
        ax.set_ylabel(label)
        ax.margins(x=0)
    axes[1].set_xlabel("epoch")
    axes[0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.suptitle(title or f"PBA schedule ({len(schedule)} epochs)")
    _save(fig, out)
    plt.close(fig)


def plot_population(
    events: Iterable[Event], out: str | Path, title: str | None = None,
    lineage: Sequence[int] = (),
) -> None:
    """A search's population (the events of population.jsonl) as PNG: every member's
    validation accuracy at each evaluation, one segment per round coloured by the strength of
    the policy it trained with in that round (`Policy.strength`). An exploit is a grey dotted
    edge from the target's score to the source's, where the target's next round starts. The
    rounds of `lineage` (the member each round's weights of the best final member came from,
    as `Lineage.history` gives per epoch) are outlined in black: its schedule's path."""
    from matplotlib.collections import LineCollection

    plt = _pyplot()
    rounds: dict[int, dict] = {}
    for e in events:
        if isinstance(e, Train | Evaluate | Exploit):
            r = rounds.setdefault(e.round, {Train: {}, Evaluate: {}, Exploit: []})
            if isinstance(e, Exploit):
                r[Exploit].append(e)
            else:
                r[type(e)][e.member] = e
    segments, strengths, outlined, edges = [], [], [], []
    previous: dict[int, tuple[float, float]] = {}  # member -> point its next round starts at
    for number in sorted(rounds):
        r = rounds[number]
        for member, train in r[Train].items():
            if member not in r[Evaluate]:
                continue
            start, end = train.epochs
            point = (end, r[Evaluate][member].accuracy)
            segments.append([previous.get(member, point), point])
            strengths.append(strength(train.policy))
            outlined.append(start < len(lineage) and lineage[start] == member)
        scores = {m: (e.epoch, e.accuracy) for m, e in r[Evaluate].items()}
        previous = dict(scores)
        for exploit in r[Exploit]:
            target, source = exploit.target, exploit.source
            if target in scores and source in scores:
                edges.append([scores[target], scores[source]])
                previous[target] = scores[source]
    fig, ax = plt.subplots(figsize=(10, 5.5), constrained_layout=True)
    ax.add_collection(LineCollection(edges, colors="0.6", linewidths=0.8, linestyles=":"))
    ax.add_collection(LineCollection([s for s, o in zip(segments, outlined, strict=True) if o],
                                     colors="black", linewidths=4.5))
    norm = plt.Normalize(0, max(strengths, default=0) or 1)
    lines = LineCollection(segments, cmap="viridis", norm=norm, linewidths=1.8)
    lines.set_array(np.asarray(strengths))
    ax.add_collection(lines)
    points = np.array([s[1] for s in segments]).reshape(-1, 2)
    ax.scatter(points[:, 0], points[:, 1], c=strengths, cmap="viridis", norm=norm, s=10,
               zorder=3)
    ax.autoscale()
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy")
    fig.colorbar(lines, ax=ax, label="policy strength (sum of its probabilities)")
    ax.plot([], [], color="black", linewidth=4.5, label="lineage of the best final member")
    ax.plot([], [], color="0.6", linewidth=0.8, linestyle=":", label="exploit (target to source)")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(title or "PBA population")
    _save(fig, out)
    plt.close(fig)


def plot_image_grid(
    rows: list[np.ndarray], out: str | Path, row_labels: list[str], scale: int = 3
) -> None:
    """A grid of uint8 HWC images, one row per label (e.g. an original and its augmentations)."""
    plt = _pyplot()
    n_cols = max(len(r) for r in rows)
    fig, axes = plt.subplots(
        len(rows), n_cols, figsize=(n_cols * 0.35 * scale, len(rows) * 0.4 * scale),
        squeeze=False, constrained_layout=True,
    )
    for r, (images, label) in enumerate(zip(rows, row_labels, strict=True)):
        for c in range(n_cols):
            ax = axes[r, c]
            ax.axis("off")
            if c < len(images):
                ax.imshow(images[c], interpolation="nearest")
        axes[r, 0].set_title(label, fontsize=8, loc="left")
    _save(fig, out)
    plt.close(fig)


def _save(fig, out: str | Path) -> None:
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
