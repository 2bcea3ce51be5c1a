"""p = 0: the polar factor U Vᵀ by Polar Express or by Keller Jordan's Newton–Schulz quintic.

Polar Express (Amsel, Persson, Musco, Gower 2025) uses a different, minimax-optimal quintic at each step;
on σ/ν ∈ [1e-3, 1] five steps keep the output singular values within [0.85, 1.14]. Keller Jordan's fixed quintic
(3.4445, −4.7750, 2.0315) is what Muon and ``torch.optim.Muon`` use (singular values within about [0.47, 1.20]).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .layout import on_short_side_batches
from .quintic import PRECISIONS, iterate_dtype, quintic_iterates
from .validation import check_choice, check_matrix, check_steps

POLAR_EXPRESS_COEFFICIENTS: tuple[tuple[float, float, float], ...] = (
    (8.156554524902461, -22.48329292557795, 15.878769915207462),
    (4.042929935166739, -2.808917465908714, 0.5000178451051316),
    (3.8916678022926607, -2.772484153217685, 0.5060648178503393),
    (3.285753657755655, -2.3681294933425376, 0.46449024233003106),
    (2.3465413258596377, -1.7097828382687081, 0.42323551169305323),
)
NEWTON_SCHULZ_COEFFICIENTS: tuple[float, float, float] = (3.4445, -4.7750, 2.0315)

POLAR_COEFFICIENT_SETS = ("polar_express", "newton_schulz")


def _schedule(coefficients: str, steps: int):
    """Coefficient triples for `steps` steps; Polar Express repeats its last triple beyond five steps."""
    if coefficients == "polar_express":
        last = len(POLAR_EXPRESS_COEFFICIENTS) - 1
        return [POLAR_EXPRESS_COEFFICIENTS[min(k, last)] for k in range(steps)]
    return [NEWTON_SCHULZ_COEFFICIENTS] * steps


def polar_batched(X: Tensor, steps: int, coefficients: str, precision: str) -> Tensor:
    """Polar factor of a (B, m, n) float batch with m ≤ n, in the iterate dtype (bfloat16 for precision="bf16")."""
    # One contiguous copy in the iterate dtype (batched GEMMs copy non-contiguous operands at every step otherwise);
    # casting first makes the passes below read half the bytes in bf16.
    X = X.to(iterate_dtype(precision), memory_format=torch.contiguous_format, copy=True)
    nu = torch.linalg.vector_norm(X, dim=(-2, -1), keepdim=True).float()
    # Polar Express: the safety margin of Amsel et al.; Newton–Schulz: as torch.optim.Muon.
    scale = 1.02 * nu + 1e-7 if coefficients == "polar_express" else nu.clamp_min(1e-7)
    X.div_(scale.to(X.dtype))
    for Xk in quintic_iterates(X, _schedule(coefficients, steps), precision):
        X = Xk
    return X


def polar_express(M: Tensor, steps: int = 5, *, coefficients: str = "polar_express", precision: str = "fp32") -> Tensor:
    """Approximate polar factor U Vᵀ of M (p = 0 shaping) with `steps` quintic Newton–Schulz steps.

    Args:
        M: a (..., m, n) floating-point tensor, either orientation.
        steps: number of iterations (≥ 1). Polar Express repeats its last coefficients beyond 5.
        coefficients: ``"polar_express"`` (default) or ``"newton_schulz"`` (Keller Jordan's Muon quintic,
            reproducing ``torch.optim.Muon``'s orthogonalisation).
        precision: ``"fp32"``, ``"mixed"`` or ``"bf16"`` (see :mod:`hf_spectral.shaping.quintic`).

    Returns:
        A float32 tensor of M's shape.
    """
    check_matrix("polar_express", M, check_finite=True)
    check_steps("polar_express", steps)
    check_choice("polar_express", "coefficients", coefficients, POLAR_COEFFICIENT_SETS)
    check_choice("polar_express", "precision", precision, PRECISIONS)
    return on_short_side_batches(M, lambda X: polar_batched(X, steps, coefficients, precision)).float()


__all__ = ["NEWTON_SCHULZ_COEFFICIENTS", "POLAR_EXPRESS_COEFFICIENTS", "polar_express"]
