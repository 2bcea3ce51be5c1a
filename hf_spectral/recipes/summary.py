"""From the Trainer's log histories of a comparison to curves (mean and sd over seeds) and the results table.

Definitions used in the table:
- final train loss: the last logged ``loss`` of a run (the Trainer's mean over its last logging interval);
- final eval loss: the ``eval_loss`` of a run's last evaluation (the runner evaluates at the last step);
- target: the lowest mean final eval loss among the *baseline* optimizers (``compare.baseline``, by default every
  optimizer but the first, which is the candidate);
- steps to target: the first evaluation step at which an optimizer's mean eval loss is ≤ the target (— if never);
- eval perplexity: exp(final eval loss) of each run (the loss is the mean token cross-entropy in nats), then mean
  and sd over seeds.
Without evaluation the same is done with the train loss. Means and sample sds are over seeds.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class RunRecord:
    """One training run: its Trainer log history (``trainer_state.json``'s ``log_history``: losses, ``spectral/p``,
    ...) and wall time."""

    history: list[dict[str, Any]]
    wall_time: float
    run_dir: Path | None = None

    @classmethod
    def from_history(cls, history: list[dict[str, Any]], run_dir: Path | None = None) -> RunRecord:
        """The record of a finished run: its wall time is the Trainer's ``train_runtime`` (training, with its
        evaluations and checkpoints)."""
        return cls(history, last(history, "train_runtime") or 0.0, run_dir)

    def describe(self) -> str:
        """The final numbers in one line: last step, last train and eval loss, wall time."""
        finals = {key: last(self.history, key) for key in ("loss", "eval_loss")}
        losses = ", ".join(f"{key} {value:.4f}" for key, value in finals.items() if value is not None)
        step = max((int(e["step"]) for e in self.history if "step" in e), default=0)
        return f"step {step}: {losses}; {self.wall_time:.1f} s"


CURVES = ("loss", "eval_loss", "spectral/p")
"""The logged values drawn against the step (p: only spectral optimizers log it)."""


@dataclass
class Curve:
    """A logged value against the step, mean and sd over seeds, at the steps every seed logged."""

    steps: list[int]
    mean: list[float]
    sd: list[float]


def series(history: list[dict[str, Any]], key: str) -> dict[int, float]:
    """step → value of `key` in a log history (the last entry wins if a step logged it twice)."""
    return {int(e["step"]): float(e[key]) for e in history if key in e and "step" in e}


def last(history: list[dict[str, Any]], key: str) -> float | None:
    """The value of `key` at the last step that logged it; None if none did."""
    values = series(history, key)
    return values[max(values)] if values else None


def curve(histories: list[list[dict[str, Any]]], key: str) -> Curve | None:
    """Mean and sd of `key` over runs at the steps all runs logged; None when no run logged it."""
    per_run = [series(h, key) for h in histories]
    steps = sorted(set.intersection(*(set(s) for s in per_run))) if per_run else []
    if not steps:
        return None
    means, sds = zip(*(_mean_sd([s[step] for s in per_run]) for step in steps), strict=True)
    return Curve(steps, list(means), list(sds))


def _mean_sd(values: list[float]) -> tuple[float, float]:
    """Mean and sample sd (0 for one value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


@dataclass
class Row:
    """One optimizer's line of the table: (mean, sd) pairs over seeds."""

    optimizer: str
    final_train: tuple[float, float] | None
    final_eval: tuple[float, float] | None
    steps_to_target: int | None
    wall_time: tuple[float, float]
    eval_perplexity: tuple[float, float] | None = None


@dataclass
class Summary:
    """The comparison: the metric and target (see the module docstring), the rows, and the curves (optimizer →
    logged key → curve)."""

    metric: str
    target: float
    target_by: str
    baselines: list[str]
    seeds: int
    rows: list[Row] = field(default_factory=list)
    curves: dict[str, dict[str, Curve | None]] = field(default_factory=dict)


def _final(
    histories: list[list[dict[str, Any]]], key: str, transform: Callable[[float], float] = float
) -> tuple[float, float] | None:
    """Mean and sd over runs of transform(last logged `key`); None unless every run logged it."""
    finals = [transform(value) for h in histories if (value := last(h, key)) is not None]
    return _mean_sd(finals) if len(finals) == len(histories) else None


def summarize(runs: dict[str, list[RunRecord]], baselines: list[str]) -> Summary:
    """Curves and table rows for every optimizer in `runs` (a name → its runs, one per seed)."""
    histories = {name: [r.history for r in records] for name, records in runs.items()}
    curves = {name: {k: curve(h, k) for k in CURVES} for name, h in histories.items()}
    has_eval = all(c["eval_loss"] is not None for c in curves.values())
    metric = "eval_loss" if has_eval else "loss"
    finals = {name: _final(h, metric) for name, h in histories.items()}
    scored = [name for name in baselines if finals.get(name) is not None]
    if not scored:
        raise ValueError(f"compare: no baseline run logged {metric}; baselines: {baselines}")
    target_by = min(scored, key=lambda name: finals[name][0])
    target = finals[target_by][0]
    rows = []
    for name, h in histories.items():
        c = curves[name][metric]
        reached = next((step for step, m in zip(c.steps, c.mean, strict=True) if m <= target), None) if c else None
        wall = _mean_sd([r.wall_time for r in runs[name]])
        perplexity = _final(h, "eval_loss", lambda loss: math.exp(min(loss, 700.0)))  # exp(700) ≈ 1e304, no overflow
        rows.append(Row(name, _final(h, "loss"), _final(h, "eval_loss"), reached, wall, perplexity))
    seeds = max(len(records) for records in runs.values())
    return Summary(metric, target, target_by, list(baselines), seeds, rows, curves)


def _cell(pair: tuple[float, float] | None, digits: int, seeds: int) -> str:
    if pair is None:
        return "—"
    return f"{pair[0]:.{digits}f} ± {pair[1]:.{digits}f}" if seeds > 1 else f"{pair[0]:.{digits}f}"


def markdown(summary: Summary) -> str:
    """The results table in Markdown, preceded by what the target is."""
    what = "eval" if summary.metric == "eval_loss" else "train"
    lines = [
        f"Target: {what} loss {summary.target:.4f}, the best final {what} loss among the baselines "
        f"({', '.join(summary.baselines)}), reached by {summary.target_by}. "
        + (f"Mean ± sd over {summary.seeds} seeds." if summary.seeds > 1 else "One seed."),
        "",
        f"| optimizer | final train loss | final eval loss | eval perplexity | steps to {what} loss ≤ "
        f"{summary.target:.4f} | wall time (s) |",
        "|---|---|---|---|---|---|",
    ]
    seeds = summary.seeds
    for row in summary.rows:
        steps = "—" if row.steps_to_target is None else str(row.steps_to_target)
        train, evaluation = _cell(row.final_train, 4, seeds), _cell(row.final_eval, 4, seeds)
        perplexity, wall = _cell(row.eval_perplexity, 2, seeds), _cell(row.wall_time, 1, seeds)
        lines.append(f"| {row.optimizer} | {train} | {evaluation} | {perplexity} | {steps} | {wall} |")
    return "\n".join(lines) + "\n"
