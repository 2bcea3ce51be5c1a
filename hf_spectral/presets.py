"""Named configurations of SpectralOptimizer. Each is SpectralOptimizer with different defaults, nothing more.

Muon          p = 0, Polar Express 5 steps in bf16 (the classic Muon cost), momentum first
MuonP         constant p (default 0.5), exact TNS / eigh shaping
DynMuon       p scheduled positive → mildly negative (default preset "dynmuon": logistic 0.1 → −0.1, τ = w = 0.04;
              the paper's 1.0 → −0.25 is preset "dynmuon_paper")
SpectralAdam  Adam's m̂/(√v̂ + ε) shaped with power p (default 0.5)
"""

from __future__ import annotations

from typing import Any

from .config import SpectralConfig as S
from .optimizer import SpectralOptimizer
from .schedules import PSpec

TORCH_MUON_PARITY: dict[str, Any] = {"method": "newton_schulz", "scale": "spectral", "nu": None, "precision": "bf16"}
"""Options that make :class:`Muon` step as ``torch.optim.Muon`` with its defaults (Keller Jordan's NS5 in bf16,
×√max(1, m/n), Nesterov ν = μ): ``Muon(params, lr, momentum=0.95, **TORCH_MUON_PARITY)``. On the command line:
``--optim muon --optim_args "method=newton_schulz,scale=spectral,nu=none"``."""


class Muon(SpectralOptimizer):
    """Muon: W ← W·(1 − lr·wd) − lr·scale·polar(D), D the Nesterov mix of the momentum (p = 0).

    Defaults: Polar Express, 5 steps, precision "auto" (bf16 after a mixed start on CUDA, all-bf16 on CPU, as
    torch.optim.Muon); method="newton_schulz" for Keller Jordan's coefficients, method="tns" or precision="fp32"
    for an exact polar factor. Every other :class:`SpectralOptimizer` argument is accepted by keyword."""

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        *,
        weight_decay: float = 0.0,
        momentum: float = S.momentum,
        nesterov: bool = S.nesterov,
        nu: float | None = S.nu,
        method: str = "polar",
        ns_steps: int | None = None,
        precision: str = S.precision,
        scale: str = S.scale,
        rms: float | str = S.rms,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            params, lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov, nu=nu, method=method,
            ns_steps=ns_steps, precision=precision, scale=scale, rms=rms, **kwargs,
        )  # fmt: skip

    @classmethod
    def _check_preset(cls, arguments: Any) -> None:
        if arguments["p"] != 0.0:
            raise ValueError("Muon: p is fixed at 0; use MuonP or DynMuon for other powers")


class MuonP(SpectralOptimizer):
    """Muon^p: the momentum direction's U Σᵖ Vᵀ with a constant p (default 0.5). Every other
    :class:`SpectralOptimizer` argument is accepted by keyword."""

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        *,
        p: float = 0.5,
        floor: float = S.floor,
        weight_decay: float = 0.0,
        momentum: float = S.momentum,
        nesterov: bool = S.nesterov,
        nu: float | None = S.nu,
        method: str = S.method,
        ns_steps: int | None = None,
        precision: str = S.precision,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            params, lr, p=p, floor=floor, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov, nu=nu,
            method=method, ns_steps=ns_steps, precision=precision, **kwargs,
        )  # fmt: skip


class DynMuon(SpectralOptimizer):
    """DynMuon: p(t) from positive early to mildly negative late (default the "dynmuon" logistic schedule,
    0.1 → −0.1). Needs ``total_steps`` (or :meth:`set_total_steps`; the Trainer integration sets it). Every other
    :class:`SpectralOptimizer` argument is accepted by keyword."""

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        *,
        p: PSpec = "dynmuon",
        total_steps: int | None = None,
        floor: float = S.floor,
        weight_decay: float = 0.0,
        momentum: float = S.momentum,
        nesterov: bool = S.nesterov,
        nu: float | None = S.nu,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            params, lr, p=p, total_steps=total_steps, floor=floor, weight_decay=weight_decay, momentum=momentum,
            nesterov=nesterov, nu=nu, **kwargs,
        )  # fmt: skip


class SpectralAdam(SpectralOptimizer):
    """Spectral Adam: Adam's bias-corrected m̂/(√v̂ + ε) shaped to U Σᵖ Vᵀ (default p = 0.5). Every other
    :class:`SpectralOptimizer` argument is accepted by keyword."""

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        *,
        p: PSpec = 0.5,
        floor: float = S.floor,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = S.betas,
        adam_eps: float = S.adam_eps,
        order: str = S.order,
        base: str = "adam",
        **kwargs: Any,
    ) -> None:
        super().__init__(
            params, lr, p=p, floor=floor, weight_decay=weight_decay, betas=betas, adam_eps=adam_eps, order=order,
            base=base, **kwargs,
        )  # fmt: skip


__all__ = ["TORCH_MUON_PARITY", "DynMuon", "Muon", "MuonP", "SpectralAdam"]
