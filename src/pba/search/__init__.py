"""Population Based Augmentation's search: PBT over augmentation policies.

    from pba.search import preset, run_search
    result = run_search(preset("smoke").replace(epochs=4), "runs/try")

`pbt` holds the state machine and the exploit/explore decisions, `lineage` the policy histories
that become the schedule, `local` the engine that trains members one after another on one
device, `rundir` the run directory and resume, `presets` the named configurations.
"""

from pba.search.pbt import PBT, Engine, PBTConfig, SearchState, TrainStats, exploit_pairs
from pba.search.presets import PRESETS, SearchConfig, preset
from pba.search.runner import SearchResult, resume_search, run_search

__all__ = [
    "PBT",
    "PRESETS",
    "Engine",
    "PBTConfig",
    "SearchConfig",
    "SearchResult",
    "SearchState",
    "TrainStats",
    "exploit_pairs",
    "preset",
    "resume_search",
    "run_search",
]
