"""YAML values → the recipe's dataclasses, converted and checked by pydantic (types, ``Literal`` and enum choices,
bounds, unknown keys); an error names the key (``data.block_size``, ``compare.optimizers[1]``). A ``null`` leaves
a key at its default. Library sections are checked against their own class: ``training`` → ``TrainingArguments``,
``peft`` → ``peft.LoraConfig``, ``model.config`` → the model's config class."""

from __future__ import annotations

import dataclasses
import enum
import functools
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import ConfigDict, TypeAdapter, ValidationError, model_validator
from pydantic.dataclasses import dataclass as pydantic_dataclass

from .errors import RecipeError, unknown_key

RECIPE_OWNED = {"optim": "optimizer.name", "optim_args": "optimizer.optim_args", "learning_rate": "optimizer.lr",
                "weight_decay": "optimizer.weight_decay"}  # fmt: skip
"""TrainingArguments that a recipe sets in its optimizer section (so that `compare` can vary them)."""
STRICT = ConfigDict(extra="forbid", coerce_numbers_to_str=True, arbitrary_types_allowed=True, protected_namespaces=())
hints = functools.cache(typing.get_type_hints)


class NullMeansDefault:
    """Base of the recipe's sections: a key given as ``null`` keeps its default."""

    @model_validator(mode="before")
    @classmethod
    def _drop_nulls(cls, data: Any) -> Any:
        return {k: v for k, v in data.items() if v is not None} if isinstance(data, Mapping) else data


def dataclass_in(hint: Any) -> tuple[type | None, bool]:
    """The dataclass a field holds (``X``, ``X | None``, or per name: ``dict[str, X]``), or None."""
    found = [t for t in (hint, *typing.get_args(hint)) if dataclasses.is_dataclass(t)]
    return (found[0], typing.get_origin(hint) is dict) if found else (None, False)


def build(cls: type, data: Any, key: str = "", what: str = "key", listed_in: str | None = None) -> Any:
    """An instance of `cls` (a section dataclass, nested sections included) from a YAML mapping."""
    try:
        return _adapter(cls).validate_python(as_mapping(data, key))
    except ValidationError as err:
        error = err.errors()[0]
        loc = [part for part in error["loc"] if part != "[key]"]  # a mapping's key is named by the key itself
        path = (key + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)).removeprefix(".")
        if error["type"] in ("unexpected_keyword_argument", "extra_forbidden"):
            names = _field_names(cls, loc[:-1])
            raise (unknown_key(path, names, what, listed_in) if len(loc) == 1 else unknown_key(path, names)) from None
        message = error["msg"].removeprefix("Value error, ")
        raise RecipeError(path, f"{message}; got {error['input']!r}") from None


def _field_names(cls: type, loc: list[Any]) -> list[str]:
    """The keys of the section at `loc` (a pydantic error location) below dataclass `cls`."""
    names = iter(loc)
    for part in names:
        cls, per_name = dataclass_in(hints(cls)[part])
        if per_name:
            next(names)  # the name of an entry of a per-name mapping (optimizer.overrides.<name>)
    return [f.name for f in dataclasses.fields(cls) if f.init]


def as_mapping(data: Any, key: str) -> Mapping:
    if not isinstance(data, Mapping):
        raise RecipeError(key or "recipe", f"must be a mapping of keys to values; got {data!r}")
    return data


_adapter = functools.cache(TypeAdapter)


@functools.cache
def _checker(cls: type) -> type:
    """Library dataclass `cls`'s fields as a pydantic dataclass (without the library's ``__post_init__``); a field
    typed ``SomeEnum | str`` takes the enum's values only."""

    def choices(hint: Any) -> Any:
        enums = [t for t in typing.get_args(hint) if isinstance(t, type) and issubclass(t, enum.Enum)]
        return enums[0] | None if enums else hint

    fields = [(f.name, choices(hints(cls)[f.name]), dataclasses.field(default=None))  # a new Field object each
              for f in dataclasses.fields(cls) if f.init]  # fmt: skip
    return pydantic_dataclass(dataclasses.make_dataclass(cls.__name__, fields), config=STRICT)


def library_kwargs(cls: type, values: Any, key: str, what: str, listed_in: str) -> dict[str, Any]:
    """Keyword arguments of library dataclass `cls` with YAML values converted (enum members as their values);
    unknown keys and ill-typed values raise RecipeError naming the key, ``null`` values are left out."""
    values = {k: v for k, v in as_mapping(values, key).items() if v is not None}
    checked = build(_checker(cls), values, key, what, listed_in)
    plain = lambda v: v.value if isinstance(v, enum.Enum) else v  # noqa: E731 (YAML keeps strings, not enum members)
    return {name: plain(getattr(checked, name)) for name in values}


def check_training_args(values: Mapping[str, Any], key: str = "training") -> dict[str, Any]:
    """TrainingArguments keyword arguments with YAML values converted; unknown or recipe-owned keys raise."""
    from transformers import TrainingArguments

    for name in values:
        if name in RECIPE_OWNED:
            raise RecipeError(f"{key}.{name}", f"set it as {RECIPE_OWNED[name]} (the optimizer section owns it)")
    return library_kwargs(TrainingArguments, values, key, "TrainingArguments argument",
                          "the fields of transformers.TrainingArguments")  # fmt: skip


def check_lora(values: Mapping[str, Any], key: str = "peft") -> dict[str, Any]:
    """peft.LoraConfig keyword arguments (task_type defaults to CAUSAL_LM), checked by building the config."""
    from peft import LoraConfig

    out = {"task_type": "CAUSAL_LM",
           **library_kwargs(LoraConfig, values, key, "LoraConfig field", "the fields of peft.LoraConfig")}  # fmt: skip
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
