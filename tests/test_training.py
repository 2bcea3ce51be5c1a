"""Every optimizer trains a tiny Llama on real text: the loss falls and nothing becomes NaN."""

from __future__ import annotations

import math

import pytest
import torch
from tiny import text_batches, tiny_llama

from hf_spectral import DynMuon, Muon, MuonP, SpectralAdam

STEPS = 100
OPTIMIZERS = {
    "muon": lambda m: Muon(m, lr=3e-3),
    "muonp": lambda m: MuonP(m, lr=3e-3, p=0.5),
    "dynmuon": lambda m: DynMuon(m, lr=3e-3, total_steps=STEPS),
    "spectral_adam": lambda m: SpectralAdam(m, lr=3e-3),
    "adamw": lambda m: torch.optim.AdamW(m.parameters(), lr=3e-3),
}


@pytest.fixture(scope="module")
def batches():
    return text_batches(STEPS)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_reduces_loss_on_real_text(name, batches):
    model = tiny_llama()
    opt = OPTIMIZERS[name](model)
    losses = []
    for batch in batches:
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    assert all(math.isfinite(x) for x in losses)
    assert all(torch.isfinite(t).all() for t in model.parameters())
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert losses[0] > 5.0  # ≈ ln 256 at initialisation
    print(f"{name}: loss {losses[0]:.3f}, first 10 {first:.3f} → last 10 {last:.3f}")
    assert last < 0.7 * first, f"{name}: loss {first:.3f} → {last:.3f}"


def test_builtin_corpora_are_real_disjoint_text():
    from hf_spectral.corpus import BUILTIN_CORPORA

    for name, texts_of in BUILTIN_CORPORA.items():
        train, held_out = texts_of("train"), texts_of("eval")
        assert sum(map(len, held_out)) > 50_000 and sum(map(len, train)) > 5 * sum(map(len, held_out)), name
        assert not set(train) & set(held_out), name
        assert sum(map(len, texts_of("train", max_chars=1234))) == 1234
    assert "def " in BUILTIN_CORPORA["stdlib"]("train")[0]
    assert " the " in BUILTIN_CORPORA["pydoc"]("train")[0]
