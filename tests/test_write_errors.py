"""Writes of a run directory when the OS refuses them: a real file-size limit (RLIMIT_FSIZE) in a
child process stands for a full disk, so that the errors come from the kernel, not a mock."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from pba.core.directory import RunDirectory
from pba.core.errors import PBAError

resource = pytest.importorskip("resource")  # POSIX only


def run_limited(code: str, limit_bytes: int) -> subprocess.CompletedProcess:
    """`code` in a child whose files may not grow past `limit_bytes` (writes past it fail with
    EFBIG instead of killing the child with SIGXFSZ)."""
    prelude = textwrap.dedent(f"""
        import resource, signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, ({limit_bytes}, {limit_bytes}))
    """)
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=120)


def test_a_refused_torch_save_is_an_os_error_and_keeps_the_old_file(tmp_path) -> None:
    # torch's own file writer reports this as RuntimeError("... unexpected pos ..."), which no
    # caller can tell from a bug; saved through pba.core.atomic it is the OSError it is.
    path = tmp_path / "checkpoint.pt"
    result = run_limited(f"""
        import errno, torch
        from pba.core.atomic import save_torch_atomic
        save_torch_atomic({{"small": torch.zeros(10)}}, {str(path)!r})
        try:
            save_torch_atomic({{"big": torch.zeros(1_000_000)}}, {str(path)!r})
        except OSError as err:
            print("OSError", errno.errorcode[err.errno])
        print(sorted(torch.load({str(path)!r}, weights_only=True)))
    """, limit_bytes=200_000)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["OSError EFBIG", "['small']"]
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temporary file left


class Example(RunDirectory):
    kind = "example run"

    def resume_hint(self) -> str:
        return f"pba example --resume {self.path}"

    def kept(self) -> str:
        return "the steps before it are kept"


def test_a_refused_write_names_the_directory_what_is_kept_and_how_to_resume(tmp_path) -> None:
    run = Example(tmp_path / "run")
    run.write_json("config.json", {"a": 1})
    (tmp_path / "run" / "results.json").mkdir()  # the OS refuses to rename a file over it
    with pytest.raises(PBAError) as caught:
        run.write_json("results.json", {"b": 2})
    assert str(caught.value).startswith(f"cannot write results.json in {run.path} (")
    assert str(caught.value).endswith(f"); the steps before it are kept: fix the cause (free "
                                      f"some space?) and continue with pba example --resume "
                                      f"{run.path}")
    assert run.read_config() == {"a": 1}
    assert sorted(p.name for p in run.path.iterdir()) == ["config.json", "results.json"]


def test_config_formats_are_checked(tmp_path) -> None:
    class Stamped(Example):
        format, version = "pba.example", 2

    Stamped(tmp_path / "new").write_config({"a": 1})
    assert Stamped(tmp_path / "new").read_config() == {"format": "pba.example", "version": 2,
                                                         "a": 1}
    with pytest.raises(PBAError, match="is not a pba example run directory"):
        Stamped(tmp_path / "nothing").read_config()
    Example(tmp_path / "plain").write_config({"a": 1})
    with pytest.raises(PBAError, match="is not a pba example run directory"):
        Stamped(tmp_path / "plain").read_config()

    class Newer(Stamped):
        version = 3

    with pytest.raises(PBAError, match="format version 2; this pba reads version 3"):
        Newer(tmp_path / "new").read_config()
