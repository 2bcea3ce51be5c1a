"""Statistics of the updates, for logging: accumulated while the shaper sees full matrices.

direction_rms          mean over matrices of RMS(M), M the direction before shaping ((1−ν)G + νB, or Adam's m̂/√v̂):
                       how large the gradient signal is, which the shaping itself hides
direction_stable_rank  mean over matrices of ‖M‖_F² / σ₁(M)² (1: one direction; min(m, n): flat), σ₁ from
                       POWER_STEPS power iterations (an estimate from below, so the ratio is from above)
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
    directions: int = 0
    direction_rms_sum: float = 0.0
    stable_rank_sum: float = 0.0
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

    def add_direction(self, M: Tensor) -> None:
        """Account for a (B, m, n) batch of directions before shaping."""
        M = M.detach().float()
        frobenius_sq = M.square().sum(dim=(-2, -1))
        self.directions += M.shape[0]
        self.direction_rms_sum += float((frobenius_sq / (M.shape[-2] * M.shape[-1])).sqrt().sum())
        top_sq = top_singular_value(M).square()
        ratio = torch.where(top_sq > 0, frobenius_sq / top_sq.clamp_min(torch.finfo(M.dtype).tiny), 1.0)
        self.stable_rank_sum += float(ratio.sum())

    def totals(self) -> list[float]:
        return [float(getattr(self, f)) for f in SUMS]

    def merge(self, totals: Sequence[float]) -> None:
        """Add sums in the order of :meth:`totals` (e.g. all-reduced over the ranks that measured them)."""
        for f, v in zip(SUMS, totals, strict=True):
            setattr(self, f, getattr(self, f) + (round(v) if f in COUNTS else v))

    def summary(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.directions:
            out["direction_rms"] = self.direction_rms_sum / self.directions
            out["direction_stable_rank"] = self.stable_rank_sum / self.directions
        if self.matrices:
            out["update_rms"] = self.rms_sum / self.matrices
        if self.svd_matrices:
            out["update_top_sv"] = self.top_sv_sum / self.svd_matrices
            out["update_effective_rank"] = self.effective_rank_sum / self.svd_matrices
        return out


SUMS = ("matrices", "rms_sum", "svd_matrices", "top_sv_sum", "effective_rank_sum", "directions",
        "direction_rms_sum", "stable_rank_sum")  # fmt: skip
COUNTS = ("matrices", "svd_matrices", "directions")
POWER_STEPS = 16


def top_singular_value(M: Tensor, steps: int = POWER_STEPS) -> Tensor:
    """σ₁ of each matrix of a (B, m, n) float batch by power iteration on the smaller Gram side, from a fixed start
    (ones: deterministic, so every rank gets the same number); ≤ the true σ₁, converging as (σ₂/σ₁)^(2·steps)."""
    if M.shape[-2] > M.shape[-1]:
        M = M.mT
    v = torch.ones(M.shape[0], M.shape[-1], 1, dtype=M.dtype, device=M.device)
    for _ in range(steps):
        v = M.mT @ (M @ v)
        v = v / v.norm(dim=-2, keepdim=True).clamp_min(torch.finfo(M.dtype).tiny)
    return (M @ v).norm(dim=(-2, -1))
