"""spectral_power at the edges of floating point and in low precision (issue 12): every magnitude from the smallest
normal to the largest finite value of the input dtype, float16/bfloat16 inputs, and bf16 shaping on rank-deficient,
clustered and gradient-like spectra, against the float64 SVD target."""

from __future__ import annotations

import pytest
import torch
from spectra import bf16_floor, make_matrix, relative_error
from torch.optim._muon import DEFAULT_A, DEFAULT_B, DEFAULT_C, _zeropower_via_newtonschulz

from hf_spectral import polar_express, shape_svd, spectral_power

EPS = 1e-3
METHODS = [("tns", 0.5), ("tns", -0.3), ("polar", 0.0), ("newton_schulz", 0.0), ("eigh", 0.5), ("svd", -0.3),
           ("auto", 1.0)]  # fmt: skip


def _with_spectrum(m: int, n: int, sigma: list[float], seed: int = 0) -> torch.Tensor:
    """A float64 m × n matrix with singular values `sigma` and random singular vectors."""
    g = torch.Generator().manual_seed(seed)
    r = len(sigma)
    u, _ = torch.linalg.qr(torch.randn(m, r, dtype=torch.float64, generator=g))
    v, _ = torch.linalg.qr(torch.randn(n, r, dtype=torch.float64, generator=g))
    return (u * torch.tensor(sigma, dtype=torch.float64)) @ v.T


@pytest.mark.parametrize(("method", "p"), METHODS, ids=lambda x: str(x))
@pytest.mark.parametrize("norm", [torch.finfo(torch.float32).tiny, 1e-24, 1e-8, 1e17, 1e30, 3e38])
def test_float32_at_any_magnitude(method, p, norm):
    """‖M‖_F from the smallest normal float32 to near its largest finite value: the result is the unit-norm one
    (the shaping is scale free). Before: NaN at 1e-24 (TNS), all zeros at 1e17, norm 3e16 instead of 1 at p = 1."""
    unit = make_matrix((96, 160), "power_1e2", seed=1)
    unit = unit / unit.norm()
    M = (unit.double() * norm).float()
    Y = spectral_power(M, p, eps=EPS, method=method)
    assert bool(torch.isfinite(Y).all())
    if method not in ("polar", "newton_schulz"):  # those approximate the polar factor only (their test below)
        tolerance = 1e-5 if method in ("eigh", "svd", "auto") else 2e-2
        assert relative_error(Y, shape_svd(M, p, EPS)) <= tolerance
    assert relative_error(Y, spectral_power(unit, p, eps=EPS, method=method)) <= 1e-3


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("where", ["smallest normal", "largest finite"])
def test_half_precision_inputs_at_their_limits(dtype, where):
    """bf16 matrices with ‖M‖ near 1e-37 gave NaN; float16 ones whose norm exceeds 65504 were refused."""
    info = torch.finfo(dtype)
    unit = make_matrix((64, 200), "gaussian", seed=2).double()
    unit = unit / unit.norm()
    norm = 2 * info.tiny if where == "smallest normal" else info.max / 2
    M = (unit * norm).to(dtype)
    for method, p in (("tns", -0.3), ("polar", 0.0), ("eigh", 0.5)):
        for precision in ("fp32", "mixed", "bf16"):
            Y = spectral_power(M, p, eps=EPS, method=method, precision=precision)
            assert bool(torch.isfinite(Y).all()), (method, precision)
            bound = 2e-2 if precision == "fp32" or method == "eigh" else 2.5 * bf16_floor(M, p, EPS) + 0.02
            if method == "polar":
                bound = 0.15  # Polar Express's own distance to the ε-floored polar factor on this matrix
            assert relative_error(Y, shape_svd(M, p, EPS)) <= bound, (method, precision)


@pytest.mark.parametrize("norm", [1e-8, 1e-9, 1e-10, 1e-23])
def test_bf16_polar_of_tiny_gradients_is_the_polar_factor(norm):
    """Muon's default path (Polar Express, bf16) divided by ‖M‖_F + 1e-7: at ‖M‖ = 1e-9 the start was 100× too
    small and the update 50 % off the polar factor (94 % at 1e-10). Now it is the unit-norm matrix's result."""
    unit = make_matrix((128, 320), "gaussian", seed=3)
    unit = unit / unit.norm()
    reference = spectral_power(unit, 0.0, method="polar", precision="bf16")
    Y = spectral_power(unit * norm, 0.0, method="polar", precision="bf16")
    assert relative_error(Y, reference) <= 1e-2


def test_empty_batches_and_empty_matrices():
    for shape in [(0, 4, 5), (2, 0, 5), (3, 4, 0), (0, 5), (2, 3, 0, 7)]:
        assert polar_express(torch.zeros(shape)).shape == shape
        assert spectral_power(torch.zeros(shape), 0.3).shape == shape
        assert shape_svd(torch.zeros(shape), 0.3).shape == shape


# --------------------------------------------------------------------------------------- bf16 keeps its promise
@pytest.mark.parametrize(
    "case",
    [
        pytest.param(lambda: _with_spectrum(64, 4096, [1.0] * 32 + [1e-2] * 32), id="two-clusters-64x4096"),
        pytest.param(lambda: _with_spectrum(256, 256, [1.0, 0.5, 0.25]), id="rank-3-256x256"),
        pytest.param(lambda: _with_spectrum(256, 256, [1.0] + [1e-4] * 255), id="gradient-like-256x256"),
        pytest.param(lambda: _with_spectrum(128, 512, [1.0] * 64 + [1e-2] * 64), id="two-clusters-128x512"),
    ],
)
@pytest.mark.parametrize("p", [-0.5, -0.1, 0.0, 0.5])
def test_bf16_tns_on_bf16_inputs_is_within_two_percent(case, p):
    """A bf16 input is exact in bf16, so the documented bound 2.5 × floor + 0.02 is 2 %. An all-bf16 iterate was
    18–108 % off on these spectra (its first steps round the small singular values away)."""
    M = case().bfloat16()
    assert bf16_floor(M, p, EPS) == 0.0
    err = relative_error(spectral_power(M, p, eps=EPS, method="tns", precision="bf16"), shape_svd(M, p, EPS))
    assert err <= 0.02, f"{err:.4f}"


@pytest.mark.parametrize("p", [-0.5, 0.0])
def test_bf16_tns_on_a_rank_deficient_float32_matrix(p):
    """Rank 3 of 256 × 256 in float32: rounding M to bf16 alone moves the target by 100s of % at p = −0.5 (the
    null space is amplified), so the bound is loose; what bf16 shaping now achieves is within 30 % (it was ~20×
    the target at 1024 × 1024, measured in the issue)."""
    M = _with_spectrum(256, 256, [1.0, 0.5, 0.25]).float()
    err = relative_error(spectral_power(M, p, eps=EPS, method="tns", precision="bf16"), shape_svd(M, p, EPS))
    assert err <= min(0.3, 2.5 * bf16_floor(M, p, EPS) + 0.02), f"{err:.4f}"


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_bf16_polar_express_on_a_gradient_like_spectrum(dtype):
    """One dominant direction, the rest at 1e-4 (a typical gradient): bf16 Polar Express was 60–75 % off the p = 0
    target where fp32 is 5 %, and torch.optim.Muon's bf16 NS5 57 %. Now within 3 % of the fp32 error."""
    M = _with_spectrum(256, 256, [1.0] + [1e-4] * 255).to(dtype)
    target = shape_svd(M, 0.0, EPS)
    fp32 = relative_error(spectral_power(M, 0.0, method="polar", precision="fp32"), target)
    bf16 = relative_error(spectral_power(M, 0.0, method="polar", precision="bf16"), target)
    torch_ns5 = relative_error(_zeropower_via_newtonschulz(M.float(), (DEFAULT_A, DEFAULT_B, DEFAULT_C), 5, 1e-7),
                               target)  # fmt: skip
    assert bf16 <= fp32 + 0.03, f"bf16 {bf16:.3f} vs fp32 {fp32:.3f}"
    assert bf16 < 0.5 * torch_ns5


@pytest.mark.parametrize(("method", "p"), [("tns", -0.3), ("polar", 0.0), ("newton_schulz", 0.0), ("eigh", 0.5)])
@pytest.mark.parametrize("precision", ["fp32", "mixed", "bf16"])
@pytest.mark.parametrize("shape", [(96, 320), (320, 96), (2, 64, 128), (600, 640)], ids=str)
def test_overwrite_gives_the_same_bits(method, p, precision, shape):
    """overwrite=True (the optimizer hands over its temporary direction) only saves memory: same result bit for bit,
    wide or tall, batched, small or above the size where the memory plan matters."""
    M = make_matrix(shape, "power_1e2", seed=5)
    expected = spectral_power(M, p, method=method, precision=precision)
    assert torch.equal(spectral_power(M.clone(), p, method=method, precision=precision, overwrite=True), expected)
