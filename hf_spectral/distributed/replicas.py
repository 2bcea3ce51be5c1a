"""Whether the ranks of a process group hold the same tensors (DDP replicas), checked by value."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist


def checksum(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per tensor, (Σ x, Σ |x|, Σ x·w) in float64, with w a fixed ramp so that permuted entries differ too; shape
    (3·len(tensors),). Cheap: one pass over the values."""
    sums = []
    for t in tensors:
        values = t.detach().reshape(-1).to(torch.float64)
        ramp = torch.linspace(1.0, 2.0, values.numel(), dtype=torch.float64, device=values.device)
        sums.append(torch.stack((values.sum(), values.abs().sum(), (values * ramp).sum())))
    if not sums:
        return torch.zeros(0, dtype=torch.float64)
    return torch.cat(sums)


def replicas_agree(tensors: Sequence[torch.Tensor], group: dist.ProcessGroup | None = None) -> bool:
    """True when every rank of `group` (default: the world) holds the same values in `tensors` — the same
    checksums bit for bit (all_reduce MIN and MAX over one float64 vector); ranks with different numbers or
    shapes of tensors disagree. Collective: every rank must call it."""
    shapes = torch.tensor([float(t.numel()) for t in tensors] or [0.0], dtype=torch.float64)
    local = torch.cat((torch.tensor([float(len(tensors))], dtype=torch.float64), shapes, checksum(tensors).cpu()))
    device = tensors[0].device if tensors else torch.device("cpu")
    if dist.get_backend(group) == "nccl":
        device = torch.device("cuda", torch.cuda.current_device())
    size = torch.tensor([float(local.numel())], dtype=torch.float64, device=device)
    sizes = (size.clone(), size.clone())
    dist.all_reduce(sizes[0], dist.ReduceOp.MIN, group=group)
    dist.all_reduce(sizes[1], dist.ReduceOp.MAX, group=group)
    if sizes[0].item() != sizes[1].item():
        return False
    low, high = local.to(device), local.to(device).clone()
    dist.all_reduce(low, dist.ReduceOp.MIN, group=group)
    dist.all_reduce(high, dist.ReduceOp.MAX, group=group)
    return bool(torch.equal(low, high))
