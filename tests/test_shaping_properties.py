"""Structural properties of spectral_power and its argument checking."""

from __future__ import annotations

import pytest
import torch
from spectra import make_matrix, relative_error

from hf_spectral import shape_svd, spectral_power, tns_weights
from hf_spectral.shaping import EIGH_MAX_SIDE, resolve_method

METHODS_ANY_P = ["tns", "eigh", "svd", "auto"]


def _orthogonal(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, dtype=torch.float64, generator=g))
    return q.float()


@pytest.mark.parametrize("method", METHODS_ANY_P)
@pytest.mark.parametrize("p", [-0.3, 0.0, 0.5])
def test_odd_in_M(method, p):
    M = make_matrix((40, 72), "power_1e2", seed=1)
    torch.testing.assert_close(spectral_power(-M, p, method=method), -spectral_power(M, p, method=method))


@pytest.mark.parametrize("method", METHODS_ANY_P)
@pytest.mark.parametrize("p", [-0.3, 0.0, 0.5])
def test_equivariant_under_orthogonal_rotations(method, p):
    """shape(Q₁ M Q₂ᵀ) = Q₁ shape(M) Q₂ᵀ for orthogonal Q₁, Q₂."""
    M = make_matrix((40, 72), "power_1e2", seed=2)
    Q1, Q2 = _orthogonal(40, 3), _orthogonal(72, 4)
    rotated = spectral_power(Q1 @ M @ Q2.T, p, method=method)
    assert relative_error(rotated, Q1 @ spectral_power(M, p, method=method) @ Q2.T) < 2e-4


@pytest.mark.parametrize("method", [*METHODS_ANY_P, "polar", "newton_schulz"])
def test_transpose_consistent(method):
    p = 0.0 if method in ("polar", "newton_schulz") else 0.4
    M = make_matrix((30, 90), "gaussian", seed=5)
    torch.testing.assert_close(spectral_power(M.T, p, method=method), spectral_power(M, p, method=method).T)


@pytest.mark.parametrize("precision", ["fp32", "mixed", "bf16", "bf16_all"])
@pytest.mark.parametrize("shape", [(1100, 1024), (2400, 440)], ids=str)
def test_tall_matrices_stepped_from_the_right_match_the_transposed_wide_ones(shape, precision):
    """The quintic kernels step a tall matrix from the right (XᵀX, X·B) as stored: the result is the wide
    matrix's result transposed, up to the precision's rounding, in each plan — 1100 × 1024 runs without B in
    column / row blocks, 2400 × 440 with B in blocks (both above quintic.SMALL)."""
    M = make_matrix(shape, "power_1e2", seed=7)
    tolerance = 1e-5 if precision == "fp32" else 2e-2  # (other precisions: other GEMM orders round differently)
    for method, p in (("tns", -0.2), ("polar", 0.0)):
        tall = spectral_power(M, p, method=method, precision=precision)
        wide = spectral_power(M.T.contiguous(), p, method=method, precision=precision)
        assert relative_error(tall, wide.T) < tolerance, (method, relative_error(tall, wide.T))
        assert relative_error(tall.double(), shape_svd(M, p)) < (0.03 if method == "tns" else 0.15)  # (PE-5: ±15 %)


@pytest.mark.parametrize("method", ["tns", "eigh"])
def test_continuous_in_p_across_zero(method):
    """No jump at p = 0: the change shrinks with the step in p, and the TNS weights move continuously."""
    M = make_matrix((48, 96), "power_1e4", seed=6)
    gaps = []
    for delta in (1e-2, 1e-3, 1e-4):
        above, below = spectral_power(M, delta, method=method), spectral_power(M, -delta, method=method)
        gaps.append(relative_error(above, below))
    assert gaps[0] < 0.2 and gaps[1] < 0.02 and gaps[2] < 0.002, gaps
    w_above, w_below = (torch.tensor(tns_weights(d).weights) for d in (1e-4, -1e-4))
    assert float((w_above - w_below).abs().max()) < 1e-2


@pytest.mark.parametrize("method", [*METHODS_ANY_P, "polar", "newton_schulz"])
@pytest.mark.parametrize("shape", [(8, 12), (2, 100, 70)], ids=str)
def test_zero_matrix_gives_zeros(method, shape):
    p = 0.0 if method in ("polar", "newton_schulz") else -0.3
    Y = spectral_power(torch.zeros(shape), p, method=method)
    assert torch.equal(Y, torch.zeros(shape))


@pytest.mark.parametrize("method", METHODS_ANY_P)
@pytest.mark.parametrize("p", [-0.5, 0.0, 0.75])
def test_rank_one(method, p):
    """M = u vᵀ has s = 1: the result is φ(1)·u vᵀ/(‖u‖‖v‖), φ(1) = (1 + ε²)^((p−1)/2)."""
    g = torch.Generator().manual_seed(7)
    u = torch.randn(70, 1, generator=g, dtype=torch.float64)
    v = torch.randn(1, 150, generator=g, dtype=torch.float64)
    M = 3.0 * u @ v  # float64, so the null space holds ~1e-16, not float32's ~1e-7 that φ would amplify
    expected = (1 + 1e-6) ** ((p - 1) / 2) * M / M.norm()
    exact = resolve_method(method, p, tuple(M.shape)) in ("eigh", "svd", "identity")
    tolerance = 1e-5 if exact else 2e-2  # TNS: its scalar fit error at s = 1 (≤ 1.8 % on p ∈ [−0.5, 1])
    assert relative_error(spectral_power(M, p, method=method), expected) < tolerance


def test_scale_free():
    M = make_matrix((32, 64), "gaussian", seed=8)
    torch.testing.assert_close(spectral_power(1e6 * M, 0.3), spectral_power(M, 0.3), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(spectral_power(1e-6 * M, 0.3), spectral_power(M, 0.3), rtol=1e-5, atol=1e-6)


def test_identity_at_p_one():
    M = make_matrix((100, 300), "gaussian", seed=9)
    torch.testing.assert_close(spectral_power(M, 1.0), M / M.norm())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
def test_any_float_dtype_in_float32_out(dtype):
    M = make_matrix((24, 80), "gaussian", seed=10).to(dtype)
    Y = spectral_power(M, 0.5)
    assert Y.dtype == torch.float32
    assert relative_error(Y, shape_svd(M, 0.5)) < 2e-2


def test_batched_equals_one_by_one():
    M = make_matrix((2, 3, 40, 96), "power_1e2", seed=11)
    Y = spectral_power(M, 0.25, method="tns")
    for i in range(2):
        for j in range(3):
            torch.testing.assert_close(Y[i, j], spectral_power(M[i, j], 0.25, method="tns"), rtol=1e-4, atol=1e-5)


def test_empty_matrix():
    assert spectral_power(torch.zeros(0, 5), 0.5).shape == (0, 5)


def test_auto_method_choice():
    assert resolve_method("auto", 0.5, (16, 4096)) == "eigh"
    assert resolve_method("auto", 0.5, (4096, 16)) == "eigh"
    assert resolve_method("auto", 0.5, (EIGH_MAX_SIDE + 1, 4096)) == "tns"
    assert resolve_method("auto", 0.5, (768, 768)) == "tns"
    assert resolve_method("auto", 1.0, (768, 768)) == "identity"
    assert resolve_method("tns", 0.5, (16, 4096)) == "tns"


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_entries_raise(bad):
    M = torch.randn(10, 20)
    M[3, 4] = bad
    with pytest.raises(ValueError, match="NaN or Inf"):
        spectral_power(M, 0.5)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"p": 3.0}, r"p must be in \[-1.0, 2.0\]"),
        ({"p": float("nan")}, "p must be a finite real number"),
        ({"p": 0.5, "eps": 0.0}, r"eps must be in \(0.0, 1.0\]"),
        ({"p": 0.5, "eps": -1e-3}, "eps must be in"),
        ({"p": 0.5, "method": "qr"}, "method must be one of"),
        ({"p": 0.5, "precision": "fp8"}, "precision must be one of"),
        ({"p": 0.5, "steps": 0}, r"steps must be an integer in \[1, 100\]"),
        ({"p": 0.5, "method": "polar"}, "computes p = 0 only"),
        ({"p": -0.9, "method": "tns"}, "cannot reach p = -0.9"),
        ({"p": 0.0, "method": "tns", "eps": 1e-5}, "eps >= 1e-3"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        spectral_power(torch.randn(8, 16), **kwargs)


def test_non_tensor_and_integer_inputs_raise():
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        spectral_power([[1.0, 2.0]], 0.5)
    with pytest.raises(TypeError, match="floating-point"):
        spectral_power(torch.ones(3, 4, dtype=torch.int64), 0.5)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        spectral_power(torch.ones(4), 0.5)


def test_exact_methods_accept_p_outside_tns_range():
    M = make_matrix((16, 64), "gaussian", seed=12)
    assert relative_error(spectral_power(M, -0.9, method="eigh"), shape_svd(M, -0.9)) < 1e-5
    assert relative_error(spectral_power(M, -0.9), shape_svd(M, -0.9)) < 1e-5  # auto → eigh for r ≤ 64


def test_out_dtype_none_keeps_the_working_dtype():
    M = make_matrix((32, 64), "gaussian", seed=13)
    native = spectral_power(M, 0.0, method="polar", precision="bf16", out_dtype=None)
    assert native.dtype == torch.bfloat16
    torch.testing.assert_close(native.float(), spectral_power(M, 0.0, method="polar", precision="bf16"))
    assert spectral_power(M, 0.5, method="tns", precision="bf16", out_dtype=None).dtype == torch.float32
    assert spectral_power(M, 0.5, out_dtype=torch.float64).dtype == torch.float64


def test_published_approximations_behave_as_described():
    """taylor: exact at p = 0 (it is Polar Express there), increasingly wrong away from 0 — that is why it is an
    ablation and not a method; dynmuon_published: M/‖M‖_F for p ≥ 0.25, polar for 0 ≤ p < 0.25, taylor below."""
    M = make_matrix((64, 160), "power_1e2", seed=14)
    torch.testing.assert_close(spectral_power(M, 0.0, method="taylor"), spectral_power(M, 0.0, method="polar"))
    errors = [relative_error(spectral_power(M, p, method="taylor"), shape_svd(M, p)) for p in (-0.05, -0.25, -0.5)]
    assert errors[0] < errors[1] < errors[2] and errors[2] > 0.1, errors
    torch.testing.assert_close(spectral_power(M, 0.5, method="dynmuon_published"), M / M.norm())
    torch.testing.assert_close(
        spectral_power(M, 0.1, method="dynmuon_published"), spectral_power(M, 0.0, method="polar")
    )
    torch.testing.assert_close(
        spectral_power(M, -0.2, method="dynmuon_published"), spectral_power(M, -0.2, method="taylor")
    )
