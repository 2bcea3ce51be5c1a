"""The comparison's figures as PNG files, drawn with matplotlib's Agg canvas (no display, no pyplot state):
train and eval loss against the step (mean over seeds, shaded ± 1 sd), and p against the step."""

from __future__ import annotations

from pathlib import Path

from .summary import Curve, Summary


def _figure(ncols: int, width: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(1, ncols, squeeze=False)[0]


def _draw(ax, curve: Curve, label: str, color: str) -> None:
    ax.plot(curve.steps, curve.mean, label=label, color=color, lw=1.6)
    if any(curve.sd):
        low = [m - s for m, s in zip(curve.mean, curve.sd, strict=True)]
        high = [m + s for m, s in zip(curve.mean, curve.sd, strict=True)]
        ax.fill_between(curve.steps, low, high, color=color, alpha=0.2, lw=0)


def _colors(names: list[str]) -> dict[str, str]:
    return {name: f"C{i % 10}" for i, name in enumerate(names)}


def _zoom(ax, curves: list[Curve]) -> None:
    """Show the part of training where the lines differ: the upper limit is the highest value after the first 10 %
    of steps, so the first steps' large loss does not flatten everything else."""
    tails = [m for c in curves for s, m in zip(c.steps, c.mean, strict=True) if s >= 0.1 * c.steps[-1]]
    if len(tails) > 1:
        low, high = min(tails), max(tails)
        pad = 0.05 * (high - low or 1.0)
        ax.set_ylim(low - pad, high + pad)


def loss_figure(summary: Summary, path: Path) -> Path:
    """Train loss (left) and eval loss (right) against the step, one line per optimizer."""
    names = list(summary.curves)
    colors = _colors(names)
    seeds = f" (mean ± sd, {summary.seeds} seeds)" if summary.seeds > 1 else ""
    fig, axes = _figure(2, 11.0)
    for ax, key, title in zip(axes, ("loss", "eval_loss"), ("train loss", "eval loss"), strict=True):
        drawn = [c for name in names if (c := summary.curves[name][key]) is not None]
        for name in names:
            if summary.curves[name][key] is not None:
                _draw(ax, summary.curves[name][key], name, colors[name])
        if key == "eval_loss" and summary.metric == key:
            ax.axhline(summary.target, color="0.5", ls=":", lw=1, label=f"target ({summary.target_by})")
        _zoom(ax, drawn)
        ax.set(title=title + seeds, xlabel="optimizer step", ylabel="loss")
        ax.grid(alpha=0.3)
        if drawn:
            ax.legend()
        else:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes)
    fig.savefig(path, dpi=110)
    return path


def p_figure(summary: Summary, path: Path) -> Path:
    """The spectral power p of each optimizer's steps (AdamW and other non-spectral optimizers have none)."""
    names = list(summary.curves)
    colors = _colors(names)
    fig, (ax,) = _figure(1, 6.5)
    without = []
    for name in names:
        c = summary.curves[name]["p"]
        if c is None:
            without.append(name)
        else:
            ax.plot(c.steps, c.mean, label=name, color=colors[name], lw=1.6)
    ax.axhline(0.0, color="0.5", lw=0.8)
    note = f" — no p: {', '.join(without)}" if without else ""
    ax.set(title="spectral power p (update U Σᵖ Vᵀ)" + note, xlabel="optimizer step", ylabel="p")
    ax.grid(alpha=0.3)
    if len(without) < len(names):
        ax.legend()
    fig.savefig(path, dpi=110)
    return path
