"""spectral_power against the float64 SVD target, with the tolerances of shaping.md §6."""

from __future__ import annotations

import pytest
import torch
from spectra import (
    P_VALUES,
    SPECTRA,
    WELL_CONDITIONED,
    bf16_floor,
    make_matrix,
    relative_error,
    singular_value_errors,
)

from hf_spectral import polar_express, shape_svd, spectral_power

EPS = 1e-3
FP32_FROBENIUS = 2e-2
FP32_PER_SINGULAR_VALUE = 3e-2

# square, wide, tall, batched; LoRA factors r × d in both orientations
SHAPES = [(128, 128), (96, 320), (320, 96), (3, 48, 160), (16, 4096), (4096, 16)]
LORA_SHAPES = [(16, 4096), (4096, 16)]


def _check_fp32(M, Y, p, label):
    err = relative_error(Y, shape_svd(M, p, EPS))
    assert err <= FP32_FROBENIUS, f"{label} p={p}: relative Frobenius error {err:.4f} > {FP32_FROBENIUS}"
    per_sv, s = singular_value_errors(M, Y, p, EPS)
    worst = float(per_sv[s >= EPS].max())
    assert worst <= FP32_PER_SINGULAR_VALUE, f"{label} p={p}: singular value error {worst:.4f}"


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("spectrum", SPECTRA)
@pytest.mark.parametrize("method", ["tns", "auto"])
def test_fp32_matches_svd_target(method, spectrum, shape):
    M = make_matrix(shape, spectrum, seed=1)
    for p in P_VALUES:
        Y = spectral_power(M, p, eps=EPS, method=method)
        assert Y.dtype == torch.float32 and Y.shape == M.shape
        _check_fp32(M, Y, p, f"{method} {spectrum} {shape}")


@pytest.mark.parametrize("shape", [*LORA_SHAPES, (64, 256)], ids=str)
@pytest.mark.parametrize("spectrum", SPECTRA)
def test_eigh_is_exact(spectrum, shape):
    M = make_matrix(shape, spectrum, seed=2)
    for p in P_VALUES:
        err = relative_error(spectral_power(M, p, eps=EPS, method="eigh"), shape_svd(M, p, EPS))
        assert err <= 1e-5, f"eigh {spectrum} {shape} p={p}: {err:.2e}"


@pytest.mark.parametrize("precision", ["mixed", "bf16"])
@pytest.mark.parametrize("spectrum", SPECTRA)
def test_low_precision_within_bf16_floor(precision, spectrum):
    """Any spectrum: error ≤ 2.5 × (error of the exact shaping of the bf16-rounded M) + 0.02."""
    M = make_matrix((96, 256), spectrum, seed=3)
    for p in P_VALUES:
        err = relative_error(spectral_power(M, p, eps=EPS, method="tns", precision=precision), shape_svd(M, p, EPS))
        bound = 2.5 * bf16_floor(M, p, EPS) + 0.02
        assert err <= bound, f"{precision} {spectrum} p={p}: {err:.4f} > {bound:.4f}"


@pytest.mark.parametrize("precision,bound", [("mixed", 2e-2), ("bf16", 5e-2)])
@pytest.mark.parametrize("spectrum", WELL_CONDITIONED)
def test_low_precision_well_conditioned(precision, bound, spectrum):
    """Absolute bounds of shaping.md §6 on well-conditioned spectra, over the p range they were measured on
    (p ∈ [−0.3, 0.75]); p = −0.5 is covered by the floor-relative test above."""
    M = make_matrix((128, 384), spectrum, seed=4)
    for p in [p for p in P_VALUES if -0.3 <= p <= 0.75]:
        err = relative_error(spectral_power(M, p, eps=EPS, method="tns", precision=precision), shape_svd(M, p, EPS))
        assert err <= bound, f"{precision} {spectrum} p={p}: {err:.4f} > {bound}"


@pytest.mark.parametrize("precision", ["fp32", "mixed", "bf16"])
@pytest.mark.parametrize("coefficients", ["polar_express", "newton_schulz"])
@pytest.mark.parametrize("spectrum", SPECTRA)
def test_polar_singular_values(spectrum, coefficients, precision):
    """Polar Express keeps every singular value with σ ≥ 1e-2·ν in [0.7, 1.2]; Keller's NS5 in [0.45, 1.25]."""
    low, high = (0.7, 1.2) if coefficients == "polar_express" else (0.45, 1.25)
    M = make_matrix((96, 256), spectrum, seed=5)
    Y = polar_express(M, coefficients=coefficients, precision=precision)
    _, S, _ = torch.linalg.svd(M.double(), full_matrices=False)
    U, _, Vh = torch.linalg.svd(M.double(), full_matrices=False)
    achieved = torch.diagonal(U.T @ Y.double() @ Vh.T)
    mask = 1e-2 * S.norm() <= S
    assert mask.any()
    lo, hi = float(achieved[mask].min()), float(achieved[mask].max())
    assert low <= lo and hi <= high, f"singular values in [{lo:.3f}, {hi:.3f}], expected [{low}, {high}]"


def test_polar_method_matches_polar_express():
    M = make_matrix((64, 200), "gaussian", seed=6)
    torch.testing.assert_close(spectral_power(M, 0.0, method="polar"), polar_express(M))
    torch.testing.assert_close(
        spectral_power(M, 0.0, method="newton_schulz"), polar_express(M, coefficients="newton_schulz")
    )


@pytest.mark.slow
@pytest.mark.parametrize("shape", [(768, 768), (1024, 4096), (16, 4096)], ids=str)
@pytest.mark.parametrize("spectrum", ["gaussian", "power_1e6"])
def test_fp32_realistic_shapes(spectrum, shape):
    M = make_matrix(shape, spectrum, seed=7)
    for p in (-0.3, 0.0, 0.5):
        _check_fp32(M, spectral_power(M, p, eps=EPS), p, f"auto {spectrum} {shape}")
