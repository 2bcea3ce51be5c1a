"""p = 0: the polar factor U Vᵀ by Polar Express or by Keller Jordan's Newton–Schulz quintic.

Polar Express (Amsel, Persson, Musco, Gower 2025) uses a different, minimax-optimal quintic at each step;
on σ/ν ∈ [1e-3, 1] five steps keep the output singular values within [0.85, 1.14]. Keller Jordan's fixed quintic
(3.4445, −4.7750, 2.0315) is what Muon and ``torch.optim.Muon`` use (singular values within about [0.47, 1.20]).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..checks import check_choice, check_steps
from .precision import PRECISIONS, iterate_dtype, step_precisions
from .quintic import run_quintic
from .short_side import on_batches
from .target import check_matrix, normalized

POLAR_EXPRESS_COEFFICIENTS: tuple[tuple[float, float, float], ...] = (
    (8.156554524902461, -22.48329292557795, 15.878769915207462),
    (4.042929935166739, -2.808917465908714, 0.5000178451051316),
    (3.8916678022926607, -2.772484153217685, 0.5060648178503393),
    (3.285753657755655, -2.3681294933425376, 0.46449024233003106),
    (2.3465413258596377, -1.7097828382687081, 0.42323551169305323),
)
NEWTON_SCHULZ_COEFFICIENTS: tuple[float, float, float] = (3.4445, -4.7750, 2.0315)

POLAR_COEFFICIENT_SETS = ("polar_express", "newton_schulz")
POLAR_MIXED_STEPS = 2
"""precision="bf16" runs this many leading steps in "mixed" (on a gradient-like spectrum — one direction, the rest
at 1e-4 — all-bf16 Polar Express is 60–75 % off the p = 0 target, this 5–6 %, fp32 5 %; shaping.md)."""


def _schedule(coefficients: str, steps: int):
    """Coefficient triples for `steps` steps; Polar Express repeats its last triple beyond five steps."""
    if coefficients == "polar_express":
        last = len(POLAR_EXPRESS_COEFFICIENTS) - 1
        return [POLAR_EXPRESS_COEFFICIENTS[min(k, last)] for k in range(steps)]
    return [NEWTON_SCHULZ_COEFFICIENTS] * steps


def polar_batched(X: Tensor, steps: int, coefficients: str, precision: str, overwrite: bool = False) -> Tensor:
    """Polar factor of a (B, r, c) float batch of either orientation (:func:`~.quintic.run_quintic`), in the
    iterate dtype (bfloat16 for precision="bf16").

    X₀ = X/(1.02‖X‖_F) for Polar Express (the safety margin of Amsel et al.), X/‖X‖_F for Newton–Schulz, formed
    by :func:`normalized` (exact for any finite X, zero for zero); in bf16 the first
    :data:`POLAR_MIXED_STEPS` steps run in "mixed". `overwrite`: X may serve as the iterate (its contents are lost).
    """
    precisions = step_precisions(precision, steps, POLAR_MIXED_STEPS)
    divisor = 1.02 if coefficients == "polar_express" else 1.0
    dtype = iterate_dtype(precisions[0])
    donated = overwrite and X.dtype == dtype and X.is_contiguous()
    start = [normalized(X, dtype, divisor, out=X if donated else None)]
    # pop: only run_quintic may hold the iterate, so that switching it to bf16 frees the float32 copy
    return run_quintic(start.pop(), _schedule(coefficients, steps), precisions).to(iterate_dtype(precision))


def polar_express(M: Tensor, steps: int = 5, *, coefficients: str = "polar_express", precision: str = "fp32") -> Tensor:
    """Approximate polar factor U Vᵀ of M (p = 0 shaping) with `steps` quintic Newton–Schulz steps.

    Args:
        M: a (..., m, n) floating-point tensor, either orientation.
        steps: number of iterations (≥ 1). Polar Express repeats its last coefficients beyond 5.
        coefficients: ``"polar_express"`` (default) or ``"newton_schulz"`` (Keller Jordan's Muon quintic,
            reproducing ``torch.optim.Muon``'s orthogonalisation).
        precision: ``"fp32"``, ``"mixed"``, ``"bf16"`` or ``"bf16_all"`` (see :mod:`hf_spectral.shaping.quintic`).

    Returns:
        A float32 tensor of M's shape.
    """
    check_matrix("polar_express", M, check_finite=True)
    check_steps("polar_express", steps)
    check_choice("polar_express", "coefficients", coefficients, POLAR_COEFFICIENT_SETS)
    check_choice("polar_express", "precision", precision, PRECISIONS)
    if M.numel() == 0:
        return torch.zeros(M.shape, dtype=torch.float32, device=M.device)
    return on_batches(M, lambda X: polar_batched(X, steps, coefficients, precision)).float()


__all__ = ["NEWTON_SCHULZ_COEFFICIENTS", "POLAR_EXPRESS_COEFFICIENTS", "polar_express"]
