"""Test matrices with prescribed spectra and the error measures of shaping.md §6 (float64 references)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from hf_spectral.shaping import phi, shape_svd

SPECTRA = ("gaussian", "power_1e2", "power_1e4", "power_1e6", "lowrank16")
WELL_CONDITIONED = ("gaussian", "power_1e2")
P_VALUES = (-0.5, -0.3, -0.1, 0.0, 0.25, 0.5, 0.75, 1.0)


def _orthonormal(rows: int, cols: int, g: torch.Generator) -> Tensor:
    q, r = torch.linalg.qr(torch.randn(rows, cols, dtype=torch.float64, generator=g))
    return q * torch.sign(torch.diagonal(r)).unsqueeze(0)


def _one_matrix(m: int, n: int, spectrum: str, g: torch.Generator) -> Tensor:
    if spectrum == "gaussian":
        return torch.randn(m, n, dtype=torch.float64, generator=g)
    r = min(m, n)
    i = torch.arange(1, r + 1, dtype=torch.float64)
    if spectrum.startswith("power_"):
        kappa = float(spectrum.removeprefix("power_"))
        sigma = i.pow(-math.log(kappa) / math.log(r)) if r > 1 else torch.ones(1, dtype=torch.float64)
    elif spectrum == "lowrank16":
        sigma = torch.where(i <= 16, 1.0 + 0.1 * torch.rand(r, dtype=torch.float64, generator=g), 1e-3)
    else:
        raise ValueError(spectrum)
    return (_orthonormal(m, r, g) * sigma) @ _orthonormal(n, r, g).T


def make_matrix(shape: tuple[int, ...], spectrum: str, seed: int = 0) -> Tensor:
    """A float32 (..., m, n) tensor whose matrices have the named spectrum (random singular vectors)."""
    g = torch.Generator().manual_seed(seed)
    *batch, m, n = shape
    mats = [_one_matrix(m, n, spectrum, g) for _ in range(math.prod(batch))]
    return torch.stack(mats).reshape(shape).float()


def relative_error(Y: Tensor, reference: Tensor) -> float:
    """Scale-free relative Frobenius error ‖Y − Y*‖_F / ‖Y*‖_F over the whole (batched) tensor."""
    reference = reference.double()
    return float((Y.double() - reference).norm() / reference.norm())


def singular_value_errors(M: Tensor, Y: Tensor, p: float, eps: float) -> tuple[Tensor, Tensor]:
    """Per-singular-value relative errors |uᵢᵀ Y vᵢ − φ(sᵢ)| / φ(sᵢ) and the normalised sᵢ, in M's SVD basis."""
    M64 = M.double()
    U, S, Vh = torch.linalg.svd(M64, full_matrices=False)
    s = S / torch.linalg.vector_norm(S, dim=-1, keepdim=True)
    achieved = torch.diagonal(U.mT @ Y.double() @ Vh.mT, dim1=-2, dim2=-1)
    target = phi(s, p, eps)
    return (achieved - target).abs() / target, s


def bf16_floor(M: Tensor, p: float, eps: float) -> float:
    """Error of the exact shaping of the bf16-rounded M: what no bf16 computation can beat."""
    return relative_error(shape_svd(M.bfloat16(), p, eps), shape_svd(M, p, eps))


def unit_scale(M: Tensor) -> Tensor:
    """M / max|M| in float64 (per matrix; zeros stay zeros): the same spectral target, without overflow in norms of
    matrices near the largest float64."""
    M64 = M.double()
    amax = M64.abs().amax(dim=(-2, -1), keepdim=True)
    return M64 / torch.where(amax > 0, amax, torch.ones_like(amax))
