"""The Ray backend's hold on Tune's private parts (pba.search.ray_compat): only tested Ray
releases are accepted, checked before anything starts, and no other module names those parts."""

from __future__ import annotations

from pathlib import Path

import pytest

from pba.core.errors import PBAError
from pba.search import preset
from pba.search.ray_compat import TESTED, require_supported

SRC = Path(__file__).resolve().parents[1] / "src" / "pba"
# What PBAPopulationBasedTraining needs of Tune that is not public API.
PRIVATE = ("_trial_state", "_next_perturbation_sync", "_perturbation_interval", "_metric_op",
           "_set_trial_status", "run_metadata", "checkpoint_manager", "experiment_fs_path",
           "_process_trial_failure", "_trial_to_actor")


@pytest.mark.parametrize("version", ["2.60.0", "2.60.3", "2.60.0rc1"])
def test_a_tested_release_is_accepted(version: str) -> None:
    assert TESTED == ("2.60",)
    require_supported(version)


@pytest.mark.parametrize("version", ["2.61.0", "2.59.1", "3.0.0", "2.6.0", "2.600.0"])
def test_another_release_is_refused_naming_both(version: str) -> None:
    with pytest.raises(PBAError, match=rf"Ray {version} is installed, .* with Ray 2\.60\.x only"
                       r".*pip install 'pba\[ray\]'"):
        require_supported(version)


def test_an_untested_ray_stops_a_search_before_it_starts(monkeypatch, tmp_path: Path) -> None:
    # Ray without cluster support listens on 127.0.0.1 alone (read at import); nothing starts.
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    ray = pytest.importorskip("ray", reason="the Ray backend's extra is not installed")
    from pba.search.ray_backend import run_ray_search

    monkeypatch.setattr(ray, "__version__", "2.61.0")
    with pytest.raises(PBAError, match=r"Ray 2\.61\.0 is installed"):
        run_ray_search(preset("smoke"), tmp_path / "run")
    assert not (tmp_path / "run").exists()
    assert not ray.is_initialized()


def test_only_the_adapter_names_private_parts_of_ray() -> None:
    for path in SRC.rglob("*.py"):
        if path.name != "ray_compat.py":
            text = path.read_text()
            assert not [name for name in PRIVATE if name in text], path
