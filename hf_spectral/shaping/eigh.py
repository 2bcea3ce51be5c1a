"""Exact shaping through the small side's Gram matrix — the right tool for LoRA factors (r × d, r ≲ 128).

With X = M/ν (short side first, r × d) and A = X Xᵀ = Q Λ Qᵀ (Λ = S²):

    Y = Q diag((λ + ε²)^((p−1)/2)) Qᵀ X = U φ(S) Vᵀ,

about two skinny matmuls and a batched r × r eigendecomposition, exact for any p. The Gram matrix, the
eigendecomposition and the product are computed in float64: bfloat16 or float32 cannot resolve the small
singular values that negative p amplifies, and at r × d the float64 cost is negligible.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .target import normalized


def eigh_batched(X: Tensor, p: float, eps: float) -> Tensor:
    """U φ(S) Vᵀ of a (B, r, d) batch with r ≤ d via a float64 Gram eigendecomposition; returns float32."""
    X = normalized(X, torch.float64)
    lam, Q = torch.linalg.eigh(X @ X.mT)
    gain = (lam.clamp_min(0.0) + eps * eps).pow((p - 1.0) / 2.0)
    return (((Q * gain.unsqueeze(-2)) @ Q.mT) @ X).float()
