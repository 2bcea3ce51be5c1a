"""Reading a recipe: YAML file → ``quick`` overrides (with ``--quick``) → ``--set`` overrides → schema → validation.
Every error names the file and the key."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from .errors import RecipeError
from .fields import as_mapping, build
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
    *path, last = key.split(".")
    for i, part in enumerate(path):
        if data.get(part) is None:
            data[part] = {}
        data = data[part]
        if not isinstance(data, dict):
            raise RecipeError(".".join(path[: i + 1]), f"is {data!r}, not a mapping, so {key} cannot be set")
    data[last] = value


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The top-level mapping of a YAML file (an empty file is an empty recipe)."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise RecipeError("recipe", f"cannot read the file: {err.strerror}", str(path)) from None
    except yaml.YAMLError as err:
        raise RecipeError("recipe", f"not valid YAML: {err}", str(path)) from None
    if not isinstance(data, dict | None):
        raise RecipeError("recipe", f"must be a mapping of sections, got {type(data).__name__}", str(path))
    return data or {}


def load_recipe(path: str | Path, overrides: Iterable[tuple[str, Any]] = (), *, quick: bool = False) -> Recipe:
    """The validated recipe in `path`, with the recipe's own ``quick`` overrides when `quick`, then `overrides`
    (dotted key, value) on top."""
    data = read_yaml(path)
    try:
        for key, value in [*(as_mapping(data.get("quick") or {}, "quick").items() if quick else ()), *overrides]:
            set_dotted(data, key, value)
        recipe = build(Recipe, data)
        recipe.source = str(path)
        return recipe.validate()
    except RecipeError as err:
        raise err.in_file(str(path)) from None


def dump_recipe(recipe: Recipe) -> str:
    """The resolved recipe as YAML: every key, defaults included; loading it gives the same recipe."""
    return yaml.safe_dump(recipe.to_dict(), sort_keys=False, allow_unicode=True)
