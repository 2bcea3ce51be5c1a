"""Batches for the kernels: flatten batch dimensions to (B, r, c); the short-side kernels (eigh, the published
approximations) also get tall matrices transposed, so that they see (B, m, n) with m ≤ n. The quintic kernels
(Polar Express, Newton–Schulz, TNS) take either orientation as stored and step tall ones from the right."""

from __future__ import annotations

import math
from collections.abc import Callable

from torch import Tensor


def on_batches(M: Tensor, kernel: Callable[[Tensor], Tensor]) -> Tensor:
    """Apply `kernel` to M viewed as (B, r, c) and return the result in M's shape."""
    *batch, m, n = M.shape
    return kernel(M.reshape(math.prod(batch), m, n)).reshape(*batch, m, n)  # (not -1: ambiguous for an empty M)


def on_short_side_batches(M: Tensor, kernel: Callable[[Tensor], Tensor]) -> Tensor:
    """Apply `kernel` to M viewed as (B, m, n) with m ≤ n, and return the result in M's layout.

    Every shaping map commutes with transposition (shape(Mᵀ) = shape(M)ᵀ), so this only chooses the cheaper
    side for the Gram matrix XXᵀ (m × m).
    """
    if M.shape[-2] <= M.shape[-1]:
        return on_batches(M, kernel)
    return on_batches(M.mT, kernel).mT
