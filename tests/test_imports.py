"""The package's import graph: no cycles, counting imports inside functions, and the light
modules stay light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
REPO = SRC.parent


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted((SRC / "pba").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The pba modules `name` imports anywhere in its file (functions, TYPE_CHECKING blocks
    too). Importing a submodule from outside its package runs the package's __init__ first,
    so that counts as importing the package as well."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            for alias in node.names:
                child = f"{base}.{alias.name}"
                targets.add(child if child in known else base)
    edges = set()
    for target in targets:
        if not target.startswith("pba"):
            continue
        parts = target.split(".")
        for i in range(1, len(parts) + 1):
            prefix = ".".join(parts[:i])
            # Its own packages are already importing when `name` runs.
            if prefix in known and prefix != name and not (name + ".").startswith(prefix + "."):
                edges.add(prefix)
    return edges


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_checker_sees_a_cycle_through_a_function() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles_among_pba_modules() -> None:
    known = modules()
    graph = {name: imports(name, path, known) for name, path in known.items()}
    assert graph["pba.search.runner"], "the checker found no imports at all"
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_benchmarks_import_no_cli_module() -> None:
    for path in (REPO / "benchmarks").glob("*.py"):
        tree = ast.parse(path.read_text())
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        assert not [n for n in names if n.startswith("pba.cli")], path


def test_the_search_state_machine_loads_no_engine_or_plot() -> None:
    # (torch itself imports tqdm, through torch.hub, so tqdm is not counted.)
    code = ("import sys, pba.search.pbt; "
            "print(sorted(m for m in ('matplotlib', 'pba.search.local', "
            "'pba.search.vectorized', 'pba.search.runner') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def layer_order() -> dict[str, int]:
    """docs/architecture.md's layer block: module prefix -> layer number (lowest first)."""
    text = (REPO / "docs" / "architecture.md").read_text()
    block = text.split("<!-- layers:", 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
    order = {}
    for line in block.splitlines():
        number, _, rest = line.partition(" ")
        for word in rest.split():
            if word.startswith("pba"):
                order[word] = int(number)
    return order


def layer_of(module: str, order: dict[str, int]) -> int | None:
    """The layer of the longest listed prefix of `module` (at a dot); the root package `pba`
    is itself, not a catch-all."""
    if module == "pba":
        return order.get("pba")
    matches = [p for p in order if p != "pba" and (module == p or module.startswith(p + "."))]
    return order[max(matches, key=len)] if matches else None


def upward_imports(graph: dict[str, set[str]], order: dict[str, int]) -> list[str]:
    found = []
    for name, targets in sorted(graph.items()):
        for target in sorted(targets):
            if layer_of(target, order) > layer_of(name, order):
                found.append(f"{name} (layer {layer_of(name, order)}) imports {target} "
                             f"(layer {layer_of(target, order)})")
    return found


def test_the_layer_checker_sees_an_upward_import() -> None:
    order = {"pba.low": 1, "pba.high": 2, "pba.high.part": 1}
    graph = {"pba.low": {"pba.high.x"}, "pba.high.x": set(), "pba.high.part.y": {"pba.low"}}
    assert upward_imports(graph, order) == [
        "pba.low (layer 1) imports pba.high.x (layer 2)"]
    assert upward_imports({"pba.high.part.y": {"pba.low"}}, order) == []


def test_every_module_has_a_layer_in_the_docs() -> None:
    order = layer_order()
    assert order["pba.cli"] > order["pba.search"] > order["pba.training"] > order["pba.core"]
    assert [m for m in modules() if layer_of(m, order) is None] == []


def test_no_module_imports_from_a_higher_layer() -> None:
    known, order = modules(), layer_order()
    graph = {name: imports(name, path, known) for name, path in known.items()}
    assert graph["pba.search.runner"], "the checker found no imports at all"
    assert upward_imports(graph, order) == []


def test_the_search_imports_no_drawing_library() -> None:
    # Progress bars, plots and TensorBoard are recorders the application passes in.
    drawing = ("tqdm", "matplotlib", "torch.utils.tensorboard")
    for name, path in modules().items():
        if not name.startswith("pba.search"):
            continue
        tree = ast.parse(path.read_text())
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        assert not [n for n in names if n.startswith(drawing)], name


def test_the_layers_are_folders_and_the_root_holds_only_the_api() -> None:
    order = layer_order()
    # Each listed prefix is the package root or a folder directly under it.
    assert all(prefix == "pba" or (SRC / "pba" / prefix.split(".", 1)[1] / "__init__.py")
               .is_file() for prefix in order), order
    assert all(prefix.count(".") <= 1 for prefix in order)
    assert [p.name for p in (SRC / "pba").glob("*.py")] == ["__init__.py"]


def test_the_flat_layouts_module_paths_still_import() -> None:
    code = ("import pba.run, pba.transforms, pba.train; from pba.schedule import Schedule; "
            "import pba.runs.training_run, pba.augmentation.schedule; "
            "print(pba.run is pba.runs.training_run, "
            "Schedule is pba.augmentation.schedule.Schedule, "
            "pba.train.__name__, pba.transforms.PBAugment.__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True", "pba.training.loop",
                                  "pba.augmentation.transforms"]
