"""Logged statistics of the directions before shaping: RMS and stable rank ‖M‖_F²/σ₁², against float64 SVD."""

from __future__ import annotations

import pytest
import torch

from hf_spectral.presets import Muon
from hf_spectral.stats import UpdateStats, top_singular_value


def test_top_singular_value_matches_svd_on_a_decaying_spectrum():
    torch.manual_seed(0)
    U, _ = torch.linalg.qr(torch.randn(3, 48, 48, dtype=torch.float64))
    V, _ = torch.linalg.qr(torch.randn(3, 80, 48, dtype=torch.float64))
    s = torch.logspace(0, -3, 48, dtype=torch.float64)  # σ₂/σ₁ = 0.86: a gradient-like decay
    M = U @ torch.diag_embed(s.expand(3, 48)) @ V.mT
    assert top_singular_value(M) == pytest.approx(torch.ones(3, dtype=torch.float64), rel=1e-3)
    assert top_singular_value(M.mT) == pytest.approx(torch.ones(3, dtype=torch.float64), rel=1e-3)  # tall too


def test_stable_rank_is_one_for_rank_one_and_full_for_orthonormal_rows():
    torch.manual_seed(0)
    rank_one = torch.randn(30, 1) @ torch.randn(1, 50)
    Q, _ = torch.linalg.qr(torch.randn(50, 30))  # orthonormal columns: every σ = 1
    stats = UpdateStats()
    stats.add_direction(rank_one.unsqueeze(0))
    assert stats.summary()["direction_stable_rank"] == pytest.approx(1.0, rel=1e-5)
    stats = UpdateStats()
    stats.add_direction(Q.mT.unsqueeze(0))
    assert stats.summary()["direction_stable_rank"] == pytest.approx(30.0, rel=1e-5)
    assert stats.summary()["direction_rms"] == pytest.approx((30 / (30 * 50)) ** 0.5, rel=1e-5)


def test_a_zero_direction_counts_as_stable_rank_one_not_nan():
    stats = UpdateStats()
    stats.add_direction(torch.zeros(2, 4, 6))
    assert stats.summary() == {"direction_rms": 0.0, "direction_stable_rank": 1.0}


def test_the_optimizer_reports_the_direction_it_shaped():
    """Muon with ν = 0 and no momentum history: the direction is the gradient itself."""
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.zeros(16, 24))
    opt = Muon([w], lr=1e-3, nu=0.0)
    grad = torch.randn(16, 1) @ torch.randn(1, 24) + 1e-3 * torch.randn(16, 24)
    w.grad = grad.clone()
    opt.collect_stats_next_step()
    opt.step()
    sigma = torch.linalg.svdvals(grad.double())
    assert opt.last_stats["direction_rms"] == pytest.approx(float(grad.square().mean().sqrt()), rel=1e-4)
    assert opt.last_stats["direction_stable_rank"] == pytest.approx(
        float(sigma.square().sum() / sigma[0] ** 2), rel=1e-3
    )
