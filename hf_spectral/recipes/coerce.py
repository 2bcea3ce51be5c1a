"""Check a YAML value against a type hint (``int``, ``float | None``, ``list[str]``, ``Literal[...]``, enums,
dataclasses) and return it in that type; a mismatch raises :class:`RecipeError` naming the key.

YAML 1.1 reads ``3e-4`` (no dot) as a string, so a string that parses as a number is accepted where a float is
expected. Hints this module does not know (library classes) accept any value: their own constructor checks it.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Mapping
from typing import Any

from .errors import RecipeError


def coerce(value: Any, hint: Any, key: str) -> Any:
    """`value` converted to `hint`, or a RecipeError for `key` that names what was expected."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        return _union(value, args, key)
    if origin is typing.Literal:
        if value in args or (isinstance(value, str) and any("[" in str(a) for a in args)):  # "pissa_niter_[n]"
            return value
        raise RecipeError(key, f"must be one of {', '.join(map(repr, args))}; got {value!r}")
    if hint is type(None):
        if value is None:
            return None
        raise RecipeError(key, f"must be empty (null); got {value!r}")
    if dataclasses.is_dataclass(hint):
        from .schema import from_mapping

        return from_mapping(hint, value, key)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _enum(value, (hint,), key)
    simple = _SIMPLE.get(origin or hint)
    if simple is not None:
        return simple(value, args, key)
    return value


def _union(value: Any, args: tuple[Any, ...], key: str) -> Any:
    enums = tuple(a for a in args if isinstance(a, type) and issubclass(a, enum.Enum))
    if enums and isinstance(value, str):  # `IntervalStrategy | str`: the string must be a member's value
        return _enum(value, enums, key)
    for arg in sorted(args, key=lambda a: a is str):  # str last: "3e-4" in a `float | str` field is a number
        try:
            return coerce(value, arg, key)
        except RecipeError:
            continue
    raise RecipeError(key, f"expected {describe(*args)}; got {value!r}")


def _enum(value: Any, enums: tuple[type[enum.Enum], ...], key: str) -> Any:
    allowed = [member.value for cls in enums for member in cls]
    if value in allowed:
        return value
    raise RecipeError(key, f"must be one of {', '.join(map(str, allowed))}; got {value!r}")


def _bool(value: Any, args: tuple[Any, ...], key: str) -> bool:
    if isinstance(value, bool):
        return value
    raise RecipeError(key, f"must be true or false; got {value!r}")


def _int(value: Any, args: tuple[Any, ...], key: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise RecipeError(key, f"must be an integer; got {value!r}")


def _float(value: Any, args: tuple[Any, ...], key: str) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise RecipeError(key, f"must be a number; got {value!r}")


def _str(value: Any, args: tuple[Any, ...], key: str) -> str:
    if isinstance(value, str):
        return value
    raise RecipeError(key, f"must be a string; got {value!r}")


def _list(value: Any, args: tuple[Any, ...], key: str) -> list[Any]:
    if not isinstance(value, list):
        raise RecipeError(key, f"must be a list; got {value!r}")
    return [coerce(item, args[0], f"{key}[{i}]") for i, item in enumerate(value)] if args else value


def _dict(value: Any, args: tuple[Any, ...], key: str) -> dict[Any, Any]:
    if not isinstance(value, Mapping):
        raise RecipeError(key, f"must be a mapping; got {value!r}")
    if not args:
        return dict(value)
    return {coerce(k, args[0], key): coerce(v, args[1], f"{key}.{k}") for k, v in value.items()}


_SIMPLE = {bool: _bool, int: _int, float: _float, str: _str, list: _list, dict: _dict}


def describe(*hints: Any) -> str:
    """A short human name for the members of a union: (int, None) → "integer or null"."""
    names = {bool: "true/false", int: "integer", float: "number", str: "string", list: "list", dict: "mapping",
             type(None): "null"}  # fmt: skip
    return " or ".join(names.get(typing.get_origin(h) or h, getattr(h, "__name__", str(h))) for h in hints)
