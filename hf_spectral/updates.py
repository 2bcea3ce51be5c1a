"""Per-tensor update maths composed by SpectralOptimizer: first moments, Adam's RMS-normalised direction, the
matrix layout of a parameter, and the scaling of a shaped update. Pure functions of tensors and scalars (the
moment buffers are updated in place, as in torch.optim)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .config import SpectralConfig, optimizer_tns_steps
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


def spectral_update(
    weights: list[Tensor],
    grads: list[Tensor],
    states: list[dict[str, Tensor]],
    shape: Callable[[list[Tensor], bool], list[Tensor]],
    *,
    base: str,
    order: str,
    momentum: float,
    nu: float,
    betas: tuple[float, float],
    adam_eps: float,
    lr: float,
    weight_decay: float,
) -> None:
    """One spectral step on a group's tensors (moments and weights updated in place):

        base="momentum", order="momentum_first":  D = (1−ν)G + νB after B ← μB + (1−μ)G;  O = S(D)
        base="momentum", order="shape_first":     O = (1−ν)S(G) + νB after B ← μB + (1−μ)S(G)
        base="momentum", order="none":            O = S(G)
        base="adam":                              D = m̂/(√v̂ + ε) (order="none": m̂ = G);  O = S(D)
        W ← W·(1 − lr·wd) − lr·O

    `states[i]` holds ``momentum_buffer`` or ``exp_avg`` / ``exp_avg_sq`` / ``step`` as the base needs;
    ``shape(directions, private)`` is S (scaled shaped updates); `private`: the directions are temporaries of
    this step that the shaping may overwrite."""
    if base == "adam":
        directions = []
        for grad, state in zip(grads, states, strict=True):
            state["step"] += 1
            step = int(state["step"])
            directions.append(adam_direction(grad, state.get("exp_avg"), state["exp_avg_sq"], step, betas, adam_eps))
        updates = shape(directions, True)
    elif order == "momentum_first":
        buffers = [state["momentum_buffer"] for state in states]
        directions = [momentum_direction(g, b, momentum, nu) for g, b in zip(grads, buffers, strict=True)]
        updates = shape(directions, nu != 1.0)  # the Nesterov mix is a new tensor; B itself (ν = 1) is not
    else:
        updates = shape(grads, False)
        if order == "shape_first":
            updates = [momentum_direction(O.to(s["momentum_buffer"].dtype), s["momentum_buffer"], momentum, nu)
                       for O, s in zip(updates, states, strict=True)]  # fmt: skip
    for weight, update in zip(weights, updates, strict=True):
        if weight_decay:
            weight.mul_(1.0 - lr * weight_decay)
        weight.add_(update, alpha=-lr)


@dataclass(frozen=True)
class MatrixLayout:
    """How a parameter's update is cut into the matrices that get shaped.

    Tensors with more than two dimensions (conv kernels) are viewed as (shape[0], −1); a fused weight can be cut
    into row blocks (``split_rows``, e.g. Q, K, V of a fused nn.Linear) or column blocks (``split_cols``, e.g.
    GPT-2's transposed Conv1D ``c_attn``), each shaped on its own; a ``stacked`` (E, m, n) tensor (the fused
    experts of a mixture-of-experts layer) is E matrices of (m, n), and ``interleaved_cols=E`` makes column j part
    of matrix j mod E (PEFT's LoRA B of E experts), each shaped on its own.
    """

    shape: tuple[int, ...]
    split_rows: tuple[int, ...] | None = None
    split_cols: tuple[int, ...] | None = None
    stacked: bool = False
    interleaved_cols: int | None = None

    def matrices(self, t: Tensor) -> list[Tensor]:
        if self.stacked:
            return list(t.unbind(0))
        M = t.reshape(self.shape[0], self.cols)
        if self.interleaved_cols:
            return list(M.unflatten(1, (-1, self.interleaved_cols)).unbind(2))
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
        if self.stacked:
            return [(self.shape[1], self.shape[2])] * rows
        if self.interleaved_cols:
            return [(rows, cols // self.interleaved_cols)] * self.interleaved_cols
        if self.split_rows:
            return [(r, cols) for r in self.split_rows]
        if self.split_cols:
            return [(rows, c) for c in self.split_cols]
        return [(rows, cols)]

    def assemble(self, blocks: list[Tensor]) -> Tensor:
        if self.stacked:
            return torch.stack(blocks)
        if self.interleaved_cols:
            return torch.stack(blocks, dim=2).reshape(self.shape)
        if len(blocks) == 1:
            return blocks[0].reshape(self.shape)
        return torch.cat(blocks, dim=0 if self.split_rows else 1).reshape(self.shape)


@dataclass(frozen=True)
class ShapingSettings:
    """Everything needed to turn a batch of pre-shaping matrices into scaled updates at one step."""

    p: float
    floor: float = SpectralConfig.floor
    method: str = SpectralConfig.method
    precision: str = SpectralConfig.precision
    ns_steps: int | None = SpectralConfig.ns_steps
    scale: str = SpectralConfig.scale
    rms: float = 0.2
    """The update RMS of this step (the group's rms rule evaluated; 0.2 is Moonlight's constant)."""

    @classmethod
    def for_group(cls, group: Mapping[str, Any], p: float, rms: float) -> ShapingSettings:
        """The settings of a spectral param group at a step with power `p` and target update RMS `rms`."""
        return cls(p, group["floor"], group["method"], group["precision"], group["ns_steps"], group["scale"], rms)


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


def kernel_steps(settings: ShapingSettings, shape: tuple[int, ...]) -> int | None:
    """``steps`` for spectral_power: ``ns_steps`` if set, else :func:`optimizer_tns_steps` where the method is TNS
    (None: the kernel's own default, e.g. 5 for Polar Express)."""
    if settings.ns_steps is not None:
        return settings.ns_steps
    return (
        optimizer_tns_steps(settings.floor, settings.p)
        if resolve_method(settings.method, settings.p, shape) == "tns"
        else None
    )


def shape_and_scale(M: Tensor, settings: ShapingSettings, overwrite: bool = False) -> Tensor:
    """The scaled spectral update of a (..., m, n) batch: spectral_power(M, p) · scale_factor, in the shaping's
    working dtype (float32, or bfloat16 for bf16 Polar Express / Newton–Schulz). `overwrite`: M is a temporary
    whose memory the shaping may reuse (its contents are then lost)."""
    D_norm = frobenius_norm(M) if settings.scale == "preserve" else None  # before M may be overwritten
    O = spectral_power(
        M,
        settings.p,
        eps=settings.floor,
        method=settings.method,
        precision=settings.precision,
        steps=kernel_steps(settings, tuple(M.shape)),
        check_finite=False,
        out_dtype=None,  # bf16 polar stays bf16: the scaling and the parameter update read half the bytes
        overwrite=overwrite,
    )
    factor = scale_factor(O, D_norm, settings.scale, settings.rms)
    if isinstance(factor, float):
        return O if factor == 1.0 else O.mul_(factor)
    return O.mul_(factor.to(O.dtype))  # same dtype: an in-place mixed-dtype multiply takes a slow path
