"""Precision of the matmul shaping methods: the modes, the dtype each step iterates in, and what "auto" means.

"fp32"      float32 iterate and GEMMs
"mixed"     float32 iterate, bf16 GEMM operands with float32 accumulation (:mod:`.quintic`)
"bf16"      bf16 iterate after a few "mixed" steps (each method says how many)
"bf16_all"  bf16 iterate in every step (torch.optim.Muon's precision)
"auto"      by device and method (:func:`resolve_precision`)
"""

from __future__ import annotations

import torch

PRECISIONS = ("fp32", "mixed", "bf16", "bf16_all")
"""The concrete modes; ``"auto"`` resolves to one of them."""


def iterate_dtype(precision: str) -> torch.dtype:
    """dtype of the iterate X for a precision mode."""
    return torch.bfloat16 if precision in ("bf16", "bf16_all") else torch.float32


def step_precisions(precision: str, steps: int, mixed_steps: int) -> list[str]:
    """The precision of each step: precision="bf16" runs its first `mixed_steps` steps in "mixed" ("bf16_all" none).

    A bf16 iterate rounds X to 8 bits; early on, the small singular values are far below that rounding noise of
    the large ones and would be replaced by it (e.g. 108 % error at p = −0.5 on a rank-3 matrix). Once the first
    steps have lifted them, bf16 loses nothing measurable (docs/shaping.md, "Range and precision")."""
    if precision == "bf16_all":
        return ["bf16"] * steps
    if precision != "bf16":
        return [precision] * steps
    return ["mixed"] * min(mixed_steps, steps) + ["bf16"] * max(steps - mixed_steps, 0)


def resolve_precision(precision: str, device: torch.device, method: str = "auto") -> str:
    """The concrete mode of `precision` for a matrix on `device` shaped by `method` (other values pass through).

    "auto" on CUDA, where a bf16 GEMM writes float32 results at bf16 speed: "bf16" for Polar Express /
    Newton–Schulz (a mixed start, then bf16) and "mixed" for TNS. Elsewhere "bf16_all": CPUs have no bf16 GEMM
    with a float32 result, so "mixed" steps run as float32 GEMMs (2-4x slower than bf16 on CPUs with bf16
    instructions), and only all-bf16 shaping costs what torch.optim.Muon's bf16 Newton–Schulz costs."""
    if precision != "auto":
        return precision
    if device.type != "cuda":
        return "bf16_all"
    return "bf16" if method in ("polar", "newton_schulz") else "mixed"


def result_dtype(method: str, precision: str, device: torch.device) -> torch.dtype:
    """A dtype that holds `method`'s result exactly (spectral_power(out_dtype=None) gives its working dtype):
    bfloat16 for Polar Express / Newton–Schulz in bf16 or bf16_all and for TNS in bf16_all (its accumulator);
    float32 otherwise, "auto" included (it may resolve to the float64-exact eigh for small sides)."""
    concrete = resolve_precision(precision, device, method)
    polar = method in ("polar", "newton_schulz") and concrete in ("bf16", "bf16_all")
    tns = method == "tns" and concrete == "bf16_all"
    return torch.bfloat16 if polar or tns else torch.float32
