"""Statistics of the shaped updates, for logging: accumulated while the shaper sees full matrices.

update_rms             mean over matrices of RMS(O), O the scaled shaped update before the learning rate
update_top_sv          mean over sampled matrices of σ₁(O)
update_effective_rank  mean over sampled matrices of exp(H(σ/Σσ)) (Roy & Vetterli's effective rank)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class UpdateStats:
    """Running sums over the matrices of one step. The SVD statistics cover the matrices of the first
    `svd_tensors` parameters of each spectral group (a fixed set, whatever the number of ranks)."""

    svd_tensors: int = 0
    matrices: int = 0
    rms_sum: float = 0.0
    svd_matrices: int = 0
    top_sv_sum: float = 0.0
    effective_rank_sum: float = 0.0

    def add(self, O: Tensor, sampled: Sequence[bool]) -> None:
        """Account for a (B, m, n) batch of scaled shaped updates; `sampled[b]` marks the ones to SVD."""
        O = O.detach().float()
        self.matrices += O.shape[0]
        self.rms_sum += float(O.square().mean(dim=(-2, -1)).sqrt().sum())
        rows = [b for b, take in enumerate(sampled) if take]
        if rows:
            s = torch.linalg.svdvals(O[rows].cpu())
            weights = s / s.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(s.dtype).tiny)
            entropy = -(weights * weights.clamp_min(torch.finfo(s.dtype).tiny).log()).sum(dim=-1)
            self.top_sv_sum += float(s[:, 0].sum())
            self.effective_rank_sum += float(entropy.exp().sum())
            self.svd_matrices += len(rows)

    def totals(self) -> list[float]:
        return [float(getattr(self, f)) for f in SUMS]

    def merge(self, totals: Sequence[float]) -> None:
        """Add sums in the order of :meth:`totals` (e.g. all-reduced over the ranks that measured them)."""
        for f, v in zip(SUMS, totals, strict=True):
            setattr(self, f, getattr(self, f) + (round(v) if f in ("matrices", "svd_matrices") else v))

    def summary(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.matrices:
            out["update_rms"] = self.rms_sum / self.matrices
        if self.svd_matrices:
            out["update_top_sv"] = self.top_sv_sum / self.svd_matrices
            out["update_effective_rank"] = self.effective_rank_sum / self.svd_matrices
        return out


SUMS = ("matrices", "rms_sum", "svd_matrices", "top_sv_sum", "effective_rank_sum")
