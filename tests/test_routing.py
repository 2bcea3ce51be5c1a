"""`partition`: which parameter goes to the spectral group, which to AdamW, and why."""

from __future__ import annotations

import re

import pytest
import torch
from peft import LoraConfig, get_peft_model
from tiny import tiny_llama
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel, LlamaForCausalLM, Phi3Config, Phi3ForCausalLM

from hf_spectral import Partition, partition
from hf_spectral.routing import Assignment

LAYERS = 2
HIDDEN = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj")
MLP = ("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
NORMS = ("input_layernorm", "post_attention_layernorm")
QV = ("q_proj", "v_proj")
GPT2_CONV1D = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")


def _llama(tied: bool = False) -> LlamaForCausalLM:
    return tiny_llama(tie=tied, layers=LAYERS)


def _gpt2() -> GPT2LMHeadModel:
    config = GPT2Config(n_embd=64, n_layer=2, n_head=4, vocab_size=256, n_positions=64, bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(config)


def _peft_llama() -> nn.Module:
    config = LoraConfig(r=8, target_modules=["q_proj", "v_proj"], modules_to_save=["lm_head"])
    return get_peft_model(_llama(), config)


def _llama_spectral_names(prefix: str = "") -> set[str]:
    return {f"{prefix}model.layers.{i}.{m}.weight" for i in range(LAYERS) for m in HIDDEN + MLP}


def _summary_row(summary: str, *cells: str) -> tuple[int, int]:
    """(tensors, parameters) from the summary row whose leading cells are `cells`."""
    lead = r"\s+".join(re.escape(cell) for cell in cells)
    match = re.search(rf"^{lead}\s+([\d,]+)\s+([\d,]+)$", summary, flags=re.MULTILINE)
    assert match is not None, summary
    return int(match[1].replace(",", "")), int(match[2].replace(",", ""))


@pytest.mark.parametrize("tied", [False, True])
def test_llama_hidden_matrices_spectral_rest_adamw(tied):
    model = _llama(tied)
    part = partition(model)
    adamw = {"model.embed_tokens.weight", "model.norm.weight"}
    adamw |= {f"model.layers.{i}.{n}.weight" for i in range(LAYERS) for n in NORMS}
    if not tied:
        adamw.add("lm_head.weight")
    assert set(part.names("spectral")) == _llama_spectral_names()
    assert set(part.names("adamw")) == adamw
    assert part.names("frozen") == []
    assert [g["algorithm"] for g in part.groups] == ["spectral", "adamw"]
    for group in part.groups:
        assert [id(p) for p in group["params"]] == [id(model.get_parameter(n)) for n in group["names"]]
    assert part.assignments["model.norm.weight"].reason == "norm"
    assert part.assignments["model.layers.0.mlp.down_proj.weight"].reason == "2D hidden matrix"
    embedding = part.assignments["model.embed_tokens.weight"]
    assert embedding.reason == ("input embedding (tied to output head)" if tied else "input embedding")
    if not tied:
        assert part.assignments["lm_head.weight"].reason == "output head"


def test_tied_embedding_appears_once():
    model = _llama(tied=True)
    assert model.lm_head.weight is model.model.embed_tokens.weight
    part = partition(model)
    grouped = [p for group in part.groups for p in group["params"]]
    assert sum(p is model.lm_head.weight for p in grouped) == 1
    assert len({id(p) for p in grouped}) == len(grouped) == len(list(model.parameters()))
    assert "lm_head.weight" not in part.assignments


@pytest.mark.parametrize("tied", [False, True])
def test_summary_counts_match_groups(tied):
    part = partition(_llama(tied))
    summary = str(part)
    for group in part.groups:
        expected = (len(group["params"]), sum(p.numel() for p in group["params"]))
        assert _summary_row(summary, group["algorithm"]) == expected
    assert _summary_row(summary, "frozen") == (0, 0)
    hidden = sum(part.assignments[n].numel for n in _llama_spectral_names())
    assert _summary_row(summary, "2D hidden matrix", "spectral") == (LAYERS * 7, hidden)
    assert _summary_row(summary, "norm", "adamw") == (2 * LAYERS + 1, (2 * LAYERS + 1) * 64)
    embedding = "input embedding (tied to output head)" if tied else "input embedding"
    assert _summary_row(summary, embedding, "adamw") == (1, 256 * 64)


def test_peft_lora_both_b_none():
    model = _peft_llama()
    prefix = "base_model.model."
    lora_a = {f"{prefix}model.layers.{i}.self_attn.{m}.lora_A.default.weight" for i in range(LAYERS) for m in QV}
    lora_b = {n.replace("lora_A", "lora_B") for n in lora_a}
    head_copy = f"{prefix}lm_head.modules_to_save.default.weight"
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == lora_a | lora_b | {head_copy}

    expected = {"both": (lora_a | lora_b, {head_copy}), "B": (lora_b, lora_a | {head_copy}), "none": (set(), trainable)}
    for lora, (spectral, adamw) in expected.items():
        part = partition(model, lora=lora)
        assert set(part.names("spectral")) == spectral, lora
        assert set(part.names("adamw")) == adamw, lora
        frozen = set(part.names("frozen"))
        assert frozen == {n for n, _ in model.named_parameters()} - trainable
        assert f"{prefix}model.layers.0.self_attn.q_proj.base_layer.weight" in frozen
        assert f"{prefix}lm_head.original_module.weight" in frozen
        assert all(part.assignments[n].reason == "requires_grad=False" for n in frozen)
        spectral_groups = [g for g in part.groups if g["algorithm"] == "spectral"]
        assert all(g.get("lora") is True for g in spectral_groups), lora  # their updates are sized apart
    part = partition(model, lora="B")
    assert {part.assignments[n].reason for n in lora_a} == {"LoRA A"}
    assert {part.assignments[n].reason for n in lora_b} == {"LoRA B"}
    assert part.assignments[head_copy].reason == "output head, modules_to_save copy"


def test_peft_embedding_and_head_lora_go_adamw():
    config = LoraConfig(r=4, target_modules=["q_proj", "embed_tokens", "lm_head"])
    part = partition(get_peft_model(_llama(), config))
    prefix = "base_model.model."
    for factor in ("lora_embedding_A", "lora_embedding_B"):
        name = f"{prefix}model.embed_tokens.{factor}.default"
        shape = (4, 256) if factor.endswith("A") else (64, 4)
        assert part.assignments[name] == Assignment("adamw", "LoRA of input embedding", shape, shape[0] * shape[1])
    for factor in ("lora_A", "lora_B"):
        assert part.assignments[f"{prefix}lm_head.{factor}.default.weight"].algorithm == "adamw"
        assert part.assignments[f"{prefix}model.layers.0.self_attn.q_proj.{factor}.default.weight"].algorithm == (
            "spectral"
        )


def test_modules_to_save_outside_head_goes_adamw():
    config = LoraConfig(r=4, target_modules=["q_proj"], modules_to_save=["down_proj"])
    part = partition(get_peft_model(_llama(), config))
    name = "base_model.model.model.layers.0.mlp.down_proj.modules_to_save.default.weight"
    assert part.assignments[name].algorithm == "adamw"
    assert part.assignments[name].reason == "modules_to_save"


def test_user_patterns_override_defaults():
    part = partition(
        _llama(),
        spectral="model.embed_tokens.weight",
        adamw=["*.mlp.down_proj.weight"],
        skip=["*.layers.1.*"],
    )
    assert part.assignments["model.embed_tokens.weight"].algorithm == "spectral"
    assert part.assignments["model.embed_tokens.weight"].reason == "user pattern 'model.embed_tokens.weight'"
    assert part.assignments["model.layers.0.mlp.down_proj.weight"].algorithm == "adamw"
    layer1 = [n for n in part.assignments if n.startswith("model.layers.1.")]
    assert len(layer1) == 9
    assert {part.assignments[n].algorithm for n in layer1} == {"frozen"}
    grouped = {n for group in part.groups for n in group["names"]}
    assert grouped.isdisjoint(layer1)


def test_user_spectral_on_vector_raises():
    with pytest.raises(ValueError, match=r"'model\.norm\.weight' has shape \(64,\).*ndim >= 2"):
        partition(_llama(), spectral=["model.norm.weight"])


def test_unmatched_pattern_warns():
    with pytest.warns(UserWarning, match=r"spectral pattern '\*qproj\*' matches no parameter.*'model\.embed_tokens"):
        part = partition(_llama(), spectral=["*qproj*"])
    assert set(part.names("spectral")) == _llama_spectral_names()


def test_bad_patterns_and_options_raise():
    with pytest.raises(ValueError, match="make the patterns disjoint"):
        partition(_llama(), spectral=["*q_proj*"], adamw=["*layers.0*"])
    with pytest.raises(ValueError, match=r"lora must be one of \('both', 'B', 'none'\), got 'A'"):
        partition(_llama(), lora="A")
    with pytest.raises(ValueError, match=r"conv must be one of \('adamw', 'spectral'\)"):
        partition(_llama(), conv="sgd")


def test_gpt2_conv1d_spectral_and_fused_split():
    model = _gpt2()
    part = partition(model)
    conv1d = {f"transformer.h.{i}.{m}.weight" for i in range(2) for m in GPT2_CONV1D}
    assert set(part.names("spectral")) == conv1d
    assert part.assignments["transformer.wte.weight"].reason == "input embedding (tied to output head)"
    assert part.assignments["transformer.wpe.weight"] == Assignment("adamw", "embedding", (64, 64), 64 * 64)
    assert part.assignments["transformer.h.0.attn.c_attn.bias"].reason == "bias"
    assert part.assignments["transformer.h.0.ln_1.bias"].reason == "norm"

    split = partition(model, split_fused=True)
    fused = [g for g in split.groups if "split_cols" in g]
    assert len(fused) == 1
    assert fused[0]["split_cols"] == (64, 64, 64)
    assert fused[0]["names"] == [f"transformer.h.{i}.attn.c_attn.weight" for i in range(2)]
    assert all("split_rows" not in g for g in split.groups)
    assert [g["algorithm"] for g in split.groups] == ["spectral", "spectral", "adamw"]
    assert set(split.names("spectral")) == conv1d


def test_fused_qkv_gqa_split_rows_from_config():
    config = Phi3Config(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=256,
        pad_token_id=0,
        eos_token_id=0,
        bos_token_id=0,
    )
    part = partition(Phi3ForCausalLM(config), split_fused=True)
    (fused,) = [g for g in part.groups if "split_rows" in g]
    assert fused["names"] == ["model.layers.0.self_attn.qkv_proj.weight"]
    assert fused["split_rows"] == (64, 32, 32)  # 4 query heads, 2 key/value heads, head_dim 16


def test_multihead_attention_in_proj_split_in_thirds():
    model = nn.Sequential(nn.MultiheadAttention(24, 4))
    part = partition(model, split_fused=True)
    (fused,) = [g for g in part.groups if "split_rows" in g]
    assert fused["names"] == ["0.in_proj_weight"]
    assert fused["split_rows"] == (24, 24, 24)
    assert part.assignments["0.out_proj.weight"].algorithm == "spectral"
    assert part.assignments["0.in_proj_bias"].algorithm == "adamw"


class _ConvNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten())
        self.fc = nn.Linear(8 * 6 * 6, 16)
        self.out = nn.Linear(16, 1)
        self.experts = nn.Parameter(torch.zeros(4, 16, 16))


def test_conv_weights_follow_conv_option():
    model = _ConvNet()
    default = partition(model)
    assert default.assignments["features.0.weight"].algorithm == "adamw"
    assert default.assignments["features.0.weight"].reason == "conv weight"
    assert default.assignments["features.1.weight"].reason == "norm"
    assert default.names("spectral") == ["fc.weight"]
    assert default.assignments["out.weight"].reason == "vector (a side of 1)"
    assert default.assignments["experts"].reason == "ndim > 2 (not a conv weight)"

    conv = partition(model, conv="spectral")
    assert conv.names("spectral") == ["features.0.weight", "fc.weight"]
    assert conv.assignments["experts"].algorithm == "adamw"


def test_named_parameter_iterable_uses_name_rules():
    model = _llama()
    part = partition(model.named_parameters())
    assert set(part.names("spectral")) == _llama_spectral_names()
    assert part.assignments["model.embed_tokens.weight"].reason == "embedding"
    assert part.assignments["lm_head.weight"].reason == "output head"
    assert part.assignments["model.norm.weight"].reason == "1D/scalar"
    with pytest.raises(ValueError, match=r"split_fused=True needs an nn\.Module"):
        partition(model.named_parameters(), split_fused=True)
    with pytest.raises(TypeError, match=r"iterable of \(name, tensor\) pairs"):
        partition([torch.zeros(2, 2)])


def _linear_with_1d_weight() -> nn.Module:
    model = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 8))
    model[1].weight = nn.Parameter(torch.zeros(32))
    return model


def _fsdp1_flat_param() -> nn.Module:
    wrapper = nn.Module()
    wrapper._fsdp_wrapped_module = nn.Module()
    wrapper._fsdp_wrapped_module.register_parameter("_flat_param", nn.Parameter(torch.zeros(128)))
    return wrapper


def _zero3_param() -> nn.Module:
    model = nn.Linear(8, 8)
    model.weight.ds_shape = (8, 8)
    return model


@pytest.mark.parametrize(
    ("make", "found"),
    [
        (_linear_with_1d_weight, r"'1\.weight' is a Linear weight of shape \(32,\)"),
        (_fsdp1_flat_param, r"'_fsdp_wrapped_module\._flat_param' is an FSDP1"),
        (_zero3_param, r"'weight' is a DeepSpeed ZeRO-3 partition"),
    ],
)
def test_flattened_parameters_refused(make, found):
    with pytest.raises(ValueError, match=found) as info:
        partition(make())
    assert "FSDP2" in str(info.value)
    assert "fsdp_version: 2" in str(info.value)


def test_flattened_frozen_parameter_is_ignored():
    model = _linear_with_1d_weight()
    model[1].weight.requires_grad_(False)
    assert partition(model).assignments["1.weight"].algorithm == "frozen"


def test_param_groups_merge_hyper_parameters_per_algorithm():
    part = partition(_gpt2(), split_fused=True)
    groups = part.param_groups(spectral={"lr": 0.02, "p": 0.5}, adamw={"lr": 3e-4, "weight_decay": 0.0})
    assert [g["algorithm"] for g in groups] == ["spectral", "spectral", "adamw"]
    for group, original in zip(groups, part.groups, strict=True):
        assert group is not original and group["params"] is not original["params"]
        assert group["names"] == original["names"]
        if group["algorithm"] == "spectral":
            assert (group["lr"], group["p"]) == (0.02, 0.5) and "weight_decay" not in group
        else:
            assert (group["lr"], group["weight_decay"]) == (3e-4, 0.0) and "p" not in group
    assert groups[1]["split_cols"] == (64, 64, 64)
    assert all("lr" not in g for g in part.groups)
    optimizer = torch.optim.AdamW([{k: v for k, v in g.items() if k in ("params", "lr")} for g in groups])
    assert [g["lr"] for g in optimizer.param_groups] == [0.02, 0.02, 3e-4]
    with pytest.raises(ValueError, match=r"spectral must not set \['params'\]"):
        part.param_groups(spectral={"params": []})


def test_partition_is_a_dataclass_with_groups_and_assignments():
    part = partition(nn.Linear(4, 3))
    assert isinstance(part, Partition)
    assert [(g["algorithm"], g["names"]) for g in part.groups] == [("spectral", ["weight"]), ("adamw", ["bias"])]
    assert list(part.assignments) == ["weight", "bias"]
