"""RunOptions: a new run's defaults, a resumed run's own settings, and the entry points that
refuse options they cannot honour."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from pba.cli.options import run_options
from pba.core.errors import UserError
from pba.core.options import AS_STARTED, DEFAULTS, RunOptions
from pba.search import preset
from pba.search.ray_backend import resume_ray_search, run_ray_search

RECORDED = {"device": "cpu", "precision": "fp32", "data_dir": "/data/there"}


def test_a_new_run_takes_none_as_auto() -> None:
    assert AS_STARTED.starting() == DEFAULTS
    given = RunOptions(device="cpu", precision="bf16", workers=2)
    assert given.starting() == given


def test_a_resumed_run_keeps_what_was_not_given() -> None:
    assert AS_STARTED.continuing(RECORDED) == RunOptions(device="cpu", precision="fp32",
                                                         data_dir="/data/there")
    moved = AS_STARTED.replace(precision="bf16", data_dir="/data/here", workers=1)
    assert moved.continuing(RECORDED) == RunOptions(device="cpu", precision="bf16",
                                                    data_dir="/data/here", workers=1)
    # A record from before the precision was kept trained in fp32, whatever "auto" is here.
    assert AS_STARTED.continuing({}) == RunOptions(device="auto", precision="fp32")


def flags(**given: object) -> argparse.Namespace:
    values = {"device": None, "precision": None, "workers": None, "data_dir": None,
              "download": False, "no_progress": True} | given
    return argparse.Namespace(**values)


def test_flags_not_given_are_the_defaults_asked_for() -> None:
    assert run_options(flags()) == RunOptions(progress=False)
    assert run_options(flags(), defaults=AS_STARTED) == AS_STARTED.replace(progress=False)
    assert run_options(flags(device="cpu", workers=3), defaults=AS_STARTED) == RunOptions(
        device="cpu", precision=None, workers=3, progress=False)
    with pytest.raises(UserError, match="--workers must be >= 1"):
        run_options(flags(workers=0))
    with pytest.raises(UserError, match="--workers must be >= 1"):  # for library callers too
        RunOptions(workers=0)


@pytest.mark.parametrize("options", [RunOptions(device="cpu"), RunOptions(workers=2)])
def test_ray_refuses_to_be_told_where_members_train(options: RunOptions, tmp_path: Path) -> None:
    # Ray places the members: a device or a worker count could not be honoured.
    with pytest.raises(UserError, match="--device and --workers"):
        run_ray_search(preset("smoke"), tmp_path / "run", options=options)
    with pytest.raises(UserError, match="--device and --workers"):
        resume_ray_search(tmp_path / "run", options=AS_STARTED.replace(workers=1))
    assert not (tmp_path / "run").exists()


def test_a_ray_search_resumes_in_its_own_precision(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="precision it started with"):
        resume_ray_search(tmp_path / "run", options=AS_STARTED.replace(precision="fp32"))
