"""Named configurations of SpectralOptimizer. Each is SpectralOptimizer with different defaults, nothing more.

Muon          p = 0, Polar Express 5 steps in bf16 (the classic Muon cost), momentum first
MuonP         constant p (default 0.5), exact TNS / eigh shaping
DynMuon       p scheduled positive → mildly negative (default preset "dynmuon": logistic 0.1 → −0.1, τ = w = 0.04;
              the paper's 1.0 → −0.25 is preset "dynmuon_paper")
SpectralAdam  Adam's m̂/(√v̂ + ε) shaped with power p (default 0.5)
"""

from __future__ import annotations

from typing import Any

from .optimizer import SpectralOptimizer
from .schedules import PSpec

TORCH_MUON_PARITY: dict[str, Any] = {"method": "newton_schulz", "scale": "spectral", "nu": None, "precision": "bf16"}
"""Options that make :class:`Muon` step as ``torch.optim.Muon`` with its defaults (Keller Jordan's NS5 in bf16,
×√max(1, m/n), Nesterov ν = μ): ``Muon(params, lr, momentum=0.95, **TORCH_MUON_PARITY)``. On the command line:
``--optim muon --optim_args "method=newton_schulz,scale=spectral,nu=none"``."""


class Muon(SpectralOptimizer):
    """Muon: W ← W − lr·scale·polar(momentum). Defaults: Polar Express, 5 steps, precision "auto" (bf16 after a
    mixed start on CUDA, all-bf16 on CPU, as torch.optim.Muon); set method="newton_schulz" for Keller Jordan's
    coefficients, method="tns" or precision="fp32" for an exact polar factor."""

    def __init__(self, params: Any, lr: float = 1e-3, **kwargs: Any) -> None:
        kwargs.setdefault("method", "polar")
        super().__init__(params, lr, **kwargs)

    @classmethod
    def _check_preset(cls, arguments: Any) -> None:
        if arguments["p"] != 0.0:
            raise ValueError("Muon: p is fixed at 0; use MuonP or DynMuon for other powers")


class MuonP(SpectralOptimizer):
    """Muon^p: the momentum's U Σᵖ Vᵀ with a constant p (default 0.5)."""

    def __init__(self, params: Any, lr: float = 1e-3, *, p: float = 0.5, **kwargs: Any) -> None:
        super().__init__(params, lr, p=p, **kwargs)


class DynMuon(SpectralOptimizer):
    """DynMuon: p(t) from positive early to mildly negative late (default the "dynmuon" logistic schedule).
    Needs ``total_steps`` (or :meth:`set_total_steps`; the Trainer integration sets it)."""

    def __init__(self, params: Any, lr: float = 1e-3, *, p: PSpec = "dynmuon", **kwargs: Any) -> None:
        super().__init__(params, lr, p=p, **kwargs)


class SpectralAdam(SpectralOptimizer):
    """Spectral Adam: Adam's bias-corrected m̂/(√v̂ + ε) shaped to U Σᵖ Vᵀ (default p = 0.5)."""

    def __init__(self, params: Any, lr: float = 1e-3, *, p: PSpec = 0.5, **kwargs: Any) -> None:
        kwargs.setdefault("base", "adam")
        super().__init__(params, lr, p=p, **kwargs)


__all__ = ["TORCH_MUON_PARITY", "DynMuon", "Muon", "MuonP", "SpectralAdam"]
