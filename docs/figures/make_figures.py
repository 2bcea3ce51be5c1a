"""Draw the figures of docs/concepts.md from the package's own functions (run from the repository root):

    python docs/figures/make_figures.py

phi.png        φ(s) = s·(s² + ε²)^((p−1)/2) for several p, and what it does to a power-law spectrum
schedules.png  p(t) of the DynMuon presets and of the other schedule kinds
"""

from __future__ import annotations

from pathlib import Path

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from hf_spectral import phi
from hf_spectral.schedules import PRESETS, Cosine, Linear

HERE = Path(__file__).parent
POWERS = (1.0, 0.5, 0.25, 0.0, -0.25, -0.5)
EPS = 1e-3


def _figure(width: float) -> tuple[Figure, list]:
    fig = Figure(figsize=(width, 4.0), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, list(fig.subplots(1, 2))


def phi_figure(path: Path) -> None:
    """Left: the gain φ(s) on normalised singular values s = σ/‖M‖_F. Right: a spectrum σᵢ ∝ i^(−1) (64 values)
    after shaping, each rescaled to the same RMS as the optimizer's scale=rms does."""
    fig, (left, right) = _figure(11.0)
    s = torch.logspace(-5, 0, 400, dtype=torch.float64)
    sigma = 1.0 / torch.arange(1, 65, dtype=torch.float64)
    sigma = sigma / torch.linalg.vector_norm(sigma)
    for i, p in enumerate(POWERS):
        color = f"C{i}"
        left.loglog(s, phi(s, p, EPS), color=color, label=f"p = {p:g}")
        shaped = phi(sigma, p, EPS)
        right.semilogy(range(1, 65), shaped / shaped.pow(2).mean().sqrt(), color=color, marker=".", label=f"p = {p:g}")
    left.axvline(EPS, color="0.5", ls=":", lw=1)
    left.text(EPS * 1.3, 1e-4, "ε", color="0.4")
    left.set(title="φ(s) = s (s² + ε²)^((p − 1)/2),  ε = 1e-3", xlabel="s = σ / ‖M‖_F", ylabel="φ(s)")
    right.set(title="a 1/i spectrum after U φ(Σ) Vᵀ (same RMS)", xlabel="singular value index i",
              ylabel="shaped singular value")  # fmt: skip
    for ax in (left, right):
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.savefig(path, dpi=100)


def schedules_figure(path: Path) -> None:
    """p(t) over training (left) and its first quarter (right), where the logistic presets make their move."""
    fig, (full, zoom) = _figure(11.0)
    t = torch.linspace(0.0, 1.0, 1001).tolist()
    curves = {
        "dynmuon (default: logistic 0.1 → −0.1, τ = w = 0.04)": PRESETS["dynmuon"],
        "dynmuon_paper (logistic 1 → −0.25)": PRESETS["dynmuon_paper"],
        "dynmuon_record (logistic 0.25 → −0.25)": PRESETS["dynmuon_record"],
        "linear 1 → 0": Linear(1.0, 0.0),
        "cosine 0.5 → 0": Cosine(0.5, 0.0),
    }
    for i, (label, schedule) in enumerate(curves.items()):
        values = [schedule(x) for x in t]
        for ax in (full, zoom):
            ax.plot(t, values, color=f"C{i}", label=label, ls="-" if i < 3 else "--")
    full.axhline(0.0, color="0.5", lw=0.8)
    zoom.axhline(0.0, color="0.5", lw=0.8)
    full.set(title="p(t), t = step / total steps", xlabel="t", ylabel="p")
    zoom.set(title="the first quarter of training", xlabel="t", xlim=(0, 0.25))
    full.legend(fontsize=8)
    for ax in (full, zoom):
        ax.grid(alpha=0.3)
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    phi_figure(HERE / "phi.png")
    schedules_figure(HERE / "schedules.png")
    print(f"wrote {HERE / 'phi.png'} and {HERE / 'schedules.png'}")
