"""Text for reports: durations, mean ± sd over seeds, markdown tables. Pure functions."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def duration(seconds: float) -> str:
    """'1h 02m 03s', or '2m 03s' under an hour."""
    hours, rest = divmod(round(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def mean_sd(values: list[float]) -> str:
    """'47.11 ± 0.52' (one value: itself; none: '-')."""
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A markdown table of already formatted cells, without a trailing newline."""
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
