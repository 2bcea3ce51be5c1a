"""How a parameter is sharded: FSDP2 DTensors with Shard(0) on one mesh dimension (others Replicate, as in HSDP)."""

from __future__ import annotations

from dataclasses import dataclass

import torch.distributed as dist
from torch import Tensor

try:
    from torch.distributed.tensor import DTensor
except ImportError:  # torch built without distributed support
    DTensor = None  # type: ignore[assignment,misc]


def is_dtensor(t: Tensor) -> bool:
    """Whether `t` is a DTensor (cheap: no placement checks)."""
    return DTensor is not None and isinstance(t, DTensor)


def chunk_rows(rows: int, world_size: int) -> tuple[int, ...]:
    """Rows held by each rank under DTensor's Shard(0) rule (torch.chunk): ⌈rows/W⌉ each, the tail shorter or 0."""
    size = -(-rows // world_size) if rows else 0
    return tuple(max(0, min(size, rows - r * size)) for r in range(world_size))


@dataclass(frozen=True)
class ShardSpec:
    """A dim-0 sharded matrix: the process group of the shard dimension, this rank in it, and rows per rank."""

    group: dist.ProcessGroup
    rank: int
    rows: tuple[int, ...]

    @property
    def world_size(self) -> int:
        return len(self.rows)


def shard_spec(t: Tensor) -> ShardSpec | None:
    """None for a plain tensor; the ShardSpec of an FSDP2 DTensor. Other layouts raise (we never guess)."""
    if not is_dtensor(t):
        return None
    placements = t.placements
    shard_dims = [i for i, p in enumerate(placements) if p.is_shard()]
    others_ok = all(p.is_replicate() for i, p in enumerate(placements) if i not in shard_dims)
    if len(shard_dims) != 1 or placements[shard_dims[0]].dim != 0 or not others_ok:
        raise ValueError(
            f"hf_spectral: parameter of shape {tuple(t.shape)} has DTensor placements {placements}; spectral shaping "
            "supports FSDP2's Shard(0) on one mesh dimension (other dimensions Replicate), not tensor parallelism"
        )
    group = t.device_mesh.get_group(shard_dims[0])
    spec = ShardSpec(group, dist.get_rank(group), chunk_rows(t.shape[0], dist.get_world_size(group)))
    if t.to_local().shape[0] != spec.rows[spec.rank]:
        raise ValueError(
            f"hf_spectral: unexpected FSDP2 layout: rank {spec.rank} holds {t.to_local().shape[0]} rows of a "
            f"{tuple(t.shape)} parameter, expected {spec.rows[spec.rank]} (torch.chunk rule)"
        )
    return spec
