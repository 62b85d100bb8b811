"""Which settings of a search go together (`pba.search.request`): every rule refuses its
combination with a message naming the flags, and lets the combinations that run through."""

from __future__ import annotations

from pathlib import Path

import pytest

from pba.core.errors import UserError
from pba.search.request import RAY, SearchRequest, engine_of


def ray_run(tmp_path: Path) -> Path:
    """A run directory that a Ray search started (what `is_ray_run` looks for)."""
    (tmp_path / "ray").mkdir(parents=True)
    (tmp_path / "ray" / "backend.json").write_text("{}")
    return tmp_path


@pytest.mark.parametrize(("given", "message"), [
    ({"budget": "5m", "resume": "RUN"}, "drop --budget"),
    ({"engine": "ray", "address": "x:1"}, None),
    ({"address": "x:1"}, "need --engine ray"),
    ({"cpus_per_member": 2.0, "engine": "vectorized"}, "need --engine ray"),
    ({"engine": "ray", "tensorboard": True}, "--tensorboard and --compile"),
    ({"engine": "ray", "workers": 2}, "--device and --workers"),
    ({"resume": "RUN", "changes": {"epochs": 9}, "flags": {"epochs": "--epochs"}},
     "drop --epochs"),
    ({"resume": "RUN", "preset": "smoke", "skip_unreadable": True},
     "drop --preset, --skip-unreadable"),
    ({"resume": "RAY", "max_failures": 5}, "--max-failures per member"),
    ({"resume": "RAY", "engine": "vectorized"}, "was searched with Ray"),
    ({"resume": "RUN", "engine": "ray"}, "was searched without Ray"),
    ({"budget": "1h", "preset": "paper-rcifar10"}, "runs the paper's regime"),
    ({"budget": "1h", "engine": "ray"}, "not a Ray cluster"),
    ({"budget": "1h", "engine": "embedded"}, None),
    ({"resume": "RAY", "address": "x:1"}, None),
])
def test_settings_that_do_not_go_together_are_refused(tmp_path: Path, given: dict,
                                                       message: str | None) -> None:
    paths = {"RUN": tmp_path / "local", "RAY": ray_run(tmp_path / "remote")}
    (tmp_path / "local").mkdir()
    if "resume" in given:
        given = given | {"resume": paths[given["resume"]]}
    request = SearchRequest(**given)
    if message is None:
        engine = engine_of(request)
        assert engine == (RAY if given.get("engine") == RAY or given.get("resume") ==
                          paths["RAY"] else given.get("engine"))
    else:
        with pytest.raises(UserError, match=message):
            engine_of(request)
