"""Short side first: flatten batch dimensions and transpose tall matrices, so every kernel sees (B, m, n), m ≤ n."""

from __future__ import annotations

import math
from collections.abc import Callable

from torch import Tensor


def on_short_side_batches(M: Tensor, kernel: Callable[[Tensor], Tensor]) -> Tensor:
    """Apply `kernel` to M viewed as (B, m, n) with m ≤ n, and return the result in M's layout.

    Every shaping map commutes with transposition (shape(Mᵀ) = shape(M)ᵀ), so this only chooses the cheaper
    side for the Gram matrix XXᵀ (m × m).
    """
    *batch, m, n = M.shape
    X = M.reshape(math.prod(batch), m, n)  # (not -1: ambiguous for an empty M)
    tall = m > n
    if tall:
        X = X.mT
    Y = kernel(X)
    if tall:
        Y = Y.mT
    return Y.reshape(*batch, m, n)
