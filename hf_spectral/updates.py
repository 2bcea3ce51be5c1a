"""Per-tensor update maths composed by SpectralOptimizer: first moments, Adam's RMS-normalised direction, the
matrix layout of a parameter, and the scaling of a shaped update. Pure functions of tensors and scalars (the
moment buffers are updated in place, as in torch.optim)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .shaping import resolve_method, spectral_power
from .shaping.target import power_of_two_scale


def momentum_direction(grad: Tensor, buf: Tensor, momentum: float, nu: float) -> Tensor:
    """B ← μB + (1−μ)G; returns (1−ν)G + νB. The buffer is updated in place.

    ν = μ is Nesterov's look-ahead as in Keller Jordan's Muon and torch.optim.Muon; ν = 1 is plain momentum (B);
    other ν are quasi-hyperbolic momentum (Ma & Yarats, 2019), which weights the fresh gradient more."""
    buf.lerp_(grad, 1.0 - momentum)
    return buf if nu == 1.0 else grad.lerp(buf, nu)


def adamw_update_rms(step: int, beta1: float) -> float:
    """RMS of AdamW's update m̂/√v̂ at optimizer step `step` (≥ 1) when the gradient entries are zero-mean noise:

        ρ(t) = √((1 − β₁)(1 + β₁ᵗ) / ((1 + β₁)(1 − β₁ᵗ)))

    (the variance of a bias-corrected EMA of white noise over its second moment). ρ(1) = 1 (Adam's first step is
    sign(G)); ρ(t) → √((1 − β₁)/(1 + β₁)) = 0.229 for β₁ = 0.9, the steady state behind Moonlight's 0.2."""
    decay = beta1**step
    return math.sqrt((1.0 - beta1) * (1.0 + decay) / ((1.0 + beta1) * (1.0 - decay)))


def adam_direction(
    grad: Tensor, exp_avg: Tensor | None, exp_avg_sq: Tensor, step: int, betas: tuple[float, float], eps: float
) -> Tensor:
    """Adam's m̂/(√v̂ + ε) with bias correction at `step` (≥ 1); exp_avg=None means β₁ = 0 (m̂ = G)."""
    beta1, beta2 = betas
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
    denom = exp_avg_sq.div(1.0 - beta2**step).sqrt_().add_(eps)
    if exp_avg is None:
        return grad / denom
    exp_avg.lerp_(grad, 1.0 - beta1)
    return exp_avg.div(1.0 - beta1**step).div_(denom)


@dataclass(frozen=True)
class MatrixLayout:
    """How a parameter's update is cut into the matrices that get shaped.

    Tensors with more than two dimensions (conv kernels) are viewed as (shape[0], −1); a fused weight can be cut
    into row blocks (``split_rows``, e.g. Q, K, V of a fused nn.Linear) or column blocks (``split_cols``, e.g.
    GPT-2's transposed Conv1D ``c_attn``), each shaped on its own.
    """

    shape: tuple[int, ...]
    split_rows: tuple[int, ...] | None = None
    split_cols: tuple[int, ...] | None = None

    def matrices(self, t: Tensor) -> list[Tensor]:
        M = t.reshape(self.shape[0], self.cols)
        if self.split_rows:
            return list(M.split(list(self.split_rows), dim=0))
        if self.split_cols:
            return list(M.split(list(self.split_cols), dim=1))
        return [M]

    @property
    def cols(self) -> int:
        """Columns of the (shape[0], −1) view."""
        return int(torch.Size(self.shape[1:]).numel())

    def block_shapes(self) -> list[tuple[int, int]]:
        """Shapes of the matrices that get shaped."""
        rows, cols = self.shape[0], self.cols
        if self.split_rows:
            return [(r, cols) for r in self.split_rows]
        if self.split_cols:
            return [(rows, c) for c in self.split_cols]
        return [(rows, cols)]

    def assemble(self, blocks: list[Tensor]) -> Tensor:
        if len(blocks) == 1:
            return blocks[0].reshape(self.shape)
        return torch.cat(blocks, dim=0 if self.split_rows else 1).reshape(self.shape)


OPTIMIZER_EPS = 3e-3
"""The optimizers' ε floor of φ (spectral_power's own default, 1e-3, is the exact kernel's). A larger ε lets fewer
TNS steps fit φ (7 steps at 3e-3, fit within 2.5 % for p in [-0.5, 1]) and damps the bf16 rounding noise that φ
amplifies below it (by ε^(p-1)); too large an ε suppresses the weak directions of spread momentum spectra: 1e-2
lost 0.03 nats of train loss on the quality fine-tune, 3e-3 and 1e-3 tie (docs/shaping.md, "What training needs")."""
TNS_STEPS_AT_EPS_1E_2 = 6
"""TNS steps that fit φ at ε = 1e-2; :func:`optimizer_tns_steps` adds one per factor √10 below."""


def optimizer_tns_steps(eps: float) -> int:
    """TNS steps for the optimizers' ε when ``ns_steps`` is not set: 6 at ε ≥ 1e-2 and one more per factor √10
    below (7 at 3e-3, the default; 8 at 1e-3, spectral_power's default): each step lifts the smallest singular
    values by ~2.5-3, so a lower floor needs more steps for the same fit."""
    return TNS_STEPS_AT_EPS_1E_2 + max(0, round(2.0 * math.log10(1e-2 / eps)))


@dataclass(frozen=True)
class ShapingSettings:
    """Everything needed to turn a batch of pre-shaping matrices into scaled updates at one step."""

    p: float
    eps: float = OPTIMIZER_EPS
    method: str = "auto"
    precision: str = "auto"
    ns_steps: int | None = None
    scale: str = "rms"
    rms: float = 0.2


def _frobenius(X: Tensor) -> Tensor:
    """‖X‖_F per matrix as float32 (reductions accumulate in float32 whatever X's dtype)."""
    return torch.linalg.vector_norm(X, dim=(-2, -1), keepdim=True).float()


def frobenius_norm(D: Tensor) -> Tensor:
    """‖D‖_F per matrix as float32 for any finite D: ‖D·2^(−e)‖_F·2^e with 2^(−e) from max|D| (exact scaling), so
    entries around 1e20, whose squares overflow float32, give their norm (inf only if the norm itself is)."""
    s = power_of_two_scale(D)
    return (_frobenius(D * s).to(s.dtype) / s).float()


def scale_factor(O: Tensor, D_norm: Tensor | None, scale: str, rms: float) -> Tensor | float:
    """Multiplier for the shaped (..., m, n) update O = spectral_power(D, p), with D_norm = ‖D‖_F per matrix
    (:func:`frobenius_norm`; only scale="preserve" reads it).

    rms:      rms·√(mn)/‖O‖_F — the update's RMS equals `rms` (0.2 ≈ AdamW's typical update RMS; Moonlight's
              0.2·√max(m, n) for the polar factor, generalised to any p). Independent of D's magnitude.
    spectral: √max(1, m/n) — Keller Jordan's Muon convention (torch.optim.Muon's "original").
    preserve: ‖D‖_F/‖O‖_F — keep the pre-shaping update's Frobenius norm, so p = 1 is exactly the base optimizer
              (SGD with momentum, or AdamW for base="adam"); the update then scales with D.
    none:     1 (the scale-free U φ(Σ/ν) Vᵀ itself).
    A zero update stays zero.
    """
    m, n = O.shape[-2:]
    if scale in ("rms", "preserve"):
        norm = _frobenius(O)
        target = rms * math.sqrt(m * n) if scale == "rms" else D_norm
        return torch.where(norm > 0, target / norm, torch.zeros_like(norm))
    if scale == "spectral":
        return math.sqrt(max(1.0, m / n))
    return 1.0


def shaped_dtype(settings: ShapingSettings, device: torch.device) -> torch.dtype:
    """dtype of shape_and_scale's result: bfloat16 for Polar Express / Newton–Schulz in bf16, else float32."""
    polar = settings.method in ("polar", "newton_schulz")
    bf16 = polar and resolve_precision(settings.precision, device, settings.method) in ("bf16", "bf16_all")
    return torch.bfloat16 if bf16 else torch.float32


def resolve_precision(precision: str, device: torch.device, method: str = "auto") -> str:
    """The optimizer's precision="auto"; other values pass through.

    On CUDA, where a bf16 GEMM writes float32 results at bf16 speed: "bf16" for Polar Express / Newton–Schulz
    (a mixed start, then bf16) and "mixed" for TNS. Elsewhere "bf16_all": CPUs have no bf16 GEMM with a float32
    result, so "mixed" steps run as float32 GEMMs (2-4x slower than bf16 on CPUs with bf16 instructions), and
    only all-bf16 shaping costs what torch.optim.Muon's bf16 Newton–Schulz costs."""
    if precision != "auto":
        return precision
    if device.type != "cuda":
        return "bf16_all"
    return "bf16" if method in ("polar", "newton_schulz") else "mixed"


def kernel_steps(settings: ShapingSettings, shape: tuple[int, ...]) -> int | None:
    """``steps`` for spectral_power: ``ns_steps`` if set, else :func:`optimizer_tns_steps` where the method is TNS
    (None: the kernel's own default, e.g. 5 for Polar Express)."""
    if settings.ns_steps is not None:
        return settings.ns_steps
    return optimizer_tns_steps(settings.eps) if resolve_method(settings.method, settings.p, shape) == "tns" else None


def shape_and_scale(M: Tensor, settings: ShapingSettings, overwrite: bool = False) -> Tensor:
    """The scaled spectral update of a (..., m, n) batch: spectral_power(M, p) · scale_factor, in the shaping's
    working dtype (float32, or bfloat16 for bf16 Polar Express / Newton–Schulz). `overwrite`: M is a temporary
    whose memory the shaping may reuse (its contents are then lost)."""
    D_norm = frobenius_norm(M) if settings.scale == "preserve" else None  # before M may be overwritten
    O = spectral_power(
        M,
        settings.p,
        eps=settings.eps,
        method=settings.method,
        precision=resolve_precision(settings.precision, M.device, settings.method),
        steps=kernel_steps(settings, tuple(M.shape)),
        check_finite=False,
        out_dtype=None,  # bf16 polar stays bf16: the scaling and the parameter update read half the bytes
        overwrite=overwrite,
    )
    factor = scale_factor(O, D_norm, settings.scale, settings.rms)
    if isinstance(factor, float):
        return O if factor == 1.0 else O.mul_(factor)
    return O.mul_(factor.to(O.dtype))  # same dtype: an in-place mixed-dtype multiply takes a slow path
