"""From pre-shaping updates to scaled shaped updates, wherever the matrices live.

    plain tensors, one process            shape here
    plain tensors, data parallel (DDP)    each rank shapes the matrices it owns; one all-gather shares them
    FSDP2 row shards (DTensor Shard(0))   all-to-all to owners → shape whole matrices → all-to-all back

Same-shape matrices are stacked and shaped in batched calls of up to `MAX_BATCH_ELEMENTS` elements (on
accelerators; on CPU one at a time, since each GEMM is already parallel and stacking would only copy). Every rank
must call with the same parameter list.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import Tensor
from torch.distributed import ProcessGroup

from .distributed.exchange import all_gather_owned, gather_rows, scatter_rows
from .distributed.plan import assign_owners, matrix_cost
from .distributed.sharding import ShardSpec
from .shaping import result_dtype
from .stats import UpdateStats
from .updates import MatrixLayout, ShapingSettings, shape_and_scale

T = TypeVar("T")


@dataclass(frozen=True)
class ShapingItem:
    """One parameter's pre-shaping update (its local row block if sharded) and how it is shaped.

    `private`: the update is a temporary of this step the shaping may overwrite (saving a copy of each matrix);
    `sampled`: its shaped matrices get SVD statistics."""

    update: Tensor
    layout: MatrixLayout
    shard: ShardSpec | None = None
    private: bool = False
    sampled: bool = False


class Shaper:
    """Shapes a step's updates. ``replica_group`` (set for DDP) splits the work on replicated parameters across
    ranks; ``matrices_shaped`` counts the matrices shaped on this rank (for tests and monitoring)."""

    def __init__(self) -> None:
        self.replica_group: dist.ProcessGroup | None = None
        self.matrices_shaped = 0
        self._checked_replicas = False

    def __call__(
        self, items: Sequence[ShapingItem], settings: ShapingSettings, stats: UpdateStats | None = None
    ) -> list[Tensor]:
        """The scaled shaped update of each item, in the layout of its update (local row blocks for sharded
        parameters). With `stats`, the first ``stats.svd_tensors`` items are sampled for SVD statistics."""
        if stats is not None:
            items = [replace(item, sampled=i < stats.svd_tensors) for i, item in enumerate(items)]
        parts: dict[tuple, list[int]] = defaultdict(list)  # plain items, and sharded ones by process group
        for i, item in enumerate(items):
            parts[("plain",) if item.shard is None else ("sharded", item.shard.group, item.update.dtype)].append(i)
        results: list[Tensor | None] = [None] * len(items)
        for key, indices in parts.items():
            members = [items[i] for i in indices]
            if key[0] == "sharded":
                shaped = self._sharded(members, settings, stats, key[1])
            elif self.replica_group is not None and dist.get_world_size(self.replica_group) > 1:
                shaped = self._replicated(members, settings, stats, self.replica_group)
            else:
                shaped = self.shape_whole(members, settings, stats)
            for i, O in zip(indices, shaped, strict=True):
                results[i] = O
        return results  # type: ignore[return-value]

    def shape_whole(
        self, items: Sequence[ShapingItem], settings: ShapingSettings, stats: UpdateStats | None = None
    ) -> list[Tensor]:
        """Shape whole (unsharded) parameter-shaped updates on this rank."""
        blocks = [item.layout.matrices(item.update) for item in items]
        batches: dict[tuple, list[tuple[int, int]]] = defaultdict(list)
        for i, matrices in enumerate(blocks):
            for j, M in enumerate(matrices):
                batches[(tuple(M.shape), M.device, M.dtype)].append((i, j))
        shaped: list[list[Tensor | None]] = [[None] * len(b) for b in blocks]
        for (shape, device, _), members in batches.items():
            for chunk in batch_chunks(members, shape, device):
                matrices = [blocks[i][j] for i, j in chunk]
                if len(matrices) == 1:
                    stacked, overwrite = matrices[0].unsqueeze(0), items[chunk[0][0]].private
                else:
                    stacked, overwrite = torch.stack(matrices), True  # a fresh copy
                if stats is not None:  # before the shaping, which may overwrite `stacked`
                    stats.add_direction(stacked)
                result = shape_and_scale(stacked, settings, overwrite)
                self.matrices_shaped += len(chunk)
                if stats is not None:
                    stats.add(result, [items[i].sampled for i, _ in chunk])
                for (i, j), O in zip(chunk, result.unbind(0), strict=True):
                    shaped[i][j] = O
        return [  # an item without matrices (a rank holding none of a layer's experts) stays empty
            item.layout.assemble(s) if s else item.update.new_zeros(item.update.shape)  # type: ignore[arg-type]
            for s, item in zip(shaped, items, strict=True)
        ]

    def _sharded(
        self, items: list[ShapingItem], settings: ShapingSettings, stats: UpdateStats | None, group: ProcessGroup
    ) -> list[Tensor]:
        """FSDP2: gather whole matrices to owners, shape there, scatter the rows back."""
        rows = [item.shard.rows for item in items]  # type: ignore[union-attr]
        local = [item.update.reshape(item.update.shape[0], item.layout.cols) for item in items]
        cols = [item.layout.cols for item in items]
        owners = assign_owners([_cost(item.layout) for item in items], dist.get_world_size(group))
        whole = gather_rows(local, rows, owners, group)
        mine = sorted(whole)
        local_stats = UpdateStats() if stats is not None else None
        owned = [ShapingItem(whole[k], items[k].layout, private=True, sampled=items[k].sampled) for k in mine]
        shaped = self.shape_whole(owned, settings, local_stats)
        results = {k: O.reshape(O.shape[0], items[k].layout.cols) for k, O in zip(mine, shaped, strict=True)}
        device = items[0].update.device
        dtype = result_dtype(settings.method, settings.precision, device)
        blocks = scatter_rows(results, rows, cols, owners, group, dtype, device)
        if stats is not None:
            stats.merge(_all_reduced(local_stats, group, device))  # type: ignore[arg-type]
        return [block.view(item.update.shape) for item, block in zip(items, blocks, strict=True)]

    def _replicated(
        self, items: list[ShapingItem], settings: ShapingSettings, stats: UpdateStats | None, group: ProcessGroup
    ) -> list[Tensor]:
        """DDP: each rank shapes its share of the (identical) matrices; one all-gather gives everyone all results."""
        device = items[0].update.device
        if not self._checked_replicas:
            _check_same_everywhere([item.layout for item in items], group, device)
            self._checked_replicas = True
        owners = assign_owners([_cost(item.layout) for item in items], dist.get_world_size(group))
        rank = dist.get_rank(group)
        mine = [k for k in range(len(items)) if owners[k] == rank]
        local_stats = UpdateStats() if stats is not None else None
        shaped = self.shape_whole([items[k] for k in mine], settings, local_stats)
        dtype = result_dtype(settings.method, settings.precision, device)
        results = all_gather_owned(dict(zip(mine, shaped, strict=True)), [item.update.shape for item in items],
                                   owners, group, dtype, device)  # fmt: skip
        if stats is not None:
            stats.merge(_all_reduced(local_stats, group, device))  # type: ignore[arg-type]
        return results


MAX_BATCH_ELEMENTS = 1 << 27
"""Elements of one batched shaping call on an accelerator (512 MiB of float32 input, and the kernel's work buffers
in proportion): same-shape matrices are stacked up to this many, so that a model with hundreds of them (80 layers
of 8192 × 8192 projections, or thousands of MoE expert matrices) is not stacked, and copied, all at once."""


def batch_chunks(members: list[T], shape: tuple[int, ...], device: torch.device) -> list[list[T]]:
    """`members` (same-shape matrices) cut into the batches shaped in one call: one matrix per call on the CPU
    (each GEMM is already parallel and stacking would only copy), else as many as fit in `MAX_BATCH_ELEMENTS`."""
    if device.type == "cpu":
        return [[m] for m in members]
    per_call = max(1, MAX_BATCH_ELEMENTS // max(1, math.prod(shape)))
    return [members[i : i + per_call] for i in range(0, len(members), per_call)]


def _cost(layout: MatrixLayout) -> int:
    return matrix_cost(layout.block_shapes())


def _all_reduced(stats: UpdateStats, group: dist.ProcessGroup, device: torch.device) -> list[float]:
    """The sums of every rank's statistics (each rank measured the matrices it owns)."""
    t = torch.tensor(stats.totals(), dtype=torch.float64, device=device)
    dist.all_reduce(t, group=group)
    return t.tolist()


def _check_same_everywhere(layouts: Sequence[MatrixLayout], group: dist.ProcessGroup, device: torch.device) -> None:
    """Data-parallel shaping needs the same matrices on every rank (DDP); catch pipeline/tensor parallel misuse."""
    shapes = [s for layout in layouts for s in layout.block_shapes()]
    mine = torch.tensor([len(shapes), sum(m * n for m, n in shapes), sum(m * m + 3 * n for m, n in shapes)],
                        dtype=torch.float64, device=device)  # fmt: skip
    everyone = [torch.empty_like(mine) for _ in range(dist.get_world_size(group))]
    dist.all_gather(everyone, mine, group=group)
    if any(not torch.equal(e, mine) for e in everyone):
        raise RuntimeError(
            "SpectralOptimizer: data-parallel shaping needs the same matrices on every rank (DDP), but ranks hold "
            "different parameters (pipeline or tensor parallel?). Call optimizer.enable_data_parallel(None) to "
            "shape everything on every rank instead."
        )
