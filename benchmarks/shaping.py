"""Accuracy and speed of every shaping method against Polar-Express-5 and torch.optim.Muon's Newton–Schulz.

    python benchmarks/shaping.py                      # CPU defaults
    python benchmarks/shaping.py --device cuda --shapes 768x768,1024x4096,4096x1024,4096x4096,16x4096

For each shape and precision it times, side by side in one run: our Polar Express (5 steps), torch.optim.Muon's
orthogonalisation (NS5, bf16, one matrix at a time), TNS-K8 (spectral_power's default, ε = 1e-3), TNS-6 at
ε = 3e-3 (the optimizers' default: the tabled 6-step trajectory) at two values of p, TNS-5 at ε = 5e-3 (the
optimizers' steps at ``floor=5e-3`` for DynMuon's p = −0.1), and the exact eigh method
(LoRA shapes). Ratios are against Polar Express at the same shape and precision. Errors are relative Frobenius
errors against the float64 SVD target with the row's ε on a power-law spectrum (κ = 1e4), harsher than the
momentum matrices of real training (benchmarks/quality/spectra.py measures those).

Memory: the peak of memory allocated during one call beyond what was allocated before it (the result included),
÷ the bytes of the float32 input; "overwrite" is the same call with ``overwrite=True`` (the optimizer's path when
the shaped direction is a temporary of the step; the input it overwrites is not counted). On CUDA it is
``torch.cuda.max_memory_allocated``; on CPU, where torch keeps no allocator statistics, the running sum of the
allocations and frees that ``torch.profiler`` records with ``profile_memory=True`` (every tensor allocation of the
CPU allocator, in order). ``--no-memory`` skips both columns.
"""

from __future__ import annotations

import argparse
import inspect
import math
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
from torch._C._profiler import _EventType
from torch.optim._muon import DEFAULT_A, DEFAULT_B, DEFAULT_C, _zeropower_via_newtonschulz
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import best_time, describe_device

from hf_spectral import shape_svd, spectral_power
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


def peak_memory(fn: Callable[[], object], device: torch.device) -> int:
    """Peak bytes allocated while fn() runs, beyond those allocated before it (its result included)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        result = fn()
        torch.cuda.synchronize(device)
        del result
        return torch.cuda.max_memory_allocated(device) - before
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        result = fn()
    del result
    events, stack = [], list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        event = stack.pop()
        stack.extend(event.children)
        if event.tag == _EventType.Allocation:
            events.append((event.start_time_ns, event.extra_fields.alloc_size))
    current = peak = 0
    for _, size in sorted(events):
        current += size
        peak = max(peak, current)
    return peak


def rel_err(Y: torch.Tensor, ref: torch.Tensor | None) -> str:
    if ref is None:
        return "-"
    return f"{float((Y.double().cpu() - ref).norm() / ref.norm()):.4f}"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--shapes", default="768x768,1024x4096,4096x1024,16x4096")
    ap.add_argument("--precisions", default="fp32,mixed,bf16,bf16_all")
    ap.add_argument("--p", default="-0.1,0.5", help="p values for TNS (DynMuon's final p, MuonP's default)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--reference-max-elements", type=int, default=2**23, help="skip the SVD reference above this")
    ap.add_argument("--no-memory", dest="memory", action="store_false", help="skip the memory columns")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    shapes = [tuple(int(x) for x in s.split("x")) for s in args.shapes.split(",")]
    ps = [float(x) for x in args.p.split(",")]
    print(f"# device: {describe_device(device)}")
    print("| shape | precision | method | time (ms) | ÷ PE-5 | ÷ torch Muon NS5 | rel. error vs SVD "
          "| peak memory ÷ input | overwrite |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    table = []  # (shape, precision, name, time, ÷ PE-5, ÷ NS5, error, call or None, overwrite call or None)
    for m, n in shapes:
        M = power_law(m, n, 1e4, device)
        small = M.numel() <= args.reference_max_elements
        refs = {
            (p, eps): shape_svd(M.cpu(), p, eps) if small else None
            for p in [0.0, -0.1, *ps]
            for eps in (1e-3, 3e-3, 5e-3)
        }
        t_muon = best_time(lambda M=M: torch_newton_schulz(M), device, args.repeats)
        for precision in args.precisions.split(","):
            rows = [("PE-5 (ours)", 0.0, "polar", 1e-3, None)] + [(f"TNS-K8 p={p:+.2f}", p, "tns", 1e-3, 8) for p in ps]
            rows += [(f"TNS-6 eps=3e-3 p={p:+.2f} (optimizers' default)", p, "tns", 3e-3, 6) for p in ps]
            rows += [("TNS-5 eps=5e-3 p=-0.10 (optimizers' floor=5e-3)", -0.1, "tns", 5e-3, 5)]
            if min(m, n) <= EIGH_MAX_SIDE and precision == "fp32":
                rows += [(f"eigh p={p:+.2f}", p, "eigh", 1e-3, None) for p in ps]
            t_pe = None
            for name, p, method, eps, steps in rows:
                call = partial(shape, M, p, method, precision, eps=eps, steps=steps)
                t = best_time(call, device, args.repeats)
                t_pe = t_pe or t
                # the copy handed over is the caller's temporary: counted by peak_memory, subtracted below
                handed_over = partial(shape_copy, M, p, method, precision, eps, steps) if method != "eigh" else None
                table.append((M, precision, name, f"{1e3 * t:.2f}", f"{t / t_pe:.2f}", f"{t / t_muon:.2f}",
                              rel_err(call(), refs[(p, eps)]), call, handed_over))  # fmt: skip
        err_muon = rel_err(torch_newton_schulz(M), refs[(0.0, 1e-3)])
        table.append((M, "bf16", "torch.optim.Muon NS5", f"{1e3 * t_muon:.2f}", "-", "1.00", err_muon,
                      partial(torch_newton_schulz, M), None))  # fmt: skip
    # Memory last: a torch.profiler session slows later calls down on CPU, so no timing may follow one.
    for M, precision, name, t, vs_pe, vs_muon, err, call, handed_over in table:
        input_bytes = M.numel() * 4
        memory = f"{peak_memory(call, device) / input_bytes:.2f}" if args.memory else "-"
        overwritten = "-"
        if args.memory and handed_over is not None:
            overwritten = f"{peak_memory(handed_over, device) / input_bytes - 1:.2f}"
        m, n = M.shape
        print(f"| {m}×{n} | {precision} | {name} | {t} | {vs_pe} | {vs_muon} | {err} | {memory} | {overwritten} |")


def shape(
    M: torch.Tensor, p: float, method: str, precision: str, overwrite: bool = False, eps: float = 1e-3,
    steps: int | None = None,
) -> torch.Tensor:  # fmt: skip
    """spectral_power as the optimizer calls it: out_dtype=None (bf16 Polar Express stays bf16)."""
    return spectral_power(M, p, eps=eps, method=method, precision=precision, steps=steps, out_dtype=None,
                          overwrite=overwrite)  # fmt: skip


def shape_copy(
    M: torch.Tensor, p: float, method: str, precision: str, eps: float = 1e-3, steps: int | None = None
) -> torch.Tensor:
    """shape() of a copy of M that the shaping may overwrite (the copy is counted once, then subtracted)."""
    return shape(M.clone(), p, method, precision, overwrite=True, eps=eps, steps=steps)


if __name__ == "__main__":
    main()
