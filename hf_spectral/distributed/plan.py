"""Deterministic owner assignment, balanced by the cost of shaping each matrix."""

from __future__ import annotations

import heapq
from collections.abc import Sequence


def matrix_cost(shapes: Sequence[tuple[int, int]]) -> int:
    """Estimated matmul work of shaping matrices of these shapes: Σ m·n·min(m, n) (Gram + product per step)."""
    return sum(m * n * min(m, n) for m, n in shapes)


def assign_owners(costs: Sequence[int], world_size: int) -> list[int]:
    """Owner rank of each item: largest cost first, each to the least-loaded rank (ties: lowest rank).

    The result depends only on `costs` and `world_size`, so every rank computes the same plan without talking."""
    if world_size < 1:
        raise ValueError(f"assign_owners: world_size must be >= 1, got {world_size}")
    owners = [0] * len(costs)
    loads = [(0, rank) for rank in range(world_size)]
    heapq.heapify(loads)
    for i in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        load, rank = heapq.heappop(loads)
        owners[i] = rank
        heapq.heappush(loads, (load + costs[i], rank))
    return owners
