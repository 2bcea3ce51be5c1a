"""CUDA checks against float64 SVD references, with the tolerances of shaping.md §6: the real bf16 tensor-core path
of `mixed`, the `bf16` kernels, stacked matrices, `out_dtype`, and an optimizer step on DTensor parameters of a
one-rank process group. Skipped without CUDA; benchmarks/gpu.py runs them first (section a)."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
from spectra import P_VALUES, SPECTRA, WELL_CONDITIONED, bf16_floor, make_matrix, relative_error
from torch import nn

from hf_spectral import SpectralOptimizer, polar_express, shape_svd, spectral_power
from hf_spectral.shaping import quintic

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

DEVICE = torch.device("cuda")
EPS = 1e-3
PRECISIONS = ("fp32", "mixed", "bf16")


def floor_bound(M: torch.Tensor, p: float) -> float:
    """shaping.md §6 for mixed and bf16 on any spectrum: 2.5 × (error of exactly shaping bf16(M)) + 0.02."""
    return 2.5 * bf16_floor(M, p, EPS) + 0.02


def tns(M: torch.Tensor, p: float, precision: str, **kwargs) -> torch.Tensor:
    """spectral_power by TNS on the device, result back on the CPU (checking it was computed on the device)."""
    Y = spectral_power(M.to(DEVICE), p, eps=EPS, method="tns", precision=precision, **kwargs)
    assert Y.device.type == DEVICE.type
    return Y.cpu()


def test_mixed_has_a_bf16_gemm_with_float32_output():
    """On CUDA `mixed` is one bf16 GEMM writing float32 (torch.bmm(..., out_dtype=float32)); without that overload
    it falls back to float32 GEMMs of bf16-rounded operands: right, but no faster than fp32."""
    assert quintic._HAS_OUT_DTYPE, f"torch {torch.__version__} has no aten.bmm.dtype overload"


def test_bf16_matmul_accumulates_in_float32():
    """`mixed`'s GEMM: bf16 operands, float32 accumulation — as exact as a float64 product of the same operands up to
    float32 round-off (a bf16 result is already ~2e-3 off)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 64, 4096, generator=g).bfloat16()
    y = torch.randn(2, 4096, 128, generator=g).bfloat16()
    out = quintic.bf16_matmul(x.to(DEVICE), y.to(DEVICE))
    assert out.dtype == torch.float32
    assert relative_error(out.cpu(), x.double() @ y.double()) < 1e-5


@pytest.mark.parametrize("precision", ["mixed", "bf16"])
@pytest.mark.parametrize("spectrum", SPECTRA)
def test_low_precision_within_bf16_floor(precision, spectrum):
    M = make_matrix((96, 256), spectrum, seed=3)
    for p in P_VALUES:
        err = relative_error(tns(M, p, precision), shape_svd(M, p, EPS))
        assert err <= floor_bound(M, p), f"{precision} {spectrum} p={p}: {err:.4f} > {floor_bound(M, p):.4f}"


@pytest.mark.parametrize("precision,bound", [("fp32", 2e-2), ("mixed", 2e-2), ("bf16", 5e-2)])
@pytest.mark.parametrize("spectrum", WELL_CONDITIONED)
def test_well_conditioned_absolute_bounds(precision, bound, spectrum):
    M = make_matrix((128, 384), spectrum, seed=4)
    for p in [p for p in P_VALUES if -0.3 <= p <= 0.75]:
        err = relative_error(tns(M, p, precision), shape_svd(M, p, EPS))
        assert err <= bound, f"{precision} {spectrum} p={p}: {err:.4f} > {bound}"


@pytest.mark.parametrize("spectrum", ["gaussian", "power_1e4"])
def test_mixed_on_cuda_has_the_error_of_its_cpu_emulation(spectrum):
    """docs/benchmarks.md: the CPU's `mixed` emulates bf16 tensor-core GEMMs, so its errors are a GPU's."""
    M = make_matrix((128, 512), spectrum, seed=5)
    for p in (-0.5, -0.25, 0.0, 0.5):
        reference = shape_svd(M, p, EPS)
        cpu = relative_error(spectral_power(M, p, eps=EPS, method="tns", precision="mixed"), reference)
        cuda = relative_error(tns(M, p, "mixed"), reference)
        assert abs(cuda - cpu) <= 0.25 * cpu + 1e-3, f"{spectrum} p={p}: CUDA {cuda:.5f} vs CPU {cpu:.5f}"


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("coefficients", ["polar_express", "newton_schulz"])
def test_polar_singular_values(coefficients, precision):
    """Polar Express keeps every σ ≥ 1e-2·ν in [0.7, 1.2]; Keller's NS5 in [0.45, 1.25] (as on the CPU)."""
    low, high = (0.7, 1.2) if coefficients == "polar_express" else (0.45, 1.25)
    for spectrum in SPECTRA:
        M = make_matrix((96, 256), spectrum, seed=6)
        Y = polar_express(M.to(DEVICE), coefficients=coefficients, precision=precision).cpu()
        U, S, Vh = torch.linalg.svd(M.double(), full_matrices=False)
        achieved = torch.diagonal(U.T @ Y.double() @ Vh.T)[1e-2 * S.norm() <= S]
        assert low <= float(achieved.min()) and float(achieved.max()) <= high, spectrum


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("shape", [(4, 96, 256), (4, 256, 96), (2, 3, 64, 160)], ids=str)
def test_stacked_matches_one_at_a_time_and_reference(shape, precision):
    """A stack is shaped as its matrices one by one (to round-off) and each is within its bound."""
    M = make_matrix(shape, "power_1e2", seed=7)
    flat = M.reshape(-1, *shape[-2:])
    for p in (-0.25, 0.0, 0.5):
        Y = tns(M, p, precision)
        assert Y.shape == M.shape
        singles = torch.stack([tns(m, p, precision) for m in flat]).reshape(shape)
        # batched and single GEMMs may round differently; a batching bug would be O(1) off
        assert relative_error(Y, singles) <= {"fp32": 1e-3, "mixed": 1e-2, "bf16": 3e-2}[precision], f"p={p}"
        for y, m in zip(Y.reshape(flat.shape), flat, strict=True):
            bound = 2e-2 if precision == "fp32" else floor_bound(m, p)
            assert relative_error(y, shape_svd(m, p, EPS)) <= bound, f"p={p}"


def test_stacked_lora_factors_are_exact():
    """Short side ≤ 64 (LoRA factors): method="auto" is the float64 Gram eigendecomposition, exact on CUDA too."""
    M = make_matrix((4, 16, 2048), "power_1e4", seed=8)
    for p in (-0.5, 0.0, 0.5):
        Y = spectral_power(M.to(DEVICE), p, eps=EPS).cpu()
        assert relative_error(Y, shape_svd(M, p, EPS)) <= 1e-5
        assert relative_error(spectral_power(M.mT.to(DEVICE), p, eps=EPS).cpu(), shape_svd(M.mT, p, EPS)) <= 1e-5


def test_moe_experts_step_matches_separate_matrices_in_capped_batches(monkeypatch):
    """A stacked (experts, rows, cols) parameter on CUDA: one DynMuon-p step equals the step of the experts as
    separate matrices, and a batch cap that cuts the 12 experts into batches of 5 changes nothing beyond
    batched-GEMM rounding."""
    from hf_spectral import shaper

    torch.manual_seed(0)
    W = torch.randn(12, 96, 256, device=DEVICE)
    G = torch.randn(12, 96, 256, device=DEVICE)
    kwargs = dict(lr=0.05, p=-0.1, order="none", scale="rms", rms=0.2)

    def stepped(cap: int | None, stacked: bool) -> torch.Tensor:
        if cap is not None:
            monkeypatch.setattr(shaper, "MAX_BATCH_ELEMENTS", cap)
        params = [nn.Parameter(W.clone())] if stacked else [nn.Parameter(w.clone()) for w in W]
        for t, g in zip(params, [G] if stacked else G.unbind(0), strict=True):
            t.grad = g.clone()
        SpectralOptimizer([{"params": params, "algorithm": "spectral", "stacked": stacked}], **kwargs).step()
        return params[0].detach() if stacked else torch.stack([t.detach() for t in params])

    whole, capped, separate = (stepped(None, True) - W, stepped(5 * 96 * 256, True) - W, stepped(None, False) - W)
    # batched and single GEMMs round differently (mixed precision); a batching bug would be O(1) off
    assert relative_error(capped.cpu(), whole.cpu()) <= 3e-2 and relative_error(separate.cpu(), whole.cpu()) <= 3e-2


def test_out_dtype():
    """Default float32; a requested dtype; None keeps the working dtype (bf16 for bf16 polar / NS and bf16_all TNS,
    whose sum accumulates in bf16); bf16 input
    and empty matrices stay on the device."""
    M = make_matrix((96, 256), "gaussian", seed=9)
    Md = M.to(DEVICE)
    y32 = spectral_power(Md, 0.5, method="tns", precision="mixed")
    assert y32.dtype == torch.float32 and y32.device.type == DEVICE.type
    y16 = spectral_power(Md, 0.5, method="tns", precision="mixed", out_dtype=torch.bfloat16)
    assert y16.dtype == torch.bfloat16 and relative_error(y16.cpu(), y32.cpu()) <= 2**-8
    for method, precision, dtype in [
        ("polar", "bf16", torch.bfloat16), ("newton_schulz", "bf16", torch.bfloat16), ("polar", "mixed", torch.float32),
        ("tns", "bf16", torch.float32), ("tns", "mixed", torch.float32), ("tns", "bf16_all", torch.bfloat16),
    ]:  # fmt: skip
        p = 0.0 if method != "tns" else -0.25
        assert spectral_power(Md, p, method=method, precision=precision, out_dtype=None).dtype == dtype, method
    from_bf16 = spectral_power(Md.bfloat16(), 0.5, method="tns", precision="mixed")
    assert from_bf16.dtype == torch.float32
    assert relative_error(from_bf16.cpu(), shape_svd(M, 0.5, EPS)) <= floor_bound(M, 0.5)
    empty = spectral_power(torch.empty(0, 5, device=DEVICE), 0.5, out_dtype=torch.bfloat16)
    assert empty.shape == (0, 5) and empty.dtype == torch.bfloat16 and empty.device.type == DEVICE.type


@pytest.fixture
def one_rank_mesh(tmp_path):
    """A process group of one rank (NCCL on CUDA) and its 1-D device mesh."""
    from torch.distributed.device_mesh import init_device_mesh

    backend = "nccl" if DEVICE.type == "cuda" else "gloo"
    dist.init_process_group(backend, init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        yield init_device_mesh(DEVICE.type, (1,))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("p", [-0.25, 0.5])
def test_dtensor_step_matches_plain_step_and_svd_reference(one_rank_mesh, p):
    """FSDP2-style Shard(0) DTensor parameters step as plain tensors do, and the first step's update is the float64
    target: momentum ∝ G at step 1, shaped and scaled to RMS 1 (AdamW's update RMS at step 1)."""
    from torch.distributed.tensor import Shard, distribute_tensor

    g = torch.Generator().manual_seed(10)
    shapes = [(192, 64), (64, 192), (96, 96)]
    weights = [torch.randn(s, generator=g) for s in shapes]
    grads = [torch.randn(s, generator=g) for s in shapes]
    lr = 1e-2

    def step(as_dtensor: bool) -> list[torch.Tensor]:
        def place(t: torch.Tensor) -> torch.Tensor:  # a copy: the step must not write into `weights`
            t = t.to(DEVICE, copy=True)
            return distribute_tensor(t, one_rank_mesh, [Shard(0)]) if as_dtensor else t

        params = [nn.Parameter(place(w)) for w in weights]
        for t, grad in zip(params, grads, strict=True):
            t.grad = place(grad)
        SpectralOptimizer([{"params": params, "algorithm": "spectral"}], lr=lr, p=p).step()  # precision auto: mixed
        return [(t.to_local() if as_dtensor else t).detach().cpu() for t in params]

    plain, sharded = step(False), step(True)
    for w, a, b, grad in zip(weights, plain, sharded, grads, strict=True):
        update = (w - a) / lr
        assert relative_error((w - b) / lr, update) <= 1e-3  # the same shaping, up to GEMM round-off
        target = shape_svd(grad, p, EPS)
        assert relative_error(update, target / target.pow(2).mean().sqrt()) <= 2e-2
