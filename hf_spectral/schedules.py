"""Schedules for the spectral power p over training progress t ∈ [0, 1] (t = optimizer steps taken / total steps).

    constant   p(t) = value
    linear     p(t) = start + (end − start)·t
    cosine     p(t) = end + (start − end)·(1 + cos πt)/2
    logistic   p(t) = end + (start − end) / (1 + exp((t − τ)/w))          (DynMuon)

Presets: ``"dynmuon"`` (our default, logistic 0.1 → −0.1, τ = w = 0.04: chosen on the quality suite, see
docs/benchmarks.md), ``"dynmuon_paper"`` (the DynMuon paper's default, 1.0 → −0.25) and ``"dynmuon_record"``
(its record-setting variant, 0.25 → −0.25). Every schedule is monotone in t, so its range over training
is the interval between p(0) and p(1).

Schedules are stored in optimizer param groups as plain dicts (``{"schedule": "constant", "value": 0.5}``,
``{"schedule": "logistic", "start": 1.0, "end": -0.25, "tau": 0.04, "width": 0.04}``) so that ``state_dict``
round-trips through any checkpoint format; :func:`as_schedule` turns a spec back into a schedule.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

from .checks import check_real

P_LIMITS = (-1.0, 2.0)


@dataclass(frozen=True)
class Schedule:
    """Base class: p as a function of training progress t ∈ [0, 1]."""

    kind: ClassVar[str] = ""

    def __call__(self, t: float) -> float:
        return self.at(min(max(float(t), 0.0), 1.0))

    def at(self, t: float) -> float:
        raise NotImplementedError

    @property
    def needs_total_steps(self) -> bool:
        return True

    def bounds(self) -> tuple[float, float]:
        """(min, max) of p over training (schedules are monotone)."""
        a, b = self(0.0), self(1.0)
        return min(a, b), max(a, b)

    def to_spec(self) -> dict[str, Any]:
        return {"schedule": self.kind, **asdict(self)}


@dataclass(frozen=True)
class Constant(Schedule):
    value: float = 0.0
    kind: ClassVar[str] = "constant"

    def at(self, t: float) -> float:
        return self.value

    @property
    def needs_total_steps(self) -> bool:
        return False


@dataclass(frozen=True)
class Linear(Schedule):
    start: float = 1.0
    end: float = 0.0
    kind: ClassVar[str] = "linear"

    def at(self, t: float) -> float:
        return self.start + (self.end - self.start) * t


@dataclass(frozen=True)
class Cosine(Schedule):
    start: float = 1.0
    end: float = 0.0
    kind: ClassVar[str] = "cosine"

    def at(self, t: float) -> float:
        return self.end + (self.start - self.end) * 0.5 * (1.0 + math.cos(math.pi * t))


@dataclass(frozen=True)
class Logistic(Schedule):
    start: float = 1.0
    end: float = -0.25
    tau: float = 0.04
    width: float = 0.04
    kind: ClassVar[str] = "logistic"

    def at(self, t: float) -> float:
        z = (t - self.tau) / self.width
        if z > 700:  # exp overflow: the transition is over
            return self.end
        return self.end + (self.start - self.end) / (1.0 + math.exp(z))


SCHEDULES: dict[str, type[Schedule]] = {cls.kind: cls for cls in (Constant, Linear, Cosine, Logistic)}
PRESETS: dict[str, Schedule] = {
    "dynmuon": Logistic(start=0.1, end=-0.1, tau=0.04, width=0.04),
    "dynmuon_paper": Logistic(start=1.0, end=-0.25, tau=0.04, width=0.04),
    "dynmuon_record": Logistic(start=0.25, end=-0.25, tau=0.04, width=0.04),
}

PSpec = float | str | Mapping[str, Any] | Schedule


def as_schedule(spec: PSpec, *, name: str = "p") -> Schedule:
    """A schedule from a float (constant p), a preset name, a spec dict or a Schedule, with every field validated."""
    if isinstance(spec, Schedule):
        schedule = spec
    elif isinstance(spec, str):
        if spec not in PRESETS:
            raise ValueError(f"{name}: unknown schedule preset {spec!r}; choose one of {sorted(PRESETS)}")
        schedule = PRESETS[spec]
    elif isinstance(spec, Mapping):
        kind = spec.get("schedule")
        if kind not in SCHEDULES:
            raise ValueError(f"{name}: spec needs 'schedule' in {sorted(SCHEDULES)}, got {kind!r}")
        cls = SCHEDULES[kind]
        allowed = {f.name for f in fields(cls)}
        unknown = set(spec) - allowed - {"schedule"}
        if unknown:
            raise ValueError(
                f"{name}: unknown keys {sorted(unknown)} for a {kind} schedule; accepted: {sorted(allowed)}"
            )
        schedule = cls(**{k: v for k, v in spec.items() if k != "schedule"})
    else:
        schedule = Constant(check_real(name, "p", spec, *P_LIMITS))
    _validate(schedule, name)
    return schedule


def _validate(schedule: Schedule, name: str) -> None:
    for f in fields(schedule):
        value = getattr(schedule, f.name)
        if f.name == "width":
            check_real(name, "width", value, 0.0, 1.0, low_open=True)
        elif f.name == "tau":
            check_real(name, "tau", value, 0.0, 1.0)
        else:
            check_real(name, f.name, value, *P_LIMITS)


def to_spec(schedule: PSpec) -> dict[str, Any]:
    """The plain dict stored in a param group, e.g. ``{"schedule": "constant", "value": 0.5}``.

    Always a dict, even for a constant p: torch.distributed.checkpoint loads a state_dict into the live optimizer's
    structure, so a float in one run and a dict in the next would not load."""
    return as_schedule(schedule).to_spec()


__all__ = ["PRESETS", "SCHEDULES", "Constant", "Cosine", "Linear", "Logistic", "PSpec", "Schedule", "as_schedule"]
