"""`partition` on transformers task models: heads and poolers → AdamW by structure, backbone matrices spectral.

Every model is built tiny from its config (no hub). The expected spectral set is computed independently: the
weights of the ``nn.Linear`` (GPT-2: ``Conv1D``) modules inside the backbone's layer stack.
"""

from __future__ import annotations

import warnings

import pytest
from peft import LoraConfig, TaskType, get_peft_model
from torch import nn
from transformers import (
    BertConfig,
    BertForMultipleChoice,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
    GPT2Config,
    GPT2ForSequenceClassification,
    LlamaConfig,
    LlamaForSequenceClassification,
    LlamaModel,
    RobertaConfig,
    RobertaForSequenceClassification,
    T5Config,
    T5ForConditionalGeneration,
    T5ForQuestionAnswering,
    ViTConfig,
    ViTForImageClassification,
)
from transformers.pytorch_utils import Conv1D

import hf_spectral
from hf_spectral import partition
from hf_spectral.integrations.optim_args import resolve
from hf_spectral.integrations.trainer import build_optimizer

HEAD = "task head (outside the backbone)"
NAMED_HEAD = "task head (by name)"
PEFT = "base_model.model."


def _bert_config() -> BertConfig:
    return BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, vocab_size=128)


def _llama_config() -> LlamaConfig:
    return LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        vocab_size=128,
        pad_token_id=0,
    )


def _t5_config() -> T5Config:
    return T5Config(d_model=32, d_ff=64, num_layers=1, num_heads=2, d_kv=16, vocab_size=128)


def _matrices(model: nn.Module, *stacks: str, kind: type[nn.Module] = nn.Linear) -> set[str]:
    """Weights of the `kind` modules inside the layer stacks `stacks` (module name prefixes)."""
    return {
        f"{name}.weight"
        for name, module in model.named_modules()
        if isinstance(module, kind) and any(name.startswith(stack + ".") for stack in stacks)
    }


def _reasons(part: hf_spectral.Partition, *prefixes: str) -> dict[str, tuple[str, str]]:
    """(algorithm, reason) of every parameter under the module prefixes."""
    return {
        name: (a.algorithm, a.reason)
        for name, a in part.assignments.items()
        if any(name.startswith(prefix + ".") for prefix in prefixes)
    }


def _all_adamw(names: list[str], reason: str) -> dict[str, tuple[str, str]]:
    return {name: ("adamw", reason) for name in names}


def _assert_heads(model: nn.Module, backbone_stacks: tuple[str, ...], heads: dict[str, str]) -> None:
    """Spectral = the backbone stack's matrices; every parameter under each head prefix → adamw with its reason."""
    part = partition(model)
    assert set(part.names("spectral")) == _matrices(model, *backbone_stacks)
    for prefix, reason in heads.items():
        names = [n for n in part.assignments if n.startswith(prefix + ".")]
        assert names, prefix
        assert _reasons(part, prefix) == _all_adamw(names, reason)
    summary = str(part)
    for reason in heads.values():
        assert reason in summary


def test_llama_sequence_classification_score_is_a_task_head():
    model = LlamaForSequenceClassification(_llama_config())
    _assert_heads(model, ("model.layers",), {"score": HEAD})


def test_gpt2_sequence_classification_score_is_a_task_head():
    config = GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=128, n_positions=32, pad_token_id=0)
    model = GPT2ForSequenceClassification(config)
    part = partition(model)
    assert set(part.names("spectral")) == _matrices(model, "transformer.h", kind=Conv1D)
    assert _reasons(part, "score") == {"score.weight": ("adamw", HEAD)}


@pytest.mark.parametrize(
    ("cls", "heads"),
    [
        (BertForSequenceClassification, {"classifier": HEAD, "bert.pooler": "pooler"}),
        (BertForTokenClassification, {"classifier": HEAD}),
        (BertForQuestionAnswering, {"qa_outputs": HEAD}),
        (BertForMultipleChoice, {"classifier": HEAD, "bert.pooler": "pooler"}),
    ],
)
def test_bert_task_heads_and_pooler_go_adamw(cls, heads):
    model = cls(_bert_config())
    _assert_heads(model, ("bert.encoder",), heads)
    if "bert.pooler" not in heads:
        assert not hasattr(model.bert, "pooler") or model.bert.pooler is None


def test_roberta_classification_head_dense_and_out_proj_go_adamw():
    config = RobertaConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, vocab_size=128
    )
    model = RobertaForSequenceClassification(config)
    _assert_heads(model, ("roberta.encoder",), {"classifier.dense": HEAD, "classifier.out_proj": HEAD})


def test_bert_model_alone_keeps_its_pooler_on_adamw():
    model = BertModel(_bert_config())
    part = partition(model)
    assert set(part.names("spectral")) == _matrices(model, "encoder")
    assert _reasons(part, "pooler") == _all_adamw(["pooler.dense.weight", "pooler.dense.bias"], "pooler")


@pytest.mark.parametrize("tied", [True, False])
def test_t5_hidden_matrices_spectral_shared_embedding_and_lm_head_adamw(tied):
    model = T5ForConditionalGeneration(_t5_config())  # transformers 5 always ties lm_head to shared
    assert model.base_model is model  # no base_model_prefix attribute: the head is get_output_embeddings()
    if not tied:
        model.lm_head.weight = nn.Parameter(model.lm_head.weight.detach().clone())
    part = partition(model)
    assert set(part.names("spectral")) == _matrices(model, "encoder.block", "decoder.block")
    shared = part.assignments["shared.weight"]
    assert (shared.algorithm, shared.reason) == (
        "adamw",
        "input embedding (tied to output head)" if tied else "input embedding",
    )
    if not tied:
        assert part.assignments["lm_head.weight"].reason == "output head"
    assert all(HEAD not in a.reason and NAMED_HEAD not in a.reason for a in part.assignments.values())


def test_t5_question_answering_head_found_by_name():
    model = T5ForQuestionAnswering(_t5_config())
    assert model.base_model is model
    part = partition(model)
    assert set(part.names("spectral")) == _matrices(model, "encoder.block", "decoder.block")
    assert _reasons(part, "qa_outputs") == _all_adamw(["qa_outputs.weight", "qa_outputs.bias"], NAMED_HEAD)


def test_vit_image_classification_head_adamw_patch_conv_as_before():
    config = ViTConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64, image_size=16, patch_size=4
    )
    model = ViTForImageClassification(config)
    for conv in ("adamw", "spectral"):
        part = partition(model, conv=conv)
        assert set(part.names("spectral")) == _matrices(model, "vit")
        assert _reasons(part, "classifier") == _all_adamw(["classifier.weight", "classifier.bias"], HEAD)
        patch = part.assignments["vit.embeddings.patch_embeddings.projection.weight"]
        assert (patch.algorithm, patch.reason) == ("adamw", "input embedding")


def test_peft_lora_sequence_classification_score_copy_adamw():
    config = LoraConfig(task_type=TaskType.SEQ_CLS, r=4, target_modules=["q_proj", "v_proj"])
    model = get_peft_model(LlamaForSequenceClassification(_llama_config()), config)
    part = partition(model)
    lora = {
        f"{PEFT}model.layers.{i}.self_attn.{m}.{factor}.default.weight"
        for i in range(2)
        for m in ("q_proj", "v_proj")
        for factor in ("lora_A", "lora_B")
    }
    assert set(part.names("spectral")) == lora
    copy = part.assignments[f"{PEFT}score.modules_to_save.default.weight"]
    assert (copy.algorithm, copy.reason) == ("adamw", f"{HEAD}, modules_to_save copy")
    assert part.names("adamw") == [f"{PEFT}score.modules_to_save.default.weight"]
    assert part.assignments[f"{PEFT}score.original_module.weight"].algorithm == "frozen"


def test_lora_on_a_head_goes_adamw():
    config = LoraConfig(r=4, target_modules=["query", "classifier"])
    part = partition(get_peft_model(BertForSequenceClassification(_bert_config()), config))
    for factor in ("lora_A", "lora_B"):
        head = part.assignments[f"{PEFT}classifier.{factor}.default.weight"]
        assert (head.algorithm, head.reason) == ("adamw", f"LoRA of {HEAD}")
        query = part.assignments[f"{PEFT}bert.encoder.layer.0.attention.self.query.{factor}.default.weight"]
        assert query.algorithm == "spectral"


class _Wrapped(nn.Module):
    """A custom model around a transformers backbone: the head is found by its name."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = BertModel(_bert_config())
        self.classifier = nn.Linear(32, 3)


def test_head_of_a_custom_wrapper_found_by_name():
    model = _Wrapped()
    part = partition(model)
    assert set(part.names("spectral")) == _matrices(model, "encoder.encoder")
    assert _reasons(part, "classifier") == _all_adamw(["classifier.weight", "classifier.bias"], NAMED_HEAD)
    assert part.assignments["encoder.pooler.dense.weight"].reason == "pooler"


def test_transformers_model_nested_outside_the_backbone_keeps_default_rules():
    model = LlamaForSequenceClassification(_llama_config())
    model.extra = LlamaModel(_llama_config())
    part = partition(model)
    assert set(part.names("spectral")) == _matrices(model, "model.layers", "extra.layers")
    assert part.assignments["score.weight"].reason == HEAD


def test_named_parameters_find_heads_and_poolers_by_name():
    part = partition(BertForSequenceClassification(_bert_config()).named_parameters())
    assert part.assignments["classifier.weight"].reason == NAMED_HEAD
    assert part.assignments["bert.pooler.dense.weight"].reason == "pooler"
    peft = get_peft_model(LlamaForSequenceClassification(_llama_config()), LoraConfig(task_type=TaskType.SEQ_CLS))
    named = partition(peft.named_parameters())
    assert named.assignments[f"{PEFT}score.modules_to_save.default.weight"].reason == (
        f"{NAMED_HEAD}, modules_to_save copy"
    )


def test_unmatched_pattern_warns_with_pattern_and_example():
    model = LlamaForSequenceClassification(_llama_config())
    with pytest.warns(UserWarning, match=r"adamw pattern 'classifier\.\*' matches no parameter name") as record:
        part = partition(model, adamw=["score.*", "classifier.*"])
    assert len(record) == 1
    assert "names look like 'model.embed_tokens.weight'" in str(record[0].message)
    assert part.assignments["score.weight"].reason == "user pattern 'score.*'"


def test_patterns_match_without_the_peft_prefix():
    config = LoraConfig(task_type=TaskType.SEQ_CLS, r=4, target_modules=["q_proj"])
    model = get_peft_model(LlamaForSequenceClassification(_llama_config()), config)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        part = partition(model, adamw="score.*", spectral="*.layers.0.self_attn.q_proj.lora_*")
    assert part.assignments[f"{PEFT}score.modules_to_save.default.weight"].reason == "user pattern 'score.*'"
    assert part.assignments[f"{PEFT}score.original_module.weight"].algorithm == "frozen"
    with pytest.warns(UserWarning, match=r"skip pattern 'lm_head\*'.*names look like 'base_model\.model\."):
        partition(model, skip="lm_head*")


def test_documented_trainer_pattern_builds_the_optimizer_with_a_warning():
    model = LlamaForSequenceClassification(_llama_config())
    resolved = resolve("dynmuon", "adamw_patterns=score.*|classifier.*", lr=1e-3)
    with pytest.warns(UserWarning, match=r"'classifier\.\*' matches no parameter"):
        optimizer = build_optimizer(resolved, model)
    adamw = [p for g in optimizer.param_groups if g["algorithm"] == "adamw" for p in g["params"]]
    assert any(p is model.score.weight for p in adamw)
