"""The comparison's figure as a PNG file, drawn with matplotlib's Agg canvas (no display, no pyplot state): train
loss, eval loss and the spectral power p against the step (mean over seeds, shaded ± 1 sd)."""

from __future__ import annotations

from pathlib import Path

from .summary import CURVES, Curve, Summary

TITLES = {"loss": "train loss", "eval_loss": "eval loss", "spectral/p": "spectral power p (update U Σᵖ Vᵀ)"}


def _draw(ax, curve: Curve, label: str, color: str) -> None:
    ax.plot(curve.steps, curve.mean, label=label, color=color, lw=1.6)
    if any(curve.sd):
        low = [m - s for m, s in zip(curve.mean, curve.sd, strict=True)]
        high = [m + s for m, s in zip(curve.mean, curve.sd, strict=True)]
        ax.fill_between(curve.steps, low, high, color=color, alpha=0.2, lw=0)


def _zoom(ax, curves: list[Curve]) -> None:
    """Show the part of training where the lines differ: the upper limit is the highest value after the first 10 %
    of steps, so the first steps' large loss does not flatten everything else."""
    tails = [m for c in curves for s, m in zip(c.steps, c.mean, strict=True) if s >= 0.1 * c.steps[-1]]
    if len(tails) > 1:
        low, high = min(tails), max(tails)
        pad = 0.05 * (high - low or 1.0)
        ax.set_ylim(low - pad, high + pad)


def loss_figure(summary: Summary, path: Path) -> Path:
    """Train loss, eval loss and p against the step, one line per optimizer (optimizers without p, such as AdamW,
    are named in the p panel's title)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(16.0, 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    seeds = f" (mean ± sd, {summary.seeds} seeds)" if summary.seeds > 1 else ""
    for ax, key in zip(fig.subplots(1, len(CURVES)), CURVES, strict=True):
        curves = {name: c for name, by_key in summary.curves.items() if (c := by_key[key]) is not None}
        for i, name in enumerate(summary.curves):
            if name in curves:
                _draw(ax, curves[name], name, f"C{i % 10}")  # one color per optimizer in every panel
        if key == "spectral/p":
            without = [name for name in summary.curves if name not in curves]
            ax.axhline(0.0, color="0.5", lw=0.8)
            ax.set(title=TITLES[key] + (f" — no p: {', '.join(without)}" if without else ""), ylabel="p")
        else:
            if key == summary.metric == "eval_loss":
                ax.axhline(summary.target, color="0.5", ls=":", lw=1, label=f"target ({summary.target_by})")
            _zoom(ax, list(curves.values()))
            ax.set(title=TITLES[key] + seeds, ylabel="loss")
        ax.set(xlabel="optimizer step")
        ax.grid(alpha=0.3)
        if curves:
            ax.legend()
        else:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes)
    fig.savefig(path, dpi=110)
    return path
