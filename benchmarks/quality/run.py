"""The quality benchmark: does DynMuon beat Muon and AdamW here? One command per task.

    python benchmarks/quality/run.py pretrain   [--scale cpu|gpu] [--quick]   # task (a)
    python benchmarks/quality/run.py finetune   [--scale cpu|gpu] [--quick]   # task (b): full and LoRA
    python benchmarks/quality/run.py ablation   [--scale cpu|gpu] [--quick]   # momentum order, exact vs published
    python benchmarks/quality/run.py all

Protocol (identical for every optimizer, every configuration that runs is reported):
1. learning-rate sweep on seed 0 over LR_GRID (the same grid for all: with scale=rms the spectral update has AdamW's
   RMS, so one grid is fair); when the best lr is at an end of the grid, the grid is extended one step (×≈3) in
   that direction, up to MAX_EXTENSIONS times, so the chosen lr is bracketed;
2. the lr with the lowest final eval loss on seed 0 is re-run with seeds 1 and 2;
3. table at the chosen lr over the 3 seeds: final eval loss (mean ± sd), steps until the mean eval loss first
   reaches Muon's mean final eval loss (the papers' metric), wall time per step; loss curves and p schedules.
Ablations run with 3 seeds at the lr the pre-training task chose for the configuration they vary (ABLATION_LR if
that task has not run).

Results go to benchmarks/quality/results/<scale>/<task>/ (summary.md, sweep.md, results.json, PNGs, run dirs).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hf_spectral.recipes.compare import base_seed
from hf_spectral.recipes.data import prepare
from hf_spectral.recipes.load import load_recipe
from hf_spectral.recipes.plots import loss_figure, p_figure
from hf_spectral.recipes.runner import train
from hf_spectral.recipes.summary import RunRecord, markdown, series, summarize

HERE = Path(__file__).resolve().parent
LR_GRID = (1e-3, 3e-3, 1e-2)
FINETUNE_LR_GRID = (1e-3, 3e-3, 1e-2)
MAX_EXTENSIONS = 2
SEEDS = 3
ABLATION_LR = 3e-3


@dataclass(frozen=True)
class Config:
    """One optimizer configuration: a label, the --optim name, and its optim_args."""

    label: str
    name: str
    optim_args: dict[str, Any] = field(default_factory=dict)


OPTIMIZERS = (
    Config("adamw", "adamw"),
    Config("muon", "muon"),
    Config("muonp_0.5", "muonp", {"p": 0.5}),
    Config("dynmuon", "dynmuon"),
    Config("dynmuon_0.25", "dynmuon", {"p_start": 0.25, "p_end": -0.25}),
    Config("spectral_adam", "spectral_adam"),
)
ABLATIONS = {  # title: (the pre-training label whose chosen lr is used, configurations)
    "momentum order (DynMuon 0.25 → −0.25)": (
        "dynmuon_0.25",
        (
            Config("momentum_first", "dynmuon", {"p_start": 0.25, "p_end": -0.25, "order": "momentum_first"}),
            Config("shape_first", "dynmuon", {"p_start": 0.25, "p_end": -0.25, "order": "shape_first"}),
            Config("no_momentum", "dynmuon", {"p_start": 0.25, "p_end": -0.25, "order": "none"}),
        ),
    ),
    "exact vs Polar Express at p = 0 (Muon)": (
        "muon",
        (
            Config("muon_polar_express", "muon"),
            Config("muon_exact_tns", "muon", {"method": "tns", "precision": "fp32"}),
        ),
    ),
    "exact vs published approximation (DynMuon 1.0 → −0.25)": (
        "dynmuon",
        (
            Config("dynmuon_exact", "dynmuon"),
            Config("dynmuon_published", "dynmuon", {"method": "dynmuon_published"}),
        ),
    ),
}
GPU_SCALE = {  # ~100 M parameters, a few thousand steps
    "model.config.hidden_size": 768,
    "model.config.intermediate_size": 2048,
    "model.config.num_hidden_layers": 12,
    "model.config.num_attention_heads": 12,
    "model.config.num_key_value_heads": 4,
    "model.config.max_position_embeddings": 512,
    "tokenizer.train.vocab_size": 16384,
    "tokenizer.train.max_chars": None,
    "data.block_size": 512,
    "data.max_eval_samples": 512,
    "training.max_steps": 3000,
    "training.per_device_train_batch_size": 32,
    "training.warmup_steps": 150,
    "training.eval_steps": 250,
    "training.logging_steps": 50,
    "training.bf16": True,
}
QUICK = {"training.max_steps": 4, "training.eval_steps": 2, "training.logging_steps": 2, "training.warmup_steps": 1,
         "data.max_train_samples": 64, "data.max_eval_samples": 8, "tokenizer.train.vocab_size": 512,
         "tokenizer.train.max_chars": 200000}  # fmt: skip


@dataclass
class Run:
    config: Config
    lr: float
    seed: int
    record: RunRecord

    @property
    def final_eval(self) -> float:
        values = series(self.record.history, "eval_loss")
        return values[max(values)]

    @property
    def seconds_per_step(self) -> float:
        steps = max(series(self.record.history, "loss"))
        return self.record.wall_time / steps


class Bench:
    """Runs configurations of one recipe (data and tokenizer prepared once) and writes the results."""

    def __init__(self, recipe_path: Path, out: Path, overrides: dict[str, Any]) -> None:
        self.recipe = load_recipe(recipe_path, list(overrides.items()))
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        self.prepared = prepare(self.recipe, out)
        self.runs: list[Run] = []

    def run(self, config: Config, lr: float, seed: int) -> Run:
        recipe = self.recipe.for_run(config.name, seed)
        recipe.optimizer.lr = lr
        recipe.optimizer.optim_args = dict(config.optim_args) or None
        recipe.validate()
        run_dir = self.out / "runs" / f"{config.label}-lr{lr:g}-seed{seed}"
        print(f"[quality] {self.out.name}: {config.label} lr={lr:g} seed={seed}", flush=True)
        run = Run(config, lr, seed, train(recipe, run_dir, self.prepared))
        self.runs.append(run)
        return run

    def sweep_then_seeds(self, configs: tuple[Config, ...], grid: tuple[float, ...], seeds: int) -> dict[str, float]:
        """The protocol's steps 1–2; returns the chosen lr per label."""
        first = base_seed(self.recipe)
        chosen = {}
        for config in configs:
            sweep = [self.run(config, lr, first) for lr in grid]
            for _ in range(MAX_EXTENSIONS if len(grid) > 1 else 0):
                best = min(sweep, key=lambda r: r.final_eval)
                lrs = sorted(r.lr for r in sweep)
                if best.lr == lrs[-1]:
                    sweep.append(self.run(config, _next_lr(lrs[-1], up=True), first))
                elif best.lr == lrs[0]:
                    sweep.append(self.run(config, _next_lr(lrs[0], up=False), first))
                else:
                    break
            best = min(sweep, key=lambda r: r.final_eval)
            chosen[config.label] = best.lr
            for seed in range(first + 1, first + seeds):
                self.run(config, best.lr, seed)
        return chosen

    def fixed_lr(self, configs: tuple[Config, ...], lr: float, seeds: int) -> dict[str, float]:
        first = base_seed(self.recipe)
        for config in configs:
            for seed in range(first, first + seeds):
                self.run(config, lr, seed)
        return {c.label: lr for c in configs}

    def report(self, title: str, chosen: dict[str, float], baseline: str) -> str:
        """summary.md, sweep.md, results.json and the figures for the runs at the chosen lrs."""
        selected = {label: [r.record for r in self.runs if r.config.label == label and r.lr == lr]
                    for label, lr in chosen.items()}  # fmt: skip
        summary = summarize(selected, [baseline])
        per_step = {label: [r.seconds_per_step for r in self.runs if r.config.label == label and r.lr == chosen[label]]
                    for label in chosen}  # fmt: skip
        lines = [f"### {title}", "", markdown(summary).rstrip(), "", "| optimizer | chosen lr | s / step (mean) |",
                 "|---|---|---|"]  # fmt: skip
        lines += [f"| {label} | {chosen[label]:g} | {statistics.fmean(per_step[label]):.3f} |" for label in chosen]
        text = "\n".join(lines) + "\n"
        (self.out / "summary.md").write_text(text, encoding="utf-8")
        sweep = ["| optimizer | lr | seed | final eval loss | s / step |", "|---|---|---|---|---|"]
        sweep += [f"| {r.config.label} | {r.lr:g} | {r.seed} | {r.final_eval:.4f} | {r.seconds_per_step:.3f} |"
                  for r in self.runs]  # fmt: skip
        (self.out / "sweep.md").write_text("\n".join(sweep) + "\n", encoding="utf-8")
        results = [{"label": r.config.label, "optimizer": r.config.name, "optim_args": r.config.optim_args,
                    "lr": r.lr, "seed": r.seed, "final_eval_loss": r.final_eval,
                    "seconds_per_step": r.seconds_per_step, "eval_loss": series(r.record.history, "eval_loss")}
                   for r in self.runs]  # fmt: skip
        (self.out / "results.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
        loss_figure(summary, self.out / "loss_curves.png")
        p_figure(summary, self.out / "p_schedule.png")
        return text


def _next_lr(lr: float, up: bool) -> float:
    """The neighbour of `lr` on the 1–3–10 grid: up 1e-2 → 3e-2 → 1e-1, down 1e-3 → 3e-4 → 1e-4."""
    ones = abs(lr / 10 ** math.floor(math.log10(lr)) - 1) < 1e-6
    factor = (3.0 if ones else 10 / 3) if up else (0.3 if ones else 1 / 3)
    return float(f"{lr * factor:.1g}")


def _overrides(scale: str, quick: bool) -> dict[str, Any]:
    overrides = dict(GPU_SCALE) if scale == "gpu" else {}
    if quick:
        overrides.update(QUICK)
    return overrides


def pretrain(out: Path, scale: str, quick: bool) -> str:
    bench = Bench(HERE / "pretrain.yaml", out / "pretrain", _overrides(scale, quick))
    grid, seeds = (LR_GRID[1:2], 1) if quick else (LR_GRID, SEEDS)
    chosen = bench.sweep_then_seeds(OPTIMIZERS, grid, seeds)
    return bench.report("Task (a): pre-training on stdlib source", chosen, "muon")


def base_model(out: Path, scale: str, quick: bool) -> Path:
    """The model fine-tuned by task (b): task (a)'s recipe trained with AdamW at 3e-3, seed 0 (reused if present)."""
    run_dir = out / "base" / "runs" / "adamw-lr0.003-seed0"
    if not (run_dir / "config.json").is_file():
        Bench(HERE / "pretrain.yaml", out / "base", _overrides(scale, quick)).run(Config("adamw", "adamw"), 3e-3, 0)
    return run_dir


def finetune(out: Path, scale: str, quick: bool) -> str:
    base = base_model(out, scale, quick)
    overrides = {"model.name_or_path": str(base), "tokenizer.name_or_path": str(base)}
    overrides.update({k: v for k, v in _overrides(scale, quick).items() if k.startswith(("training.", "data."))})
    grid, seeds = (FINETUNE_LR_GRID[1:2], 1) if quick else (FINETUNE_LR_GRID, SEEDS)
    texts = []
    for kind, extra in (("full", {}), ("lora", {"peft": {"r": 8, "lora_alpha": 16, "target_modules": "all-linear"}})):
        bench = Bench(HERE / "finetune.yaml", out / f"finetune_{kind}", {**overrides, **extra})
        chosen = bench.sweep_then_seeds(OPTIMIZERS, grid, seeds)
        texts.append(bench.report(f"Task (b): {kind} fine-tuning on pydoc prose", chosen, "muon"))
    return "\n".join(texts)


def _pretrain_lr(out: Path, label: str) -> float:
    """The lr task (a) chose for `label` (its seed-1 runs use it), or ABLATION_LR if task (a) has not run."""
    path = out / "pretrain" / "results.json"
    if path.is_file():
        chosen = [r["lr"] for r in json.loads(path.read_text()) if r["label"] == label and r["seed"] == 1]
        if chosen:
            return chosen[0]
    return ABLATION_LR


def ablation(out: Path, scale: str, quick: bool) -> str:
    texts = []
    for i, (title, (lr_from, configs)) in enumerate(ABLATIONS.items()):
        bench = Bench(HERE / "pretrain.yaml", out / f"ablation_{i}", _overrides(scale, quick))
        chosen = bench.fixed_lr(configs, _pretrain_lr(out, lr_from), 1 if quick else SEEDS)
        texts.append(bench.report(f"Ablation: {title}", chosen, configs[0].label))
    return "\n".join(texts)


TASKS = {"pretrain": pretrain, "finetune": finetune, "ablation": ablation}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("task", choices=[*TASKS, "all"])
    ap.add_argument("--scale", choices=["cpu", "gpu"], default="cpu")
    ap.add_argument("--quick", action="store_true", help="a few steps, one lr, one seed: a smoke test")
    ap.add_argument("--out", type=Path, default=None, help="default: benchmarks/quality/results/<scale>[-quick]")
    args = ap.parse_args(argv)
    out = args.out or HERE / "results" / (args.scale + ("-quick" if args.quick else ""))
    for name in TASKS if args.task == "all" else [args.task]:
        start = time.perf_counter()
        text = TASKS[name](out, args.scale, args.quick)
        print(text)
        print(f"[quality] {name}: {time.perf_counter() - start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
