"""Section c: one optimizer step on a TinyLlama-shaped model — torch AdamW, torch.optim.Muon + AdamW, our Muon,
DynMuon mid-schedule and SpectralAdam: time, ratios, optimizer state and peak memory; then the same on a
mixture-of-experts model (four layers of Qwen3-30B-A3B's shape), whose stacked experts torch.optim.Muon cannot take:
AdamW, our Muon and DynMuon with the experts shaped one matrix each, and our Muon with the experts on AdamW."""

from __future__ import annotations

from collections.abc import Callable

import torch
from optimizer_step import Paired
from timing import median_time

from hf_spectral import DynMuon, Muon, SpectralAdam, partition

from .data import TokenCorpus, build_llama, build_moe, parameter_count
from .harness import Section, release_memory
from .sizes import Sizes

LR = 1e-4
DYNMUON_TOTAL_STEPS = 1000
BASELINES = ("torch.optim.AdamW", "torch.optim.Muon + AdamW")


def state_bytes(optimizer: object) -> int:
    """Bytes held in optimizer state tensors (for Paired: both of its optimizers)."""
    parts = [optimizer.muon, optimizer.adamw] if isinstance(optimizer, Paired) else [optimizer]
    return sum(
        v.numel() * v.element_size()
        for opt in parts
        for state in opt.state.values()
        for v in state.values()
        if isinstance(v, torch.Tensor)
    )


def mid_schedule_dynmuon(model: torch.nn.Module) -> DynMuon:
    """DynMuon with total_steps = 1000, advanced to step 500 (p of the middle of training, TNS shaping)."""
    opt = DynMuon(model, lr=LR, total_steps=DYNMUON_TOTAL_STEPS)
    for group in opt.param_groups:
        group["step"] = DYNMUON_TOTAL_STEPS // 2
    return opt


def contenders(model: torch.nn.Module, device: torch.device) -> dict[str, Callable[[], object]]:
    """Name → constructor, baselines first."""
    return {
        "torch.optim.AdamW": lambda: torch.optim.AdamW(model.parameters(), lr=LR),
        "torch.optim.AdamW (fused)": lambda: torch.optim.AdamW(model.parameters(), lr=LR, fused=True),
        "torch.optim.Muon + AdamW": lambda: Paired(model, LR),
        "hf_spectral Muon (PE-5, bf16)": lambda: Muon(model, lr=LR),
        "hf_spectral DynMuon (mid-schedule, TNS-8)": lambda: mid_schedule_dynmuon(model),
        "hf_spectral SpectralAdam (p = 0.5, TNS-8)": lambda: SpectralAdam(model, lr=LR),
    }


def run_optimizer_step(section: Section, sizes: Sizes, device: torch.device, corpus: TokenCorpus) -> None:
    """Gradients from one real forward/backward, then each optimizer in turn: median step time, state, memory."""
    model = build_llama(sizes.llama, len(corpus.tokenizer), device)
    batch = corpus.blocks("train", sizes.seq_len)[: sizes.micro_batch].to(device)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        model(input_ids=batch, labels=batch).loss.backward()
    n_params = parameter_count(model)
    section.data.update(parameters=n_params, param_dtype="float32", lr=LR)
    section.note(
        f"Model: Llama {model.config.hidden_size} hidden, {model.config.num_hidden_layers} layers, "
        f"{n_params / 1e6:.1f} M parameters, float32 parameters and gradients (the master weights of bf16 "
        f"mixed-precision training); gradients from one forward/backward on {sizes.micro_batch}×{sizes.seq_len} "
        "tokens of standard-library source (bf16 autocast on a GPU). Only optimizer.step() is timed, on those "
        f"gradients: median of {sizes.step_repeats} steps after {sizes.step_warmup} warm-up steps, one optimizer "
        "at a time. Peak memory: torch.cuda.max_memory_allocated over the optimizer's life (model and gradients "
        "included); overhead = peak − memory before the optimizer was built. torch.optim.Muon gets our spectral "
        "group (hidden matrices), AdamW the rest, as in benchmarks/optimizer_step.py. Our optimizers use "
        "precision='auto' (mixed on CUDA, fp32 on CPU) except Muon (bf16)."
    )
    measure(section, "Optimizer step", contenders(model, device), device, sizes, BASELINES)
    del model
    release_memory()
    moe = build_moe(sizes.moe, len(corpus.tokenizer), device)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        moe(input_ids=batch, labels=batch).loss.backward()
    experts = sum(t.numel() for n, t in moe.named_parameters() if ".experts." in n)
    section.data.update(moe_parameters=parameter_count(moe), moe_expert_parameters=experts)
    section.note(
        f"MoE model: Qwen3-MoE, {moe.config.num_hidden_layers} layers of {moe.config.num_experts} experts "
        f"({moe.config.num_experts_per_tok} active), {parameter_count(moe) / 1e6:.1f} M parameters, "
        f"{experts / 1e6:.1f} M of them in stacked expert tensors; gradients from the same batch. torch.optim.Muon "
        "takes only 2-D parameters, so the baseline is AdamW."
    )
    moe_contenders = {
        "torch.optim.AdamW": lambda: torch.optim.AdamW(moe.parameters(), lr=LR),
        "hf_spectral Muon (experts shaped)": lambda: Muon(moe, lr=LR),
        "hf_spectral Muon (experts on AdamW)": lambda: Muon(partition(moe, experts="adamw"), lr=LR),
        "hf_spectral DynMuon (mid-schedule, experts shaped)": lambda: mid_schedule_dynmuon(moe),
    }
    measure(section, "Optimizer step, mixture of experts", moe_contenders, device, sizes, BASELINES[:1])


def measure(
    section: Section,
    title: str,
    makers: dict[str, Callable[[], object]],
    device: torch.device,
    sizes: Sizes,
    baselines: tuple[str, ...],
) -> None:
    """Each optimizer in turn on the gradients already in place: median step time, state, peak memory and the
    ratios to `baselines` (AdamW first, then torch.optim.Muon + AdamW when measured)."""
    columns = [("optimizer", "optimizer"), ("step_ms", "step (ms)"), ("vs_torch_muon", "÷ torch Muon + AdamW"),
               ("vs_adamw", "÷ AdamW"), ("state_mib", "state (MiB)"), ("peak_gib", "peak (GiB)"),
               ("overhead_gib", "overhead (GiB)"), ("p", "p")]  # fmt: skip
    table = section.table(title, [c for c in columns if c[0] != "vs_torch_muon" or len(baselines) > 1])
    times: dict[str, float] = {}
    for name, make in makers.items():
        if not section.has_time(15.0, name):
            return
        cuda = device.type == "cuda"
        if cuda:
            torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device) if cuda else 0
        opt = make()
        times[name] = median_time(opt.step, device, sizes.step_repeats, sizes.step_warmup)
        peak = torch.cuda.max_memory_allocated(device) if cuda else None
        section.add(
            table, optimizer=name, step_ms=1e3 * times[name], state_mib=state_bytes(opt) / 2**20,
            peak_gib=peak / 2**30 if peak is not None else None,
            overhead_gib=(peak - before) / 2**30 if peak is not None else None,
            p=opt.current_p() if hasattr(opt, "current_p") else None,
        )  # fmt: skip
        del opt
        release_memory()
        for row in table.rows:  # ratios to whichever baselines have been measured
            for key, baseline in zip(("vs_adamw", "vs_torch_muon"), baselines, strict=False):
                row[key] = row["step_ms"] / (1e3 * times[baseline]) if baseline in times else None
