"""The documentation: every relative link in README.md and docs/ resolves to a file of the
repository (and, with an #anchor, to a heading of it); README.md is a short guide whose code
blocks run as they are, or say why not."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def anchor(heading: str) -> str:
    """GitHub's anchor of a markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {anchor(line.lstrip("#")) for line in page.read_text().splitlines()
            if line.startswith("#")}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, fragment = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(target)
        elif fragment and file.suffix == ".md" and fragment not in anchors(file):
            broken.append(target)
    assert broken == []


def test_the_docs_do_not_cite_the_external_spec() -> None:
    cited = [str(p.relative_to(ROOT)) for folder in ("src", "tests", "benchmarks")
             for p in (ROOT / folder).rglob("*.py")
             if p != Path(__file__) and re.search(r"spec section|pba_spec", p.read_text())]
    assert cited == []


# README.md's fenced code blocks: each runs as it is, or the line right before its fence says
# why not: `<!-- not run: REASON -->`. Python blocks run in a fresh interpreter; shell blocks
# with bash -e, the venv's commands on PATH. Shell commands that train or install take minutes
# and must be marked, never run here.
README = ROOT / "README.md"
README_MAX_LINES = 350
NOT_RUN = re.compile(r"<!-- not run: \S.* -->")
FENCE = re.compile(r"(`{3,})([\w+-]*)\s*$")
SHELLS = {"bash", "sh", "console"}
SLOW = re.compile(r"\bmake\b|\bpip3? install\b|\bpba (demo|search|train|reproduce)\b(?!.*--help)")
BLOCK_TIMEOUT_S = 120


def fenced_blocks(page: Path) -> list[tuple[int, str, str, bool]]:
    """(line of the opening fence, language, code, marked not run) for each fenced block."""
    lines, blocks, i = page.read_text().splitlines(), [], 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        fence, end = opening.group(1), i + 1
        while end < len(lines) and not (lines[end].startswith(fence)
                                        and not lines[end].strip("`").strip()):
            end += 1
        marked = i > 0 and NOT_RUN.fullmatch(lines[i - 1].strip()) is not None
        blocks.append((i + 1, opening.group(2).lower(), "\n".join(lines[i + 1:end]) + "\n",
                       marked))
        i = end + 1
    return blocks


def shell_commands(language: str, code: str) -> str:
    """The commands of a shell block: a console block's `$ ` lines, a script's every line."""
    if language != "console":
        return code
    return "".join(line[2:] + "\n" for line in code.splitlines() if line.startswith("$ "))


RUNNABLE = [(line, language, code) for line, language, code, marked in fenced_blocks(README)
            if not marked]


def test_the_readme_is_a_short_guide() -> None:
    lines = len(README.read_text().splitlines())
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines, at most {README_MAX_LINES}: move reference material "
        "to docs/")


def test_every_readme_block_runs_or_is_marked() -> None:
    wrong = []
    for line, language, code in RUNNABLE:
        if language == "python":
            continue
        if language not in SHELLS:
            wrong.append(f"README.md:{line}: a ```{language or '(no language)'} block cannot "
                         "run: mark it with <!-- not run: REASON --> on the line before")
        elif SLOW.search(shell_commands(language, code)):
            wrong.append(f"README.md:{line}: trains or installs for minutes: mark it with "
                         "<!-- not run: REASON --> on the line before")
    assert wrong == []


@pytest.mark.parametrize(("line", "language", "code"), RUNNABLE,
                         ids=[f"README.md:{line}-{language}" for line, language, _ in RUNNABLE])
def test_readme_block_runs(line: int, language: str, code: str, tmp_path: Path) -> None:
    env = dict(os.environ)
    env.setdefault("PBA_DATA_DIR", str(ROOT.parent / "shared" / "data"))
    if language == "python":
        (tmp_path / "block.py").write_text(code)
        command = [sys.executable, "block.py"]
    elif language in SHELLS:
        script = shell_commands(language, code)
        assert not SLOW.search(script), "slow commands must be marked, not run"
        (tmp_path / "block.sh").write_text(script)
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        command = ["bash", "-e", "block.sh"]
    else:
        pytest.fail(f"README.md:{line}: a ```{language} block is neither run nor marked")
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=BLOCK_TIMEOUT_S, check=False)
    assert done.returncode == 0, (f"README.md:{line} ({language}) exited {done.returncode}:\n"
                                  f"{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
