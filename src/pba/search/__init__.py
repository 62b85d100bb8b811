"""Population Based Augmentation's search: PBT over augmentation policies.

    from pba.search import preset
    from pba.search.runner import run_search
    result = run_search(preset("smoke").replace(epochs=4), "runs/try")

`pbt` holds the state machine and the exploit/explore decisions, `events` the typed records of
what a round did, `recorder` the hooks through which a search reports (the application passes
in bars, plots and summaries), `lineage` the policy histories that become the schedule, `local`
and `vectorized` the engines, `setup` what every engine does before its first round, `runner`
a search into a run directory (`rundir`) and its resume, `presets` the named configurations,
`ray_backend` / `ray_tune` / `ray_compat` / `ray_log` the Ray Tune backend. This package imports
only the state machine and the configurations, so that reading a run needs neither the engines
nor a progress bar.
"""

from pba.search.pbt import (
    PBT,
    Copy,
    Engine,
    PBTConfig,
    SearchState,
    TrainStats,
    exploit_pairs,
)
from pba.search.presets import PRESETS, SearchConfig, preset

__all__ = [
    "PBT",
    "PRESETS",
    "Engine",
    "PBTConfig",
    "SearchConfig",
    "SearchState",
    "TrainStats",
    "Copy",
    "exploit_pairs",
    "preset",
]
