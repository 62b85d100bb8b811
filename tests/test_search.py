"""The search's decisions, lineage, state machine and run directory, without real training:
explore and exploit statistics against docs/algorithm.md, and PBT over a fake engine."""

from __future__ import annotations

import errno
import json
import math
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from pba.augmentation.policy import (
    MAX_MAGNITUDE,
    MAX_PROBABILITY,
    MAX_STEP,
    RESAMPLE_PROBABILITY,
    Policy,
)
from pba.augmentation.policy import explore as explore_policy
from pba.augmentation.schedule import parse_pbt_log
from pba.cli.main import main
from pba.core.errors import PBAError
from pba.reporting.report import final_runs, report, results_table
from pba.search import PBT, PBTConfig, SearchState, TrainStats, exploit_pairs
from pba.search.cost import search_cost
from pba.search.events import Exploit, Explore, Round, Start, Train, from_json, to_json
from pba.search.lineage import Lineage
from pba.search.pbt import beyond_noise, score, significant_copies, tail_size
from pba.search.presets import PRESETS, SearchConfig, preset
from pba.search.rundir import SearchDir

SIGMAS = 5  # tolerance of every frequency check, in binomial standard deviations


def within_binomial(count: float, n: int, p: float) -> bool:
    return abs(count - n * p) <= SIGMAS * math.sqrt(n * p * (1 - p)) + 1e-9


# ---- explore (docs/algorithm.md §7) -------------------------------------------------------


def explore_distribution(value: int, cap: int) -> np.ndarray:
    """P(new value) under the rule of docs/algorithm.md §7: resample uniformly with
    probability 0.2, otherwise step by 0..3 down or up with equal chance, clipped to 0..cap."""
    p = np.full(cap + 1, RESAMPLE_PROBABILITY / (cap + 1))
    for amount in range(MAX_STEP + 1):
        weight = (1 - RESAMPLE_PROBABILITY) / (MAX_STEP + 1) / 2
        p[max(value - amount, 0)] += weight
        p[min(value + amount, cap)] += weight
    return p


# Start values that exercise both clips: probability entries (cap 10), magnitude entries (cap 9).
PROBABILITY_STARTS = (0, 1, 5, 9, 10)
MAGNITUDE_STARTS = (0, 1, 5, 8, 9)
DRAWS = 20_000


@pytest.fixture(scope="module")
def explored() -> tuple[np.ndarray, np.ndarray]:
    """The start vector and DRAWS explorations of it, shape (DRAWS, 60)."""
    start = np.array([
        (PROBABILITY_STARTS if i % 2 == 0 else MAGNITUDE_STARTS)[(i // 2) % 5] for i in range(60)
    ])
    rng = np.random.default_rng(20190601)
    policy = Policy(tuple(start.tolist()))
    return start, np.array([explore_policy(policy, rng).values for _ in range(DRAWS)])


@pytest.mark.parametrize(
    ("kind", "cap", "starts"),
    [(0, MAX_PROBABILITY, PROBABILITY_STARTS), (1, MAX_MAGNITUDE, MAGNITUDE_STARTS)],
    ids=["probability", "magnitude"],
)
def test_explore_distribution_matches_the_spec(explored, kind, cap, starts) -> None:
    start, samples = explored
    for value in starts:
        entries = [i for i in range(60) if i % 2 == kind and start[i] == value]
        new = samples[:, entries].ravel()
        counts = np.bincount(new, minlength=cap + 1)
        assert len(counts) == cap + 1, f"explore left 0..{cap} from {value}"
        expected = explore_distribution(value, cap)
        for x, (count, p) in enumerate(zip(counts, expected, strict=True)):
            assert within_binomial(count, new.size, p), (value, x, count, new.size * p)


def test_explore_resample_rate_and_clipping(explored) -> None:
    start, samples = explored
    # From 5 (probability entries), steps reach 2..8 only: 0, 1, 9, 10 come from resampling,
    # which picks each of the 11 levels with probability 0.2 / 11.
    new = samples[:, [i for i in range(0, 60, 2) if start[i] == 5]].ravel()
    far = np.isin(new, (0, 1, 9, 10)).sum()
    p_far = RESAMPLE_PROBABILITY * 4 / 11
    assert within_binomial(far, new.size, p_far)
    # Clipping: from the floor a downward step stays at 0, from the caps an upward one stays.
    for kind, value, cap in ((0, 0, 10), (0, 10, 10), (1, 0, 9), (1, 9, 9)):
        entries = [i for i in range(60) if i % 2 == kind and start[i] == value]
        new = samples[:, entries].ravel()
        stay = (new == value).sum()
        # 0.8 * (amount 0, or the clipped direction: 1/4 + 1/2 * 3/4) + resample to itself
        p_stay = (1 - RESAMPLE_PROBABILITY) * (0.25 + 0.5 * 0.75) + RESAMPLE_PROBABILITY / (cap + 1)
        assert within_binomial(stay, new.size, p_stay), (kind, value, stay)
        assert new.min() >= 0 and new.max() <= cap


# ---- exploit ------------------------------------------------------------------------------


def test_tail_size() -> None:
    assert tail_size(16, 0.25) == 4
    assert tail_size(4, 0.25) == 1
    assert tail_size(8, 0.5) == 4
    assert tail_size(3, 0.5) == 1  # at most half the population, rounded down


def test_exploit_replaces_exactly_the_bottom_quantile_from_the_top_one() -> None:
    scores = np.random.default_rng(3).permutation(16).astype(float)
    bottom = set(np.argsort(scores)[:4].tolist())
    top = set(np.argsort(scores)[-4:].tolist())
    sources = []
    trials = 2000
    for seed in range(trials):
        pairs = exploit_pairs(scores.tolist(), 0.25, np.random.default_rng(seed))
        assert {c.target for c in pairs} == bottom and len(pairs) == 4
        sources += [c.source for c in pairs]
    assert set(sources) == top
    for member in top:  # drawn uniformly from the top quantile
        assert within_binomial(sources.count(member), len(sources), 0.25)


def test_exploit_breaks_ties_without_favouring_members() -> None:
    targets = []
    for seed in range(400):
        pairs = exploit_pairs([0.5] * 16, 0.25, np.random.default_rng(seed))
        assert len(pairs) == 4
        assert not {c.target for c in pairs} & {c.source for c in pairs}
        targets += [c.target for c in pairs]
    assert set(targets) == set(range(16))
    # Five members tie for the bottom four places: four of those five are replaced.
    scores = [0.1] * 5 + [0.2 + i / 100 for i in range(11)]
    for seed in range(50):
        pairs = exploit_pairs(scores, 0.25, np.random.default_rng(seed))
        assert {c.target for c in pairs} < set(range(5)) and len(pairs) == 4
        assert all(c.source >= 12 for c in pairs)


def test_exploit_replaces_every_diverged_member() -> None:
    scores = [float(i) for i in range(16)]
    scores[13] = scores[2] = math.nan  # one of them would otherwise be in the top quantile
    pairs = exploit_pairs(scores, 0.25, np.random.default_rng(0))
    assert {c.target for c in pairs} == {0, 1, 2, 13}
    assert {c.source for c in pairs} <= {11, 12, 14, 15}
    scores[5:11] = [math.nan] * 6  # more diverged members than the bottom quantile holds
    pairs = exploit_pairs(scores, 0.25, np.random.default_rng(0))
    assert {c.target for c in pairs} == {2, 5, 6, 7, 8, 9, 10, 13}  # not 0 and 1 any more
    assert all(math.isfinite(scores[c.source]) for c in pairs)
    with pytest.raises(PBAError, match="diverged"):
        exploit_pairs([math.nan] * 4, 0.25, np.random.default_rng(0))


def test_score_signs_the_metric_and_marks_divergence() -> None:
    assert score({"accuracy": 0.7, "loss": 0.9}, 1.2, "accuracy") == 0.7
    assert score({"accuracy": 0.7, "loss": 0.9}, 1.2, "loss") == -0.9
    assert math.isnan(score({"accuracy": 0.7, "loss": math.nan}, 1.2, "accuracy"))
    assert math.isnan(score({"accuracy": 0.1, "loss": 2.3}, math.inf, "accuracy"))


# ---- lineage ------------------------------------------------------------------------------


def policy(level: int) -> Policy:
    """A recognisable policy: Rotate's probability level in the first slot."""
    return Policy.zeros().replace("Rotate", probability=level)


def train(member: int, start: int, end: int, level: int) -> Train:
    return Train(start // 2, member, (start, end), tuple(policy(level).to_list()), 1.0, 0.5, 64,
                 0.1)


def exploit(target: int, source: int) -> Exploit:
    return Exploit(0, 2, target, source, 0.1, 0.9)


HISTORY = [  # three members, rounds of 2 epochs
    train(0, 0, 2, 1), train(1, 0, 2, 2), train(2, 0, 2, 3),
    exploit(target=2, source=0), Explore(0, 2, 2, (0,) * 60, (0,) * 60),
    train(0, 2, 4, 1), train(1, 2, 4, 2), train(2, 2, 4, 4),
    exploit(target=0, source=2), Round(1, 4, 0, 0.5, 0.5, 384, 1.0, 0.0),
    train(0, 4, 6, 5), train(1, 4, 6, 2), train(2, 4, 6, 4),
]


def test_lineage_follows_clones_back() -> None:
    lineage = Lineage.replay(3, HISTORY)
    # Member 0 cloned 2 at epoch 4, which had cloned 0 at epoch 2.
    assert lineage.schedule(0).policies == tuple(map(policy, (1, 1, 4, 4, 5, 5)))
    assert [step.member for step in lineage.history(0)] == [0, 0, 2, 2, 0, 0]
    assert lineage.schedule(1).policies == (policy(2),) * 6
    assert lineage.schedule(2).policies == tuple(map(policy, (1, 1, 4, 4, 4, 4)))


def test_lineage_pbt_log_parses_back_to_the_same_schedule() -> None:
    lineage = Lineage.replay(3, HISTORY)
    for member in range(3):
        text = lineage.pbt_log(member)
        assert parse_pbt_log(text, 6) == lineage.schedule(member)
    lines = [json.loads(line) for line in lineage.pbt_log(0).splitlines()]
    # Changes at epochs 2 (policy 1 -> 4, trained by member 2 after member 0) and 4 (4 -> 5).
    assert [line[:4] for line in lines] == [["2", "0", 2, 2], ["0", "2", 4, 4]]


def test_lineage_rejects_an_incomplete_log() -> None:
    with pytest.raises(PBAError, match="out of order or incomplete"):
        Lineage.replay(3, [train(0, 0, 2, 1), train(0, 4, 6, 1)])


# ---- the state machine over a fake engine -------------------------------------------------


class FakeEngine:
    """Members are numbers that grow when trained, faster with more augmentation; a member
    listed in `diverge` (round -> members) reports nan losses after that round's training."""

    def __init__(self, population: int, diverge: dict[int, set[int]] | None = None) -> None:
        self.progress = None
        self.weights = [i / 100 for i in range(population)]
        self.diverge = diverge or {}
        self.rounds = 0
        self.nan: set[int] = set()
        self.copies: list[tuple[int, int]] = []

    def train(self, policies, epochs):
        self.nan = self.diverge.get(self.rounds, set())
        self.rounds += 1
        for i, p in enumerate(policies):
            self.weights[i] += epochs * (1 + sum(p.values) / 100)
        return [TrainStats(math.nan if i in self.nan else 1.0, 0.5, 10 * epochs, 0.01)
                for i in range(len(policies))]

    def evaluate(self):
        # Diverged members claim the best accuracy: only their loss betrays them.
        return [{"accuracy": 99.0 if i in self.nan else w, "loss": math.nan if i in self.nan
                 else 1 / (1 + w)} for i, w in enumerate(self.weights)]

    def copy(self, source, target):
        self.copies.append((source, target))
        self.weights[target] = self.weights[source]

    def save(self, member, path: Path, extra):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"weight": self.weights[member], "extra": extra}))

    def load(self, member, path: Path):
        try:  # as the real engines, an unreadable checkpoint is a PBAError naming it
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            raise PBAError(f"{path} is not a readable checkpoint") from None
        self.weights[member] = doc["weight"]
        return doc["extra"]


def run_fake(config: PBTConfig, engine: FakeEngine) -> tuple[SearchState, list[list[dict]]]:
    """The search, and its rounds' events as population.jsonl holds them."""
    rounds: list[list[dict]] = []
    state = PBT(engine, SearchState.initial(config),
                lambda s, events: rounds.append([to_json(e) for e in events])).run()
    return state, rounds


def test_pbt_rounds_exploit_explore_and_record() -> None:
    config = PBTConfig(population=8, epochs=7, interval=3, quantile=0.25, seed=5)
    engine = FakeEngine(8)
    state, rounds = run_fake(config, engine)
    assert state.epoch == 7 and state.round == 3 == len(rounds) == config.rounds
    kinds = [[e["event"] for e in events] for events in rounds]
    for events in kinds[:-1]:
        assert events == ["train"] * 8 + ["evaluate"] * 8 + ["exploit"] * 2 + ["explore"] * 2 + [
            "round"]
    assert kinds[-1] == ["train"] * 8 + ["evaluate"] * 8 + ["round"]  # no exploit at the end
    assert [e["epochs"] for e in rounds[2][:1]] == [[6, 7]]
    exploits = [(e["source"], e["target"]) for r in rounds for e in r if e["event"] == "exploit"]
    assert engine.copies == exploits
    for events in rounds[:-1]:  # each clone explores from its source's policy
        trained = {e["member"]: e["policy"] for e in events if e["event"] == "train"}
        pairs = [(e["target"], e["source"]) for e in events if e["event"] == "exploit"]
        explores = [e for e in events if e["event"] == "explore"]
        for (target, source), explored in zip(pairs, explores, strict=True):
            assert explored["member"] == target
            assert explored["old_policy"] == trained[source]
    schedule = state.lineage.schedule(state.best())
    assert len(schedule) == 7
    assert schedule == Lineage.replay(8, [from_json(e) for r in rounds for e in r]).schedule(
        state.best())
    # The same seed gives the same search.
    _, again = run_fake(config, FakeEngine(8))
    assert [strip_times(r) for r in rounds] == [strip_times(r) for r in again]


def test_pbt_replaces_a_diverged_member_at_the_next_perturbation() -> None:
    config = PBTConfig(population=8, epochs=6, interval=2, quantile=0.25, seed=0)
    state, rounds = run_fake(config, FakeEngine(8, diverge={0: {7}}))
    evaluated = [e for e in rounds[0] if e["event"] == "evaluate"]
    assert math.isnan(evaluated[7]["score"])  # despite the best accuracy
    targets = {e["target"] for e in rounds[0] if e["event"] == "exploit"}
    assert targets == {0, 7}  # the bottom two: the diverged member ranks last
    explored = next(e for e in rounds[0] if e["event"] == "explore" and e["member"] == 7)
    retrained = next(e for e in rounds[1] if e["event"] == "train" and e["member"] == 7)
    assert retrained["policy"] == explored["new_policy"] and math.isfinite(retrained["loss"])
    assert state.finished and all(math.isfinite(s) for s in state.scores)


def test_pbt_stops_when_every_member_diverged() -> None:
    config = PBTConfig(population=4, epochs=4, interval=2)
    with pytest.raises(PBAError, match="diverged"):
        run_fake(config, FakeEngine(4, diverge={0: {0, 1, 2, 3}}))


def test_beyond_noise_is_two_standard_errors_of_the_difference() -> None:
    # p = 0.5 on 2,000 images: the difference has a standard error of sqrt(0.5 / 2000) = 0.0158
    assert not beyond_noise(0.53, 0.50, 2000)  # 1.9 standard errors
    assert beyond_noise(0.533, 0.50, 2000)  # 2.1
    assert beyond_noise(0.53, 0.50, 20000)  # ten times the images: 6 standard errors
    assert not beyond_noise(0.50, 0.53, 20000)  # a worse source is never copied
    assert not beyond_noise(1.0, 1.0, 100)  # no difference, no copy (even at zero error)


def copy_rate(true_accuracy: list[float], selection: str, images: int, draws: int) -> float:
    """Fraction of exploit pairs whose copy goes ahead when every member's validation accuracy
    is a binomial draw of `images` images around its true accuracy."""
    rng = np.random.default_rng(0)
    copied = paired = 0
    for _ in range(draws):
        accuracies = (rng.binomial(images, true_accuracy) / images).tolist()
        pairs = exploit_pairs(accuracies, 0.25, rng)
        if selection == "significant":
            pairs_copied = significant_copies(pairs, accuracies, accuracies, images)
        else:
            pairs_copied = pairs
        copied, paired = copied + len(pairs_copied), paired + len(pairs)
    return copied / paired


def test_significant_selection_copies_on_clear_differences_only() -> None:
    # Eight equal members: the ranking is noise. Truncation copies every bottom member; the
    # significant rule copies only where the extremes of eight draws lie 2 standard errors
    # apart: the gap between the top two and bottom two of eight normals averages 1.6 standard
    # errors of a difference, so a fifth to a third of pairs (0.22 with these draws).
    assert copy_rate([0.5] * 8, "truncation", 2000, 500) == 1.0
    assert 0.1 < copy_rate([0.5] * 8, "significant", 2000, 500) < 0.5
    # Two members 10 points ahead (6 standard errors on 2,000 images): nearly every pair copies.
    assert copy_rate([0.5] * 6 + [0.6] * 2, "significant", 2000, 500) > 0.99


class NoisyEngine(FakeEngine):
    """A FakeEngine whose validation accuracies are given per round, scored on `images`."""

    def __init__(self, accuracies: list[list[float]], images: int) -> None:
        super().__init__(len(accuracies[0]))
        self.accuracies = accuracies
        self.data = SimpleNamespace(val=range(images))

    def evaluate(self):
        return [{"accuracy": a, "loss": 1 - a} for a in self.accuracies[self.rounds - 1]]


def test_significant_selection_explores_without_copying_within_noise() -> None:
    config = PBTConfig(population=4, epochs=4, interval=2, seed=1, selection="significant")
    # Round 1 within noise (2,000 images: 2 standard errors are 3.2 points), round 2 clear.
    engine = NoisyEngine([[0.50, 0.51, 0.52, 0.49], [0.30, 0.50, 0.70, 0.50]], 2000)
    _, rounds = run_fake(config, engine)
    first = rounds[0]
    assert not [e for e in first if e["event"] == "exploit"] and engine.copies == []
    trained = {e["member"]: e["policy"] for e in first if e["event"] == "train"}
    explores = [e for e in first if e["event"] == "explore"]
    assert [e["member"] for e in explores] == [3]  # the bottom member explores its own policy
    assert explores[0]["old_policy"] == trained[3] != explores[0]["new_policy"]
    # The truncation rule, same draws: the bottom member copies the top one.
    engine = NoisyEngine([[0.50, 0.51, 0.52, 0.49], [0.30, 0.50, 0.70, 0.50]], 2000)
    _, rounds = run_fake(config.__class__(**{**config.__dict__, "selection": "truncation"}),
                         engine)
    assert [(e["target"], e["source"]) for e in rounds[0] if e["event"] == "exploit"] == [(3, 2)]


def test_significant_selection_needs_the_accuracy_metric() -> None:
    with pytest.raises(PBAError, match="metric accuracy"):
        PBTConfig(selection="significant", metric="loss")
    with pytest.raises(PBAError, match="unknown selection"):
        PBTConfig(selection="tournament")


@pytest.mark.parametrize(
    "change",
    [{"population": 1}, {"quantile": 0.7}, {"quantile": 0.0}, {"interval": 0}, {"epochs": 0},
     {"metric": "f1"}],
)
def test_pbt_config_rejects_bad_values(change) -> None:
    with pytest.raises(PBAError):
        PBTConfig(**change)


# ---- run directory and resume -------------------------------------------------------------


def search_into(out: Path, config: PBTConfig, engine: FakeEngine, rounds: int | None = None):
    """Run (up to `rounds` rounds of) a fake search committed into the run directory `out`."""
    run = SearchDir(out) if (out / "config.json").is_file() else SearchDir.create(out, {})
    state = run.restore(config, engine)
    run.append([Start(time.time(), state.round, state.epoch, "fake")])
    pbt = PBT(engine, state, lambda s, events: run.commit(s, events, engine))
    while not state.finished and (rounds is None or state.round < rounds):
        pbt.step()
    return run, state


TIMINGS = ("seconds", "time", "phases")


def strip_times(events) -> list[dict]:
    """The events that a resume must reproduce, without their timings."""
    docs = (e if isinstance(e, dict) else to_json(e) for e in events)
    return [{k: v for k, v in doc.items() if k not in TIMINGS} for doc in docs
            if doc["event"] != "start"]


def test_resume_after_a_crash_gives_the_uninterrupted_search(tmp_path) -> None:
    config = PBTConfig(population=8, epochs=9, interval=2, seed=1)
    whole, whole_state = search_into(tmp_path / "whole", config, FakeEngine(8))

    run, _ = search_into(tmp_path / "crashed", config, FakeEngine(8), rounds=2)
    # A crash during round 3: half its checkpoints and a torn line of its events are on disk.
    FakeEngine(8).save(0, tmp_path / "crashed/checkpoints/round-0003/member-00.pt", {})
    with (tmp_path / "crashed/population.jsonl").open("a") as f:
        f.write('{"event": "train", "round": 2, "member": 0, "epochs": [4, 6], "pol')
    run, state = search_into(tmp_path / "crashed", config, FakeEngine(8))

    assert state.epoch == 9 and state.round == whole_state.round
    assert strip_times(run.events()) == strip_times(whole.events())
    assert state.lineage.schedule(state.best()) == whole_state.lineage.schedule(
        whole_state.best())
    # The newest two complete rounds are kept.
    assert sorted(p.name for p in (tmp_path / "crashed/checkpoints").iterdir()) == [
        "round-0004", "round-0005"]


def test_a_damaged_newest_round_resumes_from_the_round_before(tmp_path, capsys) -> None:
    config = PBTConfig(population=4, epochs=10, interval=2, seed=2)
    whole, _ = search_into(tmp_path / "whole", config, FakeEngine(4))
    out = tmp_path / "run"
    search_into(out, config, FakeEngine(4), rounds=3)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["round-0002",
                                                                       "round-0003"]
    damaged = out / "checkpoints/round-0003/member-01.pt"
    damaged.write_bytes(damaged.read_bytes()[:5])  # truncated
    engine = FakeEngine(4)
    state = SearchDir(out).restore(config, engine)
    err = capsys.readouterr().err
    assert str(damaged) in err and "Resuming from round 2 (epoch 4): 2 epoch(s)" in err
    assert state.round == 2 and not (out / "checkpoints/round-0003").exists()
    run, state = search_into(out, config, FakeEngine(4))
    assert state.epoch == 10 and strip_times(run.events()) == strip_times(whole.events())


def test_a_deleted_state_file_resumes_from_the_rounds_own_record(tmp_path, capsys) -> None:
    config = PBTConfig(population=4, epochs=8, interval=2, seed=3)
    whole, _ = search_into(tmp_path / "whole", config, FakeEngine(4))
    out = tmp_path / "run"
    search_into(out, config, FakeEngine(4), rounds=3)
    (out / "state.json").unlink()
    state = SearchDir(out).restore(config, FakeEngine(4))
    assert state.round == 3  # nothing lost: round 3's own record
    assert "state.json is missing" in capsys.readouterr().err
    run, state = search_into(out, config, FakeEngine(4))
    assert strip_times(run.events()) == strip_times(whole.events())
    # With every record gone the search cannot guess: a clear error, nothing deleted.
    for record in (out / "checkpoints").glob("*/round.json"):
        record.unlink()
    (out / "state.json").unlink()
    with pytest.raises(PBAError, match="no complete round can be read"):
        SearchDir(out).restore(config, FakeEngine(4))
    assert any((out / "checkpoints").iterdir())


class FullDisk(FakeEngine):
    """Writing fails from round `full` on, as on a full disk."""

    def __init__(self, population: int, full: int) -> None:
        super().__init__(population)
        self.full = full

    def save(self, member, path, extra):
        if extra["round"] >= self.full and member == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        super().save(member, path, extra)


def test_a_full_disk_keeps_the_run_directory_resumable(tmp_path) -> None:
    config = PBTConfig(population=4, epochs=8, interval=2, seed=4)
    whole, _ = search_into(tmp_path / "whole", config, FakeEngine(4))
    out = tmp_path / "run"
    with pytest.raises(PBAError, match=r"cannot write round 3 .*No space left.*--resume"):
        search_into(out, config, FullDisk(4, full=3))
    run, state = search_into(out, config, FakeEngine(4))
    assert state.epoch == 8 and strip_times(run.events()) == strip_times(whole.events())


def test_resume_before_the_first_round_starts_over(tmp_path) -> None:
    config = PBTConfig(population=4, epochs=4, interval=2)
    SearchDir.create(tmp_path / "run", {})
    (tmp_path / "run/population.jsonl").write_text('{"event": "train", "member": 0, "epo')
    _, state = search_into(tmp_path / "run", config, FakeEngine(4))
    assert state.epoch == 4
    assert len(state.lineage.schedule(0)) == 4


def test_run_directory_errors(tmp_path) -> None:
    config = PBTConfig(population=4, epochs=2, interval=2)
    run, state = search_into(tmp_path / "run", config, FakeEngine(4))
    with pytest.raises(PBAError, match="--resume"):
        SearchDir.create(tmp_path / "run", {})
    run.mark_finished(state)
    with pytest.raises(PBAError, match="already finished"):
        SearchDir.open_unfinished(tmp_path / "run")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign/config.json").write_text('{"dataset": "cifar10"}')
    with pytest.raises(PBAError, match="not a pba search run directory"):
        SearchDir.open(tmp_path / "foreign")
    with pytest.raises(PBAError, match="no search run"):
        SearchDir.open(tmp_path / "missing")


# ---- presets and the command line ---------------------------------------------------------


def test_paper_presets() -> None:
    c = preset("paper-rcifar10")
    assert (c.population, c.model, c.epochs, c.dataset, c.lr, c.weight_decay,
            str(c.settled_baseline()), c.interval, c.quantile) == (
                16, "wrn_40_2", 200, "reduced_cifar10", 0.1, 5e-4, "crop,flip,cutout", 3, 0.25)
    c = preset("paper-rsvhn")
    assert (c.population, c.model, c.epochs, c.dataset, c.lr, c.weight_decay,
            str(c.settled_baseline())) == (16, "wrn_40_2", 160, "reduced_svhn", 0.1, 5e-3, "none")
    assert c.lr_schedule == "step" and c.recipe().lr_schedule == "step"
    assert preset("paper-rcifar10").lr_schedule == "cosine"
    # A config.json from before a field existed reads with its default.
    old = {k: v for k, v in preset("quick").to_dict().items() if k != "lr_schedule"}
    assert SearchConfig.from_dict(old) == preset("quick")
    assert set(PRESETS) == {"paper-rcifar10", "paper-rsvhn", "quick", "smoke"}
    # The paper presets select as the paper did; a search from before --selection truncated.
    assert preset("paper-rcifar10").selection == c.selection == "truncation"
    assert preset("quick").selection == "significant"
    old = {k: v for k, v in preset("quick").to_dict().items() if k != "selection"}
    assert SearchConfig.from_dict(old).selection == "truncation"
    assert SearchConfig.from_dict(c.to_dict()) == c
    with pytest.raises(PBAError, match="unknown preset"):
        preset("paper")
    with pytest.raises(PBAError, match="fields"):
        SearchConfig.from_dict({**c.to_dict(), "extra": 1})


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--quantile", "0.7"], "quantile"),
        (["--population", "1"], "at least 2"),
        (["--lr", "-1"], "lr > 0"),
        (["--resume", "{tmp}/nowhere"], "no search run"),
        (["--resume", "{tmp}", "--epochs", "3"], "drop --epochs"),
        (["--resume", "{tmp}", "--preset", "smoke"], "drop --preset"),
        (["--out", "{tmp}"], "already exists"),
        (["--resume", "{tmp}"], "not a pba search run directory"),
        (["--compile", "--device", "cpu", "--out", "{tmp}/c"], "--compile is for the vectorized"),
        (["--engine", "ray", "--compile", "--out", "{tmp}/r"], "--tensorboard and --compile are"),
    ],
)
def test_search_cli_errors(tmp_path, capsys, argv, message) -> None:
    (tmp_path / "something").write_text("not a search")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(["search", "--preset", "smoke", *argv] if "--resume" not in argv
                else ["search", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


# ---- report -------------------------------------------------------------------------------


def write_train_run(path: Path, augment: str, error: float | None, schedule: Path | None = None,
                    model: str = "wrn_28_10") -> None:
    path.mkdir(parents=True)
    config = {"dataset": "reduced_cifar10", "model": model, "augment": augment, "epochs": 200,
              "schedule": None if schedule is None else str(schedule)}
    (path / "config.json").write_text(json.dumps(config))
    if error is not None:
        (path / "result.json").write_text(json.dumps({"test_error": error}))


def test_report_shows_cost_and_final_models(tmp_path) -> None:
    out = tmp_path / "search"
    config = PBTConfig(population=4, epochs=4, interval=2)
    run, _ = search_into(out, config, FakeEngine(4))
    (out / "config.json").write_text(json.dumps({
        "format": "pba.search", "version": 1, "preset": "smoke",
        "search": preset("smoke").replace(epochs=4).to_dict(), "device": "cpu",
        "data_dir": None, "images": {"train": 256, "val": 256}}))
    run.append([Start(time.time(), 0, 0, "fake")])  # a resume
    cost = search_cost(out)
    assert (cost.processes, cost.rounds, cost.epochs, cost.member_epochs) == (2, 2, 4, 16)
    assert cost.devices == ("fake",) and cost.wall_s >= 0
    write_train_run(out / "final/a", "pba", 12.5, out / "schedule.json")
    write_train_run(out / "final/b", "pba", 13.5, out / "schedule.json")
    write_train_run(out / "final/c", "pba", None, out / "schedule.json")
    write_train_run(tmp_path / "others/base", "baseline", 18.0)
    write_train_run(tmp_path / "others/ref", "pba", 12.9, tmp_path / "rcifar10_16_wrn.txt")
    runs = final_runs(out, [tmp_path / "others"])
    assert sorted(r.augment for r in runs) == [
        "baseline", "pba (rcifar10_16_wrn.txt)", "pba (this search)", "pba (this search)",
        "pba (this search)"]
    table = results_table(runs)
    assert "| reduced_cifar10 | wrn_28_10 | pba (this search) | 200 | 2 (+1 unfinished) | " \
           "13.00 ± 0.71 | 12.82 |" in table
    assert "| baseline | 200 | 1 | 18.00 |  |" in table
    text = report(out, [tmp_path / "others"])
    assert "member-epochs" in text and "## Final models" in text
    with pytest.raises(PBAError, match="neither"):
        final_runs(out, [tmp_path / "none"])
