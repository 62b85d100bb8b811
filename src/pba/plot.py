"""Figures: a schedule over epochs (as the paper's Figures 3-4) and a grid of augmented images."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pba.atomic import atomic_path
from pba.policy import SLOTS
from pba.schedule import Schedule


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
    probability = pairs[..., 0].sum(axis=1) / 10
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
