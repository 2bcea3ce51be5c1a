"""The odd quintic matrix iteration shared by Newton–Schulz, Polar Express and TNS.

One step maps X = U S Vᵀ to U q(S) Vᵀ with q(y) = a·y + b·y³ + c·y⁵:

    A = X Xᵀ;  X ← a·X + (b·A + c·A²)·X          (3 matmuls, short side first)

Precision modes (shaping.md §3):
    "fp32"  – iterate and matmuls in float32;
    "mixed" – float32 iterate and accumulator, bfloat16 GEMM operands with float32 accumulation (the
              tensor-core pattern). In the update product B·X the iterate is split into two bfloat16 halves,
              X ≈ hi + lo, so B·X = B·hi + B·lo keeps about 16 mantissa bits: rounding X to bf16 there is what
              dominates the error (aX and B·X nearly cancel), and the split brings the error to within about
              the fp32 error on every spectrum we test, at 3 instead of 2 skinny bf16 GEMMs per step;
    "bf16"  – bfloat16 iterate.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch
from torch import Tensor

PRECISIONS = ("fp32", "mixed", "bf16")


def iterate_dtype(precision: str) -> torch.dtype:
    """dtype of the iterate X for a precision mode."""
    return torch.bfloat16 if precision == "bf16" else torch.float32


_HAS_OUT_DTYPE = "dtype" in torch.ops.aten.bmm.overloads()


def bf16_matmul(x: Tensor, y: Tensor) -> Tensor:
    """x @ y with bfloat16 operands, float32 accumulation and a float32 result (the tensor-core pattern).

    On CUDA this is one bf16 GEMM with a float32 output; elsewhere it is emulated exactly by a float32 GEMM of
    the bf16-rounded operands.
    """
    x, y = x.to(torch.bfloat16), y.to(torch.bfloat16)
    if x.is_cuda and _HAS_OUT_DTYPE:
        return torch.bmm(x, y, out_dtype=torch.float32)
    return torch.bmm(x.float(), y.float())


def quintic_step(X: Tensor, a: float, b: float, c: float, precision: str) -> Tensor:
    """One step X ← a·X + (b·XXᵀ + c·(XXᵀ)²)·X on a (B, m, n) batch with m ≤ n."""
    if precision == "mixed":
        hi = X.to(torch.bfloat16)
        lo = (X - hi.float()).to(torch.bfloat16)
        A = bf16_matmul(hi, hi.mT)
        B = bf16_matmul(A, A).mul_(c).add_(A, alpha=b).to(torch.bfloat16)
        return bf16_matmul(B, hi).add_(bf16_matmul(B, lo)).add_(X, alpha=a)
    A = torch.bmm(X, X.mT)
    B = torch.baddbmm(A, A, A, beta=b, alpha=c)
    return torch.baddbmm(X, B, X, beta=a)


def quintic_iterates(X: Tensor, coefficients: Iterable[tuple[float, float, float]], precision: str) -> Iterator[Tensor]:
    """Yield X₁, X₂, … for successive coefficient triples (a, b, c)."""
    for a, b, c in coefficients:
        X = quintic_step(X, a, b, c, precision)
        yield X
