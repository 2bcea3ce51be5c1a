"""The matrices DynMuon really shapes: their singular-value spread, and each shaping setting's error on them.

    python benchmarks/quality/spectra.py pretrain                # the quality pre-training task (~1 min + SVDs)
    python benchmarks/quality/spectra.py finetune                # the full fine-tune (needs run.py pretrain first)

Trains the task's recipe with DynMuon (defaults) and records the direction handed to the shaping (the Nesterov mix
of the momentum) at steps 1, 2, 5, 10, 30, 60, 120, 180 and 239. Then, for the matrices that TNS shapes (short side
> 64; smaller ones go to the exact eigh method), it prints the spread of s = σ/‖M‖_F and, for each setting, the
relative Frobenius error against the float64 SVD target with the setting's own ε (mean / max over matrices) and
the distance to the ε = 1e-3 target (how much a larger ε changes the map itself). Issue 15 chose the optimizers'
defaults (ε = 3e-3, 6 TNS steps on the tabled trajectory, bf16_all on CPU) from these tables and the quality
ablations 14–18.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
CAPTURE_STEPS = {1, 2, 5, 10, 30, 60, 120, 180, 239}
SETTINGS = [  # (name, TNS steps, ε, precision)
    ("TNS-8, eps 1e-3, fp32 (previous default on CPU)", 8, 1e-3, "fp32"),
    ("TNS-8, eps 1e-3, bf16 (mixed start)", 8, 1e-3, "bf16"),
    ("TNS-8, eps 1e-3, bf16_all", 8, 1e-3, "bf16_all"),
    ("TNS-7 (fixed quintic), eps 3e-3, fp32", 7, 3e-3, "fp32"),
    ("TNS-7 (fixed quintic), eps 3e-3, bf16_all (default on CPU before the 6-step trajectory)", 7, 3e-3, "bf16_all"),
    ("TNS-6 (tabled trajectory), eps 3e-3, fp32", 6, 3e-3, "fp32"),
    ("TNS-6 (tabled trajectory), eps 3e-3, mixed (default on CUDA)", 6, 3e-3, "mixed"),
    ("TNS-6 (tabled trajectory), eps 3e-3, bf16_all (default on CPU)", 6, 3e-3, "bf16_all"),
    ("TNS-6, eps 1e-2, fp32", 6, 1e-2, "fp32"),
    ("TNS-6, eps 1e-2, bf16_all", 6, 1e-2, "bf16_all"),
    ("TNS-5, eps 3e-2, bf16_all", 5, 3e-2, "bf16_all"),
]
PS = (0.1, 0.0, -0.1, -0.25, 0.5)


def capture(task: str, out_dir: Path) -> list[torch.Tensor]:
    """Train the task with DynMuon and return the (m, n) directions shaped at CAPTURE_STEPS."""
    import hf_spectral.updates as updates
    from hf_spectral.cli import main as cli
    from hf_spectral.optimizer import SpectralOptimizer

    saved: list[torch.Tensor] = []
    step = {"n": 0}
    original_step, original_power = SpectralOptimizer.step, updates.spectral_power

    def counting_step(self, *args, **kwargs):
        step["n"] += 1
        return original_step(self, *args, **kwargs)

    def recording_power(M, p, **kwargs):
        if step["n"] in CAPTURE_STEPS:
            saved.extend(M.detach().float().cpu().reshape(-1, *M.shape[-2:]).clone())
        return original_power(M, p, **kwargs)

    recipe = HERE / ("pretrain.yaml" if task == "pretrain" else "finetune.yaml")
    args = ["train", str(recipe), "--set", "optimizer.name=dynmuon", "--output-dir", str(out_dir)]
    if task == "finetune":
        base = HERE / "results" / "cpu" / "base" / "runs" / "adamw-lr0.003-seed0"
        if not base.is_dir():
            sys.exit(f"no pre-trained base model at {base}: run `python benchmarks/quality/run.py pretrain` first")
        args += ["--set", f"model.name_or_path={base}", "--set", f"tokenizer.name_or_path={base}"]
    SpectralOptimizer.step, updates.spectral_power = counting_step, recording_power
    try:
        cli(args)
    finally:
        SpectralOptimizer.step, updates.spectral_power = original_step, original_power
    return saved


def report(matrices: list[torch.Tensor]) -> None:
    from hf_spectral import spectral_power
    from hf_spectral.shaping.target import shape_svd

    mats = [M for M in matrices if min(M.shape) > 64]
    print(f"{len(mats)} matrices shaped by TNS, shapes {sorted({tuple(M.shape) for M in mats})}")
    spectra = [torch.linalg.svdvals(M.double()) for M in mats]
    s = torch.cat([S / S.norm() for S in spectra])
    q = torch.tensor([0.0, 0.01, 0.1, 0.5, 0.9, 1.0], dtype=torch.float64)
    print("s = σ/‖M‖_F, quantiles 0/1/10/50/90/100 %:", " ".join(f"{float(x):.1e}" for x in torch.quantile(s, q)))
    print(f"fraction of singular values below 1e-3: {float((s < 1e-3).double().mean()):.3f}, "
          f"below 1e-2: {float((s < 1e-2).double().mean()):.3f}")  # fmt: skip
    stable = torch.tensor([float((S.norm() / S[0]) ** 2) for S in spectra], dtype=torch.float64)
    print("stable rank ‖M‖_F²/σ₁², quantiles:", " ".join(f"{float(x):.1f}" for x in torch.quantile(stable, q)))
    refs = {}
    print("\n| setting | " + " | ".join(f"p = {p:+.2f}" for p in PS) + " |")
    print("|---|" + "---|" * len(PS))
    for name, steps, eps, precision in SETTINGS:
        cells = []
        for p in PS:
            own, base = [], []
            for i, M in enumerate(mats):
                for e in (eps, 1e-3):
                    refs.setdefault((i, p, e), shape_svd(M, p, e))
                Y = spectral_power(M, p, eps=eps, method="tns", steps=steps, precision=precision).double()
                own.append(float((Y - refs[(i, p, eps)]).norm() / refs[(i, p, eps)].norm()))
                base.append(float((Y - refs[(i, p, 1e-3)]).norm() / refs[(i, p, 1e-3)].norm()))
            cells.append(f"{sum(own) / len(own):.2%} / {max(own):.2%} (ε=1e-3: {sum(base) / len(base):.0%})")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    print("\nEach cell: error against the target with the setting's own ε, mean / max over the matrices; in brackets")
    print("the mean distance to the ε = 1e-3 target (a larger ε changes the map for directions below it).")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("task", choices=("pretrain", "finetune"))
    ap.add_argument("--out", type=Path, default=HERE / "results" / "spectra")
    args = ap.parse_args(argv)
    matrices = capture(args.task, args.out / args.task)
    report(matrices)


if __name__ == "__main__":
    main()
