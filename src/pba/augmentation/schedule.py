"""A policy schedule (epoch -> Policy), its JSON file format and Ray Tune's PBT policy-log format.

Our JSON format (version 1):

    {"format": "pba.schedule", "version": 1, "ops": ["Rotate", ...],
     "policies": [[p0, m0, ..., p14', m14'], ...],   # one 4*len(ops) vector per search epoch
     "baseline": "crop,flip,cutout", "cutout_size": 16, "image_size": [32, 32]}

The last three, written by `pba search` (absent from older files and from PBT logs), say what
the schedule was searched with: the baseline its policies were applied before, and the size of
the images. `pba train --schedule` trains with that baseline unless told otherwise.

A file saved by this pba also records its op set, `"op_set"` (`OpSet.record()`: the ops in
order, each one's magnitude mapping, sign and scaling, the magnitude conventions' version), and
`"sha256"`, a hash of everything else in the file. A schedule replays only under the op set it
was saved with: loading it with another, or after an edit, is an error that names the
difference, so the same schedule and seed give the same images everywhere. Files without the
record (older pba, written by hand) are read as before: they may name their ops in any order
and omit some (their entries are zero), and are mapped onto the op set given (the paper's 15 by
default).
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import json
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pba.augmentation.policy import SLOTS, Policy
from pba.core.atomic import write_text_atomic
from pba.core.errors import UserError
from pba.ops.registry import DEFAULT_OPS, OpSet, record_differences

FORMAT = "pba.schedule"
POLICY_FORMAT = "pba.policy"
VERSION = 1


@dataclass(frozen=True)
class Schedule:
    """One policy per search epoch, and what the search applied it with (None: not known).
    Two schedules are equal when their policies are: the rest says where one came from."""

    policies: tuple[Policy, ...]
    # the baseline's parts after the policy, as `Baseline` prints them, and its Cutout side
    baseline: str | None = field(default=None, compare=False)
    cutout_size: int | None = field(default=None, compare=False)
    image_size: tuple[int, int] | None = field(default=None, compare=False)  # (height, width)

    def __post_init__(self) -> None:
        if not self.policies:
            raise UserError("a schedule needs at least one epoch")
        if len({p.ops for p in self.policies}) != 1:
            raise UserError("all policies of a schedule must use the same op set")
        object.__setattr__(self, "policies", tuple(self.policies))
        if self.image_size is not None:
            object.__setattr__(self, "image_size", tuple(self.image_size))

    def __len__(self) -> int:
        return len(self.policies)

    def __iter__(self) -> Iterator[Policy]:
        return iter(self.policies)

    @property
    def ops(self) -> OpSet:
        return self.policies[0].ops

    @classmethod
    def constant(cls, policy: Policy, epochs: int) -> Schedule:
        return cls((policy,) * epochs)

    def policy_at(self, epoch: int, epochs: int | None = None) -> Policy:
        """The policy for `epoch` of a run of `epochs` epochs (default: the schedule's length).

        A run of E epochs with a schedule of S epochs uses search epoch floor(e * S / E).
        """
        total = len(self) if epochs is None else epochs
        if not 0 <= epoch < total:
            raise UserError(
                f"epoch {epoch} asked of a schedule with {len(self)} epochs"
                + (f" stretched to {total}" if epochs is not None else "")
            )
        return self.policies[epoch * len(self) // total]

    def stretch(self, epochs: int) -> Schedule:
        """The same schedule resampled to `epochs` epochs."""
        if epochs < 1:
            raise UserError(f"cannot stretch a schedule to {epochs} epochs")
        return dataclasses.replace(
            self, policies=tuple(self.policy_at(e, epochs) for e in range(epochs)))

    def to_dict(self) -> dict:
        searched = {"baseline": self.baseline, "cutout_size": self.cutout_size,
                    "image_size": None if self.image_size is None else list(self.image_size)}
        return _sealed({
            "format": FORMAT,
            "version": VERSION,
            "ops": list(self.ops.names),
            "op_set": self.ops.record(),
            "policies": [p.to_list() for p in self.policies],
            **{key: value for key, value in searched.items() if value is not None},
        })

    def content_hash(self) -> str:
        """The sha256 its schedule.json records: of its policies, its op set and what it was
        searched with."""
        return self.to_dict()["sha256"]

    def save(self, path: str | Path) -> None:
        write_text_atomic(path, json.dumps(self.to_dict(), separators=(",", ":")) + "\n")

    def pbt_log(self, trial: Callable[[int], str] | None = None) -> str:
        """The schedule in Ray Tune's PBT policy-log format (what `load_schedule` reads back):
        a JSON line [target, clone, target_epoch, clone_epoch, old, new] at every policy
        change, or one whose change point is the end for a schedule that never changes, so
        that parsing recovers it. `trial(epoch)` names the trial that trained `epoch` (default:
        "0" for all): the target trained the new policy's first epoch, the clone the old
        policy's last."""
        changes = [e for e in range(1, len(self)) if self.policies[e] != self.policies[e - 1]]
        lines = []
        for epoch in changes or [len(self)]:
            first = min(epoch, len(self) - 1)  # of the new policy (the end for a constant one)
            target, clone = (trial(first), trial(epoch - 1)) if trial else ("0", "0")
            lines.append([target, clone, epoch, epoch, self.policies[epoch - 1].to_list(),
                          self.policies[first].to_list()])
        return "".join(json.dumps(line) + "\n" for line in lines)


def policy_from_named(values: Sequence[int], names: Sequence[str], ops: OpSet) -> Policy:
    """Map a vector laid out over the op `names` of a file onto `ops` (missing ops: zeros)."""
    if len(values) != 2 * SLOTS * len(names):
        raise UserError(
            f"a policy over {len(names)} ops has {2 * SLOTS * len(names)} integers, "
            f"got {len(values)}"
        )
    unknown = [name for name in names if name not in ops.names]
    if unknown:
        many = len(unknown) > 1
        raise UserError(f"unknown op{'s' if many else ''} {', '.join(map(repr, unknown))}: load "
                       f"it with the op set that defines {'them' if many else 'it'} (--ops "
                       "MODULE:NAME)")
    out = [0] * (2 * SLOTS * len(ops))
    for j, name in enumerate(names):
        k = ops.index(name)
        for slot in range(SLOTS):
            src, dst = 2 * (slot * len(names) + j), 2 * (slot * len(ops) + k)
            out[dst : dst + 2] = values[src : src + 2]
    return Policy(tuple(out), ops)


def save_policy(policy: Policy, path: str | Path) -> None:
    """Write one policy to `path` (atomically) in pba's policy format, with its op set."""
    doc = _sealed({"format": POLICY_FORMAT, "version": VERSION, "ops": list(policy.ops.names),
                   "op_set": policy.ops.record(), "policy": policy.to_list()})
    write_text_atomic(path, json.dumps(doc) + "\n")


def _digest(doc: dict) -> str:
    body = {key: value for key, value in doc.items() if key != "sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
                          ).hexdigest()


def _sealed(doc: dict) -> dict:
    return {**doc, "sha256": _digest(doc)}


def _check_recorded(path: Path, doc: dict, ops: OpSet) -> None:
    """Refuse a file whose content changed after it was saved, or whose recorded op set is not
    `ops` (files without the records pass: they predate them)."""
    if "sha256" in doc and doc["sha256"] != _digest(doc):
        raise UserError(f"{path} does not match its sha256: it was changed after it was saved "
                       "(delete its \"sha256\" entry to accept the edit)")
    if "op_set" not in doc:
        return
    differences = record_differences(doc["op_set"], ops)
    if differences:
        shown = "; ".join(differences[:3])
        more = f"; and {len(differences) - 3} more" if len(differences) > 3 else ""
        raise UserError(f"{path} was saved with another op set than the one given ({shown}{more})"
                       ": load it with the op set it was saved with (--ops MODULE:NAME; in "
                       "Python, ops=)")
    if doc["ops"] != [o["name"] for o in doc["op_set"]["ops"]]:
        raise UserError(f"{path}: its \"ops\" and \"op_set\" name different ops")


def _read_json(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{path} is not a pba JSON file (truncated or foreign?): {err}") from None
    if not isinstance(doc, dict) or doc.get("format") not in (FORMAT, POLICY_FORMAT):
        raise UserError(f"{path} is JSON but not a pba schedule or policy file")
    if doc.get("version") != VERSION:
        raise UserError(f"{path} has format version {doc.get('version')!r}; "
                       f"this pba reads version {VERSION}")
    if not isinstance(doc.get("ops"), list):
        raise UserError(f"{path} does not list its ops")
    return doc


def load_policy(path: str | Path, ops: OpSet = DEFAULT_OPS) -> Policy:
    """The policy `save_policy` wrote to `path`; refused if it was made of another op set."""
    path = _existing(path)
    doc = _read_json(path)
    if doc["format"] != POLICY_FORMAT or not isinstance(doc.get("policy"), list):
        raise UserError(f"{path} is not a pba policy file")
    _check_recorded(path, doc, ops)
    return _in_file(path, lambda: policy_from_named(doc["policy"], doc["ops"], ops))


def is_pbt_log(text: str) -> bool:
    """Whether a schedule file's `text` is a PBT policy log rather than pba JSON: such logs do
    not record the length of the search that wrote them."""
    return not text.lstrip().startswith("{")


def load_schedule(
    path: str | Path, search_epochs: int | None = None, ops: OpSet = DEFAULT_OPS
) -> Schedule:
    """Read a schedule: our JSON format, a single-policy JSON file, or a Ray Tune PBT policy log.

    `search_epochs` is the length of the search that wrote a PBT log (such logs do not record
    it: 200 for the published reduced CIFAR-10 schedule, 160 for reduced SVHN). For a
    single-policy file it gives the length of the constant schedule (default 1).
    """
    path = _existing(path)
    text = path.read_text(errors="replace")
    if not is_pbt_log(text):
        doc = _read_json(path)
        if doc["format"] == POLICY_FORMAT:
            return Schedule.constant(load_policy(path, ops), search_epochs or 1)
        policies = doc.get("policies")
        if not isinstance(policies, list) or not policies:
            raise UserError(f"{path} holds no policies")
        _check_recorded(path, doc, ops)
        schedule = _in_file(
            path, lambda: Schedule(tuple(policy_from_named(v, doc["ops"], ops) for v in policies),
                                   doc.get("baseline"), doc.get("cutout_size"),
                                   doc.get("image_size"))
        )
        if search_epochs is not None and search_epochs != len(schedule):
            raise UserError(f"{path} has {len(schedule)} epochs, not {search_epochs}")
        return schedule
    return _in_file(path, lambda: parse_pbt_log(text, search_epochs, ops))


def parse_pbt_log(text: str, search_epochs: int | None, ops: OpSet = DEFAULT_OPS) -> Schedule:
    """Ray Tune's PBT policy log, one exploit per line along the best member's lineage
    (docs/algorithm.md §9): the first segment runs from 0 to the first clone epoch with that
    line's old policy, each line's new policy runs until the next line's clone epoch, the last
    to the end.

    The lines form a chain: each line's clone trial is the previous line's target (the lineage
    passes from one member to the next). Where the chain breaks, the lines before the break
    belong to another lineage, one that the later exploits overwrote: they are dropped, with a
    `PBTLogWarning`, as the reference code's parser and Ray Tune's PBT replay drop them, and
    the schedule starts with the old policy of the first line kept."""
    lines = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        line = _parse_log_line(raw.strip())
        if line is None:
            raise UserError(f"line {number} is not a PBT policy-log entry: {raw[:60]!r}")
        if not isinstance(line, (list, tuple)) or len(line) != 6:
            raise UserError(f"line {number}: expected [target, clone, target_epoch, "
                           f"clone_epoch, old_policy, new_policy], got {raw[:60]!r}")
        old, new = (_log_policy(p, number, ops) for p in line[4:6])
        # A trial is its tag up to any "@perturbed[...]" Tune appends after an exploit.
        target, clone = (str(tag).split("@", 1)[0] for tag in line[:2])
        lines.append((line[3], old, new, target, clone))
    if not lines:
        raise UserError("empty PBT policy log")
    first = len(lines) - 1
    while first > 0 and lines[first][4] == lines[first - 1][3]:
        first -= 1
    if first:
        warnings.warn(f"PBT policy log: line {first + 1}'s clone trial {lines[first][4]!r} is "
                      f"not line {first}'s target {lines[first - 1][3]!r}; the {first} line(s) "
                      "before it belong to an overwritten lineage and are dropped",
                      PBTLogWarning, stacklevel=2)
        lines = lines[first:]
    if search_epochs is None:
        raise UserError("a PBT policy log does not record how long its search ran: give the "
                       "search's epochs (e.g. 200 for reduced CIFAR-10, 160 for reduced SVHN)")
    bounds = [line[0] for line in lines] + [search_epochs]
    if any(not isinstance(b, int) or b < 0 for b in bounds[:-1]) or bounds != sorted(bounds):
        raise UserError(f"PBT policy log: clone epochs {bounds[:-1]} must be increasing and at "
                       f"most the search's {search_epochs} epochs")
    policies = [lines[0][1]] * bounds[0]
    for (_, _, new, _, _), start, end in zip(lines, bounds, bounds[1:], strict=False):
        policies += [new] * (end - start)
    return Schedule(tuple(policies))


class PBTLogWarning(UserWarning):
    """A PBT policy log held lines of another lineage, which were dropped."""


def _parse_log_line(raw: str) -> object | None:
    """Ray writes each line with Python's repr (single-quoted trial ids) or as JSON (true,
    false, null in other hyperparameters): accept both."""
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        pass
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return None


def _log_policy(value: object, number: int, ops: OpSet) -> Policy:
    if isinstance(value, dict):
        value = value.get("hp_policy")
    if not isinstance(value, list):
        raise UserError(f"line {number}: a policy must be a list of integers")
    # Our own logs are laid out over the search's ops; the published ones over the paper's 15.
    if len(value) == 2 * SLOTS * len(ops):
        return Policy(tuple(value), ops)
    if len(value) != 2 * SLOTS * len(DEFAULT_OPS):
        raise UserError(f"line {number}: a policy has {len(value)} integers, expected "
                       f"{2 * SLOTS * len(ops)}")
    return policy_from_named(value, DEFAULT_OPS.names, ops)


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no such schedule/policy file: {path}")
    return path


def _in_file(path: Path, make):
    """Run `make`, prefixing the file's name to any UserError it raises."""
    try:
        return make()
    except UserError as err:
        raise UserError(f"{path}: {err}") from None
