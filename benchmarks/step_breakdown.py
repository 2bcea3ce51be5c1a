"""Where an optimizer step's time goes: the whole step of torch.optim.Muon + AdamW, our DynMuon (at its final p)
and our Muon, next to their shaping kernels alone on the same matrices (torch's NS5, our TNS / Polar Express),
timed round robin in one process, best of `--repeats` rounds.

    python benchmarks/step_breakdown.py            # Llama, hidden 512, 4 layers (benchmarks/optimizer_step.py's model)

Step ÷ kernel tells the per-step overhead outside the shaping (moments, scaling, NaN check, Python); the kernels'
ratio tells what the shaping itself costs. To compare two commits, run it in a checkout of each, alternating
(`PYTHONPATH=<checkout> python benchmarks/step_breakdown.py`), and compare the ratios, not the times.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from optimizer_step import Paired, llama_model
from timing import describe_device, round_robin

from hf_spectral import Muon, MuonP, partition, spectral_power
from hf_spectral.config import SpectralConfig, optimizer_tns_steps


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=6)
    ap.add_argument("--p", type=float, default=-0.1, help="DynMuon's p (its final one by default)")
    args = ap.parse_args(argv)
    model = llama_model(args.hidden, args.layers, 256)
    for t in model.parameters():  # the step's cost does not depend on the gradient's values
        t.grad = torch.randn_like(t)
    matrices = [t.grad.clone() for g in partition(model).groups if g["algorithm"] == "spectral" for t in g["params"]]
    floor = SpectralConfig.floor
    steps = optimizer_tns_steps(floor, args.p)
    from torch.optim._muon import _zeropower_via_newtonschulz

    NS5 = (3.4445, -4.7750, 2.0315)  # torch.optim.Muon's default coefficients

    def ours(method: str, p: float, **kw: object):
        return lambda: [spectral_power(M, p, method=method, precision="bf16_all", check_finite=False,
                                       out_dtype=None, **kw) for M in matrices]  # fmt: skip

    torch_opt, dynmuon, muon = Paired(model, 1e-3), MuonP(model, lr=1e-3, p=args.p), Muon(model, lr=1e-3)
    work = {
        "torch.optim.Muon + AdamW step": torch_opt.step,
        f"hf_spectral DynMuon step (p = {args.p:g})": dynmuon.step,
        "hf_spectral Muon step": muon.step,
        "torch NS5 kernels": lambda: [_zeropower_via_newtonschulz(M, NS5, 5, 1e-7) for M in matrices],
        f"our TNS-{steps} kernels (floor {floor:g})": ours("tns", args.p, eps=floor, steps=steps),
        "our PE-5 kernels": ours("polar", 0.0),
    }
    cpu = torch.device("cpu")
    best = round_robin(work, cpu, args.repeats)
    print(f"# {describe_device(cpu)}; {len(matrices)} hidden matrices")
    base = {"step": best["torch.optim.Muon + AdamW step"], "kernels": best["torch NS5 kernels"]}
    print("| what | time (ms) | ÷ torch's |")
    print("|---|---|---|")
    for name, t in best.items():
        print(f"| {name} | {1e3 * t:.1f} | {t / base['step' if 'step' in name else 'kernels']:.2f} |")


if __name__ == "__main__":
    main()
