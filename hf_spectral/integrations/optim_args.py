"""Optimizer names for ``--optim`` and the ``--optim_args`` keys they accept.

``--optim_args "p_start=0.25,p_end=-0.25,eps=1e-3"`` reaches us as strings (transformers splits on "," and "=");
:func:`parse_optim_args` converts and checks every key, and :func:`resolve` turns name + keys + TrainingArguments
values into SpectralOptimizer keyword arguments and `partition` routing options.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..optimizer import SpectralOptimizer
from ..presets import DynMuon, Muon, MuonP, SpectralAdam
from ..schedules import PRESETS, SCHEDULES, as_schedule, to_spec
from ..shaping import METHODS


@dataclass(frozen=True)
class OptimizerName:
    """A ``--optim`` name: the optimizer class it builds and a one-line description."""

    cls: type[SpectralOptimizer]
    description: str


OPTIMIZER_NAMES: dict[str, OptimizerName] = {
    "muon": OptimizerName(Muon, "Muon: p = 0, Polar Express in bf16, momentum first"),
    "muonp": OptimizerName(MuonP, "Muon^p: constant p (default 0.5), exact TNS / eigh shaping"),
    "dynmuon": OptimizerName(DynMuon, "DynMuon: p scheduled 0.1 → −0.1 (logistic, τ = w = 0.04)"),
    "spectral_adam": OptimizerName(SpectralAdam, "Adam's m̂/(√v̂+ε) shaped with power p (default 0.5)"),
    "spectral": OptimizerName(SpectralOptimizer, "SpectralOptimizer with every default (p = 0, TNS); set all by keys"),
}


class OptimArgsError(ValueError):
    """``--optim`` / ``--optim_args`` that our optimizers refuse; a parser shows it as one argparse error line."""

    def __init__(self, name: str, optim_args: Any, reason: str) -> None:
        self.reason = reason.removeprefix("optim_args: ")
        self.given = f"--optim {name} --optim_args {optim_args!r}"
        super().__init__(f"{self.given}: {self.reason}")


def _float(key: str, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"optim_args: {key} must be a number, got {value!r}") from None


def _int(key: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"optim_args: {key} must be an integer, got {value!r}") from None


def _optional_float(key: str, value: str) -> float | None:
    return None if value.lower() == "none" else _float(key, value)


def _rms(key: str, value: str) -> float | str:
    return value if value == "adamw" else _float(key, value)


def _bool(key: str, value: str) -> bool:
    lowered = value.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ValueError(f"optim_args: {key} must be true or false, got {value!r}")


def _choice(*choices: str) -> Callable[[str, str], str]:
    def parse(key: str, value: str) -> str:
        if value not in choices:
            raise ValueError(f"optim_args: {key} must be one of {', '.join(choices)}; got {value!r}")
        return value

    return parse


def _patterns(key: str, value: str) -> tuple[str, ...]:
    """Glob patterns separated by "|" (commas would split --optim_args)."""
    return tuple(pat for pat in value.split("|") if pat)


@dataclass(frozen=True)
class Key:
    parse: Callable[[str, str], Any]
    help: str
    default: str = "—"


SCHEDULE_CHOICES = (*SCHEDULES, *PRESETS)
KEYS: dict[str, Key] = {
    "p": Key(_float, "constant spectral power in [−1, 2] (excludes the schedule keys)", "per name"),
    "schedule": Key(_choice(*SCHEDULE_CHOICES), "p schedule kind or preset", "per name"),
    "p_start": Key(_float, "schedule start p(0⁺) (for logistic: the upper asymptote)", "per name"),
    "p_end": Key(_float, "schedule end p(1)", "per name"),
    "tau": Key(_float, "logistic midpoint τ, as a fraction of training, in [0, 1]", "0.04"),
    "width": Key(_float, "logistic width w, in (0, 1]", "0.04"),
    "eps": Key(_float, "ε floor of φ, in (0, 1]", "3e-3"),
    "method": Key(_choice(*METHODS), "shaping method (taylor, dynmuon_published: ablations only)", "auto"),
    "precision": Key(_choice("auto", "fp32", "mixed", "bf16", "bf16_all"), "shaping precision", "auto"),
    "ns_steps": Key(_int, "iterations of tns / polar / newton_schulz, 1–100", "7 / 5"),
    "base": Key(_choice("momentum", "adam"), "what is shaped", "momentum"),
    "order": Key(_choice("momentum_first", "shape_first", "none"), "momentum vs shaping order", "momentum_first"),
    "momentum": Key(_float, "momentum μ in [0, 1) (base=momentum)", "0.95"),
    "nesterov": Key(_bool, "Nesterov look-ahead (false: shape the momentum buffer itself)", "true"),
    "nu": Key(_optional_float, "buffer weight ν of the direction (1−ν)G + νB, in [0, 1]; none: ν = momentum", "0.7"),
    "beta1": Key(
        _float, "Adam β₁ of base=adam spectral groups, and of the AdamW that rms=adamw matches", "--adam_beta1"
    ),
    "beta2": Key(_float, "Adam β₂ of base=adam spectral groups", "--adam_beta2"),
    "adam_eps": Key(_float, "Adam ε of base=adam spectral groups", "--adam_epsilon"),
    "scale": Key(_choice("rms", "spectral", "preserve", "none"), "update size rule", "rms"),
    "rms": Key(_rms, "target update RMS for scale=rms: adamw (AdamW's at each step) or a number in (0, 10]", "adamw"),
    "lora_rms_scale": Key(_float, "multiplier of the target RMS for LoRA factors, in (0, 10]", "2"),
    "spectral_lr": Key(_float, "learning rate of the spectral groups", "--learning_rate"),
    "adamw_lr": Key(_float, "learning rate of the AdamW groups", "--learning_rate"),
    "nonfinite": Key(_choice("raise", "skip"), "on a NaN/Inf gradient: raise or skip the step", "raise"),
    "lora": Key(_choice("both", "B", "none"), "which LoRA factors are shaped", "both"),
    "conv": Key(_choice("adamw", "spectral"), "where conv kernels go", "adamw"),
    "split_fused": Key(_bool, "shape fused Q, K, V blocks separately", "false"),
    "spectral_patterns": Key(_patterns, "globs forced to spectral, separated by |", "none"),
    "adamw_patterns": Key(_patterns, "globs forced to AdamW, separated by |", "none"),
    "skip_patterns": Key(_patterns, "globs left out of the optimizer, separated by |", "none"),
    "stats_every": Key(_int, "log SVD statistics of the shaped updates every N steps (0: off)", "0"),
}
ROUTING_KEYS = {"lora": "lora", "conv": "conv", "split_fused": "split_fused", "spectral_patterns": "spectral",
                "adamw_patterns": "adamw", "skip_patterns": "skip"}  # fmt: skip
SCHEDULE_KEYS = ("schedule", "p_start", "p_end", "tau", "width")
PASSTHROUGH = ("eps", "method", "precision", "ns_steps", "base", "order", "momentum", "nesterov", "nu", "adam_eps",
               "scale", "rms", "lora_rms_scale", "nonfinite", "stats_every")  # fmt: skip


def parse_optim_args(optim_args: str | Mapping[str, Any] | None, name: str) -> dict[str, Any]:
    """Typed values of ``--optim_args`` ("k=v,k=v" or a dict of strings) for optimizer `name`; unknown keys raise."""
    if name not in OPTIMIZER_NAMES:
        raise ValueError(f"unknown hf_spectral optimizer {name!r}; choose one of {', '.join(OPTIMIZER_NAMES)}")
    if optim_args is None or optim_args == "":
        return {}
    if isinstance(optim_args, str):
        raw: dict[str, Any] = {}
        for item in optim_args.replace(" ", "").split(","):
            if not item:  # transformers' Trainer splits --optim_args itself and fails on an empty entry
                raise ValueError(f"optim_args: empty entry (a trailing or doubled comma) in {optim_args!r}")
            key, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"optim_args: expected key=value, got {item!r} (in {optim_args!r})")
            raw[key] = value
    else:
        raw = dict(optim_args)
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise ValueError(f"optim_args: unknown key {unknown[0]!r} for --optim {name}; accepted keys: {', '.join(KEYS)}")
    return {k: KEYS[k].parse(k, v) if isinstance(v, str) else v for k, v in raw.items()}


@dataclass
class Resolved:
    """What a name plus optim_args plus TrainingArguments values mean: the optimizer class, its keyword
    arguments and the `partition` options."""

    cls: type[SpectralOptimizer]
    kwargs: dict[str, Any] = field(default_factory=dict)
    routing: dict[str, Any] = field(default_factory=dict)


def resolve(
    name: str,
    optim_args: str | Mapping[str, Any] | None,
    *,
    lr: float,
    weight_decay: float = 0.0,
    adam_betas: tuple[float, float] = (0.9, 0.999),
    adam_epsilon: float = 1e-8,
) -> Resolved:
    """Optimizer class and kwargs for ``--optim name --optim_args ...`` with the Trainer's lr, weight decay and
    Adam settings. ``--adam_beta*`` / ``--adam_epsilon`` drive the AdamW groups and, unless ``beta1`` / ``beta2``
    / ``adam_eps`` are given, the spectral groups' Adam moments (base=adam) and the β₁ whose AdamW update RMS
    ``rms=adamw`` matches."""
    values = parse_optim_args(optim_args, name)
    cls = OPTIMIZER_NAMES[name].cls
    kwargs: dict[str, Any] = {k: values[k] for k in PASSTHROUGH if k in values}
    kwargs.update(
        lr=values.get("spectral_lr", lr),
        adamw_lr=values.get("adamw_lr", lr),
        weight_decay=weight_decay,
        adamw_betas=tuple(adam_betas),
        adamw_eps=adam_epsilon,
    )
    kwargs["betas"] = (values.get("beta1", adam_betas[0]), values.get("beta2", adam_betas[1]))
    if kwargs.get("base", "adam" if cls is SpectralAdam else "momentum") == "adam":
        kwargs.setdefault("adam_eps", adam_epsilon)
    p_spec = _p_spec(cls, values)
    if p_spec is not None:
        kwargs["p"] = p_spec
    routing = {ROUTING_KEYS[k]: values[k] for k in ROUTING_KEYS if k in values}
    return Resolved(cls, kwargs, routing)


def _p_spec(cls: type[SpectralOptimizer], values: Mapping[str, Any]) -> dict[str, Any] | None:
    """The p spec from the keys p / schedule / p_start / p_end / tau / width, on top of the class's default."""
    given = [k for k in SCHEDULE_KEYS if k in values]
    if "p" in values:
        if given:
            raise ValueError(f"optim_args: p sets a constant power; drop {', '.join(given)} or drop p")
        return to_spec(as_schedule(values["p"], name="optim_args"))
    if not given:
        return None
    default = {DynMuon: "dynmuon", MuonP: 0.5, SpectralAdam: 0.5}.get(cls, 0.0)
    spec = to_spec(as_schedule(default))
    kind = values.get("schedule")
    if kind in PRESETS:
        spec = to_spec(PRESETS[kind])
    elif kind is not None and kind != spec["schedule"]:
        carried = {k: spec[k] for k in ("start", "end") if k in spec}
        spec = {"schedule": kind, **carried}
    for key, field_name in (("p_start", "start"), ("p_end", "end"), ("tau", "tau"), ("width", "width")):
        if key in values:
            spec[field_name] = values[key]
    if spec["schedule"] == "constant":
        raise ValueError(
            f"optim_args: {', '.join(given)} need a schedule: add schedule=linear, cosine or logistic (or use p=)"
        )
    try:
        return to_spec(as_schedule(spec, name="optim_args"))
    except TypeError as err:  # a field the chosen schedule does not have, e.g. tau with linear
        raise ValueError(f"optim_args: {err}; the {spec['schedule']} schedule takes p_start and p_end") from None
