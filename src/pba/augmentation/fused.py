"""Drawn ops applied to a batch in a few fused passes, each image with its own op.

An image gets at most one op in each of a policy's two slots, so within a slot the ops of
one family can share a pass over the pixels:
- lookups (`tensor.Lookup`, `tensor.ImageLookup`: Invert, Posterize, Solarize, Brightness,
  Contrast, Equalize, AutoContrast): every image's table, then one gather;
- warps (`tensor.Warp`: Rotate, TranslateX/Y, ShearX/Y): every image's source index, then one
  gather;
- every other op (Color, Sharpness, Cutout, a user's op) is its own call.
A `Lookup`'s table and a `Warp`'s index depend on the parameter alone, so `op_tables`
tabulates them once per op set, image size and device for every (op, magnitude, sign): a step
computes none, and looks its images' rows up.

Two ways to pick a family's images out of the batch, with the same results:
- grouped (the CPU's default): the images are sorted by op, so every family and every op is a
  contiguous slice, and each image's work is done once. Slicing needs the op counts on the
  host: one synchronisation a slot, which costs nothing on a CPU.
- sync-free (the default on other devices): every family runs over the whole batch; images
  outside it look up the identity row or keep their pixels (`torch.where`). No data-dependent
  shape and no host read, so a GPU never waits for the host in a step; the extra arithmetic is
  what a GPU has to spare.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate

import torch

from pba.augmentation.policy import SLOTS
from pba.augmentation.sampling import SETTINGS_PER_OP, SampledOps, setting_parameters
from pba.ops import tensor
from pba.ops.registry import OpSet

Tensor = torch.Tensor


@dataclass(frozen=True)
class OpTables:
    """An op set's ops by family (how they combine), with their tables for one image size and
    device.

    Indexed by an image's setting in a slot (`SampledOps.settings`): `param` is the op's
    parameter (0 for no op), `key` sorts the images of a slot (no op, or a tabulated setting
    that changes nothing, first; then the lookups, the warps and the other ops, so that each
    family is contiguous), and `point_row` and `warp_row` are the rows of `points` (uint8
    (rows, 256)) and `indices` (int64 (rows, H * W)), whose last row is the identity.
    """

    lookups: tuple[int, ...]
    image_lookups: tuple[int, ...]
    warps: tuple[int, ...]
    others: tuple[int, ...]
    param: Tensor
    key: Tensor
    points: Tensor
    point_row: Tensor
    indices: Tensor
    warp_row: Tensor

    @property
    def sorted_ops(self) -> tuple[int, ...]:
        """The op of each sort key after 0 (no op)."""
        return self.lookups + self.image_lookups + self.warps + self.others


@lru_cache(maxsize=16)
def op_tables(ops: OpSet, height: int, width: int, device: torch.device) -> OpTables:
    """The `OpTables` of `ops` for height x width images on `device`, made once."""
    kinds = [type(op.tensor) for op in ops]
    lookups, image_lookups, warps = (
        tuple(k for k, kind in enumerate(kinds) if kind is wanted)
        for wanted in (tensor.Lookup, tensor.ImageLookup, tensor.Warp))
    others = tuple(k for k in range(len(ops)) if k not in lookups + image_lookups + warps)
    param = setting_parameters(ops, torch.device("cpu"), height, width)
    key = torch.zeros(len(param), dtype=torch.int64)
    for position, k in enumerate(lookups + image_lookups + warps + others):
        key[k * SETTINGS_PER_OP:(k + 1) * SETTINGS_PER_OP] = position + 1
    identity_index = torch.arange(height * width)  # every pixel its own source
    points, point_row = _tabulate(param, lookups, lambda k, p: ops[k].tensor.table(p),
                                  torch.arange(tensor.LEVELS, dtype=torch.uint8))
    indices, warp_row = _tabulate(param, warps, lambda k, p: ops[k].tensor.index(p, height, width),
                                  identity_index)
    # A setting whose table or index is the identity (a shift by 0 pixels, an enhance factor
    # of 1) changes nothing: its images sort with those of no op and skip the slot.
    for rows, row in ((points, point_row), (indices, warp_row)):
        tabulated = row < rows.shape[0] - 1  # the last row is the identity of the other ops
        key[tabulated & (rows == rows[-1]).all(dim=1).index_select(0, row)] = 0
    return OpTables(lookups, image_lookups, warps, others,
                    setting_parameters(ops, device, height, width),
                    *(t.to(device) for t in (key, points, point_row, indices, warp_row)))


def _tabulate(param: Tensor, tabulated: tuple[int, ...], rows: Callable[[int, Tensor], Tensor],
              identity: Tensor) -> tuple[Tensor, Tensor]:
    """The rows of the ops `tabulated` at each of their settings, the identity row last, and
    the row of every setting (the identity for the other ops and for no op)."""
    row = torch.full(param.shape, len(tabulated) * SETTINGS_PER_OP, dtype=torch.int64)
    blocks = []
    for i, k in enumerate(tabulated):
        settings = slice(k * SETTINGS_PER_OP, (k + 1) * SETTINGS_PER_OP)
        blocks.append(rows(k, param[settings]))
        row[settings] = torch.arange(i * SETTINGS_PER_OP, (i + 1) * SETTINGS_PER_OP)
    return torch.cat([*blocks, identity.view(1, -1)]), row


def apply_sampled(
    imgs: Tensor,
    ops: OpSet,
    sampled: SampledOps,
    fill: Tensor,
    generator: torch.Generator | None,
    *,
    sync_free: bool,
    candidates: Collection[int] | None = None,
) -> Tensor:
    """Apply already drawn ops to a uint8 batch, slot by slot (see the module's docstring);
    the result is a new tensor, even when no image gets an op.

    `candidates`, the ops `sampled` can hold (None: any), lets the sync-free way skip the
    families no image can be in without looking at the draws.
    """
    # Inference mode spares every call autograd's bookkeeping, about a tenth of a CPU step; the
    # result is made outside it, an ordinary tensor that a model may train on.
    with torch.inference_mode():
        _, _, h, w = imgs.shape
        tables = op_tables(ops, h, w, imgs.device)
        settings = sampled.settings(ops)
        if sync_free:
            out, order = _sync_free(imgs, settings, sampled.op, candidates, tables, ops, fill,
                                    generator), None
        else:
            out, order = _grouped(imgs, settings, tables, ops, fill, generator)
    return out.clone() if order is None else out.index_select(0, order)


def _sync_free(imgs: Tensor, settings: Tensor, op: Tensor, candidates: Collection[int] | None,
               tables: OpTables, ops: OpSet, fill: Tensor, generator: torch.Generator | None
               ) -> Tensor:
    """Every family over the whole batch, slot by slot."""
    candidates = None if candidates is None else frozenset(candidates)
    out = imgs
    for slot in range(SLOTS):
        out = _apply_slot(out, settings[:, slot], _Masked(op[:, slot], candidates),
                          tables, ops, fill, generator)
    return out


def _grouped(imgs: Tensor, settings: Tensor, tables: OpTables, ops: OpSet, fill: Tensor,
             generator: torch.Generator | None) -> tuple[Tensor, Tensor | None]:
    """The images sorted by op, slot by slot: the sorted result and the order that puts
    it back (None when no image gets an op)."""
    # The images stay sorted from one slot to the next; `perm` is their order.
    x, perm = imgs, None
    for slot in range(SLOTS):
        setting = settings[:, slot]
        setting = setting if perm is None else setting.index_select(0, perm)
        key = tables.key.index_select(0, setting)
        counts = torch.bincount(key, minlength=len(tables.sorted_ops) + 1).tolist()  # sync
        if counts[0] == key.shape[0]:
            continue
        order = key.argsort(stable=True)
        ends = list(accumulate(counts))  # key i's images end where key i + 1's start
        spans = {k: slice(ends[i], ends[i + 1])
                 for i, k in enumerate(tables.sorted_ops) if counts[i + 1]}
        x = _apply_slot(x.index_select(0, order), setting.index_select(0, order),
                        _Grouped(spans), tables, ops, fill, generator)
        perm = order if perm is None else perm.index_select(0, order)
    return x, None if perm is None else perm.argsort()


def _apply_slot(x: Tensor, setting: Tensor, selection: _Grouped | _Masked, tables: OpTables,
                ops: OpSet, fill: Tensor, generator: torch.Generator | None) -> Tensor:
    """One slot: each image's op of `selection`, family by family."""
    param = tables.param.index_select(0, setting)
    span = selection.span(tables.lookups + tables.image_lookups)
    if span is not None:
        rows = tables.point_row.index_select(0, setting)
        table = tables.points.index_select(0, rows).unsqueeze(1)
        if any(selection.has(k) for k in tables.image_lookups):
            table = table.expand(-1, x.shape[1], -1).clone()
            for k in tables.image_lookups:
                table = selection.put(table, k, ops[k].tensor.table, (x, param))
        x = selection.write(x, span, lambda out: tensor.lookup(x[span], table[span], out))
    span = selection.span(tables.warps)
    if span is not None:
        index = tables.indices.index_select(0, tables.warp_row.index_select(0, setting[span]))
        x = selection.write(x, span, lambda out: tensor.warp(x[span], index, fill, out))
    for k in tables.others:
        x = selection.put(x, k, ops[k].tensor, (x, param), fill, generator)
    return x


@dataclass(frozen=True)
class _Grouped:
    """Images sorted by op: op k's images are the slice spans[k] (ops without images absent).
    Writes go into the sorted copy in place."""

    spans: dict[int, slice]

    def has(self, k: int) -> bool:
        return k in self.spans

    def span(self, family: tuple[int, ...]) -> slice | None:
        """The slice of the family's images (its ops are adjacent in the sort order)."""
        present = [self.spans[k] for k in family if k in self.spans]
        return slice(present[0].start, present[-1].stop) if present else None

    def put(self, target: Tensor, k: int, fn: Callable[..., Tensor], sliced: tuple[Tensor, ...],
            *args: object) -> Tensor:
        """`target` with op k's images set to `fn` of theirs of `sliced`, then `args`."""
        if k in self.spans:
            s = self.spans[k]
            target[s] = fn(*[t[s] for t in sliced], *args)
        return target

    def write(self, target: Tensor, span: slice, fn: Callable[[Tensor | None], Tensor]
              ) -> Tensor:
        """`target` with the span's images set by `fn(out)`, which writes into `out`."""
        fn(target[span])
        return target


@dataclass(frozen=True)
class _Masked:
    """Every image, each op's by mask; `candidates` (None: every op) bounds the ops present."""

    op: Tensor
    candidates: frozenset[int] | None

    def has(self, k: int) -> bool:
        return self.candidates is None or k in self.candidates

    def span(self, family: tuple[int, ...]) -> slice | None:
        return slice(None) if any(self.has(k) for k in family) else None

    def put(self, target: Tensor, k: int, fn: Callable[..., Tensor], sliced: tuple[Tensor, ...],
            *args: object) -> Tensor:
        if not self.has(k):
            return target
        mask = (self.op == k).view(-1, *([1] * (target.ndim - 1)))
        return torch.where(mask, fn(*sliced, *args), target)

    def write(self, target: Tensor, span: slice, fn: Callable[[Tensor | None], Tensor]
              ) -> Tensor:
        return fn(None)
