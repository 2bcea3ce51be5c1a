"""The shaping target and its float64 SVD reference.

For M = U Σ Vᵀ with ν = ‖M‖_F and s = σ/ν, every method in this package approximates

    shape_{p,ε}(M) = U φ(Σ/ν) Vᵀ,   φ(s) = s · (s² + ε²)^((p−1)/2).

φ(s) ∝ sᵖ for s ≫ ε and falls linearly to 0 below ε, so the map is odd, continuous in p (including across
p = 0) and independent of the choice of singular vectors in a null space. The result is scale free: it depends
on M only through M/ν.
"""

from __future__ import annotations

import torch
from torch import Tensor


def phi(s: Tensor, p: float, eps: float) -> Tensor:
    """φ(s) = s·(s² + ε²)^((p−1)/2), the gain applied to a normalised singular value s = σ/‖M‖_F."""
    return s * (s * s + eps * eps).pow((p - 1.0) / 2.0)


def frobenius_norm(M: Tensor) -> Tensor:
    """ν = ‖M‖_F over the last two dimensions, kept as (..., 1, 1) so it broadcasts against M."""
    return torch.linalg.vector_norm(M, dim=(-2, -1), keepdim=True)


def shape_svd(M: Tensor, p: float, eps: float = 1e-3) -> Tensor:
    """Reference U φ(Σ/ν) Vᵀ computed by a float64 SVD (returns float64). Exact, slow; for tests and audits."""
    M64 = M.detach().to(torch.float64)
    U, S, Vh = torch.linalg.svd(M64, full_matrices=False)
    nu = torch.linalg.vector_norm(S, dim=-1, keepdim=True)
    s = S / nu.clamp_min(torch.finfo(torch.float64).tiny)
    return (U * phi(s, p, eps).unsqueeze(-2)) @ Vh
