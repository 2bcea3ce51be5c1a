"""YAML values → dataclass fields. Each value is converted and checked by the argparse option that transformers'
``HfArgumentParser`` builds for its field (types, ``Literal`` / enum choices, booleans); lists and mappings are kept
as written where the field takes them, and nested sections are built the same way. Library sections are checked
against their own class: ``training`` → ``TrainingArguments``, ``peft`` → ``peft.LoraConfig``, ``model.config`` →
the model's config class."""

from __future__ import annotations

import argparse
import dataclasses
import enum
import functools
import re
import typing
from collections.abc import Mapping
from typing import Any

from .errors import RecipeError, unknown_key

RECIPE_OWNED = {"optim": "optimizer.name", "optim_args": "optimizer.optim_args", "learning_rate": "optimizer.lr",
                "weight_decay": "optimizer.weight_decay"}  # fmt: skip
"""TrainingArguments that a recipe sets in its optimizer section (so that `compare` can vary them)."""
hints = functools.cache(typing.get_type_hints)


def dataclass_in(hint: Any) -> tuple[type | None, bool]:
    """The dataclass a field holds (``X``, ``X | None``, or per name: ``dict[str, X]``), or None."""
    found = [t for t in (hint, *typing.get_args(hint)) if dataclasses.is_dataclass(t)]
    return (found[0], typing.get_origin(hint) is dict) if found else (None, False)


@functools.cache
def _option(cls: type, name: str) -> argparse.ArgumentParser | None:
    """HfArgumentParser's option for field `name` of `cls`; None for a type it cannot express (some unions)."""
    from transformers import HfArgumentParser

    one = dataclasses.make_dataclass(cls.__name__, [(name, hints(cls)[name], None)])
    try:
        return HfArgumentParser(one, exit_on_error=False, allow_abbrev=False)
    except (TypeError, ValueError):
        return None


def _convert(cls: type, name: str, value: Any, key: str) -> Any:
    hint = hints(cls)[name]
    kinds = {typing.get_origin(t) or t for t in (hint, *typing.get_args(hint))}
    if Any in kinds or dataclass_in(hint)[0]:  # a nested section is built (and checked) by `build`
        return value
    if isinstance(value, list | Mapping):
        if (list if isinstance(value, list) else dict) in kinds:
            return value  # as written: the section (or the library class) checks it
        wanted = hint.__name__ if isinstance(hint, type) else re.sub(r"[\w.]+\.", "", str(hint))
        raise RecipeError(key, f"expected {wanted}; got {value!r}")
    parser = _option(cls, name)
    try:
        parsed = value if parser is None else getattr(parser.parse_args([f"--{name}={value}"]), name)
    except argparse.ArgumentError as err:
        raise RecipeError(key, err.message) from None
    plain = lambda v: v.value if isinstance(v, enum.Enum) else v  # noqa: E731 (YAML keeps strings, not enum members)
    return [plain(v) for v in parsed] if isinstance(parsed, list) else plain(parsed)


def as_mapping(data: Any, key: str) -> Mapping:
    if not isinstance(data, Mapping):
        raise RecipeError(key or "recipe", f"must be a mapping of keys to values; got {data!r}")
    return data


def parse_fields(cls: type, data: Any, key: str = "", what: str = "key", listed_in: str | None = None) -> dict:
    """`data` as keyword arguments of dataclass `cls`: unknown keys and ill-typed values raise RecipeError naming
    the key; ``null`` (None) leaves a field at its default."""
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    out = {}
    for name, value in as_mapping(data, key).items():
        path = f"{key}.{name}" if key else str(name)
        if name not in names:
            raise unknown_key(path, names, what, listed_in)
        if value is not None:
            out[name] = _convert(cls, name, value, path)
    return out


def build(cls: type, data: Any, key: str = "") -> Any:
    """An instance of dataclass `cls` from a YAML mapping, nested sections included."""
    values = parse_fields(cls, data, key)
    for name, value in values.items():
        sub, per_name = dataclass_in(hints(cls)[name])
        path = f"{key}.{name}" if key else name
        if sub is not None and per_name:
            values[name] = {k: build(sub, v, f"{path}.{k}") for k, v in as_mapping(value, path).items()}
        elif sub is not None:
            values[name] = build(sub, value, path)
    return cls(**values)


def check_training_args(values: Mapping[str, Any], key: str = "training") -> dict[str, Any]:
    """TrainingArguments keyword arguments with YAML values converted; unknown or recipe-owned keys raise."""
    from transformers import TrainingArguments

    for name in values:
        if name in RECIPE_OWNED:
            raise RecipeError(f"{key}.{name}", f"set it as {RECIPE_OWNED[name]} (the optimizer section owns it)")
    return parse_fields(TrainingArguments, values, key, "TrainingArguments argument",
                        "the fields of transformers.TrainingArguments")  # fmt: skip


def check_lora(values: Mapping[str, Any], key: str = "peft") -> dict[str, Any]:
    """peft.LoraConfig keyword arguments (task_type defaults to CAUSAL_LM), checked by building the config."""
    from peft import LoraConfig

    out = {"task_type": "CAUSAL_LM",
           **parse_fields(LoraConfig, values, key, "LoraConfig field", "the fields of peft.LoraConfig")}  # fmt: skip
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
