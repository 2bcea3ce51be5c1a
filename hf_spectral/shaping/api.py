"""`spectral_power`: the one entry point for U φ(Σ/ν) Vᵀ, dispatching to the method that fits the shape."""

from __future__ import annotations

import torch
from torch import Tensor

from ..checks import check_choice, check_real, check_steps
from .eigh import eigh_batched
from .polar import polar_batched
from .precision import PRECISIONS, resolve_precision
from .published import dynmuon_published_batched, taylor_batched
from .short_side import on_batches, on_short_side_batches
from .target import check_matrix, normalized, shape_svd
from .tns import TNS_DEFAULT_STEPS, check_tns_fit, tns_batched, tns_weights

METHODS = ("auto", "tns", "polar", "newton_schulz", "eigh", "svd")
"""The methods that compute U φ(Σ/ν) Vᵀ."""
ABLATION_METHODS = ("taylor", "dynmuon_published")
"""The published DynMuon approximations (not U Σᵖ Vᵀ): accepted as ``method`` for ablations, not recommended."""
EIGH_MAX_SIDE = 64
"""`method="auto"` uses the exact Gram eigendecomposition when the short side is at most this (LoRA factors)."""

P_RANGE = (-1.0, 2.0)
"""Accepted p for the exact methods (eigh, svd). TNS is restricted further by its fit error (≈ [−0.5, 1.3] at K=8)."""
EPS_RANGE = (0.0, 1.0)


def resolve_method(method: str, p: float, shape: tuple[int, ...]) -> str:
    """The concrete method `"auto"` stands for: p = 1 → identity, short side ≤ EIGH_MAX_SIDE → eigh, else tns."""
    if method != "auto":
        return method
    if p == 1.0:
        return "identity"
    return "eigh" if min(shape[-2:]) <= EIGH_MAX_SIDE else "tns"


def spectral_power(
    M: Tensor,
    p: float,
    *,
    eps: float = 1e-3,
    method: str = "auto",
    precision: str = "fp32",
    steps: int | None = None,
    check_finite: bool = True,
    out_dtype: torch.dtype | None = torch.float32,
    overwrite: bool = False,
) -> Tensor:
    """U φ(Σ/ν) Vᵀ with φ(s) = s·(s² + ε²)^((p−1)/2), ν = ‖M‖_F — i.e. U Σᵖ Vᵀ up to the ε floor, scale free.

    p = 0 is Muon's polar factor, p = 1 returns M/ν, p ∈ (0, 1) is Muon^p, p < 0 boosts small directions.

    Args:
        M: (m, n) or batched (..., m, n) floating tensor, either orientation.
        p: spectral power, in [−1, 2] (TNS: wherever its scalar fit is within 5 %, ≈ [−0.5, 1.3] at K = 8).
        eps: ε floor relative to ν, in (0, 1]. TNS with K = 8 needs ε ≥ 1e-3 (more steps reach lower ε).
        method: ``"auto"`` (p = 1 → identity; short side ≤ 64 → eigh; else tns), ``"tns"`` (Trajectory
            Newton–Schulz), ``"polar"`` (Polar Express, p = 0 only), ``"newton_schulz"`` (Muon's quintic, p = 0
            only), ``"eigh"`` (exact, small side Gram) or ``"svd"`` (float64 SVD reference); ``"taylor"`` and
            ``"dynmuon_published"`` are the published DynMuon approximations, for ablations only.
        precision: ``"fp32"``, ``"mixed"`` (bf16 matmul operands), ``"bf16"`` (bf16 iterate after a few mixed
            steps), ``"bf16_all"`` (bf16 in every step, as torch.optim.Muon; fastest on CPU) or ``"auto"`` (by
            device and method: :func:`hf_spectral.shaping.precision.resolve_precision`); used by the
            matmul methods (tns, polar, newton_schulz). eigh and svd always compute in float64.
            Any finite M is shaped right whatever its magnitude (it is scaled by a power of two first).
        steps: iterations for tns (default 8) or polar/newton_schulz (default 5); ignored by eigh/svd.
        check_finite: raise on NaN/Inf entries (one device sync). Callers that already checked pass False.
        out_dtype: dtype of the result (default float32); None keeps the method's working dtype (bfloat16 for
            polar / newton_schulz at precision="bf16" / "bf16_all" and for tns at "bf16_all", float32 otherwise),
            saving a conversion pass.
        overwrite: M's memory may serve as the iterate of tns / polar / newton_schulz (M's contents are then
            undefined), saving a copy of M when it is float32; for callers whose M is a temporary.

    Returns:
        A tensor of M's shape, float32 by default (whatever M's dtype).
    """
    check_matrix("spectral_power", M, check_finite=check_finite)
    method = check_shaping_arguments(tuple(M.shape), p, eps=eps, method=method, precision=precision, steps=steps)
    if M.numel() == 0:
        return torch.zeros(M.shape, dtype=out_dtype or torch.float32, device=M.device)
    precision = resolve_precision(precision, M.device, method)
    batches = on_batches if method in ("polar", "newton_schulz", "tns", "identity") else on_short_side_batches
    Y = batches(M, _kernel(method, float(p), float(eps), precision, steps, overwrite))
    return Y if out_dtype is None else Y.to(out_dtype)


def check_shaping_arguments(
    shape: tuple[int, ...],
    p: float,
    *,
    eps: float = 1e-3,
    method: str = "auto",
    precision: str = "fp32",
    steps: int | None = None,
) -> str:
    """Raise the ValueError `spectral_power` would raise for these arguments on a matrix of `shape` (without
    touching any data); return the concrete method ``"auto"`` resolves to."""
    fn = "spectral_power"
    p = check_real(fn, "p", p, *P_RANGE)
    eps = check_real(fn, "eps", eps, *EPS_RANGE, low_open=True)
    check_choice(fn, "method", method, METHODS + ABLATION_METHODS)
    check_choice(fn, "precision", precision, ("auto", *PRECISIONS))
    if steps is not None:
        check_steps(fn, steps)
    method = resolve_method(method, p, shape)
    if method in ("polar", "newton_schulz") and p != 0.0:
        raise ValueError(f"{fn}: method={method!r} computes p = 0 only, got p = {p}; use method='tns' or 'auto'")
    if method == "tns":
        check_tns_fit(fn, p, eps, steps or TNS_DEFAULT_STEPS)
    return method


def _kernel(method: str, p: float, eps: float, precision: str, steps: int | None, overwrite: bool = False):
    """The (B, m, n) → (B, m, n) map for a resolved, validated method (float32, or bfloat16 for bf16 polar); the
    quintic methods and the identity take either orientation, the others m ≤ n."""
    if method in ("polar", "newton_schulz"):
        coefficients = "polar_express" if method == "polar" else "newton_schulz"
        return lambda X: polar_batched(X, steps or 5, coefficients, precision, overwrite)
    if method == "tns":
        fit = tns_weights(p, eps, steps or TNS_DEFAULT_STEPS)
        return lambda X: tns_batched(X, fit, precision, overwrite)
    if method == "eigh":
        return lambda X: eigh_batched(X, p, eps)
    if method == "svd":
        return lambda X: shape_svd(X, p, eps).float()
    if method == "taylor":
        return lambda X: taylor_batched(X, p, precision)
    if method == "dynmuon_published":
        return lambda X: dynmuon_published_batched(X, p, precision)
    # identity (p = 1): φ(s) = s exactly.
    return lambda X: normalized(X, torch.float32)
