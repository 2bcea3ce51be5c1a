"""Mixture-of-experts layers: transformers stores a layer's experts as one (experts, rows, cols) tensor
(``MixtralExperts.gate_up_proj``); routing sends it to a ``stacked`` spectral group and the optimizer shapes each
expert's matrix on its own, exactly as if every expert were a separate nn.Linear."""

from __future__ import annotations

import pytest
import torch
from tiny import text_batches
from torch import nn
from transformers import MixtralConfig, MixtralForCausalLM

from hf_spectral import DynMuon, Muon, SpectralOptimizer, partition, spectral_power
from hf_spectral.integrations.optim_args import resolve
from hf_spectral.updates import MatrixLayout

EPS = 3e-3


def tiny_mixtral(seed: int = 0, experts: int = 4) -> MixtralForCausalLM:
    torch.manual_seed(seed)
    config = MixtralConfig(
        vocab_size=256, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, num_local_experts=experts, num_experts_per_tok=2, max_position_embeddings=128,
    )  # fmt: skip
    return MixtralForCausalLM(config)


def train(model: nn.Module, opt: torch.optim.Optimizer, batches: list[torch.Tensor]) -> list[float]:
    """One optimizer step per batch of token ids (labels = inputs); the losses."""
    losses = []
    for batch in batches:
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    return losses


class ToyExperts(nn.Module):
    """gpt-oss's layout: stacked weights (stored (in, out)) next to stacked biases."""

    def __init__(self) -> None:
        super().__init__()
        self.gate_up_proj = nn.Parameter(torch.randn(3, 8, 12))
        self.gate_up_proj_bias = nn.Parameter(torch.zeros(3, 12))
        self.kernels = nn.Parameter(torch.randn(4, 5, 6))  # 3-D, but not an experts module's: see ToyBlock


class ToyBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.experts = ToyExperts()
        self.table = nn.Parameter(torch.randn(2, 3, 4))


def test_mixtral_experts_go_to_a_stacked_spectral_group():
    part = partition(tiny_mixtral())
    (stacked,) = [g for g in part.groups if g.get("stacked")]
    assert stacked["algorithm"] == "spectral"
    expected = [f"model.layers.{i}.mlp.experts.{w}" for i in range(2) for w in ("gate_up_proj", "down_proj")]
    assert stacked["names"] == expected
    reason = part.assignments["model.layers.0.mlp.experts.down_proj"]
    assert (reason.algorithm, reason.reason) == ("spectral", "MoE experts (a matrix per expert)")
    assert part.assignments["model.layers.0.mlp.gate.weight"].reason == "2D hidden matrix"  # the router
    assert "model.embed_tokens.weight" in part.names("adamw")


def test_experts_option_sends_them_to_adamw():
    part = partition(tiny_mixtral(), experts="adamw")
    assert not any(g.get("stacked") for g in part.groups)
    assert "model.layers.1.mlp.experts.gate_up_proj" in part.names("adamw")
    with pytest.raises(ValueError, match="experts"):
        partition(tiny_mixtral(), experts="both")


def test_experts_are_recognised_by_module_class_or_by_name():
    by_module = partition(ToyBlock())
    assert by_module.assignments["experts.gate_up_proj"].reason == "MoE experts (a matrix per expert)"
    assert by_module.assignments["experts.gate_up_proj_bias"].algorithm == "adamw"  # a bias, though 2-D
    assert by_module.assignments["table"].reason == "ndim > 2 (not a conv weight)"  # 3-D outside an experts module
    by_name = partition([("layers.0.mlp.experts.down_proj", torch.zeros(4, 6, 5, requires_grad=True)),
                         ("layers.0.conv.weight", torch.zeros(4, 6, 5, requires_grad=True))])  # fmt: skip
    (stacked,) = [g for g in by_name.groups if g.get("stacked")]
    assert stacked["names"] == ["layers.0.mlp.experts.down_proj"]
    assert by_name.assignments["layers.0.conv.weight"].reason == "conv weight"


def test_a_user_pattern_forcing_experts_to_spectral_keeps_them_stacked():
    part = partition(tiny_mixtral(), spectral="*experts.down_proj", experts="adamw")
    (stacked,) = [g for g in part.groups if g.get("stacked")]
    assert stacked["names"] == ["model.layers.0.mlp.experts.down_proj", "model.layers.1.mlp.experts.down_proj"]


def test_stacked_layout_is_a_matrix_per_expert():
    t = torch.arange(2 * 3 * 4.0).reshape(2, 3, 4)
    layout = MatrixLayout((2, 3, 4), stacked=True)
    blocks = layout.matrices(t)
    assert layout.block_shapes() == [(3, 4), (3, 4)] and [b.shape for b in blocks] == [(3, 4), (3, 4)]
    assert torch.equal(blocks[1], t[1]) and torch.equal(layout.assemble(blocks), t)


@pytest.mark.parametrize("method", ["eigh", "tns"])
def test_each_expert_is_updated_as_a_separate_matrix_would_be(method):
    """Three steps with momentum and the RMS scale: a (3, 12, 20) stacked tensor ends where three (12, 20) tensors
    of an ordinary spectral group end, and the first step is each expert's own spectral_power (eigh, float64-tested
    elsewhere)."""
    torch.manual_seed(0)
    W = torch.randn(3, 12, 20, requires_grad=True)
    separate = [torch.nn.Parameter(W.detach()[e].clone()) for e in range(3)]
    kwargs = dict(lr=0.05, p=-0.1, floor=EPS, method=method, precision="fp32", weight_decay=0.1)
    stacked_opt = SpectralOptimizer([{"params": [W], "algorithm": "spectral", "stacked": True}], **kwargs)
    separate_opt = SpectralOptimizer([{"params": separate, "algorithm": "spectral"}], **kwargs)
    for step in range(3):
        grad = torch.randn(3, 12, 20, generator=torch.Generator().manual_seed(step))
        W.grad = grad.clone()
        for e, t in enumerate(separate):
            t.grad = grad[e].clone()
        stacked_opt.step()
        separate_opt.step()
        torch.testing.assert_close(W.detach(), torch.stack([t.detach() for t in separate]), rtol=1e-6, atol=1e-7)
    assert set(stacked_opt.state[W]) == {"momentum_buffer"} and stacked_opt.state[W]["momentum_buffer"].shape == W.shape


def test_first_step_shapes_each_expert_with_its_own_singular_values():
    torch.manual_seed(1)
    W = torch.randn(2, 16, 10, requires_grad=True)
    W0 = W.detach().clone()
    opt = SpectralOptimizer([{"params": [W], "algorithm": "spectral", "stacked": True}], lr=1.0, p=0.5,
                            order="none", scale="none", method="eigh")  # fmt: skip
    W.grad = torch.randn(2, 16, 10)
    W.grad[1] *= 1e3  # a shared normalisation across experts would shrink expert 0's update
    expected = W0 - torch.stack([spectral_power(W.grad[e], 0.5, eps=EPS, method="eigh") for e in range(2)])
    opt.step()
    torch.testing.assert_close(W.detach(), expected, rtol=1e-5, atol=1e-6)


def test_stacked_group_refuses_a_tensor_that_is_not_three_dimensional():
    W = torch.randn(4, 6, requires_grad=True)
    with pytest.raises(ValueError, match=r"in a stacked group, which holds MoE experts .* but has 2 dimensions"):
        SpectralOptimizer([{"params": [W], "algorithm": "spectral", "stacked": True}], lr=0.1)


def test_muon_trains_a_tiny_mixtral_on_real_text():
    model = tiny_mixtral(seed=2)
    opt = Muon(model, lr=0.02)
    experts = model.model.layers[0].mlp.experts.gate_up_proj
    before = experts.detach().clone()
    losses = train(model, opt, text_batches(12, batch_size=4, block_size=32))
    assert sum(losses[-3:]) / 3 < losses[0] - 0.5
    moved = (experts.detach() - before).flatten(1).norm(dim=1)
    assert bool((moved > 0).all())  # every expert that received tokens moved; the router spreads 12 batches


def test_optim_args_experts_key_reaches_the_partition():
    resolved = resolve("dynmuon", "experts=adamw", lr=1e-3)
    assert resolved.cls is DynMuon and resolved.routing == {"experts": "adamw"}
    part = partition(tiny_mixtral(), **resolved.routing)
    assert "model.layers.0.mlp.experts.gate_up_proj" in part.names("adamw")


def test_trainer_dynmuon_on_mixtral_shapes_the_experts_and_resumes_exactly(tmp_path):
    """`--optim dynmuon` on a MoE model puts the experts in the stacked group, and 4 steps straight equal 2 steps +
    checkpoint + resume for 2, bit for bit. The resumed model comes from ``from_pretrained(checkpoint)``:
    transformers' Trainer loads a MoE checkpoint's per-expert keys without converting them (transformers#48805),
    which would restart the experts from their initial weights (docs/faq.md)."""
    from datasets import Dataset
    from transformers import Trainer, TrainingArguments

    blocks = text_batches(1, batch_size=32, block_size=32)[0]
    data = Dataset.from_dict({"input_ids": blocks.tolist(), "labels": blocks.tolist()})

    def run(out, model, resume=None):
        args = TrainingArguments(
            output_dir=str(out), optim="dynmuon", learning_rate=3e-3, max_steps=4, per_device_train_batch_size=4,
            save_strategy="steps", save_steps=2, logging_steps=1, report_to=[], use_cpu=True, seed=0,
            disable_tqdm=True, dataloader_num_workers=0,
        )  # fmt: skip
        trainer = Trainer(model=model, args=args, train_dataset=data)
        trainer.train(resume_from_checkpoint=resume)
        return trainer

    initial = tiny_mixtral()
    before = initial.model.layers[1].mlp.experts.down_proj.detach().clone()
    straight = run(tmp_path / "straight", initial)
    (stacked,) = [g for g in straight.optimizer.optimizer.param_groups if g.get("stacked")]
    assert len(stacked["params"]) == 4 and all(p.ndim == 3 for p in stacked["params"])
    assert not torch.equal(initial.model.layers[1].mlp.experts.down_proj.detach(), before)
    checkpoint = tmp_path / "straight" / "checkpoint-2"
    resumed = run(tmp_path / "resumed", MixtralForCausalLM.from_pretrained(checkpoint), resume=str(checkpoint))
    for a, b in zip(straight.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_stacked_state_round_trips_through_state_dict():
    """2 steps + state_dict + load into a fresh model and optimizer + 2 steps = 4 steps straight, bit for bit."""
    batches = text_batches(4, batch_size=4, block_size=32)
    straight = tiny_mixtral()
    train(straight, DynMuon(straight, total_steps=4), batches)
    first = tiny_mixtral()
    opt_first = DynMuon(first, total_steps=4)
    train(first, opt_first, batches[:2])
    resumed = tiny_mixtral(seed=7)
    resumed.load_state_dict(first.state_dict())
    opt_resumed = DynMuon(resumed, total_steps=4)
    opt_resumed.load_state_dict(opt_first.state_dict())
    train(resumed, opt_resumed, batches[2:])
    for a, b in zip(straight.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)


def _lora_on_experts(seed: int = 0):
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj"],
                        target_parameters=["experts.gate_up_proj", "experts.down_proj"])  # fmt: skip
    model = get_peft_model(tiny_mixtral(seed), config)
    torch.manual_seed(seed + 1)
    for name, p in model.named_parameters():  # non-zero B, so that A gets gradients from the first step
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.02)
    return model


def test_lora_on_experts_is_shaped_per_expert_as_peft_lays_it_out():
    """PEFT's LoRA of E experts (``target_parameters``) keeps A as (E·r, in), expert e's rows at e·r ... e·r + r − 1,
    and B as (out, E·r), expert e's columns at e, e + E, ...: routing marks the first split_rows, the second
    interleaved_cols, and the layouts cut out exactly PEFT's per-expert factors."""
    model = _lora_on_experts()
    part = partition(model)
    name = "base_model.model.model.layers.0.mlp.experts.lora_B.default.weight"
    assert part.assignments[name].reason == "LoRA B, a matrix per expert"
    (a_group,) = [g for g in part.groups if "split_rows" in g]
    (b_group,) = [g for g in part.groups if "interleaved_cols" in g]
    assert (
        a_group["lora"] and b_group["lora"] and a_group["split_rows"] == (4,) * 4 and b_group["interleaved_cols"] == 4
    )
    assert part.assignments["base_model.model.model.layers.0.self_attn.q_proj.lora_B.default.weight"].reason == "LoRA B"
    B = b_group["params"][0].detach()
    per_expert = B.reshape(B.shape[0], -1, 4).permute(2, 0, 1)  # PEFT's own reshape (ParamWrapper)
    layout = MatrixLayout(tuple(B.shape), interleaved_cols=4)
    assert all(torch.equal(M, per_expert[e]) for e, M in enumerate(layout.matrices(B)))
    assert torch.equal(layout.assemble(layout.matrices(B)), B)


def test_lora_factors_of_experts_are_updated_as_separate_factors_would_be():
    """One step of the stacked LoRA factors equals one step of each expert's (A_e, B_e) as separate tensors."""
    model = _lora_on_experts()
    groups = [g for g in partition(model).groups if "split_rows" in g or "interleaved_cols" in g]
    A, B = groups[0]["params"][0], groups[1]["params"][0]
    A.grad, B.grad = torch.randn_like(A), torch.randn_like(B)
    A_parts = [torch.nn.Parameter(a.clone()) for a in A.detach().reshape(4, -1, A.shape[1])]
    B_parts = [torch.nn.Parameter(b.clone()) for b in B.detach().reshape(B.shape[0], -1, 4).unbind(2)]
    for part, grad in zip(A_parts, A.grad.reshape(4, -1, A.shape[1]), strict=True):
        part.grad = grad.clone()
    for part, grad in zip(B_parts, B.grad.reshape(B.shape[0], -1, 4).unbind(2), strict=True):
        part.grad = grad.clone()
    kwargs = dict(lr=0.1, p=0.0, precision="fp32")
    stacked = SpectralOptimizer([{**groups[0], "params": [A]}, {**groups[1], "params": [B]}], **kwargs)
    separate = SpectralOptimizer([{"params": A_parts + B_parts, "algorithm": "spectral", "lora": True}], **kwargs)
    stacked.step()
    separate.step()
    torch.testing.assert_close(A.detach(), torch.cat([t.detach() for t in A_parts]), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(B.detach(), torch.stack([t.detach() for t in B_parts], dim=2).reshape(B.shape),
                               rtol=1e-6, atol=1e-7)  # fmt: skip


def test_lora_on_experts_trains():
    model = _lora_on_experts(seed=3)
    losses = train(model, DynMuon(model, lr=2e-2, total_steps=10), text_batches(10, batch_size=4, block_size=32))
    assert sum(losses[-3:]) / 3 < losses[0] - 0.1


def test_accelerator_batches_are_capped_so_thousands_of_experts_are_not_stacked_at_once():
    """On an accelerator same-shape matrices are shaped in batches of at most MAX_BATCH_ELEMENTS elements (48
    layers × 128 experts of Qwen3-30B-A3B's 1536 × 2048 would otherwise be one 77 GB stack); one at a time on the
    CPU. Every matrix is in exactly one batch, in order."""
    from hf_spectral.shaper import MAX_BATCH_ELEMENTS, batch_chunks

    members = list(range(48 * 128))
    chunks = batch_chunks(members, (1536, 2048), torch.device("cuda"))
    assert [m for chunk in chunks for m in chunk] == members
    assert max(len(c) for c in chunks) * 1536 * 2048 <= MAX_BATCH_ELEMENTS and len(chunks[0]) == 42
    assert [len(c) for c in batch_chunks(members[:5], (16384, 16384), torch.device("cuda"))] == [1] * 5  # > cap
    assert batch_chunks(members[:3], (8, 8), torch.device("cuda")) == [[0, 1, 2]]
    assert batch_chunks(members[:3], (8, 8), torch.device("cpu")) == [[0], [1], [2]]


def test_dbrx_experts_concatenated_in_rows_get_a_row_block_each():
    """DBRX keeps its experts as 2-D (experts·ffn, hidden) weights: a split_rows group, one block per expert."""
    from transformers import DbrxConfig, DbrxForCausalLM

    config = DbrxConfig(d_model=32, n_heads=4, n_layers=1, max_seq_len=64, vocab_size=64,
                        attn_config={"kv_n_heads": 2, "rope_theta": 10000.0},
                        ffn_config={"ffn_hidden_size": 16, "moe_num_experts": 4, "moe_top_k": 2})  # fmt: skip
    model = DbrxForCausalLM(config)
    part = partition(model)
    (split,) = [g for g in part.groups if "split_rows" in g]
    assert split["split_rows"] == (16,) * 4 and [n.rsplit(".", 1)[-1] for n in split["names"]] == ["w1", "v1", "w2"]
    assert part.assignments["transformer.blocks.0.ffn.experts.mlp.w1"].reason == "MoE experts (a matrix per expert)"
    assert part.assignments["transformer.blocks.0.ffn.router.layer.weight"].reason == "2D hidden matrix"
    assert "transformer.blocks.0.ffn.experts.mlp.v1" in partition(model, experts="adamw").names("adamw")


def test_a_checkpoint_routed_before_names_the_experts_option_and_loads_with_it():
    """A MoE checkpoint of hf_spectral 0.2 had the experts on AdamW: loading it into today's default routing is
    refused with the fix named, nothing loaded; with experts="adamw" it loads."""
    model = tiny_mixtral()
    old = Muon(partition(model, experts="adamw"), lr=0.02)
    train(model, old, text_batches(1, batch_size=2, block_size=16))
    new = Muon(model, lr=0.02)
    with pytest.raises(ValueError, match=r"routed differently .* experts='adamw', --optim_args experts=adamw"):
        new.load_state_dict(old.state_dict())
    assert not new.state
    again = Muon(partition(model, experts="adamw"), lr=0.02)
    again.load_state_dict(old.state_dict())
    assert len(again.state) == len(old.state)
