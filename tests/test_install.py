"""pba installs beside a user's stack: pyproject.toml gives ranges (floors the suite passed with,
no exact pins), and constraints.txt the exact versions CI installs, inside those ranges."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+
requirements = pytest.importorskip("packaging.requirements")

REPO = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
HARD = [requirements.Requirement(r) for r in PROJECT["dependencies"]]
EXTRAS = {extra: [requirements.Requirement(r) for r in reqs]
          for extra, reqs in PROJECT["optional-dependencies"].items()}
# The extras `make` and CI install (timm is not one of them).
INSTALLED_EXTRAS = ("test", "ray", "tensorboard", "svhn")


def pins() -> dict[str, str]:
    lines = (REPO / "constraints.txt").read_text().splitlines()
    pairs = (line.split("==") for line in lines if line.strip() and not line.startswith("#"))
    return {name.strip().lower(): pinned.strip() for name, pinned in pairs}


def test_hard_dependencies_are_floors_not_pins() -> None:
    assert {r.name for r in HARD} >= {"torch", "torchvision", "numpy", "pillow"}
    for r in HARD:
        operators = {s.operator for s in r.specifier}
        assert ">=" in operators and not operators & {"==", "===", "~="}, (
            f"{r}: a tested floor (and a cap only at a known break), never a pin")


def test_scipy_is_only_for_svhn() -> None:
    assert "scipy" not in {r.name for r in HARD}
    assert [r.name for r in EXTRAS["svhn"]] == ["scipy"]


def test_the_constraints_pin_every_requirement_inside_its_range() -> None:
    pinned = pins()
    for r in HARD + [r for extra in INSTALLED_EXTRAS for r in EXTRAS[extra]]:
        assert r.name.lower() in pinned, f"{r.name} has no exact version in constraints.txt"
        assert r.specifier.contains(pinned[r.name.lower()], prereleases=True), (
            f"constraints.txt's {r.name}=={pinned[r.name.lower()]} is outside {r}")


def test_what_is_installed_satisfies_the_ranges() -> None:
    for r in HARD:
        assert r.specifier.contains(version(r.name), prereleases=True), r
    for extra in INSTALLED_EXTRAS:
        for r in EXTRAS[extra]:
            try:
                installed = version(r.name)
            except PackageNotFoundError:
                continue  # an extra this environment left out
            assert r.specifier.contains(installed, prereleases=True), r


def test_the_ray_extra_is_the_tested_releases() -> None:
    from pba.search.ray_compat import TESTED

    (ray,) = EXTRAS["ray"]
    assert all(ray.specifier.contains(f"{series}.0") for series in TESTED)
    major, minor = map(int, TESTED[-1].split("."))
    assert not ray.specifier.contains(f"{major}.{minor + 1}.0")
