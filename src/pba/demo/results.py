"""A demo's results: every arm's test errors, over all seeds and per set of seeds, the verdicts of
the searched schedule against the other arms (first the baseline and TrivialAugment), and the
augmentation to recommend (`pba.core.verdict`). `results` builds results.json's document from the
finished final models; `render` turns it into the report's text.

    {"data": {...}, "arms": {ARM: {"seeds": [...], "test_errors": [...], "mean": m, "std": s}},
     "verdicts": {ARM: {"outcome": "beats", "gain": g, "standard_error": se, "text": ...}},
     "recommended": ARM, "advice": "...",
     "leaderboard": [{"arm": ARM, "mean": m, "std": s, "search_s": t, "train_s_per_model": t,
                      "beaten_by": [ARM, ...], "unbeaten": true}, ...],   # lowest error first
     "seed_sets": [{"first_seed": 1, "arms": ..., "verdicts": ..., "recommended": ...}, ...],
     "plan": {...}, "times": {...}}
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence

from pba.core.formatting import duration, markdown_table, mean_sd
from pba.core.timing import TimeBreakdown
from pba.core.verdict import ARM_NAMES, BEATS, EFFORT, UNCLEAR, Comparison, advice, recommend

OURS = "pba"  # the arm trained with the search's own schedule
# The verdicts in the order they are read: the two that decide whether the search paid off
# first, then whether it paid off beyond a schedule that needs no search.
VERDICT_ORDER = ("baseline", "trivialaugment", "ramp", "none", "published")


def judge(errors: Mapping[str, Sequence[float]], chosen_by_set: Sequence[str | None] = ()
          ) -> dict:
    """The arms' summaries, the searched schedule's verdict against each other arm, and the
    recommendation, for test errors by arm (arms without any are left out). `chosen_by_set`:
    what each set of seeds behind `errors` recommends on its own, for the advice to say
    whether the recommendation held on each."""
    errors = {arm: list(values) for arm, values in errors.items() if values}
    verdicts = {}
    if errors.get(OURS):
        for other in sorted(set(errors) - {OURS}, key=_verdict_rank):
            c = Comparison(errors[OURS], errors[other])
            verdicts[other] = {"outcome": c.outcome, "gain": c.gain,
                               "standard_error": c.standard_error, "text": c.describe()}
    doc = {"verdicts": verdicts, "recommended": None, "advice": None}
    if any(arm in EFFORT for arm in errors):
        chosen = recommend(errors)
        held_on = None
        if len(chosen_by_set) > 1:
            held_on = (sum(c == chosen for c in chosen_by_set), len(chosen_by_set))
        doc |= {"recommended": chosen,
                "advice": advice(chosen, verdicts.get("baseline", {}).get("outcome"), held_on)}
    return doc


def leaderboard(arms: Mapping[str, dict], costs: Mapping[str, Mapping[str, float | None]]
                ) -> list[dict]:
    """The arms' summaries beside their costs (`costs[arm]`: "search_s", the search it needs,
    None where it is not known; "train_s_per_model"), lowest mean error first, each with the
    arms that beat it by more than two standard errors: an arm no other beats is `unbeaten`."""
    rows = []
    for arm, a in sorted(arms.items(), key=lambda item: item[1]["mean"]):
        beaten_by = [other for other, b in arms.items() if other != arm and Comparison(
            b["test_errors"], a["test_errors"]).outcome == BEATS]
        cost = costs.get(arm, {})
        rows.append({"arm": arm, "mean": a["mean"], "std": a["std"],
                     "search_s": cost.get("search_s"),
                     "train_s_per_model": cost.get("train_s_per_model"),
                     "beaten_by": beaten_by, "unbeaten": not beaten_by})
    return rows


def results(
    finished: Mapping[str, Mapping[int, float]], sets: Sequence[Mapping[str, Sequence[int]]],
    first_seeds: Sequence[int], *, data: dict, plan: dict, times: dict,
    costs: Mapping[str, Mapping[str, float | None]] | None = None,
) -> dict:
    """results.json's document. `finished` is the test error by arm and seed of every finished
    final model; `sets[i]` the seeds of each arm of the set that starts at `first_seeds[i]`;
    `costs` each arm's, as `leaderboard` takes them."""
    def summaries(seeds: Mapping[str, Sequence[int]]) -> dict:
        out = {}
        for arm in seeds:
            done = [s for s in seeds[arm] if s in finished.get(arm, {})]
            if done:
                out[arm] = summary(done, [finished[arm][s] for s in done])
        return out

    seed_sets = []
    for first, seeds in zip(first_seeds, sets, strict=True):
        part = summaries(seeds)
        seed_sets.append({"first_seed": first, "arms": part,
                          **judge({arm: a["test_errors"] for arm, a in part.items()})})
    every = {arm: sorted({s for seeds in sets for s in seeds.get(arm, ())}) for arm in finished}
    arms = summaries(every)
    return {"data": data, "arms": arms,
            **judge({arm: a["test_errors"] for arm, a in arms.items()},
                    [s["recommended"] for s in seed_sets]),
            "leaderboard": leaderboard(arms, costs or {}), "seed_sets": seed_sets,
            "plan": plan, "times": times}


def summary(seeds: Sequence[int], errors: Sequence[float]) -> dict:
    return {"seeds": list(seeds), "test_errors": list(errors), "mean": statistics.mean(errors),
            "std": statistics.stdev(errors) if len(errors) > 1 else None}


def render(doc: dict, title: str) -> str:
    """The report's text of a results.json document, up to the search's part."""
    lines = [f"# {title}", ""]
    if doc["recommended"] is None:
        return "\n".join([*lines, "No final models have finished yet: run the same `pba demo` "
                          "command again to continue.", ""])
    arms = doc["arms"]
    seeds = ", ".join(_span(s["first_seed"], s["arms"]) for s in doc["seed_sets"])
    lines += [f"**Recommended: {ARM_NAMES[doc['recommended']]}.** {doc['advice']}", ""]
    if doc["verdicts"]:
        lines += [f"The searched schedule (seeds {seeds}):", ""]
        for other, v in doc["verdicts"].items():
            outcome = v["outcome"] or "no verdict"
            lines.append(f"- against {ARM_NAMES[other]}: **{outcome}**, {v['text']}")
        lines.append("")
        power = (doc["plan"].get("budget") or {}).get("power")
        if power and doc["verdicts"].get("baseline", {}).get("outcome") == UNCLEAR:
            lines += ["What this regime could show: " + "; ".join(power) + ".", ""]
    if len(doc["seed_sets"]) > 1:
        shown = [o for o in VERDICT_ORDER if o in doc["verdicts"]]
        rows = [[_span(s["first_seed"], s["arms"]),
                 *(_short(s["verdicts"].get(o)) for o in shown),
                 ARM_NAMES.get(s["recommended"], "-")] for s in doc["seed_sets"]]
        lines += ["## By set of seeds (each set on its own, then all together above)", "",
                  markdown_table(["seeds", *(f"pba vs {o}" for o in shown), "recommended"],
                                 rows), ""]
    data = doc["data"]
    size = data.get("image_size")
    pixels = "" if not size else f" ({size[0]}x{size[1]})"
    lines += [f"## Test error of the final models ({data['model']}, {data['epochs']} epochs on "
              f"{data['train_images']:,} {data['dataset']} training images{pixels}; tested on "
              f"{data['test_split']})", ""]
    rows = []
    for row in doc.get("leaderboard") or leaderboard(arms, {}):
        a, name = arms[row["arm"]], ARM_NAMES.get(row["arm"], row["arm"])
        rows.append([f"**{name}**" if row["unbeaten"] else name, str(len(a["seeds"])),
                     mean_sd(a["test_errors"]), ", ".join(f"{e:.2f}" for e in a["test_errors"]),
                     _cost(row["search_s"]), _cost(row["train_s_per_model"]),
                     ", ".join(ARM_NAMES.get(o, o) for o in row["beaten_by"]) or "-"])
    lines += [markdown_table(["augmentation", "seeds", "test error %", "per seed", "search",
                              "training per model", "clearly beaten by"], rows), "",
              "In bold: the arms no other arm clearly beats. Search: the time this demo's "
              "search took (- for an arm that needs none, ? for a published schedule, whose "
              "search was not run here); training per model: one final model's wall time, "
              "several training at once on a CPU.", ""]
    if data.get("baseline") == "none" and "baseline" in arms:
        lines += ["The baseline decided on the data is no augmentation: its final models are "
                  "also the no-augmentation arm's.", ""]
    times = doc["times"]
    models = times.get("final_models", sum(len(a["seeds"]) for a in arms.values()))
    lines.append(f"{models} final models, "
                 f"{duration(times['final_models_s'])} of training in all (on a CPU several "
                 f"train at once); the search {duration(times['search_s'])}; the demo's "
                 f"processes {duration(times['demo_wall_s'])} of wall time"
                 + (f"; its first run was planned for a budget of {duration(times['budget_s'])} "
                    f"(expected: {duration(times['expected_s'])})." if times.get("budget_s")
                    else "."))
    if times.get("breakdown"):
        spent = TimeBreakdown.from_dict(times["breakdown"])
        lines += ["", f"Where the time went: {spent.describe()}."]
    return "\n".join(lines) + "\n"


def _cost(seconds: float | None) -> str:
    return "?" if seconds is None else "-" if seconds == 0 else duration(seconds)


def _verdict_rank(arm: str) -> tuple[int, str]:
    return (VERDICT_ORDER.index(arm) if arm in VERDICT_ORDER else len(VERDICT_ORDER)), arm


def _span(first: int, arms: dict) -> str:
    seeds = sorted({s for a in arms.values() for s in a["seeds"]}) or [first]
    return f"{seeds[0]}-{seeds[-1]}" if len(seeds) > 1 else str(seeds[0])


def _short(verdict: dict | None) -> str:
    if verdict is None:
        return "-"
    se = verdict["standard_error"]
    spread = "" if se is None else f" (2 SE {2 * se:.2f})"
    return f"{verdict['outcome'] or 'no verdict'}: {verdict['gain']:+.2f}{spread}"
