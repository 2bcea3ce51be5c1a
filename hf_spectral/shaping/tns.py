"""Any p: Trajectory Newton–Schulz (TNS).

Every odd polynomial iteration maps X₀ = U S Vᵀ to X_k = U g_k(S) Vᵀ, so a fixed linear combination of the
iterates is itself a spectral function. TNS runs one fixed quintic q(y) = a·y + b·y³ + c·y⁵ for K steps from
X₀ = M/‖M‖_F and returns

    Y = Σ_k w_k X_k  = U (Σ_k w_k g_k(S)) Vᵀ ≈ U φ(S) Vᵀ,     g₀(s) = s,  g_{k+1} = q(g_k),

where the K+1 scalars w(p, ε) are the least-squares fit of Σ_k w_k g_k(s)/φ(s) ≈ 1 on 400 log-spaced
s ∈ [ε/30, 1] (relative error, ridge 1e-8). Only the weights depend on p; the cost is exactly K quintic steps.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple

import torch
from torch import Tensor

from .quintic import iterate_dtype, quintic_iterates
from .target import frobenius_norm, phi

TNS_COEFFICIENTS: tuple[float, float, float] = (2.54815, -3.50720, 1.60367)
TNS_DEFAULT_STEPS = 8
FIT_POINTS = 400
FIT_FLOOR_FACTOR = 30.0  # the fit grid starts at ε / 30
FIT_RIDGE = 1e-8
MAX_FIT_ERROR = 0.05  # refuse (p, ε, K) whose scalar fit is worse than 5 % on s ∈ [ε, 1]


class TNSWeights(NamedTuple):
    """Weights w₀…w_K of the iterates and the fit's worst relative error max |Σ w_k g_k(s)/φ(s) − 1| on [ε, 1]."""

    weights: tuple[float, ...]
    fit_error: float


def _trajectory(s: Tensor, steps: int) -> Tensor:
    """Columns g₀(s) … g_K(s) of the scalar iteration g_{k+1} = q(g_k)."""
    a, b, c = TNS_COEFFICIENTS
    g = [s]
    for _ in range(steps):
        y = g[-1]
        y2 = y * y
        g.append(y * (a + y2 * (b + c * y2)))
    return torch.stack(g, dim=1)


@lru_cache(maxsize=4096)
def tns_weights(p: float, eps: float = 1e-3, steps: int = TNS_DEFAULT_STEPS) -> TNSWeights:
    """Solve the (K+1)×(K+1) ridge least-squares problem for the TNS weights w(p, ε) (float64, CPU, cached)."""
    s = torch.logspace(math.log10(eps / FIT_FLOOR_FACTOR), 0.0, FIT_POINTS, dtype=torch.float64)
    A = _trajectory(s, steps) / phi(s, p, eps).unsqueeze(1)
    gram = A.T @ A + FIT_RIDGE * torch.eye(steps + 1, dtype=torch.float64)
    w = torch.linalg.solve(gram, A.T @ torch.ones_like(s))
    relative = (A @ w - 1.0).abs()
    fit_error = float(relative[s >= eps].max())
    return TNSWeights(tuple(w.tolist()), fit_error)


def tns_batched(X: Tensor, weights: tuple[float, ...], precision: str) -> Tensor:
    """Y = Σ_k w_k X_k for a (B, m, n) batch with m ≤ n; float32 accumulator, returns float32."""
    nu = frobenius_norm(X.float())
    X = (X / nu.clamp_min(torch.finfo(torch.float32).tiny)).to(
        iterate_dtype(precision), memory_format=torch.contiguous_format
    )  # contiguous: batched GEMMs would copy a transposed operand at every step
    Y = X.float() * weights[0]
    coefficients = [TNS_COEFFICIENTS] * (len(weights) - 1)
    for w, Xk in zip(weights[1:], quintic_iterates(X, coefficients, precision), strict=True):
        Y.add_(Xk, alpha=w)
    return Y
