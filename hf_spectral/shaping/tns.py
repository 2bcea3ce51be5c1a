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

from .precision import step_precisions
from .quintic import MIN_BLOCK, run_quintic
from .target import normalized, phi

TNS_COEFFICIENTS: tuple[float, float, float] = (2.54815, -3.50720, 1.60367)
TNS_DEFAULT_STEPS = 8
FIT_POINTS = 400
FIT_FLOOR_FACTOR = 30.0  # the fit grid starts at ε / 30
FIT_RIDGE = 1e-8
MAX_FIT_ERROR = 0.05  # refuse (p, ε, K) whose scalar fit is worse than 5 % on s ∈ [ε, 1]
TNS_BF16_STEPS = 3
"""precision="bf16" runs only the last this-many steps with a bf16 iterate, the earlier ones in "mixed": the
weights of p < 0 amplify rounding noise of the early iterates in the small directions (all-bf16: up to 108 % off
on a rank-3 bf16 matrix at p = −0.5; this split: ≤ 1.7 %; shaping.md, "Precision")."""


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


def check_tns_fit(fn: str, p: float, eps: float, steps: int, steps_name: str = "steps", eps_name: str = "eps") -> None:
    """Raise a ValueError naming `fn` if TNS with `steps` steps cannot fit φ at (p, ε) within :data:`MAX_FIT_ERROR`."""
    fit = tns_weights(p, eps, steps)
    if fit.fit_error > MAX_FIT_ERROR:
        raise ValueError(
            f"{fn}: TNS with {steps_name}={steps} and {eps_name}={eps:g} cannot reach p = {p:.4g} (scalar fit "
            f"error {fit.fit_error:.1%} > {MAX_FIT_ERROR:.0%}); it covers about p in [-0.5, 1] at 7 steps with "
            f"{eps_name} >= 3e-3 and [-0.5, 1.3] at 8 with {eps_name} >= 1e-3: narrow the p range, raise "
            f"{steps_name} or {eps_name}, or use method='eigh' / 'svd'"
        )


def tns_batched(X: Tensor, weights: tuple[float, ...], precision: str, overwrite: bool = False) -> Tensor:
    """Y = Σ_k w_k X_k for a (B, m, n) batch with m ≤ n; float32 accumulator, returns float32.

    X₀ = X/‖X‖_F in float32 (:func:`normalized`: exact for any finite X); in bf16 all but the last
    :data:`TNS_BF16_STEPS` steps run in "mixed". `overwrite`: X may serve as the iterate (its contents are lost)."""
    steps = len(weights) - 1
    precisions = step_precisions(precision, steps, steps - TNS_BF16_STEPS)
    donated = overwrite and X.dtype == torch.float32 and X.is_contiguous()  # (transposed: other GEMM bits)
    start = [normalized(X, torch.float32, out=X if donated else None)]
    Y = start[0] * weights[0]
    # pop: only run_quintic may hold the iterate, so that switching it to bf16 frees the float32 copy
    run_quintic(start.pop(), [TNS_COEFFICIENTS] * steps, precisions, held=1.0,
                each_block=lambda k, cols, x: _accumulate(Y[..., cols], x, weights[k]))  # fmt: skip
    return Y


def _accumulate(Y: Tensor, X: Tensor, w: float) -> None:
    """Y += w·X, called with each new column block of an iterate while it is in cache; a bf16 X is converted
    MIN_BLOCK columns at a time into one reused float32 buffer (a mixed-dtype add would convert all of X at once,
    and on CPU it is 2x slower than an explicit conversion)."""
    if X.dtype == Y.dtype:
        Y.add_(X, alpha=w)
        return
    width = min(X.shape[-1], MIN_BLOCK)  # (256 columns: the buffer stays in cache; 1024 was 1.5x slower)
    buffer = torch.empty(*X.shape[:-1], width, dtype=Y.dtype, device=Y.device)
    for j in range(0, X.shape[-1], width):
        x = X[..., j : j + width]
        block = buffer[..., : x.shape[-1]]
        block.copy_(x)
        Y[..., j : j + width].add_(block, alpha=w)
