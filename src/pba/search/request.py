"""Which settings of a search go together: `SearchRequest` holds what `pba search` was asked
for, and `engine_of` refuses the combinations that cannot run, before anything loads, naming
the flags. The command line only parses; these rules are the library's.

    request = SearchRequest(resume=Path("runs/rc10"), engine="ray", precision="bf16")
    engine_of(request)   # UserError: --resume keeps the search's resources, precision, ...
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pba.core.errors import UserError

RAY = "ray"
PLACED_BY_RAY = ("--device and --workers are for the engines on this machine; Ray members use "
                 "a GPU when --gpus-per-member > 0")


@dataclass(frozen=True)
class SearchRequest:
    """A search's settings as given (None or empty: not given). `changes` are SearchConfig
    fields, named by their flags in `flags` (field -> flag) for the messages."""

    resume: Path | None = None
    preset: str | None = None
    changes: dict = field(default_factory=dict)
    flags: dict = field(default_factory=dict)
    engine: str | None = None
    budget: str | None = None
    precision: str | None = None
    skip_unreadable: bool = False
    # the engines on this machine only
    device: str | None = None
    workers: int | None = None
    compile: bool = False
    tensorboard: bool = False
    # Ray only
    address: str | None = None
    cpus_per_member: float | None = None
    gpus_per_member: float | None = None
    max_failures: int | None = None

    def resources(self) -> dict:
        """The Ray resources per member given."""
        return {name: value for name, value in (("cpus_per_member", self.cpus_per_member),
                                                ("gpus_per_member", self.gpus_per_member))
                if value is not None}

    def ray_settings(self) -> dict:
        """The Ray settings given: resources per member and --max-failures."""
        failures = {} if self.max_failures is None else {"max_failures": self.max_failures}
        return self.resources() | failures


def engine_of(request: SearchRequest) -> str | None:
    """Whether the search runs on Ray (RAY) or on this machine (the engine asked for, None:
    the default), after refusing settings that do not go together."""
    from pba.search.ray_log import is_ray_run

    if request.budget is not None and request.resume is not None:
        raise UserError("--resume continues a search as it was planned; drop --budget")
    if request.resume is not None:
        ray = is_ray_run(request.resume)
        if request.engine is not None and (request.engine == RAY) != ray:
            # The local engines read each other's checkpoints; Ray's are Tune's own.
            raise UserError(f"{request.resume} was searched with{'' if ray else 'out'} Ray, "
                            "and --engine cannot change that: leave --engine out")
    else:
        ray = request.engine == RAY
    if not ray and (request.resources() or request.address):
        raise UserError("--address, --cpus-per-member and --gpus-per-member need --engine ray")
    if ray and (request.tensorboard or request.compile):
        raise UserError("--tensorboard and --compile are for the engines on this machine; "
                        "Ray Tune keeps its own logs in DIR/ray")
    if ray and (request.device is not None or request.workers is not None):
        raise UserError(PLACED_BY_RAY)
    if request.resume is not None:
        given = [request.flags.get(name, name) for name in request.changes]
        given += ["--preset"] if request.preset else []
        given += ["--skip-unreadable"] if request.skip_unreadable else []
        if given:
            raise UserError("--resume continues a search as it was configured; drop "
                            + ", ".join(given))
        if ray and (request.resources() or request.precision or
                    request.max_failures is not None):
            raise UserError("--resume keeps the search's resources, precision and "
                            "--max-failures per member")
    if request.budget is not None:
        name = request.preset or ""
        if name.startswith("paper-"):
            raise UserError(f"the {name} preset runs the paper's regime (population, epochs, "
                            "images): --budget does not size it; leave --budget out, or "
                            "search with --preset quick --budget ...")
        if ray:
            raise UserError("--budget measures and plans for this machine, not a Ray "
                            "cluster: size a Ray search with --population, --epochs and "
                            "--train-size")
    return RAY if ray else request.engine
