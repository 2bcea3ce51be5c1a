"""Accuracy and speed of every shaping method against Polar-Express-5 and torch.optim.Muon's Newton–Schulz.

    python benchmarks/shaping.py                      # CPU defaults
    python benchmarks/shaping.py --device cuda --shapes 768x768,1024x4096,4096x1024,4096x4096,16x4096

For each shape and precision it times, side by side in one run: our Polar Express (5 steps), torch.optim.Muon's
orthogonalisation (NS5, bf16, one matrix at a time), TNS-K8 at two values of p, and the exact eigh method (LoRA
shapes). Ratios are against Polar Express at the same shape and precision. Errors are relative Frobenius errors
against the float64 SVD target on a power-law spectrum (κ = 1e4) — a stand-in for real update spectra.
"""

from __future__ import annotations

import argparse
import inspect
import math
import sys
from pathlib import Path

import torch
from torch.optim._muon import DEFAULT_A, DEFAULT_B, DEFAULT_C, _zeropower_via_newtonschulz

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import best_time, describe_device

from hf_spectral import polar_express, shape_svd, spectral_power
from hf_spectral.shaping import EIGH_MAX_SIDE

_TAKES_USE_ADDMM = "use_addmm" in inspect.signature(_zeropower_via_newtonschulz).parameters


def torch_newton_schulz(M: torch.Tensor) -> torch.Tensor:
    """torch.optim.Muon's orthogonalisation of one matrix as its step calls it with its defaults (Keller Jordan's
    NS5 in bf16, eps 1e-7). Some torch versions take a `use_addmm` flag (Muon's default: False), others do not."""
    extra = (False,) if _TAKES_USE_ADDMM else ()
    return _zeropower_via_newtonschulz(M, (DEFAULT_A, DEFAULT_B, DEFAULT_C), 5, 1e-7, *extra)


def power_law(m: int, n: int, kappa: float, device: torch.device, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    r = min(m, n)
    U, _ = torch.linalg.qr(torch.randn(m, r, generator=g))
    V, _ = torch.linalg.qr(torch.randn(n, r, generator=g))
    sigma = torch.arange(1, r + 1, dtype=torch.float32).pow(-math.log(kappa) / math.log(max(r, 2)))
    return ((U * sigma) @ V.T).to(device)


def rel_err(Y: torch.Tensor, ref: torch.Tensor | None) -> str:
    if ref is None:
        return "-"
    return f"{float((Y.double().cpu() - ref).norm() / ref.norm()):.4f}"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--shapes", default="768x768,1024x4096,4096x1024,16x4096")
    ap.add_argument("--precisions", default="fp32,mixed,bf16")
    ap.add_argument("--p", default="-0.25,0.5", help="p values for TNS")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--reference-max-elements", type=int, default=2**23, help="skip the SVD reference above this")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    shapes = [tuple(int(x) for x in s.split("x")) for s in args.shapes.split(",")]
    ps = [float(x) for x in args.p.split(",")]
    print(f"# device: {describe_device(device)}")
    print("| shape | precision | method | time (ms) | ÷ PE-5 | ÷ torch Muon NS5 | rel. error vs SVD |")
    print("|---|---|---|---|---|---|---|")
    for m, n in shapes:
        M = power_law(m, n, 1e4, device)
        small = M.numel() <= args.reference_max_elements
        refs = {p: shape_svd(M.cpu(), p) if small else None for p in [0.0, *ps]}
        t_muon = best_time(lambda M=M: torch_newton_schulz(M), device, args.repeats)
        for precision in args.precisions.split(","):
            rows = [("PE-5 (ours)", 0.0, lambda M=M, pr=precision: polar_express(M, precision=pr))]
            for p in ps:
                tns = lambda M=M, p=p, pr=precision: spectral_power(M, p, method="tns", precision=pr)  # noqa: E731
                rows.append((f"TNS-K8 p={p:+.2f}", p, tns))
            if min(m, n) <= EIGH_MAX_SIDE and precision == "fp32":
                rows += [(f"eigh p={p:+.2f}", p, lambda M=M, p=p: spectral_power(M, p, method="eigh")) for p in ps]
            t_pe = None
            for name, p, fn in rows:
                t = best_time(fn, device, args.repeats)
                t_pe = t_pe or t
                err = rel_err(fn(), refs[p])
                print(f"| {m}×{n} | {precision} | {name} | {1e3 * t:.2f} | {t / t_pe:.2f} | {t / t_muon:.2f} | {err} |")
        err_muon = rel_err(torch_newton_schulz(M), refs[0.0])
        print(f"| {m}×{n} | bf16 | torch.optim.Muon NS5 | {1e3 * t_muon:.2f} | - | 1.00 | {err_muon} |")


if __name__ == "__main__":
    main()
