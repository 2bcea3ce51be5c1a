"""The hyper-parameters of SpectralOptimizer's groups, defined once: defaults, accepted values, help and checks.

:class:`SpectralConfig` (spectral groups) and :class:`AdamWConfig` (AdamW groups) are the single source that the
optimizer's signature and param-group defaults, ``--optim_args`` parsing and ``hf-spectral optimizers`` read. A
param group stores the same keys as plain values (so ``state_dict`` round-trips through any checkpoint format);
constructing a config from them is how a group is validated.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from functools import lru_cache
from typing import Any, Literal

from .checks import check_choice, check_real, check_steps
from .schedules import PSpec, Schedule, as_schedule
from .shaping import ABLATION_METHODS, METHODS, PRECISIONS
from .shaping.api import resolve_method
from .shaping.tns import check_tns_fit, tns_weights

Method = Literal[METHODS + ABLATION_METHODS]  # type: ignore[valid-type]
Precision = Literal[("auto", *PRECISIONS)]  # type: ignore[valid-type]
Base = Literal["momentum", "adam"]
Order = Literal["momentum_first", "shape_first", "none"]
Scale = Literal["rms", "spectral", "preserve", "none"]
RmsRule = Literal["adamw"]

WHERE = "SpectralOptimizer"
DEFAULT_FIT_ERROR = 0.025
"""The scalar fit of φ that :func:`optimizer_tns_steps` asks of TNS (training measured no difference between
fits within 2.5 % and the exact map: docs/shaping.md, "What training needs")."""
MAX_DEFAULT_STEPS = 16


def doc(help: str, shown: str | None = None) -> dict[str, str]:
    """A config field's metadata: one line of help and how ``hf-spectral optimizers`` shows its default (default:
    the value itself)."""
    return {"help": help} if shown is None else {"help": help, "shown": shown}


@dataclass(frozen=True)
class SpectralConfig:
    """Hyper-parameters of a spectral group (2D hidden matrices: U Σᵖ Vᵀ updates); checked on construction."""

    p: PSpec = field(
        default=0.0, metadata=doc("spectral power: a number in [−1, 2], a schedule spec or a preset name", "per name")
    )
    # floor ε = 3e-3: a larger ε lets fewer TNS steps fit φ and damps the bf16 rounding that φ amplifies below it,
    # but costs on the quality fine-tune (1e-2: 0.03 nats; 5e-3, where DynMuon's p range takes Muon's 5 steps:
    # 0.007); 3e-3 and 1e-3 tie (docs/shaping.md, "What training needs")
    floor: float = field(
        default=3e-3,
        metadata=doc("ε of φ(s) = s(s² + ε²)^((p−1)/2): directions below ε·‖D‖_F are damped; in (0, 1]", "3e-3"),
    )
    method: Method = field(default="auto", metadata=doc("shaping method (taylor, dynmuon_published: ablations only)"))
    precision: Precision = field(
        default="auto",
        metadata=doc(
            "shaping precision; auto: bf16_all on CPU, on CUDA bf16 for polar / newton_schulz and mixed for tns"
        ),
    )
    ns_steps: int | None = field(
        default=None,
        metadata=doc(
            "iterations of tns / polar / newton_schulz, 1–100",
            "tns: the fewest that fit φ within 2.5 % (6 at floor 3e-3, p ≥ −0.3; 5 at floor 5e-3, |p| ≤ 0.1); polar: 5",
        ),
    )
    base: Base = field(default="momentum", metadata=doc("what is shaped: the momentum, or Adam's m̂/(√v̂ + ε)"))
    order: Order = field(default="momentum_first", metadata=doc("momentum vs shaping order"))
    momentum: float = field(default=0.95, metadata=doc("momentum μ in [0, 1) (base=momentum)"))
    nesterov: bool = field(
        default=True, metadata=doc("Nesterov look-ahead (false: shape the momentum buffer itself)", "true")
    )
    nu: float | None = field(
        default=0.7,
        metadata=doc(
            "buffer weight ν of the direction (1−ν)G + νB, in [0, 1]; none: ν = momentum (measured: benchmarks.md)"
        ),
    )
    betas: tuple[float, float] = field(
        default=(0.9, 0.95),
        metadata=doc("Adam moments of base=adam; betas[0] is also the β₁ of the AdamW that rms=adamw matches"),
    )
    adam_eps: float = field(default=1e-8, metadata=doc("Adam ε of base=adam spectral groups, in [0, 1]"))
    scale: Scale = field(
        default="rms", metadata=doc("update size rule: rms, spectral (×√max(1, m/n)), preserve or none")
    )
    rms: float | RmsRule = field(
        default="adamw",
        metadata=doc("target update RMS for scale=rms: adamw (AdamW's at each step) or a number in (0, 10]"),
    )
    lora_rms_scale: float = field(
        default=2.0, metadata=doc("multiplier of the target RMS for LoRA factors, in (0, 10] (measured)", "2")
    )

    def __post_init__(self) -> None:
        schedule = as_schedule(self.p, name=WHERE)
        object.__setattr__(self, "p", schedule.to_spec())
        check_real(WHERE, "floor", self.floor, 0.0, 1.0, low_open=True)
        check_choice(WHERE, "method", self.method, METHODS + ABLATION_METHODS)
        check_choice(WHERE, "precision", self.precision, ("auto", *PRECISIONS))
        if self.ns_steps is not None:
            check_steps(WHERE, self.ns_steps, "ns_steps")
        check_choice(WHERE, "base", self.base, Base.__args__)
        check_choice(WHERE, "order", self.order, Order.__args__)
        if self.base == "adam" and self.order == "shape_first":
            raise ValueError(
                f"{WHERE}: order='shape_first' is defined for base='momentum' only; use 'momentum_first' or 'none'"
            )
        check_beta("momentum", self.momentum)
        if not isinstance(self.nesterov, bool):
            raise ValueError(f"{WHERE}: nesterov must be True or False, got {self.nesterov!r}")
        if self.nu is not None:
            check_real(WHERE, "nu", self.nu, 0.0, 1.0)
        check_betas(self.betas)
        check_real(WHERE, "adam_eps", self.adam_eps, 0.0, 1.0)
        check_choice(WHERE, "scale", self.scale, Scale.__args__)
        if isinstance(self.rms, str):
            if self.rms not in RmsRule.__args__:
                raise ValueError(f"{WHERE}: rms must be 'adamw' or a number in (0.0, 10.0], got {self.rms!r}")
        else:
            check_real(WHERE, "rms", self.rms, 0.0, 10.0, low_open=True)
        check_real(WHERE, "lora_rms_scale", self.lora_rms_scale, 0.0, 10.0, low_open=True)
        self._check_p_reachable(schedule)

    def _check_p_reachable(self, schedule: Schedule) -> None:
        """Fail at construction, not mid-training, if the p range needs a method that cannot compute it."""
        for p in schedule.bounds():
            if self.method in ("polar", "newton_schulz") and p != 0.0:
                raise ValueError(
                    f"{WHERE}: method={self.method!r} computes p = 0 only, but p reaches {p:.4g}; use method='auto'"
                )
            auto_tns = self.method == "auto" and resolve_method("auto", p, (10**6, 10**6)) == "tns"
            if self.method == "tns" or auto_tns:
                steps = self.ns_steps or optimizer_tns_steps(self.floor, p)
                check_tns_fit(WHERE, p, self.floor, steps, "ns_steps", "floor")

    @classmethod
    def from_group(cls, group: dict[str, Any]) -> SpectralConfig:
        """The config of a filled-in spectral param group."""
        return cls(**{f.name: group[f.name] for f in fields(cls)})


@dataclass(frozen=True)
class AdamWConfig:
    """Hyper-parameters of an AdamW group (embeddings, heads, norms, biases, …); torch's AdamW arithmetic."""

    betas: tuple[float, float] = field(default=(0.9, 0.999), metadata=doc("AdamW moments"))
    eps: float = field(default=1e-8, metadata=doc("AdamW ε, in [0, 1]"))

    def __post_init__(self) -> None:
        check_betas(self.betas)
        check_real(WHERE, "eps", self.eps, 0.0, 1.0)

    @classmethod
    def from_group(cls, group: dict[str, Any]) -> AdamWConfig:
        return cls(**{f.name: group[f.name] for f in fields(cls)})


@lru_cache(maxsize=4096)
def optimizer_tns_steps(floor: float, p: float) -> int:
    """TNS steps for the optimizers when ``ns_steps`` is not set: the fewest (up to :data:`MAX_DEFAULT_STEPS`) whose
    scalar fit of φ at (p, floor) is within :data:`DEFAULT_FIT_ERROR`, else the best-fitting number. At the default
    floor 3e-3: 6 for p in [−0.3, 1] (a tabled 6-step trajectory), 7 at p = −0.5; at floor 5e-3: 5 for p in
    [−0.1, 0.1] (DynMuon's range, on its tabled 5-step trajectory), 6 elsewhere; 8 at floor 1e-3 (spectral_power's
    default). Cached: the optimizer asks for every matrix at every step."""
    fits = []
    for steps in range(1, MAX_DEFAULT_STEPS + 1):
        fits.append(tns_weights(p, floor, steps).fit_error)
        if fits[-1] <= DEFAULT_FIT_ERROR:
            return steps
    return 1 + fits.index(min(fits))


def check_group_common(group: dict[str, Any]) -> None:
    """lr and weight_decay, which every group carries."""
    check_real(WHERE, "lr", group["lr"], 0.0, float("inf"))
    check_real(WHERE, "weight_decay", group["weight_decay"], 0.0, float("inf"))


def check_beta(name: str, value: Any) -> None:
    check_real(WHERE, name, value, 0.0, 1.0)
    if value == 1.0:
        raise ValueError(f"{WHERE}: {name} must be in [0, 1), got 1.0")


def check_betas(betas: Any) -> None:
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"{WHERE}: betas must be a pair (beta1, beta2) in [0, 1), got {betas!r}")
    check_beta("betas[0]", betas[0])
    check_beta("betas[1]", betas[1])
