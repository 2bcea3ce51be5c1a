"""`hf-spectral compare`: the same recipe once per optimizer and seed, then the table and the figures.

Output directory: ``recipe.yaml`` (resolved), ``tokenizer/`` (if trained), ``runs/<optimizer>-seed<N>/`` (one run
directory each, see runner.py), ``summary.md`` (the table), ``summary.json`` and ``loss_curves.png`` (train loss,
eval loss and p). Data and tokenizer are prepared once and shared by all runs; every run with the same seed starts
from the same weights and sees the same batches.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from .data import prepare
from .load import dump_recipe
from .plots import loss_figure
from .runner import train
from .schema import Recipe
from .summary import RunRecord, Summary, markdown, summarize


@dataclass
class Comparison:
    """What a comparison wrote: the summary and the paths of the table and the figure."""

    summary: Summary
    table: Path
    loss_plot: Path


def base_seed(recipe: Recipe) -> int:
    """``training.seed``, or TrainingArguments' default."""
    from transformers import TrainingArguments

    return int(recipe.training.get("seed", TrainingArguments.seed))


def compare(recipe: Recipe, output_dir: Path) -> Comparison:
    """Run every ``compare.optimizers`` × ``compare.seeds`` and write the table and the figure into `output_dir`."""
    from accelerate import PartialState

    output_dir.mkdir(parents=True, exist_ok=True)
    main = PartialState().is_main_process
    if main:
        (output_dir / "recipe.yaml").write_text(dump_recipe(recipe), encoding="utf-8")
    prepared = prepare(recipe, output_dir)
    first = base_seed(recipe)
    runs: dict[str, list[RunRecord]] = {}
    for name in recipe.compare.optimizers:
        for seed in range(first, first + recipe.compare.seeds):
            print(f"hf-spectral compare: {name}, seed {seed}", flush=True)
            run_dir = output_dir / "runs" / f"{name}-seed{seed}"
            runs.setdefault(name, []).append(train(recipe.for_run(name, seed), run_dir, prepared))
    summary = summarize(runs, recipe.compare.baselines())
    result = Comparison(summary, output_dir / "summary.md", output_dir / "loss_curves.png")
    if main:
        result.table.write_text(markdown(summary), encoding="utf-8")
        (output_dir / "summary.json").write_text(json.dumps(dataclasses.asdict(summary), indent=1) + "\n")
        loss_figure(summary, result.loss_plot)
    return result
