"""Section b: Polar Express, our NS5 and TNS in `mixed` and `bf16` against torch.optim.Muon's Newton–Schulz.

Inputs have a known SVD: M = U diag(σ) Vᵀ with U, V orthonormal (QR of Gaussian matrices, float64 on the device)
and a power-law spectrum σ_k = k^(−log κ / log r), κ = 1e4 — the spectrum of benchmarks/shaping.py. The float64
target U φ(σ/ν) Vᵀ comes straight from the construction (M itself is its float32 rounding), so no large SVD is
needed; on the shapes up to ``svd_check_max_elements`` a float64 SVD of M (``shape_svd``) checks that target.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch
from shaping import torch_newton_schulz
from timing import median_time, synchronize
from torch import Tensor

from hf_spectral import phi, shape_svd, spectral_power

from .harness import Section
from .sizes import Sizes

KAPPA = 1e4
EPS = 1e-3
PRECISIONS = ("mixed", "bf16")
TORCH_NS5 = "torch.optim.Muon NS5"


def known_svd(shape: tuple[int, ...], device: torch.device, seed: int = 0) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(M float32, U, σ, V) float64 with M ≈ U diag(σ) Vᵀ on the device: power-law σ with condition number KAPPA."""
    *batch, m, n = shape
    r = min(m, n)
    g = torch.Generator(device=device).manual_seed(seed)
    U = torch.linalg.qr(torch.randn(*batch, m, r, dtype=torch.float64, device=device, generator=g)).Q
    V = torch.linalg.qr(torch.randn(*batch, n, r, dtype=torch.float64, device=device, generator=g)).Q
    k = torch.arange(1, r + 1, dtype=torch.float64, device=device)
    sigma = k.pow(-math.log(KAPPA) / math.log(max(r, 2))).expand(*batch, r)
    return ((U * sigma.unsqueeze(-2)) @ V.mT).float(), U, sigma, V


def target(U: Tensor, sigma: Tensor, V: Tensor, p: float) -> Tensor:
    """The float64 shaping target U φ(σ/ν) Vᵀ, ν = ‖σ‖₂ = ‖M‖_F (per matrix)."""
    s = sigma / torch.linalg.vector_norm(sigma, dim=-1, keepdim=True)
    return (U * phi(s, p, EPS).unsqueeze(-2)) @ V.mT


def relative_error(Y: Tensor, reference: Tensor) -> float:
    """‖Y − Y*‖_F / ‖Y*‖_F over the whole (batched) tensor."""
    return float((Y.double() - reference).norm() / reference.norm())


def our_kernels(ps: tuple[float, ...]) -> list[tuple[str, str, float, Callable[[Tensor], Tensor]]]:
    """(method, precision, p, fn): our kernels as the optimizer calls them (no finiteness check, result left in
    the working dtype)."""

    def kernel(p: float, method: str, precision: str) -> Callable[[Tensor], Tensor]:
        return lambda M: spectral_power(M, p, method=method, precision=precision, check_finite=False, out_dtype=None)

    rows = []
    for precision in PRECISIONS:
        rows.append(("PE-5", precision, 0.0, kernel(0.0, "polar", precision)))
        rows.append(("NS5 (ours)", precision, 0.0, kernel(0.0, "newton_schulz", precision)))
        rows += [(f"TNS-8 p={p:+.2f}", precision, p, kernel(p, "tns", precision)) for p in ps]
    return rows


def torch_ns5(M: Tensor) -> list[Tensor]:
    """torch.optim.Muon's orthogonalisation of M, or of each matrix of a stack in turn (as its step does)."""
    return [torch_newton_schulz(M)] if M.ndim == 2 else [torch_newton_schulz(x) for x in M]


def run_kernels(section: Section, sizes: Sizes, device: torch.device) -> None:
    """Time every kernel on every shape, ratios to torch's NS5 and to PE-5, and errors against the float64 target."""
    section.note(
        f"Input: power-law spectrum, κ = {KAPPA:g}, float32. Error: ‖Y − Y*‖_F/‖Y*‖_F against the float64 target "
        f"U φ(σ/ν) Vᵀ (ε = {EPS:g}) of the construction M = U diag(σ) Vᵀ (exact SVD in float64, computed on the "
        "device; checked against a float64 SVD of M in section f), for the method's p (p = 0 for PE-5 and NS5: "
        f"distance from the polar factor). Time: median of {sizes.kernel_repeats} calls after "
        f"{sizes.kernel_warmup} warm-up calls (CUDA events on a GPU, wall clock on a CPU). Our kernels run as the "
        "optimizer calls them (check_finite=False, out_dtype=None); torch's NS5 takes one matrix at a time, so a "
        "stack is a loop over its matrices, as in torch.optim.Muon's step."
    )
    table = section.table(
        "Shaping kernels",
        [("shape", "shape"), ("precision", "precision"), ("method", "method"), ("time_ms", "time (ms)"),
         ("vs_torch_ns5", "÷ torch NS5"), ("vs_pe5", "÷ PE-5"), ("rel_error", "rel. error vs float64")],
    )  # fmt: skip
    section.data["device"] = str(device)
    for shape in sizes.kernel_shapes:
        label = "×".join(map(str, shape))
        if not section.has_time(20.0, f"shape {label}"):
            return
        M, U, sigma, V = known_svd(shape, device)
        targets = {p: target(U, sigma, V, p) for p in (0.0, *sizes.kernel_p)}
        del U, V
        t_torch = median_time(lambda M=M: torch_ns5(M), device, sizes.kernel_repeats, sizes.kernel_warmup)
        err = relative_error(torch.stack(torch_ns5(M)).reshape(M.shape), targets[0.0])
        section.add(table, shape=label, precision="bf16", method=TORCH_NS5, p=0.0, time_ms=1e3 * t_torch,
                    vs_torch_ns5=1.0, vs_pe5=None, rel_error=err)  # fmt: skip
        t_pe5: dict[str, float] = {}
        for method, precision, p, fn in our_kernels(sizes.kernel_p):
            t = median_time(lambda fn=fn, M=M: fn(M), device, sizes.kernel_repeats, sizes.kernel_warmup)
            t_pe5.setdefault(precision, t)
            section.add(table, shape=label, precision=precision, method=method, p=p, time_ms=1e3 * t,
                        vs_torch_ns5=t / t_torch, vs_pe5=t / t_pe5[precision],
                        rel_error=relative_error(fn(M), targets[p]))  # fmt: skip
        del M, targets


def run_reference_check(section: Section, sizes: Sizes, device: torch.device) -> None:
    """The kernels' float64 target from the construction against a float64 SVD of M itself (``shape_svd``), on the
    shapes up to ``svd_check_max_elements``. Run last: a large float64 SVD only spends time nothing else needs."""
    p = sizes.kernel_p[0]
    section.note(f"p = {p}; the difference comes from rounding M to float32 (the construction is exact in float64).")
    checks = section.table(
        "Float64 SVD check of the kernels' target",
        [("shape", "shape"), ("p", "p"), ("svd_s", "SVD time (s)"), ("rel_diff", "rel. difference")],
    )
    for shape in [s for s in sizes.kernel_shapes if math.prod(s) <= sizes.svd_check_max_elements]:
        label = "×".join(map(str, shape))
        if not section.has_time(60.0, f"the SVD check on {label}"):
            return
        M, U, sigma, V = known_svd(shape, device)
        synchronize(device)
        start = time.perf_counter()
        svd_target = shape_svd(M, p, EPS)
        synchronize(device)
        section.add(checks, shape=label, p=p, svd_s=time.perf_counter() - start,
                    rel_diff=relative_error(svd_target, target(U, sigma, V, p)))  # fmt: skip
