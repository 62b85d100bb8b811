"""Progress bars for the library's `progress(done, total)` callbacks (the data layer reports
how far a load is; the application shows it)."""

from __future__ import annotations

from collections.abc import Callable

# Fewer images than this load in about a second: no bar.
BAR_FROM = 2000


def loading_bar(enabled: bool, what: str = "loading images") -> Callable[[int, int], None] | None:
    """A callback that draws a tqdm bar for a load of at least BAR_FROM images, closed when
    the last one is in; None when `enabled` is false."""
    if not enabled:
        return None
    bar = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if total < BAR_FROM:
            return
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(total=total, desc=what, unit="img", unit_scale=True, dynamic_ncols=True,
                       leave=False)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return update
