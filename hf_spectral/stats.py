"""Statistics of the shaped updates, for logging: accumulated while the shaper sees full matrices.

update_rms             mean over matrices of RMS(O), O the scaled shaped update before the learning rate
update_top_sv          mean over sampled matrices of σ₁(O)
update_effective_rank  mean over sampled matrices of exp(H(σ/Σσ)) (Roy & Vetterli's effective rank)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class UpdateStats:
    """Running sums over the matrices of one step. `svd_budget` matrices (first seen first) also get an SVD."""

    svd_budget: int = 0
    matrices: int = 0
    rms_sum: float = 0.0
    svd_matrices: int = 0
    top_sv_sum: float = 0.0
    effective_rank_sum: float = 0.0

    def add(self, O: Tensor) -> None:
        """Account for a (B, m, n) batch of scaled shaped updates (one host sync)."""
        O = O.detach().float()
        self.matrices += O.shape[0]
        self.rms_sum += float(O.square().mean(dim=(-2, -1)).sqrt().sum())
        take = min(self.svd_budget - self.svd_matrices, O.shape[0])
        if take > 0:
            s = torch.linalg.svdvals(O[:take].cpu())
            weights = s / s.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(s.dtype).tiny)
            entropy = -(weights * weights.clamp_min(torch.finfo(s.dtype).tiny).log()).sum(dim=-1)
            self.top_sv_sum += float(s[:, 0].sum())
            self.effective_rank_sum += float(entropy.exp().sum())
            self.svd_matrices += take

    def merge(self, other: UpdateStats) -> None:
        for name in ("matrices", "rms_sum", "svd_matrices", "top_sv_sum", "effective_rank_sum"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def summary(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.matrices:
            out["update_rms"] = self.rms_sum / self.matrices
        if self.svd_matrices:
            out["update_top_sv"] = self.top_sv_sum / self.svd_matrices
            out["update_effective_rank"] = self.effective_rank_sum / self.svd_matrices
        return out
