"""Optimizer step time on a Llama-style model: ours vs torch.optim.Muon (+ AdamW) vs AdamW, side by side.

    python benchmarks/optimizer_step.py                                   # CPU default (hidden 512, 4 layers)
    python benchmarks/optimizer_step.py --device cuda --hidden 2048 --layers 16 --vocab 32000
    python benchmarks/optimizer_step.py --lora 16                         # LoRA factors (PEFT) on every projection

Gradients come from one real forward/backward on standard-library source text (byte tokens); only
``optimizer.step()`` is timed, repeatedly, on those gradients. torch.optim.Muon gets the same hidden matrices as
our spectral group, and AdamW the rest — the usual pairing, stepped back to back.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import describe_device, round_robin

from hf_spectral import DynMuon, Muon, MuonP, SpectralAdam, partition
from hf_spectral.corpus import byte_blocks, stdlib_texts


class Paired:
    """torch.optim.Muon for the spectral group and torch.optim.AdamW for the rest, stepped together."""

    def __init__(self, model: torch.nn.Module, lr: float, adjust_lr_fn: str = "match_rms_adamw") -> None:
        groups = {g["algorithm"]: g["params"] for g in partition(model).groups}
        self.muon = torch.optim.Muon(groups["spectral"], lr=lr, adjust_lr_fn=adjust_lr_fn)
        self.adamw = torch.optim.AdamW(groups["adamw"], lr=lr) if groups.get("adamw") else None  # (none: LoRA)

    def step(self) -> None:
        self.muon.step()
        if self.adamw is not None:
            self.adamw.step()


def llama_model(hidden: int, layers: int, vocab: int) -> LlamaForCausalLM:
    """The benchmarks' Llama-style model (seed 0): intermediate ≈ 8/3 hidden, 64-wide heads, GQA 4:1."""
    config = LlamaConfig(
        vocab_size=vocab, hidden_size=hidden, intermediate_size=int(8 * hidden / 3) // 64 * 64,
        num_hidden_layers=layers, num_attention_heads=max(1, hidden // 64),
        num_key_value_heads=max(1, hidden // 256), max_position_embeddings=512,
    )  # fmt: skip
    torch.manual_seed(0)
    return LlamaForCausalLM(config)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--lora", type=int, default=0, help="LoRA rank on every projection (PEFT; 0: full model)")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    model = llama_model(args.hidden, args.layers, args.vocab).to(device)
    if args.lora:
        from peft import LoraConfig, get_peft_model

        targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
        model = get_peft_model(model, LoraConfig(r=args.lora, lora_alpha=2 * args.lora, target_modules=targets))
    batch = byte_blocks(stdlib_texts("train", max_chars=200_000), 256)[:4].to(device) % args.vocab
    model(input_ids=batch, labels=batch).loss.backward()
    n_params = sum(t.numel() for t in model.parameters() if t.requires_grad)
    print(f"# device: {describe_device(device)}; model: Llama hidden {args.hidden}, {args.layers} layers, "
          f"{n_params / 1e6:.1f} M trained parameters" + (f" (LoRA r = {args.lora})" if args.lora else ""))  # fmt: skip
    contenders = {
        "torch.optim.Muon + AdamW": lambda: Paired(model, 1e-3),
        "hf_spectral Muon (PE-5, defaults)": lambda: Muon(model, lr=1e-3),
        "hf_spectral Muon (NS5, defaults)": lambda: Muon(model, lr=1e-3, method="newton_schulz"),
        "torch.optim.Muon (original lr adjust) + AdamW": lambda: Paired(model, 1e-3, "original"),
        "hf_spectral Muon (NS5, scale=spectral)": lambda: Muon(
            model, lr=1e-3, method="newton_schulz", scale="spectral"
        ),
        # DynMuon's step at a given p is MuonP's at that p (same shaping, same state): its start, its midpoint,
        # its final p (where it spends ~95 % of training), and the final p under the previous defaults
        "hf_spectral DynMuon (defaults) at p = +0.1 (start)": lambda: MuonP(model, lr=1e-3, p=0.1),
        "hf_spectral DynMuon (defaults) at p = 0 (midpoint)": lambda: MuonP(model, lr=1e-3, p=0.0),
        "hf_spectral DynMuon (defaults) at p = -0.1 (final)": lambda: MuonP(model, lr=1e-3, p=-0.1),
        "hf_spectral DynMuon (defaults), scheduled": lambda: DynMuon(model, lr=1e-3, total_steps=10**6),
        "DynMuon at p = -0.1, 7 fixed-quintic steps (the default before the 6-step trajectory)": lambda: MuonP(
            model, lr=1e-3, p=-0.1, ns_steps=7
        ),
        "DynMuon at p = -0.1, floor 5e-3 (5-step trajectory: Muon's step count)": lambda: MuonP(
            model, lr=1e-3, p=-0.1, floor=5e-3
        ),
        "hf_spectral MuonP p=0.5 (defaults)": lambda: MuonP(model, lr=1e-3, p=0.5),
        "hf_spectral SpectralAdam p=0.5 (defaults)": lambda: SpectralAdam(model, lr=1e-3),
        # the float32-GEMM rows last: on a CPU they leave caches and the allocator in a state that slowed whichever
        # row came next by up to 0.3x in the round robin
        "hf_spectral Muon (PE-5, precision=bf16: mixed start)": lambda: Muon(model, lr=1e-3, precision="bf16"),
        "DynMuon at p = -0.1, before issue 15 (TNS-8, floor 1e-3, fp32)": lambda: MuonP(
            model, lr=1e-3, p=-0.1, floor=1e-3, ns_steps=8, precision="fp32"
        ),
        "torch.optim.AdamW": lambda: torch.optim.AdamW(model.parameters(), lr=1e-3),
    }
    # Round robin: every round times one step of each optimizer, so slow phases of a shared machine hit all of
    # them alike; the table reports each one's best round. (Steps change the weights; step time does not care.)
    times = round_robin({name: make().step for name, make in contenders.items()}, device, args.repeats)
    base = times["torch.optim.Muon + AdamW"]
    print("| optimizer | step time (ms) | ÷ torch.optim.Muon + AdamW |")
    print("|---|---|---|")
    for name, t in times.items():
        print(f"| {name} | {1e3 * t:.1f} | {t / base:.2f} |")


if __name__ == "__main__":
    main()
