"""TNS weights: the published table, the fit quality, and caching."""

from __future__ import annotations

import pytest
import torch

from hf_spectral import tns_weights
from hf_spectral.shaping.tns import (
    MAX_FIT_ERROR,
    TNS_COEFFICIENTS,
    TNS_TRAJECTORIES,
    TRAJECTORY_K5_DYNMUON,
    TRAJECTORY_K6_EPS3E3,
    TRAJECTORY_K6_EPS5E3,
    fit_trajectory,
)

# shaping.md §3, ε = 1e-3, K = 8
TABLE = {
    -0.3: (-0.652, -0.673, -0.879, -1.167, -1.464, -1.554, 0.715, 4.225, 2.824),
    0.0: (0.000, -0.001, 0.001, -0.001, 0.015, 0.064, 0.343, 0.580, 0.277),
    0.5: (0.663, 0.183, 0.105, 0.066, 0.042, 0.027, 0.021, 0.015, 0.004),
}


@pytest.mark.parametrize("p", sorted(TABLE))
def test_weights_match_published_table(p):
    fit = tns_weights(p, 1e-3, 8)
    assert len(fit.weights) == 9
    for k, (ours, published) in enumerate(zip(fit.weights, TABLE[p], strict=True)):
        assert abs(ours - published) <= 1e-2, f"w_{k}(p={p}) = {ours:.4f}, table {published}"


def test_fit_error_over_supported_range():
    """Worst scalar fit over p ∈ [−0.5, 0.9] is ≈ 1.8 % at K = 8 (shaping.md §3)."""
    worst = max(tns_weights(p / 100, 1e-3, 8).fit_error for p in range(-50, 91, 5))
    assert worst < 0.02


def test_p_one_is_identity_weights():
    w = tns_weights(1.0).weights
    assert abs(w[0] - 1.0) < 1e-6 and max(abs(x) for x in w[1:]) < 1e-6


def test_unreachable_targets_report_large_fit_error():
    assert tns_weights(0.0, 1e-4, 8).fit_error > MAX_FIT_ERROR
    assert tns_weights(0.0, 1e-4, 12).fit_error < MAX_FIT_ERROR  # more steps reach lower ε
    assert tns_weights(-1.0, 1e-3, 8).fit_error > MAX_FIT_ERROR


def test_weights_are_cached():
    assert tns_weights(0.37) is tns_weights(0.37)


def test_tabled_trajectories_stay_bounded_and_are_used_where_they_fit_better():
    """Every iterate of a tabled trajectory stays bounded on [0, 1.05] (no blow-up of a rounded singular value
    above 1: 1.5 for the 6-step ones, 2 for the 5-step one with its large first step), and tns_weights picks
    whichever candidate of K steps fits (p, ε) best."""
    s = torch.linspace(0.0, 1.05, 4001, dtype=torch.float64)
    for coefficients in TNS_TRAJECTORIES:
        bound = 2.0 if coefficients == TRAJECTORY_K5_DYNMUON else 1.5
        y = s
        for a, b, c in coefficients:
            y = y * (a + y * y * (b + c * y * y))
            assert float(y.abs().max()) <= bound + 1e-3
    for p, eps in ((-0.1, 3e-3), (0.5, 3e-3), (-0.5, 1e-2), (0.0, 1e-2), (-0.25, 5e-3)):
        candidates = [(TNS_COEFFICIENTS,) * 6, TRAJECTORY_K6_EPS3E3, TRAJECTORY_K6_EPS5E3]
        best = min(fit_trajectory(p, eps, c).fit_error for c in candidates)
        assert tns_weights(p, eps, 6).fit_error == best
    assert tns_weights(-0.1, 3e-3, 6).coefficients == TRAJECTORY_K6_EPS3E3  # 1.0 % vs 22 % for the fixed quintic
    assert tns_weights(-0.25, 5e-3, 6).coefficients == TRAJECTORY_K6_EPS5E3  # 0.6 % vs 1.8 % for the 3e-3 one
    assert tns_weights(0.0, 5e-3, 5).coefficients == TRAJECTORY_K5_DYNMUON  # 1.9 % vs 38 %
    assert tns_weights(-0.5, 1e-2, 6).coefficients == (TNS_COEFFICIENTS,) * 6  # 2.5 % vs 9.6 % for the tabled one
