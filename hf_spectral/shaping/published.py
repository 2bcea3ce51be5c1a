"""The approximations published with DynMuon, reimplemented from their description, for ablations only.

They are not U Σᵖ Vᵀ: on test spectra they are 13–56 % off for p < 0 (shaping.md §5). We keep them to measure
whether exactness matters in training.

``taylor``:  with X = M/‖M‖_F, A = XXᵀ = I + E and δ = p/2, A^δ ≈ I + δE + ½δ(δ−1)E² (second-order Taylor series
             around I), and the result is (I + δE + ½δ(δ−1)E²)·polar(X). Exact for p = 0; poor wherever
             σ/‖M‖_F is far from 1, which is almost everywhere for a full-rank update.
``dynmuon_published``: the piecewise rule of the public DynMuon code: the raw update M/‖M‖_F for p ≥ 0.25, the
             polar factor for 0 ≤ p < 0.25, and ``taylor`` for p < 0.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .polar import polar_batched
from .target import normalized


def taylor_batched(X: Tensor, p: float, precision: str) -> Tensor:
    """(I + δE + ½δ(δ−1)E²)·polar(X/‖X‖_F) for a (B, m, n) batch with m ≤ n (float32)."""
    X = normalized(X, torch.float32)
    polar = polar_batched(X, 5, "polar_express", precision).float()
    if p == 0.0:
        return polar
    delta = 0.5 * p
    E = X @ X.mT
    E.diagonal(dim1=-2, dim2=-1).sub_(1.0)
    C = E * delta + (E @ E) * (0.5 * delta * (delta - 1.0))
    C.diagonal(dim1=-2, dim2=-1).add_(1.0)
    return C @ polar


def dynmuon_published_batched(X: Tensor, p: float, precision: str) -> Tensor:
    """The public DynMuon rule: M/‖M‖_F for p ≥ 0.25, polar for 0 ≤ p < 0.25, Taylor correction for p < 0."""
    if p >= 0.25:
        return normalized(X, torch.float32)
    if p >= 0.0:
        return polar_batched(X, 5, "polar_express", precision).float()
    return taylor_batched(X, p, precision)
