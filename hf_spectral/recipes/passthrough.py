"""Recipe sections that are passed through to a library class — ``training`` → ``TrainingArguments``, ``peft`` →
``peft.LoraConfig``, ``model.config`` → the model's config class — checked key by key against that class."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any

from .coerce import coerce
from .errors import RecipeError, unknown_key

RECIPE_OWNED = {
    "optim": "optimizer.name",
    "optim_args": "optimizer.optim_args",
    "learning_rate": "optimizer.lr",
    "weight_decay": "optimizer.weight_decay",
}
"""TrainingArguments that a recipe sets in its optimizer section (so that `compare` can vary them)."""


def init_fields(cls: type) -> dict[str, Any]:
    """Constructor fields of a dataclass → their resolved type hints."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls) if f.init}


def _check_keys(values: Mapping[str, Any], known: Mapping[str, Any], key: str, what: str, listed_in: str) -> dict:
    out = {}
    for name, value in values.items():
        if name not in known:
            raise unknown_key(f"{key}.{name}", sorted(known), what, listed_in)
        out[name] = coerce(value, known[name], f"{key}.{name}")
    return out


def check_training_args(values: Mapping[str, Any], key: str = "training") -> dict[str, Any]:
    """TrainingArguments keyword arguments with YAML values converted; unknown or recipe-owned keys raise."""
    from transformers import TrainingArguments

    for name in values:
        if name in RECIPE_OWNED:
            raise RecipeError(f"{key}.{name}", f"set it as {RECIPE_OWNED[name]} (the optimizer section owns it)")
    known = init_fields(TrainingArguments)
    return _check_keys(values, known, key, "TrainingArguments argument", "the fields of transformers.TrainingArguments")


def check_lora(values: Mapping[str, Any], key: str = "peft") -> dict[str, Any]:
    """peft.LoraConfig keyword arguments (task_type defaults to CAUSAL_LM), checked by building the config."""
    from peft import LoraConfig

    out = _check_keys(values, init_fields(LoraConfig), key, "LoraConfig field", "the fields of peft.LoraConfig")
    out.setdefault("task_type", "CAUSAL_LM")
    try:
        LoraConfig(**out)
    except (TypeError, ValueError) as err:
        raise RecipeError(key, f"peft.LoraConfig refused it: {err}") from None
    return out


def check_model_config(values: Mapping[str, Any], key: str = "model.config") -> dict[str, Any]:
    """``{"model_type": ..., **overrides}``: the type must be a transformers model type and every override an
    attribute of its config class (a typo is not silently stored as a new attribute)."""
    from transformers import AutoConfig
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    model_type = values.get("model_type")
    if model_type not in CONFIG_MAPPING:
        raise RecipeError(f"{key}.model_type", f"must name a transformers model type (llama, gpt2, qwen2, ...); got "
                          f"{model_type!r}")  # fmt: skip
    cls = CONFIG_MAPPING[model_type]
    known = set(cls().to_dict()) | set(getattr(cls, "attribute_map", {}))
    overrides = {k: v for k, v in values.items() if k != "model_type"}
    for name in overrides:
        if name not in known:
            raise unknown_key(f"{key}.{name}", sorted(known), f"{cls.__name__} attribute")
    try:
        AutoConfig.for_model(model_type, **overrides)
    except (TypeError, ValueError) as err:
        raise RecipeError(key, f"{cls.__name__} refused it: {err}") from None
    return {"model_type": model_type, **overrides}
