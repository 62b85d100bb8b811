"""`--device`: one grammar (pba.core.device.parse_device) for every command and the library. Parsing
only: nothing here needs a GPU but the test marked `cuda`."""

from __future__ import annotations

import pytest
import torch

from pba.cli.main import build_parser, main
from pba.core.device import parse_device, resolve_device
from pba.core.errors import PBAError

COMMANDS = {"search": ["search"], "demo": ["demo"], "train": ["train", "--out", "x"],
            "reproduce": ["reproduce", "run", "--carry", "c", "--out", "x"]}


@pytest.mark.parametrize("text, parsed", [("auto", "auto"), ("cpu", "cpu"), ("cuda", "cuda"),
                                          ("cuda:0", "cuda:0"), ("cuda:12", "cuda:12"),
                                          ("cuda:01", "cuda:1")])
def test_the_grammar(text: str, parsed: str) -> None:
    assert parse_device(text) == parsed


@pytest.mark.parametrize("text", ["cuda:x", "tpu", "cuda:", "cuda:-1", "CPU", "cuda:0:1",
                                  "cuda:١", "", "mps"])
def test_anything_else_is_refused_naming_the_forms(text: str) -> None:
    with pytest.raises(PBAError, match=r"use auto, cpu, cuda or cuda:N"):
        parse_device(text)
    with pytest.raises(PBAError, match=r"unknown device"):
        resolve_device(text)


def test_resolved_on_this_machine() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(PBAError, match="no usable CUDA GPU"):
            resolve_device("cuda:0")


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_gpu_by_number() -> None:
    assert resolve_device("cuda:0") == torch.device("cuda", 0)
    with pytest.raises(PBAError, match="numbered from 0"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")


@pytest.mark.parametrize("argv", COMMANDS.values(), ids=str)
def test_every_command_parses_device_alike(argv: list[str]) -> None:
    parser = build_parser()
    assert parser.parse_args([*argv, "--device", "cuda"]).device == "cuda"
    assert parser.parse_args([*argv, "--device", "cuda:01"]).device == "cuda:1"


@pytest.mark.parametrize("argv, bad", [(argv, bad) for argv in COMMANDS.values()
                                       for bad in ("cuda:x", "tpu")], ids=str)
def test_a_bad_device_is_a_usage_error(argv: list[str], bad: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit:
        main([*argv, "--device", bad])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --device: unknown device {bad!r}; use auto, cpu" in err
    assert "Traceback" not in err


def test_the_help_is_the_same_everywhere() -> None:
    def device_help(argv: list[str]) -> str:
        parser = build_parser()
        for name in argv:  # down the subparsers to the command's own
            action = next(a for a in parser._actions if a.dest in ("command", "step"))
            parser = action.choices[name]
        return next(a.help for a in parser._actions if a.dest == "device")

    demo, train = device_help(["demo"]), device_help(["train"])
    assert device_help(["search"]) == demo + "; with --resume the search's own by default"
    assert device_help(["reproduce", "run"]) == train
    assert demo == train and "cuda:N" in demo
