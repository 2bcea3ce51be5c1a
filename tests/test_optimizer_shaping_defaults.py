"""The optimizers' shaping defaults (issue 15): floor ε = 3e-3, the fewest TNS steps that fit φ within 2.5 % (6 on
a tabled trajectory for p in [−0.3, 1], 7 at p = −0.5; at floor 5e-3, DynMuon's p range takes 5 on its own
trajectory), precision "auto" = all-bf16 on CPU.

What they promise: the default steps hold φ within 2.5 % for every p in [−0.5, 1] at ε = 3e-3 and 5e-3; "bf16_all"
really runs every step in bf16; the optimizer step computes exactly spectral_power with these settings; and on
gradient-like spectra (a few strong directions over a spread tail, as the momentum matrices of the quality runs) the
CPU default stays within a few percent of the float64 target (docs/shaping.md, "What training needs")."""

from __future__ import annotations

import pytest
import torch
from spectra import relative_error

from hf_spectral import DynMuon, Muon, MuonP, spectral_power
from hf_spectral.config import SpectralConfig, optimizer_tns_steps
from hf_spectral.shaping.precision import resolve_precision, result_dtype, step_precisions
from hf_spectral.shaping.target import max_abs, shape_svd
from hf_spectral.shaping.tns import (
    TNS_COEFFICIENTS,
    TRAJECTORY_K5_DYNMUON,
    TRAJECTORY_K6_EPS3E3,
    TRAJECTORY_K6_EPS5E3,
    fit_trajectory,
    tns_weights,
)
from hf_spectral.updates import ShapingSettings, kernel_steps

FLOOR = SpectralConfig.floor

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.mark.parametrize("p", [-0.5, -0.3, -0.1, 0.0, 0.1, 0.25, 0.5, 0.75, 1.0])
def test_the_default_steps_fit_phi_at_the_optimizers_floor(p):
    assert FLOOR == 3e-3
    steps = optimizer_tns_steps(FLOOR, p)
    fit = tns_weights(p, FLOOR, steps)
    assert fit.fit_error <= 0.025  # measured: 1.74 % at p = -0.3 (6 steps), 2.36 % at p = -0.5 (7)
    if -0.3 <= p < 0.75:  # the 6-step trajectory fitted for 3e-3, where the fixed quintic needs 7
        assert steps == 6 and fit.coefficients == TRAJECTORY_K6_EPS3E3
        assert fit.fit_error < 0.018
        assert _fixed_quintic_fit(p, FLOOR, 6) > 2 * fit.fit_error  # 2.6-37 %
        assert _fixed_quintic_fit(p, FLOOR, 7) <= 0.025
        assert tns_weights(p, FLOOR, 5).fit_error > 0.025  # no 5-step trajectory fits at 3e-3
    if p == -0.5:
        assert steps == 7
    if p <= 0.5:  # why ε matters: 7 steps cannot fit φ down to 1e-3
        assert tns_weights(p, 1e-3, 7).fit_error > 0.09


@pytest.mark.parametrize("p", [-0.5, -0.3, -0.1, 0.0, 0.1, 0.25, 0.5])
def test_floor_5e_3_takes_muons_five_steps_in_dynmuons_range(p):
    """At floor 5e-3 DynMuon's p range [−0.1, 0.1] takes 5 steps on its own trajectory (the fixed quintic: 33-43 %
    off), the other p 6 on the trajectory fitted for 5e-3 — all within 2.5 %."""
    steps = optimizer_tns_steps(5e-3, p)
    fit = tns_weights(p, 5e-3, steps)
    assert fit.fit_error <= 0.025  # measured: 2.08 % at p = ±0.1 (5 steps), 1.94 % at p = -0.5 (6)
    if -0.1 <= p <= 0.1:
        assert steps == 5 and fit.coefficients == TRAJECTORY_K5_DYNMUON
        assert _fixed_quintic_fit(p, 5e-3, 5) > 0.3
    else:
        assert steps == 6 and fit.coefficients == TRAJECTORY_K6_EPS5E3 and fit.fit_error < 0.02


def _fixed_quintic_fit(p: float, eps: float, steps: int) -> float:
    return fit_trajectory(p, eps, (TNS_COEFFICIENTS,) * steps).fit_error


def test_auto_precision_and_steps_per_device_and_method():
    assert resolve_precision("auto", CPU, "tns") == "bf16_all"
    assert resolve_precision("auto", CPU, "polar") == "bf16_all"
    assert resolve_precision("auto", CUDA, "tns") == "mixed"
    assert resolve_precision("auto", CUDA, "auto") == "mixed"
    assert resolve_precision("auto", CUDA, "polar") == "bf16"
    assert resolve_precision("fp32", CPU, "tns") == "fp32"
    assert kernel_steps(ShapingSettings(p=-0.1), (512, 1344)) == 6
    assert kernel_steps(ShapingSettings(p=-0.1, floor=5e-3), (512, 1344)) == 5
    assert kernel_steps(ShapingSettings(p=-0.1), (16, 1344)) is None  # eigh
    assert kernel_steps(ShapingSettings(p=0.0, method="polar"), (512, 1344)) is None  # Polar Express's own 5
    assert kernel_steps(ShapingSettings(p=-0.1, ns_steps=8), (512, 1344)) == 8


def test_a_lower_floor_takes_more_steps_by_default():
    """floor=1e-3 alone (the previous default) must work: 8 steps, as spectral_power's own default."""
    assert [optimizer_tns_steps(e, -0.1) for e in (1e-2, 3e-3, 1e-3)] == [6, 6, 8]
    assert [optimizer_tns_steps(e, -0.5) for e in (1e-2, 3e-3, 1e-3)] == [7, 7, 8]
    assert kernel_steps(ShapingSettings(p=-0.1, floor=1e-3), (512, 1344)) == 8
    opt = DynMuon([torch.nn.Parameter(torch.randn(96, 160))], floor=1e-3, total_steps=10)
    opt.param_groups[0]["params"][0].grad = torch.randn(96, 160)
    opt.step()
    with pytest.raises(ValueError, match="raise ns_steps or floor"):
        DynMuon([torch.nn.Parameter(torch.randn(96, 160))], floor=1e-3, ns_steps=6, total_steps=10)


def test_bf16_all_runs_every_step_in_bf16():
    assert step_precisions("bf16_all", 6, 3) == ["bf16"] * 6
    assert step_precisions("bf16", 6, 3) == ["mixed"] * 3 + ["bf16"] * 3


def test_the_optimizer_step_is_spectral_power_with_the_defaults():
    torch.manual_seed(0)
    W = torch.nn.Parameter(torch.randn(96, 160))
    W0 = W.detach().clone()
    W.grad = torch.randn(96, 160)
    MuonP([W], lr=1.0, p=-0.1, order="none", scale="none").step()
    expected = spectral_power(W.grad, -0.1, eps=3e-3, method="tns", steps=6, precision="bf16_all")
    torch.testing.assert_close(W0 - W.detach(), expected, rtol=0, atol=1e-6)


def _gradient_like(m: int, n: int, seed: int) -> torch.Tensor:
    """Three strong directions over a tail spread from 1e-1 to 10^-3.5 (median s 5e-3, 61 % of s below 1e-2, stable
    rank 1.4): the statistics of the quality fine-tune's directions, the more spread of the two tasks."""
    r, long = min(m, n), max(m, n)
    g = torch.Generator().manual_seed(seed)
    U, _ = torch.linalg.qr(torch.randn(r, r, generator=g, dtype=torch.float64))
    V, _ = torch.linalg.qr(torch.randn(long, r, generator=g, dtype=torch.float64))
    sigma = torch.cat([torch.tensor([1.0, 0.5, 0.3]), torch.logspace(-1.0, -3.5, r - 3)]).double()
    M = ((U * sigma) @ V.T).float()
    return M if m <= n else M.T.contiguous()


@pytest.mark.parametrize("p", [-0.25, -0.1, 0.0, 0.1])
@pytest.mark.parametrize("shape", [(96, 256), (256, 96), (192, 192)], ids=str)
def test_cpu_default_on_gradient_like_spectra(shape, p):
    """The CPU default trades shaping accuracy for speed where training measured no difference (ablations 14, 16):
    on the quality runs' directions it is 1.5–2.6 % off on average (max 9.5 %) in pre-training and 3.3–5.2 % (max
    11 %) on the fine-tune's more spread ones. On this stand-in: 2.5–7.0 % (7 fixed-quintic steps: 2.5–7.2 %), bound
    8 %; fp32 with the same settings (ε, steps) ≤ 0.92 %, bound 1.5 %: the fit itself is accurate, the rest is bf16
    rounding of the iterates (most of it the rounding of X₀ and X₁)."""
    M = _gradient_like(*shape, seed=shape[0] + shape[1])
    target = shape_svd(M, p, FLOOR)
    steps = optimizer_tns_steps(FLOOR, p)
    default = spectral_power(M, p, eps=FLOOR, method="tns", steps=steps, precision="bf16_all")
    fp32 = spectral_power(M, p, eps=FLOOR, method="tns", steps=steps, precision="fp32")
    assert relative_error(default, target) <= 0.08
    assert relative_error(fp32, target) <= 0.015


@pytest.mark.parametrize("factory", [Muon, DynMuon])
def test_presets_take_the_cpu_defaults(factory):
    opt = factory([torch.nn.Parameter(torch.randn(96, 160))], total_steps=10)
    group = opt.param_groups[0]
    assert group["floor"] == FLOOR and group["precision"] == "auto" and group["ns_steps"] is None


def test_max_abs_is_the_infinity_norm_and_propagates_nan():
    X = torch.randn(3, 40, 50)
    ref = torch.linalg.vector_norm(X, ord=float("inf"), dim=(-2, -1), keepdim=True)
    assert torch.equal(max_abs(X, dim=(-2, -1), keepdim=True), ref)
    assert float(max_abs(-X.abs())) == float(X.abs().max())
    X[1, 2, 3] = float("nan")
    assert torch.isnan(max_abs(X, dim=(-2, -1))[1]) and torch.isfinite(max_abs(X, dim=(-2, -1))[0])
    X[1, 2, 3] = -float("inf")
    assert float(max_abs(X)) == float("inf")


def test_bf16_all_tns_keeps_a_bf16_result_that_result_dtype_names():
    """bf16_all accumulates TNS's sum in bf16 (its working dtype, as bf16 Polar Express's); result_dtype says so,
    and says float32 for "auto", whose small sides go to the float32 eigh, so that exchanges lose nothing."""
    M = _gradient_like(96, 256, seed=5)
    cases = [("tns", "bf16_all", torch.bfloat16), ("tns", "fp32", torch.float32),
             ("polar", "bf16_all", torch.bfloat16), ("tns", "bf16", torch.float32)]  # fmt: skip
    for method, precision, dtype in cases:
        p = 0.0 if method == "polar" else -0.1
        out = spectral_power(M, p, eps=FLOOR, method=method, steps=6 if method == "tns" else None,
                             precision=precision, out_dtype=None)  # fmt: skip
        assert out.dtype == dtype == result_dtype(method, precision, CPU)
    assert result_dtype("auto", "bf16_all", CPU) == torch.float32
    assert spectral_power(M[:, :48], -0.1, precision="bf16_all", out_dtype=None).dtype == torch.float32  # eigh
