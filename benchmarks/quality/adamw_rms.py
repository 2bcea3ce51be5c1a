"""How big is AdamW's update, really? The measurement behind ``rms="adamw"``.

    python benchmarks/quality/adamw_rms.py [--quick]

Trains AdamW (transformers' ``adamw_torch``) on the quality tasks — pre-training (a), full and LoRA fine-tuning (b) —
at the lr each task's sweep chose for AdamW (ABLATION_LR-style defaults if the sweeps have not run), and records at
every step the RMS of AdamW's update m̂/(√v̂ + ε) on the matrices hf_spectral would shape (mean over matrices;
LoRA A and B apart), side by side with the closed form ρ(t) = √((1 − β₁)(1 + β₁ᵗ)/((1 + β₁)(1 − β₁ᵗ))) that the
default rule uses, and the Moonlight constant 0.2. Prints one Markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

from run import HERE, _adamw_lr, ablation_bench
from transformers import TrainerCallback

from hf_spectral import partition
from hf_spectral.updates import adamw_update_rms

STEPS = (1, 2, 5, 10, 20, 50, 100, 200)


class AdamWUpdateRMS(TrainerCallback):
    """After each optimizer step: RMS of AdamW's m̂/(√v̂ + ε) per kind of shaped matrix (hidden, LoRA A, LoRA B)."""

    def __init__(self) -> None:
        self.by_step: dict[int, dict[str, float]] = {}

    def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, optimizer: Any = None,
                    **kwargs: Any) -> None:  # fmt: skip
        opt = getattr(optimizer, "optimizer", optimizer)
        shaped = {id(model.get_parameter(n)): n for n in partition(model).names("spectral")}
        rms: dict[str, list[float]] = {}
        for group in opt.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if id(p) not in shaped or p not in opt.state:
                    continue
                st = opt.state[p]
                t = float(st["step"])
                update = (st["exp_avg"] / (1 - beta1**t)) / ((st["exp_avg_sq"] / (1 - beta2**t)).sqrt() + group["eps"])
                name = shaped[id(p)]
                kind = "LoRA A" if "lora_A" in name else "LoRA B" if "lora_B" in name else "hidden"
                rms.setdefault(kind, []).append(float(update.square().mean().sqrt()))
        self.by_step[state.global_step] = {kind: statistics.fmean(v) for kind, v in rms.items()}


def measure(bench: Any, lr: float) -> dict[int, dict[str, float]]:
    callback = AdamWUpdateRMS()
    recipe = bench.recipe.for_run("adamw", 0)
    recipe.optimizer.lr = lr
    from hf_spectral.recipes.runner import train

    train(recipe, bench.out / "runs" / f"adamw-rms-lr{lr:g}", bench.prepared, callbacks=[callback])
    return callback.by_step


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a few steps: a smoke test")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "cpu")
    args = ap.parse_args(argv)
    out = args.out
    names = {"pretrain": "pretrain", "full FT": "finetune_full", "LoRA FT": "finetune_lora"}
    tasks = {name: (ablation_bench(out, "cpu", args.quick, task, f"adamw_rms_{task}"), _adamw_lr(out, task))
             for name, task in names.items()}  # fmt: skip
    measured = {name: measure(bench, lr) for name, (bench, lr) in tasks.items()}
    columns = [(name, kind) for name, steps in measured.items() for kind in steps[max(steps)]]
    print("| step t | ρ(t), β₁ = 0.9 | Moonlight | " + " | ".join(f"{n}: {k}" for n, k in columns) + " |")
    print("|---|---|---|" + "---|" * len(columns))
    for t in STEPS:
        cells = [f"{measured[n][t][k]:.3f}" if t in measured[n] else "—" for n, k in columns]
        print(f"| {t} | {adamw_update_rms(t, 0.9):.3f} | 0.200 | " + " | ".join(cells) + " |")
    print("\nlr per task: " + ", ".join(f"{name} {lr:g}" for name, (_, lr) in tasks.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
