"""Does the search earn its cost? The same budget on several datasets, every arm on the same
final-model seeds: the searched schedule (the demo's default search and its variants), the
search-free schedule ('ramp'), TrivialAugment, the baseline and no augmentation.

    python benchmarks/make_shapes_folder.py runs/shapes
    python benchmarks/make_grey_animals_folder.py runs/grey-animals
    python benchmarks/search_study.py --out runs/study --budget 8m \\
        --dataset cifar=reduced_cifar10 --dataset shapes=folder:runs/shapes \\
        --dataset grey-animals=folder:runs/grey-animals@40
    python benchmarks/search_study.py --out runs/study ... --first-seed 11   # new seeds
    python benchmarks/search_study.py --out runs/study ... --first-seed 11 --only-set

Per dataset (NAME=SOURCE, `@N` an image size): `pba demo --budget` with every arm (3 seeds
each) plans the regime and runs the default search; then each variant of the search
(`VARIANTS`: its `pba demo` flags) runs in the same regime, the planned one copied from the
first demo's demo.json, with only its searched arm. A demo that exists continues (another
`--first-seed` adds seeds to every demo). Prints one markdown table per dataset: mean +- sd
of each arm's test error, and each searched arm against the others (two standard errors of
the difference, `pba.core.verdict`), and writes them to OUT/study.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from pba.core.formatting import markdown_table, mean_sd
from pba.core.verdict import Comparison

# name -> the flags of `pba demo` that make the variant (the default search has none).
VARIANTS = {
    "paper selection": ["--selection", "truncation"],  # the paper's: the bottom quarter copies
    "loss": ["--metric", "loss", "--selection", "truncation"],  # ranks on validation loss
}
ARMS = "pba,ramp,baseline,trivialaugment,none:3"
# demo.json's regime -> the `pba demo` flag that fixes it
REGIME = {"model": "--model", "population": "--population", "epochs": "--epochs",
          "interval": "--interval", "train_size": "--train-size", "val_size": "--val-size",
          "final_model": "--final-model", "final_epochs": "--final-epochs"}
SHORT = {"pba": "searched (default)", "ramp": "search-free ramp", "baseline": "baseline",
         "trivialaugment": "TrivialAugment", "none": "none"}


def pba(*args: str) -> None:
    command = [str(Path(sys.executable).parent / "pba"), *args]
    print("$", " ".join(command), flush=True)
    subprocess.run(command, check=True)


def source(text: str) -> tuple[str, list[str]]:
    """'folder:runs/x@40' -> ('folder:runs/x', ['--image-size', '40'])."""
    data, _, size = text.rpartition("@") if "@" in text else (text, "", "")
    return data, (["--image-size", size] if size else [])


def regime(demo_dir: Path) -> list[str]:
    """The flags that fix the regime a demo ran (its final epochs after the refit)."""
    doc = json.loads((demo_dir / "demo.json").read_text())
    demo, search = doc["demo"], doc["demo"]["search"]
    values = {"final_model": demo["model"], "final_epochs": demo["epochs"], **search}
    return [part for name, flag in REGIME.items() if name in values
            for part in (flag, str(values[name]))]


def errors(demo_dir: Path, seed_set: int | None = None) -> dict[str, list[float]]:
    """Every arm's test errors: over all its seeds, or those of the set that starts at
    `seed_set`."""
    doc = json.loads((demo_dir / "results.json").read_text())
    arms = doc["arms"] if seed_set is None else next(
        s["arms"] for s in doc["seed_sets"] if s["first_seed"] == seed_set)
    return {arm: a["test_errors"] for arm, a in arms.items()}


def table(name: str, arms: dict[str, list[float]], costs: dict[str, float]) -> str:
    searched = [arm for arm in arms if arm.startswith("searched")]
    others = [arm for arm in arms if arm not in searched]
    rows = []
    for arm, values in arms.items():
        verdicts = []
        if arm in searched:
            for other in others:
                c = Comparison(values, arms[other])
                verdicts.append(f"{c.outcome} {c.gain:+.2f} (2 SE {2 * c.standard_error:.2f})"
                                if c.standard_error else "-")
        rows.append([arm, str(len(values)), mean_sd(values),
                     f"{costs.get(arm, 0) / 60:.1f}", *(verdicts or ["-"] * len(others))])
    return "\n".join([f"### {name}", "", markdown_table(
        ["arm", "seeds", "test error %", "search min", *(f"vs {o}" for o in others)], rows), ""])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--budget", default="8m")
    p.add_argument("--dataset", action="append", required=True, metavar="NAME=SOURCE")
    p.add_argument("--first-seed", type=int, default=1)
    p.add_argument("--only-set", action="store_true",
                   help="tables of the --first-seed set alone (default: every seed trained)")
    p.add_argument("--variants", default=",".join(VARIANTS),
                   help="comma-separated, of " + ", ".join(VARIANTS))
    args = p.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    seeds = ["--first-seed", str(args.first_seed), "--no-progress"]
    tables = []
    for entry in args.dataset:
        name, _, text = entry.partition("=")
        data, size = source(text)
        default = args.out / name / "default"
        pba("demo", "--dataset", data, *size, "--budget", args.budget, "--arms", ARMS,
            "--out", str(default), *seeds)
        only = args.first_seed if args.only_set else None
        arms = {SHORT[arm]: values for arm, values in errors(default, only).items()}
        costs = {SHORT["pba"]: json.loads((default / "results.json").read_text())
                 ["times"]["search_s"]}
        for variant in variants:
            out = args.out / name / variant.replace(" ", "-")
            pba("demo", "--dataset", data, *size, *regime(default), *VARIANTS[variant],
                "--arms", "pba", "--out", str(out), *seeds)
            arms[f"searched ({variant})"] = errors(out, only)["pba"]
            costs[f"searched ({variant})"] = json.loads((out / "results.json").read_text())[
                "times"]["search_s"]
        order = [a for a in arms if a.startswith("searched")] + [
            a for a in arms if not a.startswith("searched")]
        seeds_of = f", seeds from {only}" if only is not None else ""
        tables.append(table(f"{name} ({text}, budget {args.budget}{seeds_of})",
                            {a: arms[a] for a in order}, costs))
        print(tables[-1], flush=True)
    (args.out / f"study{'-' + str(only) if only is not None else ''}.md").write_text(
        "\n".join(tables))


if __name__ == "__main__":
    main()
