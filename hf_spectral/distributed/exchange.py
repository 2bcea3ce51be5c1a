"""The collectives: move row shards of many matrices to their owners and back (one all-to-all each way), or
share owners' results with every replica (one all-gather). Every rank must call with the same item list."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist
from torch import Tensor

# torch 2.13 deprecates all_gather_into_tensor for all_gather_single; older releases have only the former.
_all_gather_single = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor


def gather_rows(
    local: Sequence[Tensor], rows: Sequence[Sequence[int]], owners: Sequence[int], group: dist.ProcessGroup
) -> dict[int, Tensor]:
    """Whole matrices at their owners. `local[i]` is this rank's (rows[i][rank], n_i) block of item i; returns
    {i: (Σ rows[i], n_i)} for the items this rank owns. One all_to_all_single for all items."""
    rank, world = dist.get_rank(group), dist.get_world_size(group)
    cols = [t.shape[1] for t in local]
    by_owner = [[i for i in range(len(local)) if owners[i] == d] for d in range(world)]
    send = [t.reshape(-1) for d in range(world) for t in (local[i] for i in by_owner[d])]
    in_splits = [sum(rows[i][rank] * cols[i] for i in by_owner[d]) for d in range(world)]
    mine = by_owner[rank]
    out_splits = [sum(rows[i][s] * cols[i] for i in mine) for s in range(world)]
    reference = local[0] if local else torch.empty(0)
    out = torch.empty(sum(out_splits), dtype=reference.dtype, device=reference.device)
    inp = torch.cat(send) if send else out.new_empty(0)
    dist.all_to_all_single(out, inp, out_splits, in_splits, group=group)
    pieces: dict[int, list[Tensor]] = {i: [] for i in mine}
    offset = 0
    for s in range(world):
        for i in mine:
            n = rows[i][s] * cols[i]
            pieces[i].append(out[offset : offset + n].view(rows[i][s], cols[i]))
            offset += n
    return {i: torch.cat(p) for i, p in pieces.items()}


def scatter_rows(
    full: dict[int, Tensor],
    rows: Sequence[Sequence[int]],
    cols: Sequence[int],
    owners: Sequence[int],
    group: dist.ProcessGroup,
    dtype: torch.dtype,
    device: torch.device,
) -> list[Tensor]:
    """The inverse of gather_rows: owners send each rank its rows of every owned result; returns this rank's
    (rows[i][rank], n_i) block of every item, in `dtype`."""
    rank, world = dist.get_rank(group), dist.get_world_size(group)
    count = len(rows)
    by_owner = [[i for i in range(count) if owners[i] == d] for d in range(world)]
    mine = by_owner[rank]
    starts = {i: [sum(rows[i][:s]) for s in range(world)] for i in mine}
    send = [full[i][starts[i][s] : starts[i][s] + rows[i][s]].to(dtype).reshape(-1) for s in range(world) for i in mine]
    in_splits = [sum(rows[i][s] * cols[i] for i in mine) for s in range(world)]
    out_splits = [sum(rows[i][rank] * cols[i] for i in by_owner[d]) for d in range(world)]
    out = torch.empty(sum(out_splits), dtype=dtype, device=device)
    inp = torch.cat(send) if send else out.new_empty(0)
    dist.all_to_all_single(out, inp, out_splits, in_splits, group=group)
    result: list[Tensor | None] = [None] * count
    offset = 0
    for d in range(world):
        for i in by_owner[d]:
            n = rows[i][rank] * cols[i]
            result[i] = out[offset : offset + n].view(rows[i][rank], cols[i])
            offset += n
    return result  # type: ignore[return-value]


def all_gather_owned(
    owned: dict[int, Tensor],
    shapes: Sequence[tuple[int, ...]],
    owners: Sequence[int],
    group: dist.ProcessGroup,
    dtype: torch.dtype,
    device: torch.device,
) -> list[Tensor]:
    """Every item on every rank, from the owners' results: one all-gather of per-rank buffers padded to the largest
    rank's total."""
    world = dist.get_world_size(group)
    numel = [int(torch.Size(s).numel()) for s in shapes]
    per_rank = [sum(numel[i] for i in range(len(shapes)) if owners[i] == r) for r in range(world)]
    width = max(per_rank) if per_rank else 0
    rank = dist.get_rank(group)
    buffer = torch.zeros(width, dtype=dtype, device=device)
    offset = 0
    for i in range(len(shapes)):
        if owners[i] == rank:
            buffer[offset : offset + numel[i]] = owned[i].reshape(-1)
            offset += numel[i]
    gathered = torch.empty(world * width, dtype=dtype, device=device)
    _all_gather_single(gathered, buffer, group=group)
    result: list[Tensor | None] = [None] * len(shapes)
    offsets = [r * width for r in range(world)]
    for i in range(len(shapes)):
        r = owners[i]
        result[i] = gathered[offsets[r] : offsets[r] + numel[i]].view(shapes[i])
        offsets[r] += numel[i]
    return result  # type: ignore[return-value]
