"""The quality benchmark: what does a user get from each optimizer? One command per task.

    python benchmarks/quality/run.py pretrain   [--scale cpu|gpu] [--quick]   # task (a)
    python benchmarks/quality/run.py finetune   [--scale cpu|gpu] [--quick]   # task (b): full and LoRA
    python benchmarks/quality/run.py classify   [--scale cpu|gpu] [--quick]   # task (c): sequence classification
    python benchmarks/quality/run.py ablation   [--scale cpu|gpu] [--quick]   # defaults, order, exactness
    python benchmarks/quality/run.py overview                                  # one table over the tasks run
    python benchmarks/quality/run.py all

Protocol (identical for every optimizer, every configuration that runs is reported):
1. learning-rate sweep on seed 0 over LR_GRID; when the best lr is at an end of the grid, the grid is extended one
   step (×≈3) in that direction, up to MAX_EXTENSIONS times, so the chosen lr is bracketed;
2. the lr with the lowest final eval loss on seed 0 is re-run with seeds 1 and 2 ("own best lr");
3. "drop-in": every optimizer also runs at AdamW's chosen lr with the same 3 seeds — what a user who changes only
   ``--optim`` gets;
4. tables over the 3 seeds (mean ± sd): final eval loss, steps until the mean eval loss first reaches the best
   baseline's mean final eval loss (the papers' metric), wall time per step; loss curves and p schedules.
Peers (PEERS: torch.optim.Muon, heavyball's Muon) get the same parameter split and AdamW for the rest; a peer that
is not installed is skipped with a message. Ablations run with 3 seeds at AdamW's chosen lr of their task (what
the defaults are for), or ABLATION_LR if that task has not run.

Results go to benchmarks/quality/results/<scale>/<task>/ (summary.md, sweep.md, results.json, loss_curves.png, run
dirs).
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

import classify
import peers

from hf_spectral.recipes.compare import base_seed
from hf_spectral.recipes.data import Prepared, prepare
from hf_spectral.recipes.load import load_recipe
from hf_spectral.recipes.plots import loss_figure
from hf_spectral.recipes.runner import train
from hf_spectral.recipes.summary import RunRecord, markdown, series, summarize

HERE = Path(__file__).resolve().parent
LR_GRID = (1e-3, 3e-3, 1e-2)
MAX_EXTENSIONS = 2
SEEDS = 3
ABLATION_LR = 3e-3


@dataclass(frozen=True)
class Config:
    """One optimizer configuration: a label, the --optim name and its optim_args, or a peer (peers.PEERS)."""

    label: str
    name: str
    optim_args: dict[str, Any] = field(default_factory=dict)
    peer: str | None = None


PEERS = (Config("torch_muon", "adamw", peer="torch_muon"), Config("heavyball_muon", "adamw", peer="heavyball_muon"))
OPTIMIZERS = (
    Config("adamw", "adamw"),
    Config("muon", "muon"),
    Config("dynmuon", "dynmuon"),
    Config("dynmuon_paper", "dynmuon", {"schedule": "dynmuon_paper"}),
    Config("dynmuon_record", "dynmuon", {"schedule": "dynmuon_record"}),
    Config("muonp_0.5", "muonp", {"p": 0.5}),
    Config("spectral_adam", "spectral_adam"),
    *PEERS,
)
SCHEDULES = (  # DynMuon schedules beyond the main table, run on each task
    Config("dynmuon", "dynmuon"),
    Config("logistic_0_to_-0.1", "dynmuon", {"p_start": 0.0, "p_end": -0.1}),
    Config("linear_0_to_-0.25", "dynmuon", {"schedule": "linear", "p_start": 0.0, "p_end": -0.25}),
    Config("linear_0.25_to_-0.25", "dynmuon", {"schedule": "linear", "p_start": 0.25, "p_end": -0.25}),
)
PREVIOUS_SHAPING = Config("dynmuon_tns8_eps1e-3_fp32", "dynmuon", {"ns_steps": 8, "floor": 1e-3, "precision": "fp32"})
"""DynMuon with the shaping defaults before issue 15 (ablations 14 and 16 compare against it)."""
ABLATIONS = {  # title: (task, configurations[, lr]); without lr each runs at AdamW's chosen lr of its task (a
    # short or other-rank LoRA task: of the plain one)
    "update size (Muon): AdamW's RMS at each step vs a constant 0.2": (
        "pretrain",
        (Config("rms_adamw", "muon"), Config("rms_0.2", "muon", {"rms": 0.2})),
    ),
    "Nesterov mix (Muon): D = (1−ν)G + νB": (
        "pretrain",
        (
            Config("nu_0.7", "muon"),
            Config("nu_mu", "muon", {"nu": "none"}),
            Config("nu_0.5", "muon", {"nu": 0.5}),
            Config("nu_0.5_momentum_0.9", "muon", {"nu": 0.5, "momentum": 0.9}),
        ),
    ),
    "LoRA factors' update size (Muon)": (
        "finetune_lora",
        (
            Config("lora_rms_scale_2", "muon"),
            Config("lora_rms_scale_1", "muon", {"lora_rms_scale": 1.0}),
            Config("lora_rms_scale_3", "muon", {"lora_rms_scale": 3.0}),
        ),
    ),
    "a short LoRA fine-tune (20 steps, no warm-up), drop-in": (
        "finetune_lora_short",
        (
            Config("adamw", "adamw"),
            Config("muon", "muon"),
            Config("muon_moonlight", "muon", {"rms": 0.2, "lora_rms_scale": 1.0, "nu": "none"}),
            Config("dynmuon", "dynmuon"),
        ),
    ),
    "a short full fine-tune (20 steps, no warm-up), drop-in": (
        "finetune_full_short",
        (
            Config("adamw", "adamw"),
            Config("muon", "muon"),
            Config("muon_moonlight", "muon", {"rms": 0.2, "nu": "none"}),
            Config("dynmuon", "dynmuon"),
        ),
    ),
    "momentum order (DynMuon default)": (
        "pretrain",
        (
            Config("momentum_first", "dynmuon", {"order": "momentum_first"}),
            Config("shape_first", "dynmuon", {"order": "shape_first"}),
            Config("no_momentum", "dynmuon", {"order": "none"}),
        ),
    ),
    "exact vs Polar Express at p = 0 (Muon)": (
        "pretrain",
        (
            Config("muon_polar_express", "muon"),
            Config("muon_exact_tns", "muon", {"method": "tns", "precision": "fp32"}),
        ),
    ),
    "exact vs published approximation (DynMuon, paper schedule 1.0 → −0.25)": (
        "pretrain",
        (
            Config("dynmuon_paper_exact", "dynmuon", {"schedule": "dynmuon_paper"}),
            Config("dynmuon_paper_published", "dynmuon", {"schedule": "dynmuon_paper", "method": "dynmuon_published"}),
        ),
    ),
    "DynMuon schedules beyond the main table (pre-training)": (
        "pretrain",
        SCHEDULES,
    ),
    "DynMuon schedules beyond the main table (full fine-tune)": (
        "finetune_full",
        SCHEDULES,
    ),
    "DynMuon schedules beyond the main table (LoRA)": (
        "finetune_lora",
        SCHEDULES,
    ),
    "heavyball's best setting in our optimizer, and our defaults with AdamW groups at 3× (pre-training, lr 3e-2)": (
        "pretrain",
        (
            Config("heavyball_settings", "muon", {"scale": "spectral", "momentum": 0.9, "nu": 0.5}),
            Config("adamw_groups_3x", "muon", {"spectral_lr": 0.01}),
        ),
        3e-2,
    ),
    "LoRA factors ×2 at rank 2 (α = 4)": (
        "finetune_lora_r2",
        (
            Config("adamw", "adamw"),
            Config("muon", "muon"),
            Config("muon_lora_rms_scale_1", "muon", {"lora_rms_scale": 1.0}),
        ),
    ),
    "LoRA factors ×2 at rank 32 (α = 64)": (
        "finetune_lora_r32",
        (
            Config("adamw", "adamw"),
            Config("muon", "muon"),
            Config("muon_lora_rms_scale_1", "muon", {"lora_rms_scale": 1.0}),
        ),
    ),
    # issue 15 (run while ε = 1e-2 / 6 TNS steps was the default: every row names its settings explicitly)
    "shaping cost vs training (issue 15): TNS steps, eps floor and precision (pre-training)": (
        "pretrain",
        (
            Config("dynmuon_tns6_eps1e-2_bf16_all", "dynmuon", {"floor": 1e-2}),
            PREVIOUS_SHAPING,
            Config("dynmuon_tns6_eps1e-2_fp32", "dynmuon", {"floor": 1e-2, "precision": "fp32"}),
            Config("dynmuon_tns8_eps1e-3_bf16_all", "dynmuon", {"ns_steps": 8, "floor": 1e-3}),
            Config("dynmuon_tns7_eps3e-3_bf16_all", "dynmuon", {"floor": 3e-3}),
            Config("muon", "muon"),
            Config("muon_bf16_mixed_start", "muon", {"precision": "bf16"}),
        ),
    ),
    "shaping cost vs training (issue 15): eps floor on LoRA factors (exact eigh shaping)": (
        "finetune_lora",
        (
            Config("dynmuon_eps1e-2", "dynmuon", {"floor": 1e-2}),
            Config("dynmuon_eps1e-3", "dynmuon", {"floor": 1e-3}),
        ),
    ),
    "shaping cost vs training (issue 15): full fine-tune, whose momentum spectra are the most spread": (
        "finetune_full",
        (
            Config("dynmuon_tns6_eps1e-2_bf16_all", "dynmuon", {"floor": 1e-2}),
            PREVIOUS_SHAPING,
            Config("dynmuon_tns8_eps1e-3_bf16_all", "dynmuon", {"floor": 1e-3}),
            Config("dynmuon_tns7_eps3e-3_bf16_all", "dynmuon", {"floor": 3e-3}),
            Config("muon", "muon"),
            Config("muon_bf16_mixed_start", "muon", {"precision": "bf16"}),
        ),
    ),
    # issue 15: the default became 6 steps on the tabled trajectory (TRAJECTORY_K6_EPS3E3) at ε = 3e-3; ns_steps=7 at
    # that ε is the fixed quintic, the default before it
    "shaping cost vs training (issue 15): the 6-step TNS trajectory (pre-training)": (
        "pretrain",
        (
            Config("dynmuon", "dynmuon"),
            Config("dynmuon_tns7_fixed_quintic", "dynmuon", {"ns_steps": 7}),
            PREVIOUS_SHAPING,
        ),
    ),
    "shaping cost vs training (issue 15): the 6-step TNS trajectory (full fine-tune)": (
        "finetune_full",
        (
            Config("dynmuon", "dynmuon"),
            Config("dynmuon_tns7_fixed_quintic", "dynmuon", {"ns_steps": 7}),
            PREVIOUS_SHAPING,
        ),
    ),
    # issue 15: at floor 5e-3 DynMuon's p range takes 5 steps (TRAJECTORY_K5_DYNMUON), Muon's count, and the other p
    # 6 (TRAJECTORY_K6_EPS5E3); the default floor stayed 3e-3 (6 steps on TRAJECTORY_K6_EPS3E3) after these
    "shaping cost vs training (issue 15): 5 TNS steps at floor 5e-3 (pre-training)": (
        "pretrain",
        (
            Config("dynmuon_tns5_floor5e-3", "dynmuon", {"floor": 5e-3}),
            Config("dynmuon_tns6_floor5e-3", "dynmuon", {"floor": 5e-3, "ns_steps": 6}),
            Config("dynmuon", "dynmuon"),
        ),
    ),
    "shaping cost vs training (issue 15): 5 TNS steps at floor 5e-3 (full fine-tune)": (
        "finetune_full",
        (
            Config("dynmuon_tns5_floor5e-3", "dynmuon", {"floor": 5e-3}),
            Config("dynmuon_tns6_floor5e-3", "dynmuon", {"floor": 5e-3, "ns_steps": 6}),
            Config("dynmuon", "dynmuon"),
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
    def final_accuracy(self) -> float | None:
        values = series(self.record.history, "eval_accuracy")
        return values[max(values)] if values else None

    @property
    def seconds_per_step(self) -> float:
        steps = max(series(self.record.history, "loss"))
        return self.record.wall_time / steps


RESUME = False
"""--resume: every Bench reuses finished runs of the same configuration (set once by main)."""
ONLY_ABLATIONS: set[int] | None = None
"""--ablations: the indices of ABLATIONS to run (None: all)."""
RUN_CONFIG = "quality_config.json"
"""Written into a run directory when the run finishes: the configuration, so --resume reuses only the same one."""


def _config_dict(config: Config) -> dict[str, Any]:
    return {"name": config.name, "optim_args": config.optim_args, "peer": config.peer}


class Bench:
    """Runs configurations of one task (data and tokenizer prepared once) and writes the results. `model` builds a
    task model from the tokenizer (default: the recipe's); `trainer_kwargs` go to every Trainer."""

    def __init__(
        self,
        recipe_path: Path,
        out: Path,
        overrides: dict[str, Any],
        *,
        prepared: Prepared | None = None,
        model: Any = None,
        trainer_kwargs: dict[str, Any] | None = None,
        resume: bool = False,
    ) -> None:
        self.recipe = load_recipe(recipe_path, list(overrides.items()))
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        self.prepared = prepared or prepare(self.recipe, out)
        self.model = model
        self.trainer_kwargs = trainer_kwargs or {}
        self.resume = resume or RESUME
        self.runs: list[Run] = []

    def run(self, config: Config, lr: float, seed: int) -> Run:
        for run in self.runs:
            if (run.config, run.lr, run.seed) == (config, lr, seed):
                return run
        recipe = self.recipe.for_run(config.name, seed)
        recipe.optimizer.lr = lr
        recipe.optimizer.optim_args = dict(config.optim_args) or None
        recipe.validate()
        run_dir = self.out / "runs" / f"{config.label}-lr{lr:g}-seed{seed}"
        print(f"[quality] {self.out.name}: {config.label} lr={lr:g} seed={seed}", flush=True)
        kwargs = dict(self.trainer_kwargs)
        if config.peer is not None:
            kwargs["optimizer_cls_and_kwargs"] = peers.trainer_optimizer(config.peer, lr, recipe.optimizer.weight_decay)
        model = None
        if self.model is not None:
            from transformers import set_seed

            set_seed(seed)  # the new head's initialisation follows the seed
            model = self.model(self.prepared.tokenizer)
        record = self._finished(run_dir, config) if self.resume else None
        if record is None:
            record = train(recipe, run_dir, self.prepared, model=model, trainer_kwargs=kwargs)
            (run_dir / RUN_CONFIG).write_text(json.dumps(_config_dict(config)) + "\n", encoding="utf-8")
        run = Run(config, lr, seed, record)
        self.runs.append(run)
        return run

    @staticmethod
    def _finished(run_dir: Path, config: Config) -> RunRecord | None:
        """The record of a finished run of the same configuration in `run_dir` (for --resume), else None."""
        marker = run_dir / RUN_CONFIG
        if not marker.is_file() or json.loads(marker.read_text()) != _config_dict(config):
            return None
        state = json.loads((run_dir / "trainer_state.json").read_text())
        return RunRecord.from_history(state["log_history"], run_dir)

    def sweep_then_seeds(self, configs: tuple[Config, ...], grid: tuple[float, ...], seeds: int) -> dict[str, float]:
        """The protocol's steps 1–2; returns the chosen lr per label."""
        first = base_seed(self.recipe)
        chosen = {}
        for config in _runnable(configs):
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
        """Every configuration at one lr (AdamW's, for the drop-in table and the ablations), `seeds` seeds."""
        first = base_seed(self.recipe)
        for config in _runnable(configs):
            for seed in range(first, first + seeds):
                self.run(config, lr, seed)
        return {c.label: lr for c in _runnable(configs)}

    def table(self, title: str, chosen: dict[str, float], baseline: str) -> tuple[str, Any]:
        """One results table (Markdown) for the runs at the `chosen` lr of each label."""
        selected = {label: [r.record for r in self.runs if r.config.label == label and r.lr == lr]
                    for label, lr in chosen.items()}  # fmt: skip
        summary = summarize(selected, [baseline])
        accuracy = self._has_accuracy()
        header = "| optimizer | lr | s / step (mean) | final eval loss − AdamW's |" + (
            " eval accuracy |" if accuracy else ""
        )
        lines = [f"#### {title}", "", markdown(summary).rstrip(), "", header, "|---|---|---|---|" + "---|" * accuracy]
        adamw = _mean_final(self._at(chosen, "adamw")) if "adamw" in chosen else None
        for label, lr in chosen.items():
            runs = self._at(chosen, label)
            delta = "—" if adamw is None else f"{_mean_final(runs) - adamw:+.4f}"
            row = f"| {label} | {lr:g} | {statistics.fmean(r.seconds_per_step for r in runs):.3f} | {delta} |"
            if accuracy:
                accuracies = [r.final_accuracy for r in runs]
                row += f" {statistics.fmean(accuracies):.3f} ± {_sd(accuracies):.3f} |"
            lines.append(row)
        return "\n".join(lines) + "\n", summary

    def report(self, title: str, tables: dict[str, tuple[dict[str, float], str]]) -> str:
        """summary.md (one table per entry of `tables`: name → (chosen lr per label, baseline)), sweep.md,
        results.json and the figure (of the first table)."""
        texts, summaries = [], []
        for name, (chosen, baseline) in tables.items():
            text, summary = self.table(name, chosen, baseline)
            texts.append(text)
            summaries.append(summary)
        text = f"### {title}\n\n" + "\n".join(texts)
        (self.out / "summary.md").write_text(text, encoding="utf-8")
        sweep = ["| optimizer | lr | seed | final eval loss | s / step |", "|---|---|---|---|---|"]
        sweep += [f"| {r.config.label} | {r.lr:g} | {r.seed} | {r.final_eval:.4f} | {r.seconds_per_step:.3f} |"
                  for r in self.runs]  # fmt: skip
        (self.out / "sweep.md").write_text("\n".join(sweep) + "\n", encoding="utf-8")
        results = [{"label": r.config.label, "optimizer": r.config.peer or r.config.name,
                    "optim_args": r.config.optim_args, "lr": r.lr, "seed": r.seed, "final_eval_loss": r.final_eval,
                    "final_eval_accuracy": r.final_accuracy, "seconds_per_step": r.seconds_per_step,
                    "eval_loss": series(r.record.history, "eval_loss")} for r in self.runs]  # fmt: skip
        (self.out / "results.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
        loss_figure(summaries[0], self.out / "loss_curves.png")
        return text

    def _at(self, chosen: dict[str, float], label: str) -> list[Run]:
        return [r for r in self.runs if r.config.label == label and r.lr == chosen[label]]

    def _has_accuracy(self) -> bool:
        return any(r.final_accuracy is not None for r in self.runs)


def _mean_final(runs: list[Run]) -> float:
    return statistics.fmean(r.final_eval for r in runs)


def _sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def _runnable(configs: tuple[Config, ...]) -> tuple[Config, ...]:
    """The configurations that can run here: a peer whose package is missing is skipped, with a message."""
    kept = []
    for config in configs:
        if config.peer is not None and not peers.available(config.peer):
            print(f"[quality] skipping {config.label}: its package is not installed", flush=True)
            continue
        kept.append(config)
    return tuple(kept)


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


def compared(bench: Bench, title: str, quick: bool, grid: tuple[float, ...] = LR_GRID) -> str:
    """Steps 1–3 of the protocol on `bench`: every optimizer at its own best lr, and at AdamW's (drop-in)."""
    grid, seeds = (grid[1:2], 1) if quick else (grid, SEEDS)
    own = bench.sweep_then_seeds(OPTIMIZERS, grid, seeds)
    drop_in = bench.fixed_lr(OPTIMIZERS, own["adamw"], seeds)
    return bench.report(title, {
        f"drop-in: every optimizer at AdamW's chosen lr ({own['adamw']:g})": (drop_in, "adamw"),
        "every optimizer at its own best lr": (own, "muon"),
    })  # fmt: skip


def pretrain(out: Path, scale: str, quick: bool) -> str:
    bench = Bench(HERE / "pretrain.yaml", out / "pretrain", _overrides(scale, quick))
    return compared(bench, "Task (a): pre-training on stdlib source", quick)


def base_model(out: Path, scale: str, quick: bool) -> Path:
    """The model fine-tuned by tasks (b) and (c): task (a)'s recipe trained with AdamW at 3e-3, seed 0 (reused)."""
    run_dir = out / "base" / "runs" / "adamw-lr0.003-seed0"
    if not (run_dir / "config.json").is_file():
        Bench(HERE / "pretrain.yaml", out / "base", _overrides(scale, quick)).run(Config("adamw", "adamw"), 3e-3, 0)
    return run_dir


def _finetune_overrides(out: Path, scale: str, quick: bool) -> dict[str, Any]:
    base = base_model(out, scale, quick)
    overrides = {"model.name_or_path": str(base), "tokenizer.name_or_path": str(base)}
    overrides.update({k: v for k, v in _overrides(scale, quick).items() if k.startswith(("training.", "data."))})
    return overrides


LORA = {"peft": {"r": 8, "lora_alpha": 16, "target_modules": "all-linear"}}


def finetune_bench(out: Path, scale: str, quick: bool, kind: str, directory: str | None = None) -> Bench:
    extra = LORA if kind == "lora" else {}
    overrides = {**_finetune_overrides(out, scale, quick), **extra}
    return Bench(HERE / "finetune.yaml", out / (directory or f"finetune_{kind}"), overrides)


def finetune(out: Path, scale: str, quick: bool) -> str:
    texts = [compared(finetune_bench(out, scale, quick, kind), f"Task (b): {kind} fine-tuning on pydoc prose", quick)
             for kind in ("full", "lora")]  # fmt: skip
    return "\n".join(texts)


CLASSIFY_BLOCKS = {"train": 200, "eval": 24}
"""Blocks per package (class) in each split of task (c) (tkinter has 25 held-out blocks on Python 3.11); --quick
uses an eighth."""


def classify_bench(out: Path, scale: str, quick: bool) -> Bench:
    from transformers import AutoTokenizer

    overrides = {**_finetune_overrides(out, scale, quick), "training.prediction_loss_only": False}
    base = Path(overrides["model.name_or_path"])
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    block = int(overrides.get("data.block_size", 96))
    per_class = {k: max(2, v // 8) if quick else v for k, v in CLASSIFY_BLOCKS.items()}
    data = Prepared(tokenizer, *(classify.package_blocks(tokenizer, split, block, per_class[split])
                                 for split in ("train", "eval")))  # fmt: skip
    return Bench(HERE / "finetune.yaml", out / "classify", overrides, prepared=data,
                 model=lambda tok: classify.classifier(base, tok),
                 trainer_kwargs={"compute_metrics": classify.accuracy})  # fmt: skip


def classify_task(out: Path, scale: str, quick: bool) -> str:
    bench = classify_bench(out, scale, quick)
    return compared(bench, "Task (c): sequence classification (stdlib package of a code block)", quick)


def _adamw_lr(out: Path, task: str) -> float:
    """The lr `task` chose for AdamW (its seed-1 runs use it), or ABLATION_LR if that task has not run."""
    path = out / task / "results.json"
    if path.is_file():
        chosen = [r["lr"] for r in json.loads(path.read_text()) if r["label"] == "adamw" and r["seed"] == 1]
        if chosen:
            return chosen[0]
    return ABLATION_LR


SHORT = {"training.max_steps": 20, "training.warmup_steps": 0, "training.eval_steps": 10,
         "training.lr_scheduler_type": "linear"}  # fmt: skip
"""A short fine-tune as users run them (TRL's defaults: linear decay, no warm-up)."""


def ablation_bench(out: Path, scale: str, quick: bool, task: str, directory: str) -> Bench:
    """The Bench of an ablation task: pretrain, finetune_full / finetune_lora, their 20-step ``*_short`` forms, or
    ``finetune_lora_r<R>`` (LoRA of rank R, α = 2R)."""
    if task == "pretrain":
        return Bench(HERE / "pretrain.yaml", out / directory, _overrides(scale, quick))
    kind = "lora" if task.startswith("finetune_lora") else "full"
    bench = finetune_bench(out, scale, quick, kind, directory)
    overrides = {**_finetune_overrides(out, scale, quick), **(LORA if kind == "lora" else {})}
    if task.endswith("_short"):
        overrides.update(SHORT)
    elif task.startswith("finetune_lora_r"):
        rank = int(task.removeprefix("finetune_lora_r"))
        overrides["peft"] = {**LORA["peft"], "r": rank, "lora_alpha": 2 * rank}
    else:
        return bench
    return Bench(HERE / "finetune.yaml", out / directory, overrides, prepared=bench.prepared)


def _base_task(task: str) -> str:
    """The task whose AdamW lr an ablation task uses."""
    for base in ("finetune_lora", "finetune_full"):
        if task.startswith(base):
            return base
    return task


def ablation(out: Path, scale: str, quick: bool) -> str:
    texts = []
    for i, (title, (task, configs, *lr)) in enumerate(ABLATIONS.items()):
        if ONLY_ABLATIONS is not None and i not in ONLY_ABLATIONS:
            continue
        bench = ablation_bench(out, scale, quick, task, f"ablation_{i}")
        lr = lr[0] if lr else _adamw_lr(out, _base_task(task))
        chosen = bench.fixed_lr(configs, lr, 1 if quick else SEEDS)
        texts.append(bench.report(f"Ablation: {title} ({task}, lr {lr:g})", {"runs": (chosen, configs[0].label)}))
    return "\n".join(texts)


OVERVIEW_TASKS = {"pretrain": "pre-training (a)", "finetune_full": "full fine-tune (b)",
                  "finetune_lora": "LoRA fine-tune (b)", "classify": "classification (c)"}  # fmt: skip


def overview(out: Path, scale: str, quick: bool) -> str:
    """One table over the tasks that have run, from their results.json: each optimizer's final eval loss (mean ± sd
    over seeds) at AdamW's chosen lr (drop-in) and at its own best lr, as the difference to AdamW's."""
    lines = ["| optimizer | " + " | ".join(OVERVIEW_TASKS.values()) + " |", "|---|" + "---|" * len(OVERVIEW_TASKS)]
    cells: dict[str, list[str]] = {}
    for task in OVERVIEW_TASKS:
        path = out / task / "results.json"
        runs = json.loads(path.read_text()) if path.is_file() else []
        by_label: dict[str, dict[float, dict[int, float]]] = {}
        for r in runs:
            by_label.setdefault(r["label"], {}).setdefault(r["lr"], {})[r["seed"]] = r["final_eval_loss"]
        for label in [c.label for c in OPTIMIZERS]:
            cells.setdefault(label, []).append(_overview_cell(by_label, label) if "adamw" in by_label else "—")
    lines += [f"| {label} | " + " | ".join(row) + " |" for label, row in cells.items()]
    text = ("Final eval loss − AdamW's, mean ± sd over seeds: at AdamW's chosen lr (drop-in) / at the optimizer's "
            "own best lr. AdamW's row: its loss.\n\n" + "\n".join(lines) + "\n")  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    (out / "overview.md").write_text(text, encoding="utf-8")
    return text


def _overview_cell(by_label: dict[str, dict[float, dict[int, float]]], label: str) -> str:
    def best_lr(name: str) -> float:
        return min(by_label[name], key=lambda lr: by_label[name][lr].get(0, math.inf))

    def stats(name: str, lr: float) -> tuple[float, float]:
        values = list(by_label[name][lr].values())
        return statistics.fmean(values), _sd(values)

    if label not in by_label:
        return "—"
    adamw_lr = best_lr("adamw")
    adamw_mean, adamw_sd = stats("adamw", adamw_lr)
    if label == "adamw":
        return f"{adamw_mean:.3f} ± {adamw_sd:.3f} (lr {adamw_lr:g})"
    drop_in = f"{stats(label, adamw_lr)[0] - adamw_mean:+.3f} ± {stats(label, adamw_lr)[1]:.3f}"
    own_lr = best_lr(label)
    return f"{drop_in} / {stats(label, own_lr)[0] - adamw_mean:+.3f} (lr {own_lr:g})"


TASKS = {"pretrain": pretrain, "finetune": finetune, "classify": classify_task, "ablation": ablation,
         "overview": overview}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("task", choices=[*TASKS, "all"])
    ap.add_argument("--scale", choices=["cpu", "gpu"], default="cpu")
    ap.add_argument("--quick", action="store_true", help="a few steps, one lr, one seed: a smoke test")
    ap.add_argument(
        "--resume",
        action="store_true",
        help="reuse finished runs of the same configuration (after an interruption; same code only)",
    )
    ap.add_argument("--out", type=Path, default=None, help="default: benchmarks/quality/results/<scale>[-quick]")
    ap.add_argument("--ablations", default=None, help="with the ablation task: only these, e.g. 11,12,13")
    args = ap.parse_args(argv)
    global RESUME, ONLY_ABLATIONS
    RESUME = args.resume
    ONLY_ABLATIONS = None if args.ablations is None else {int(i) for i in args.ablations.split(",")}
    out = args.out or HERE / "results" / (args.scale + ("-quick" if args.quick else ""))
    for name in TASKS if args.task == "all" else [args.task]:
        start = time.perf_counter()
        text = TASKS[name](out, args.scale, args.quick)
        print(text)
        print(f"[quality] {name}: {time.perf_counter() - start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
