"""Optimizer names for ``--optim`` and the ``--optim_args`` keys they accept.

``--optim_args "p_start=0.25,p_end=-0.25,floor=1e-3"`` reaches us as strings (transformers splits on "," and "=");
:func:`parse_optim_args` converts and checks every key, and :func:`resolve` turns name + keys + TrainingArguments
values into SpectralOptimizer keyword arguments and `partition` routing options.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from ..config import SpectralConfig
from ..optimizer import NONFINITE, SpectralOptimizer
from ..presets import DynMuon, Muon, MuonP, SpectralAdam
from ..routing import CONV_MODES, EXPERT_MODES, LORA_MODES
from ..schedules import PRESETS, SCHEDULES, as_schedule, to_spec


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


Patterns = tuple[str, ...]
"""The kind of the routing pattern keys: globs separated by "|"."""


def parse_text(key: str, text: str, kind: Any) -> Any:
    """The value of ``key=text`` for a key of type `kind`: float, int, bool, :data:`Patterns`, a Literal of choices,
    or a union of those with None ("none")."""
    if get_origin(kind) in (Union, UnionType):
        options = [o for o in get_args(kind) if o is not type(None)]
        if len(options) < len(get_args(kind)) and text.lower() == "none":
            return None
        for option in sorted(options, key=lambda o: get_origin(o) is not Literal):  # choices before numbers
            try:
                return parse_text(key, text, option)
            except ValueError:
                pass
        accepted = " or ".join(_describe(o) for o in get_args(kind))
        raise ValueError(f"optim_args: {key} must be {accepted}, got {text!r}")
    if get_origin(kind) is Literal:
        if text not in get_args(kind):
            raise ValueError(f"optim_args: {key} must be one of {', '.join(get_args(kind))}; got {text!r}")
        return text
    if kind == Patterns:  # glob patterns separated by "|" (commas would split --optim_args)
        return tuple(pattern for pattern in text.split("|") if pattern)
    if kind is bool:
        lowered = text.lower()
        if lowered in ("true", "1", "yes", "false", "0", "no"):
            return lowered in ("true", "1", "yes")
        raise ValueError(f"optim_args: {key} must be true or false, got {text!r}")
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"optim_args: {key} must be {_describe(kind)}, got {text!r}") from None


def _describe(kind: Any) -> str:
    if kind is type(None):
        return "none"
    if get_origin(kind) is Literal:
        return " or ".join(get_args(kind))
    return {int: "an integer", float: "a number", bool: "true or false"}.get(kind, kind.__name__)


@dataclass(frozen=True)
class Key:
    """An ``--optim_args`` key: the type its text is parsed as, its help and its default as listed."""

    kind: Any
    help: str
    default: str = "—"

    def parse(self, key: str, text: str) -> Any:
        return parse_text(key, text, self.kind)


def _config_keys(config: type, skip: tuple[str, ...]) -> dict[str, Key]:
    """One key per field of a config dataclass: its type, help and default, as the config defines them."""
    kinds = get_type_hints(config)
    shown = {f.name: f.metadata.get("shown", str(f.default)) for f in fields(config)}
    return {f.name: Key(kinds[f.name], f.metadata["help"], shown[f.name]) for f in fields(config) if f.name not in skip}


SCHEDULE_CHOICES = Literal[(*SCHEDULES, *PRESETS)]  # type: ignore[valid-type]
PATTERNS = "globs separated by | (commas would split --optim_args)"
KEYS: dict[str, Key] = {
    "p": Key(float, "constant spectral power in [−1, 2] (excludes the schedule keys)", "per name"),
    "schedule": Key(SCHEDULE_CHOICES, "p schedule kind or preset", "per name"),
    "p_start": Key(float, "schedule start p(0⁺) (for logistic: the upper asymptote)", "per name"),
    "p_end": Key(float, "schedule end p(1)", "per name"),
    "tau": Key(float, "logistic midpoint τ, as a fraction of training, in [0, 1]", "0.04"),
    "width": Key(float, "logistic width w, in (0, 1]", "0.04"),
    **_config_keys(SpectralConfig, skip=("p", "betas")),
    "adam_eps": Key(float, "Adam ε of base=adam spectral groups, in [0, 1]", "--adam_epsilon"),
    "eps": Key(float, "deprecated former name of floor", "—"),
    "beta1": Key(
        float, "Adam β₁ of base=adam spectral groups, and of the AdamW that rms=adamw matches", "--adam_beta1"
    ),
    "beta2": Key(float, "Adam β₂ of base=adam spectral groups", "--adam_beta2"),
    "spectral_lr": Key(float, "learning rate of the spectral groups", "--learning_rate"),
    "adamw_lr": Key(float, "learning rate of the AdamW groups", "--learning_rate"),
    "nonfinite": Key(Literal[NONFINITE], "on a NaN/Inf gradient: raise or skip the step", "raise"),
    "lora": Key(Literal[LORA_MODES], "which LoRA factors are shaped", "both"),
    "conv": Key(Literal[CONV_MODES], "where conv kernels go", "adamw"),
    "experts": Key(Literal[EXPERT_MODES], "where MoE experts go (spectral: a matrix per expert)", "spectral"),
    "split_fused": Key(bool, "shape fused Q, K, V blocks separately", "false"),
    "spectral_patterns": Key(Patterns, f"parameters forced to spectral: {PATTERNS}", "none"),
    "adamw_patterns": Key(Patterns, f"parameters forced to AdamW: {PATTERNS}", "none"),
    "skip_patterns": Key(Patterns, f"parameters left out of the optimizer: {PATTERNS}", "none"),
    "stats_every": Key(int, "log SVD statistics of the shaped updates every N steps (0: off)", "0"),
}
ROUTING_KEYS = {"lora": "lora", "conv": "conv", "experts": "experts", "split_fused": "split_fused",
                "spectral_patterns": "spectral", "adamw_patterns": "adamw", "skip_patterns": "skip"}  # fmt: skip
SCHEDULE_KEYS = ("schedule", "p_start", "p_end", "tau", "width")
PASSTHROUGH = (*_config_keys(SpectralConfig, skip=("p", "betas")), "nonfinite", "stats_every", "eps")


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
