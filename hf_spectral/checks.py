"""Argument checks shared by every layer (shaping, schedules, configs, routing). Every message names the
function, the argument and the accepted range."""

from __future__ import annotations

import math
from collections.abc import Sequence


def check_choice(fn: str, name: str, value: object, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"{fn}: {name} must be one of {tuple(choices)}, got {value!r}")


def check_steps(fn: str, steps: object, name: str = "steps") -> None:
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= 100:
        raise ValueError(f"{fn}: {name} must be an integer in [1, 100], got {steps!r}")


def check_real(fn: str, name: str, value: object, low: float, high: float, *, low_open: bool = False) -> float:
    """value must be a finite real number in [low, high] (or (low, high] with low_open)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{fn}: {name} must be a finite real number, got {value!r}")
    value = float(value)
    below = value <= low if low_open else value < low
    if below or value > high:
        bracket = "(" if low_open else "["
        raise ValueError(f"{fn}: {name} must be in {bracket}{low}, {high}], got {value}")
    return value
