"""From pre-shaping updates to scaled shaped updates, wherever the matrices live.

    plain tensors, one process            shape here
    plain tensors, data parallel (DDP)    each rank shapes the matrices it owns; one all-gather shares them
    FSDP2 row shards (DTensor Shard(0))   all-to-all to owners → shape whole matrices → all-to-all back

Same-shape matrices are stacked and shaped in one batched call (on accelerators; on CPU one at a time, since each
GEMM is already parallel and stacking would only copy). Every rank must call with the same parameter list.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import torch
import torch.distributed as dist
from torch import Tensor

from .distributed.exchange import all_gather_owned, gather_rows, scatter_rows
from .distributed.plan import assign_owners, matrix_cost
from .distributed.sharding import ShardSpec
from .shaping import result_dtype
from .stats import UpdateStats
from .updates import MatrixLayout, ShapingSettings, shape_and_scale


class Shaper:
    """Shapes a step's updates. ``replica_group`` (set for DDP) splits the work on replicated parameters across
    ranks; ``matrices_shaped`` counts the matrices shaped on this rank (for tests and monitoring)."""

    def __init__(self) -> None:
        self.replica_group: dist.ProcessGroup | None = None
        self.matrices_shaped = 0
        self._checked_replicas = False

    def __call__(
        self,
        updates: Sequence[Tensor],
        layouts: Sequence[MatrixLayout],
        shards: Sequence[ShardSpec | None],
        settings: ShapingSettings,
        stats: UpdateStats | None = None,
        private: Sequence[bool] | None = None,
    ) -> list[Tensor]:
        """Scaled shaped updates in the layout of `updates` (local row blocks for sharded parameters).
        `private[i]`: updates[i] is a temporary the shaping may overwrite (saving a copy of each matrix)."""
        out: list[Tensor | None] = [None] * len(updates)
        private = list(private) if private is not None else [False] * len(updates)
        sampled = [stats is not None and i < stats.svd_tensors for i in range(len(updates))]
        plain = [i for i, s in enumerate(shards) if s is None]
        if plain:
            group = self.replica_group
            if group is not None and dist.get_world_size(group) > 1:
                self._replicated(plain, updates, layouts, settings, stats, sampled, group, out, private)
            else:
                shaped = self.shape_whole([updates[i] for i in plain], [layouts[i] for i in plain], settings, stats,
                                          [sampled[i] for i in plain], [private[i] for i in plain])  # fmt: skip
                for i, O in zip(plain, shaped, strict=True):
                    out[i] = O
        sharded: dict[tuple, list[int]] = defaultdict(list)
        for i, s in enumerate(shards):
            if s is not None:
                sharded[(s.group, updates[i].dtype)].append(i)
        for (group, _), items in sharded.items():
            self._sharded(items, updates, layouts, shards, settings, stats, sampled, group, out)
        return out  # type: ignore[return-value]

    def shape_whole(
        self,
        tensors: Sequence[Tensor],
        layouts: Sequence[MatrixLayout],
        settings: ShapingSettings,
        stats: UpdateStats | None = None,
        sampled: Sequence[bool] | None = None,
        private: Sequence[bool] | None = None,
    ) -> list[Tensor]:
        """Shape whole (unsharded) parameter-shaped updates on this rank; `sampled[i]` marks the tensors whose
        matrices get SVD statistics, `private[i]` those the shaping may overwrite."""
        blocks = [layout.matrices(t) for t, layout in zip(tensors, layouts, strict=True)]
        batches: dict[tuple, list[tuple[int, int]]] = defaultdict(list)
        for i, matrices in enumerate(blocks):
            for j, M in enumerate(matrices):
                batches[(tuple(M.shape), M.device, M.dtype)].append((i, j))
        shaped: list[list[Tensor | None]] = [[None] * len(b) for b in blocks]
        for (_, device, _), members in batches.items():
            chunks = [members] if device.type != "cpu" else [[m] for m in members]
            for chunk in chunks:
                matrices = [blocks[i][j] for i, j in chunk]
                if len(matrices) == 1:
                    stacked, overwrite = matrices[0].unsqueeze(0), bool(private and private[chunk[0][0]])
                else:
                    stacked, overwrite = torch.stack(matrices), True  # a fresh copy
                if stats is not None:  # before the shaping, which may overwrite `stacked`
                    stats.add_direction(stacked)
                result = shape_and_scale(stacked, settings, overwrite)
                self.matrices_shaped += len(chunk)
                if stats is not None:
                    stats.add(result, [bool(sampled and sampled[i]) for i, _ in chunk])
                for (i, j), O in zip(chunk, result.unbind(0), strict=True):
                    shaped[i][j] = O
        return [layout.assemble(s) for s, layout in zip(shaped, layouts, strict=True)]  # type: ignore[arg-type]

    def _sharded(self, items, updates, layouts, shards, settings, stats, sampled, group, out) -> None:
        """FSDP2: gather whole matrices to owners, shape there, scatter the rows back."""
        world = dist.get_world_size(group)
        rows = [shards[i].rows for i in items]
        local = [updates[i].reshape(updates[i].shape[0], layouts[i].cols) for i in items]
        cols = [layouts[i].cols for i in items]
        owners = assign_owners([_cost(layouts[i]) for i in items], world)
        whole = gather_rows(local, rows, owners, group)
        mine = sorted(whole)
        local_stats = UpdateStats() if stats is not None else None
        shaped = self.shape_whole([whole[k] for k in mine], [layouts[items[k]] for k in mine], settings, local_stats,
                                  [sampled[items[k]] for k in mine], [True] * len(mine))  # fmt: skip
        results = {k: O.reshape(O.shape[0], layouts[items[k]].cols) for k, O in zip(mine, shaped, strict=True)}
        device = updates[items[0]].device
        blocks = scatter_rows(
            results, rows, cols, owners, group, result_dtype(settings.method, settings.precision, device), device
        )
        for i, block in zip(items, blocks, strict=True):
            out[i] = block.view(updates[i].shape)
        if stats is not None:
            stats.merge(_all_reduced(local_stats, group, device))

    def _replicated(self, items, updates, layouts, settings, stats, sampled, group, out, private) -> None:
        """DDP: each rank shapes its share of the (identical) matrices; one all-gather gives everyone all results."""
        device = updates[items[0]].device
        if not self._checked_replicas:
            _check_same_everywhere([layouts[i] for i in items], group, device)
            self._checked_replicas = True
        owners = assign_owners([_cost(layouts[i]) for i in items], dist.get_world_size(group))
        rank = dist.get_rank(group)
        mine = [k for k, i in enumerate(items) if owners[k] == rank]
        local_stats = UpdateStats() if stats is not None else None
        shaped = self.shape_whole([updates[items[k]] for k in mine], [layouts[items[k]] for k in mine], settings,
                                  local_stats, [sampled[items[k]] for k in mine],
                                  [private[items[k]] for k in mine])  # fmt: skip
        dtype = result_dtype(settings.method, settings.precision, device)
        results = all_gather_owned(dict(zip(mine, shaped, strict=True)), [updates[i].shape for i in items], owners,
                                   group, dtype, device)  # fmt: skip
        for i, O in zip(items, results, strict=True):
            out[i] = O
        if stats is not None:
            stats.merge(_all_reduced(local_stats, group, device))


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
