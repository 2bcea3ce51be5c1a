"""A recipe's model: ``from_pretrained`` (hub id or local directory) or ``from_config`` (new weights, from the
global seed), wrapped in LoRA adapters when the recipe has a ``peft`` section."""

from __future__ import annotations

from typing import Any

from .schema import Recipe


def build_model(recipe: Recipe, tokenizer: Any) -> Any:
    """The model to train. A config-built model takes its vocabulary size and special token ids from the tokenizer
    unless its config sets them."""
    from transformers import AutoConfig, AutoModelForCausalLM

    section = recipe.model
    if section.config is not None:
        overrides = {k: v for k, v in section.config.items() if k != "model_type"}
        overrides.setdefault("vocab_size", len(tokenizer))
        for name in ("bos_token_id", "eos_token_id", "pad_token_id"):  # as the tokenizer says, unless the recipe does
            overrides.setdefault(name, getattr(tokenizer, name))
        model = AutoModelForCausalLM.from_config(AutoConfig.for_model(section.config["model_type"], **overrides))
    else:
        kwargs = {"dtype": section.dtype} if section.dtype else {}
        model = AutoModelForCausalLM.from_pretrained(section.name_or_path, **kwargs)
    if recipe.peft is not None:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(**recipe.peft))
    return model
