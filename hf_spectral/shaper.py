"""Single-process shaping of many matrices: same-shape matrices are stacked and shaped in one batched call."""

from __future__ import annotations

from collections import defaultdict

import torch
from torch import Tensor

from .stats import UpdateStats
from .updates import MatrixLayout, ShapingSettings, shape_and_scale


class LocalShaper:
    """Shapes full (non-sharded) update tensors. Distributed shapers implement the same call."""

    def __call__(
        self,
        updates: list[Tensor],
        layouts: list[MatrixLayout],
        settings: ShapingSettings,
        stats: UpdateStats | None = None,
    ) -> list[Tensor]:
        """Scaled shaped updates, one per input tensor, in the input's shape; `stats` accumulates their statistics."""
        blocks = [layout.matrices(u) for u, layout in zip(updates, layouts, strict=True)]
        batches: dict[tuple, list[tuple[int, int]]] = defaultdict(list)
        for i, matrices in enumerate(blocks):
            for j, M in enumerate(matrices):
                batches[(tuple(M.shape), M.device, M.dtype)].append((i, j))
        shaped: list[list[Tensor | None]] = [[None] * len(b) for b in blocks]
        for (_, device, _), members in batches.items():
            # On accelerators one batched call beats many small ones; on CPU each GEMM is already parallel and
            # stacking would only add a copy of every matrix.
            chunks = [members] if device.type != "cpu" else [[m] for m in members]
            for chunk in chunks:
                matrices = [blocks[i][j] for i, j in chunk]
                stacked = matrices[0].unsqueeze(0) if len(matrices) == 1 else torch.stack(matrices)
                shaped_batch = shape_and_scale(stacked, settings)
                if stats is not None:
                    stats.add(shaped_batch)
                for (i, j), O in zip(chunk, shaped_batch.unbind(0), strict=True):
                    shaped[i][j] = O
        return [layout.assemble(s) for s, layout in zip(shaped, layouts, strict=True)]
