"""The odd quintic matrix iteration shared by Newton–Schulz, Polar Express and TNS, computed in place.

One step maps X = U S Vᵀ to U q(S) Vᵀ with q(y) = a·y + b·y³ + c·y⁵:

    A = X Xᵀ;  B = b·A + c·A²;  X ← a·X + B·X          (X is m × n with m ≤ n: the Gram matrix on the short side)
    A = XᵀX;   B = b·A + c·A²;  X ← a·X + X·B          (a tall X, stepped from the right: the same map)

A tall matrix is stepped from the right as it is stored, never transposed: a transposed iterate made every
elementwise pass and the parameter update a strided copy (a 1344 × 512 TNS step cost 1.3x the 512 × 1344 one on
CPU). X is updated in place, block by block along its long side (column block j of X ← a·X + B·X depends only on
column block j of X; row blocks from the right), so a step needs A and B (m × m each) and one block, not a second
m × n iterate. Where A and B do not
fit the memory budget (:data:`WORKSPACE_LIMIT`, m close to n) the step skips B and applies A twice per block,
X_j ← a·X_j + A·(b·X_j + c·A·X_j): 3m²n multiply-adds instead of 2m²n + m³, chosen only where that is at most 5 %
more (:func:`uses_b`).

Precision modes (:mod:`.precision`; docs/shaping.md, "Range and precision"):
    "fp32"  – iterate and matmuls in float32;
    "mixed" – float32 iterate; A and B in bfloat16 (bf16 GEMMs with float32 accumulation); in the update product
              B·X the iterate is split into two bfloat16 halves, X ≈ hi + lo, so B·X = B·hi + B·lo keeps about
              16 mantissa bits: rounding X to bf16 there is what dominates the error (aX and B·X nearly cancel),
              and the split brings the error to within about the fp32 error on every spectrum we test;
    "bf16"  – bfloat16 iterate; the callers run the first steps in "mixed" (see :func:`step_precisions`);
    "bf16_all" – bfloat16 iterate in every step (torch.optim.Muon's precision): bf16 GEMMs only, the fastest mode
              where a bf16 GEMM cannot write a float32 result (CPUs, where "mixed" is emulated by float32 GEMMs); it
              loses the directions of a rank-deficient matrix that sit below bf16 rounding (docs/shaping.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
from torch import Tensor

from .precision import iterate_dtype

WORKSPACE_LIMIT = 2.5
"""Peak memory a step plans for, in multiples of a float32 (m, n) matrix (the shaping input's size), counting the
iterate, what the caller holds (TNS's accumulator), A, B and the column block."""
OP_SLACK = 0.1
"""Part of the budget left to buffers inside single ops (a CPU bf16 GEMM accumulates in a float32 buffer)."""
BLOCK = 1024
"""Widest column block of an in-place update."""
SMALL = 2**20
"""Matrices with fewer entries (4 MiB in float32) take the fastest plan whatever its memory: a whole-matrix update
without column blocks, whose copies cost 10-20 % of a step at these sizes (the TNS step of a 512 × 1344 matrix,
measured on CPU; DynMuon's optimizer step on the benchmark model went from 1.61x to 1.47x torch.optim.Muon's)."""
MIN_BLOCK = 256
"""Narrowest column block, even where the memory budget cannot be met (TNS on square matrices)."""
ROW_BLOCK = 256
"""Rows of a bfloat16 operand converted at a time by the CPU emulation of bf16 GEMMs."""

_HAS_OUT_DTYPE = "dtype" in torch.ops.aten.bmm.overloads()


def bf16_matmul(x: Tensor, y: Tensor, out: Tensor | None = None) -> Tensor:
    """x @ y with bfloat16 operands, float32 accumulation and a float32 result (the tensor-core pattern).

    On CUDA this is one bf16 GEMM with a float32 output; elsewhere it is emulated exactly by float32 GEMMs of the
    bf16-rounded operands, a block of x's rows at a time (so the float32 copies stay block-sized)."""
    x, y = x.to(torch.bfloat16), y.to(torch.bfloat16)
    if x.is_cuda and _HAS_OUT_DTYPE:
        result = torch.bmm(x, y, out_dtype=torch.float32)
        return result if out is None else out.copy_(result)
    return _emulated_matmul(x, y.float(), out)


def _emulated_matmul(x: Tensor, y32: Tensor, out: Tensor | None) -> Tensor:
    """x.float() @ y32 for a bfloat16 x, converting `ROW_BLOCK` rows of x at a time."""
    if out is None:
        out = torch.empty(*x.shape[:-1], y32.shape[-1], dtype=torch.float32, device=x.device)
    for rows in _blocks(x.shape[-2], ROW_BLOCK):
        torch.bmm(x[..., rows, :].float(), y32, out=out[..., rows, :])
    return out


def is_tall(X: Tensor) -> bool:
    """Whether a (..., r, c) matrix is stepped from the right (r > c: its Gram matrix XᵀX is the small one)."""
    return X.shape[-2] > X.shape[-1]


def long_block(X: Tensor, cut: slice, right: bool) -> Tensor:
    """The block `cut` of X along its long side: rows from the right (`right`), else columns."""
    return X[..., cut, :] if right else X[..., cut]


def _sides(X: Tensor, right: bool) -> tuple[int, int]:
    """(short, long) sides of X."""
    r, c = X.shape[-2:]
    return (c, r) if right else (r, c)


def _block_shape(X: Tensor, width: int, right: bool) -> tuple[int, ...]:
    return (*X.shape[:-2], width, X.shape[-1]) if right else (*X.shape[:-1], width)


def _gram(X: Tensor, right: bool) -> Tensor:
    """XᵀX from the right, else XXᵀ: the short side's Gram matrix."""
    return torch.bmm(X.mT, X) if right else torch.bmm(X, X.mT)


def _apply(S: Tensor, x: Tensor, right: bool, out: Tensor, beta: float | None = None) -> Tensor:
    """x·S from the right, else S·x (S symmetric), plus beta·x if given, into `out`."""
    left, other = (x, S) if right else (S, x)
    return torch.bmm(left, other, out=out) if beta is None else torch.baddbmm(x, left, other, beta=beta, out=out)


def split_matmul(B: Tensor, x: Tensor, out: Tensor, right: bool = False) -> Tensor:
    """B·x (x·B from the right) into float32 `out`, for a bfloat16 B and float32 x ≈ hi + lo split into two
    bfloat16 halves (about 16 mantissa bits of x survive). CUDA: two bf16 GEMMs with float32 output; elsewhere one
    float32 GEMM of hi + lo (exactly representable in float32), which is the same product up to float32 round-off."""
    hi = x.to(torch.bfloat16)
    if x.is_cuda and _HAS_OUT_DTYPE:
        lo = (x - hi.float()).to(torch.bfloat16)
        pairs = ((hi, B), (lo, B)) if right else ((B, hi), (B, lo))
        torch.bmm(*pairs[0], out_dtype=torch.float32, out=out)
        return out.add_(torch.bmm(*pairs[1], out_dtype=torch.float32))
    x16 = hi.float()
    del hi
    lo = torch.sub(x, x16, out=out)  # `out` is free until the product: it holds lo meanwhile
    lo.copy_(lo.to(torch.bfloat16))  # lo rounded to bf16, held in float32
    if right:  # B is m × m: its float32 copy is small
        return torch.bmm(x16.add_(lo), B.float(), out=out)
    return _emulated_matmul(B, x16.add_(lo), out)


def run_quintic(
    X: Tensor,
    coefficients: Iterable[tuple[float, float, float]],
    precisions: Sequence[str],
    held: float = 0.0,
    each_block: Callable[[int, slice, Tensor], None] | None = None,
) -> Tensor:
    """Apply one step per coefficient triple (a, b, c) to a (B, r, c) batch of either orientation — X is consumed:
    updated in place or replaced — calling ``each_block(k, cut, x)`` with every block x = X_k[..., cut] of step
    k = 1, 2, … along the long side (:func:`long_block`) as soon as it is computed (while it is in cache; TNS
    accumulates its sum there); returns the last iterate. `held`: memory the caller keeps alive meanwhile besides
    X, in multiples of a float32 X (it steers the memory plan of each step)."""
    for k, ((a, b, c), precision) in enumerate(zip(coefficients, precisions, strict=True), start=1):
        dtype = iterate_dtype(precision)
        if X.dtype != dtype:
            X = X.to(dtype)
        hook = None if each_block is None else (lambda cut, x, k=k: each_block(k, cut, x))
        X = quintic_step(X, a, b, c, precision, held, hook)
    return X


def quintic_step(
    X: Tensor,
    a: float,
    b: float,
    c: float,
    precision: str,
    held: float = 0.0,
    after_block: Callable[[slice, Tensor], None] | None = None,
) -> Tensor:
    """One step X ← a·X + (b·XXᵀ + c·(XXᵀ)²)·X on a (B, m, n) batch with m ≤ n — or X ← a·X + X·(b·XᵀX + c·(XᵀX)²)
    on a tall one (:func:`is_tall`) — in place block by block (or, where one block is all of X, into a new tensor,
    saving the copy back); returns the new X.

    Plan (:func:`uses_b`): with B = b·A + c·A² (2m²n + m³ multiply-adds) or with A applied twice per block (3m²n,
    no B). The plan depends on the shape and `held` only — never on whether X is the caller's input — so every
    path that shapes the same matrix computes the same bits. `after_block(cut, x)` sees each new block."""
    right = is_tall(X)
    m, n = _sides(X, right)
    if precision == "mixed":
        return _mixed_step(X, a, b, c, right, after_block)
    size = X.element_size() / 4  # in float32 units
    if uses_b(m, n, size, held):
        A = _gram(X, right)
        B = torch.baddbmm(A, A, A, beta=b, alpha=c)
        room = int((WORKSPACE_LIMIT - OP_SLACK - size - held - 2.0 * size * m / n) * n / _block_cost(X))
        width = n if m * n < SMALL else max(m, min(n, BLOCK, room))
        scratch = A if width <= m else None  # A is dead once B exists: its storage holds the blocks
        return _blockwise(
            X, right, width, scratch, X.dtype, lambda x, out: _apply(B, x, right, out, beta=a), after_block
        )
    A = _gram(X, right)
    room = int((WORKSPACE_LIMIT - OP_SLACK - size - held - size * m / n) * n / _block_cost(X))
    width = min(n, max(MIN_BLOCK, min(BLOCK, room)))
    scratch = torch.empty(_block_shape(X, width, right), dtype=X.dtype, device=X.device)
    for cut in _blocks(n, width):  # x ← a·x + A·(b·x + c·A·x): A twice instead of B once, x updated in place
        x = long_block(X, cut, right)
        t = _apply(A, x, right, _scratch(scratch, x, X.dtype))
        t.mul_(c).add_(x, alpha=b)
        if right:
            x.baddbmm_(t, A, beta=a)
        else:
            x.baddbmm_(A, t, beta=a)
        if after_block is not None:
            after_block(cut, x)
    return X


def uses_b(m: int, n: int, size: float = 1.0, held: float = 0.0) -> bool:
    """Whether a step on an iterate with short side m and long side n (`size`: bytes per entry ÷ 4) forms
    B = b·A + c·A².

    B is the faster plan (2m²n + m³ against 3m²n); it is taken when X, `held`, A and B fit :data:`WORKSPACE_LIMIT`,
    when the matrix is small, or when the plan without B would cost over 5 % more and B fits once X's own copy is
    left out (the optimizer hands its temporary over, so there X is no extra memory: spectral_power(overwrite=True))."""
    with_b = size + held + 2.0 * size * m / n
    if with_b <= WORKSPACE_LIMIT - OP_SLACK or m * n < SMALL:
        return True
    return 1.05 * (2.0 + m / n) < 3.0 and with_b - size <= WORKSPACE_LIMIT


def _mixed_step(X: Tensor, a: float, b: float, c: float, right: bool, after_block=None) -> Tensor:
    """The "mixed" step on a float32 X: A = hi·hiᵀ and B in bfloat16, X ← a·X + B·hi + B·lo block by block."""
    m, n = _sides(X, right)
    A = _bf16_gram(X, right)
    B = torch.baddbmm(A, A, A, beta=b, alpha=c)  # bf16 operands and result, float32 accumulation
    width = n if m * n < SMALL else min(n, MIN_BLOCK)
    scratch = A if width * 2 <= m else None  # A is dead once B exists: a float32 block fits in its bf16 storage
    return _blockwise(
        X, right, width, scratch, torch.float32,
        lambda x, out: split_matmul(B, x, out, right).add_(x, alpha=a), after_block,
    )  # fmt: skip


def _blockwise(
    X: Tensor, right: bool, width: int, scratch: Tensor | None, dtype: torch.dtype, update, after_block=None
) -> Tensor:
    """X[cut] ← update(X[cut]) for blocks `cut` of `width` along the long side; update(x, out) writes its result to
    `out` (carved from `scratch` if given), then ``after_block(cut, new block)``. Where one block is all of X the
    result is returned instead of copied back."""
    n = _sides(X, right)[1]
    if width >= n and scratch is None:
        out = torch.empty(X.shape, dtype=dtype, device=X.device)
        update(X, out)
        if after_block is not None:
            after_block(slice(0, n), out)
        return out
    if scratch is None:  # one block buffer for all blocks
        scratch = torch.empty(_block_shape(X, width, right), dtype=dtype, device=X.device)
    for cut in _blocks(n, width):
        x = long_block(X, cut, right)
        out = _scratch(scratch, x, dtype)
        update(x, out)
        x.copy_(out)
        if after_block is not None:
            after_block(cut, out)
    return X


def _bf16_gram(X: Tensor, right: bool = False) -> Tensor:
    """hi·hiᵀ (hiᵀ·hi from the right) rounded to bfloat16, hi = X rounded to bfloat16, accumulated in float32.
    CUDA: one bf16 GEMM; elsewhere float32 GEMMs over blocks of hi along the long side (block-sized copies instead
    of a bf16 copy of X)."""
    if X.is_cuda:
        return _gram(X.to(torch.bfloat16), right)
    m, n = _sides(X, right)
    A = torch.empty(*X.shape[:-2], m, m, dtype=torch.bfloat16, device=X.device)
    part = torch.empty(*X.shape[:-2], min(m, BLOCK // 2), m, dtype=torch.float32, device=X.device)
    for rows in _blocks(m, BLOCK // 2):  # a float32 row block of A at a time (the blocks of hi are re-rounded)
        acc = part[..., : rows.stop - rows.start, :].zero_()
        for cut in _blocks(n, n if m * n < SMALL else MIN_BLOCK):
            hi = long_block(X, cut, right).to(torch.bfloat16).float()
            hi = hi.mT if right else hi  # (m, block): a view
            acc.baddbmm_(hi[..., rows, :], hi.mT)
        A[..., rows, :] = acc
    return A


def _block_cost(X: Tensor) -> float:
    """Memory per column of a block, in float32 units of X's rows: the block, and for bf16 the float32 buffer a
    CPU bf16 GEMM accumulates in."""
    return 1.0 if X.dtype == torch.float32 else 1.5


def _blocks(n: int, width: int) -> list[slice]:
    return [slice(j, min(j + width, n)) for j in range(0, n, width)]


def _scratch(storage: Tensor, like: Tensor, dtype: torch.dtype) -> Tensor:
    """A contiguous tensor of `like`'s shape and `dtype`, carved from the front of `storage`."""
    return storage.view(-1).view(dtype)[: like.numel()].view(like.shape)
