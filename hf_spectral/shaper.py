"""Single-process shaping of many matrices: same-shape matrices are stacked and shaped in one batched call."""

from __future__ import annotations

from collections import defaultdict

import torch
from torch import Tensor

from .updates import MatrixLayout, ShapingSettings, shape_and_scale


class LocalShaper:
    """Shapes full (non-sharded) update tensors. Distributed shapers implement the same call."""

    def __call__(self, updates: list[Tensor], layouts: list[MatrixLayout], settings: ShapingSettings) -> list[Tensor]:
        """Scaled shaped updates (float32), one per input tensor, in the input's shape."""
        blocks = [layout.matrices(u) for u, layout in zip(updates, layouts, strict=True)]
        batches: dict[tuple, list[tuple[int, int]]] = defaultdict(list)
        for i, matrices in enumerate(blocks):
            for j, M in enumerate(matrices):
                batches[(tuple(M.shape), M.device, M.dtype)].append((i, j))
        shaped: list[list[Tensor | None]] = [[None] * len(b) for b in blocks]
        for members in batches.values():
            stacked = torch.stack([blocks[i][j] for i, j in members])
            for (i, j), O in zip(members, shape_and_scale(stacked, settings).unbind(0), strict=True):
                shaped[i][j] = O
        return [layout.assemble(s) for s, layout in zip(shaped, layouts, strict=True)]
