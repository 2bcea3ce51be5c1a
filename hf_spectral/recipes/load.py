"""Reading a recipe: YAML file → ``quick`` overrides (with ``--quick``) → ``--set`` overrides → schema → validation.
Every error names the file and the key."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from .errors import RecipeError
from .fields import build
from .schema import Recipe


def parse_set(item: str) -> tuple[str, Any]:
    """``"training.max_steps=10"`` → ``("training.max_steps", 10)``; the value is read as YAML (``[a, b]``, ``null``,
    ``true``, numbers)."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise RecipeError("--set", f"expected KEY.SUB=VALUE, got {item!r}")
    try:
        return key.strip(), yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise RecipeError(key.strip(), f"--set value is not valid YAML: {err}") from None


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """``data["a"]["b"]["c"] = value`` for ``key = "a.b.c"``, creating mappings on the way."""
    node = data
    parts = key.split(".")
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise RecipeError(".".join(parts[: i + 1]), f"is {child!r}, not a mapping, so {key} cannot be set")
        node = child
    node[parts[-1]] = value


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The top-level mapping of a YAML file (an empty file is an empty recipe)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise RecipeError("recipe", f"cannot read the file: {err.strerror}", str(path)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise RecipeError("recipe", f"not valid YAML: {err}", str(path)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RecipeError("recipe", f"must be a mapping of sections, got {type(data).__name__}", str(path))
    return data


def load_recipe(path: str | Path, overrides: Iterable[tuple[str, Any]] = (), *, quick: bool = False) -> Recipe:
    """The validated recipe in `path`, with the recipe's own ``quick`` overrides when `quick`, then `overrides`
    (dotted key, value) on top."""
    data = read_yaml(path)
    try:
        if quick:
            quick_overrides = data.get("quick") or {}
            if not isinstance(quick_overrides, dict):
                raise RecipeError("quick", f"must be a mapping of dotted keys to values; got {quick_overrides!r}")
            for key, value in quick_overrides.items():
                set_dotted(data, key, value)
        for key, value in overrides:
            set_dotted(data, key, value)
        recipe = build(Recipe, data)
        recipe.source = str(path)
        return recipe.validate()
    except RecipeError as err:
        raise err.in_file(str(path)) from None


def dump_recipe(recipe: Recipe) -> str:
    """The resolved recipe as YAML: every key, defaults included; loading it gives the same recipe."""
    return yaml.safe_dump(recipe.to_dict(), sort_keys=False, allow_unicode=True)
