"""Param-group hyper-parameters of SpectralOptimizer: defaults per algorithm and validation with named ranges.

A group's ``algorithm`` decides which keys it carries:

spectral: lr, weight_decay, p (float or schedule spec), eps (ε floor of φ), method, precision, ns_steps,
          base ("momentum" | "adam"), order ("momentum_first" | "shape_first" | "none"), momentum, nesterov, nu,
          betas and adam_eps (base="adam"; betas[0] also for rms="adamw"), scale ("rms" | "spectral" | "preserve" |
          "none"), rms (number or "adamw"), lora_rms_scale; ``lora`` (True for groups of LoRA factors)
adamw:    lr, weight_decay, betas, eps (Adam's ε)

Every group also carries ``step`` (optimizer steps taken, read by p schedules) and ``total_steps``.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from .schedules import as_schedule, to_spec
from .shaping import METHODS, PRECISIONS
from .shaping.api import resolve_method
from .shaping.tns import MAX_FIT_ERROR, tns_weights
from .shaping.validation import check_choice, check_real, check_steps
from .updates import OPTIMIZER_EPS, optimizer_tns_steps

ALGORITHMS = ("spectral", "adamw")
BASES = ("momentum", "adam")
ORDERS = ("momentum_first", "shape_first", "none")
SCALES = ("rms", "spectral", "preserve", "none")

OPTIMIZER_PRECISIONS = ("auto", *PRECISIONS)
"""precision="auto": "bf16_all" on CPU; on CUDA "bf16" for Polar Express / Newton–Schulz, "mixed" for TNS
(:func:`hf_spectral.updates.resolve_precision`)."""

NU_DEFAULT = 0.7
"""Default ν of the direction (1−ν)G + νB (quasi-hyperbolic momentum); measured in docs/benchmarks.md."""
LORA_RMS_SCALE = 2.0
"""Default multiplier of the target update RMS for LoRA factors; measured in docs/benchmarks.md."""
RMS_RULES = ("adamw",)
"""Named rules accepted for ``rms`` next to a number."""

SPECTRAL_DEFAULTS: dict[str, Any] = {
    "p": 0.0,
    "eps": OPTIMIZER_EPS,
    "method": "auto",
    "precision": "auto",
    "ns_steps": None,
    "base": "momentum",
    "order": "momentum_first",
    "momentum": 0.95,
    "nesterov": True,
    "nu": NU_DEFAULT,
    "betas": (0.9, 0.95),
    "adam_eps": 1e-8,
    "scale": "rms",
    "rms": "adamw",
    "lora_rms_scale": LORA_RMS_SCALE,
}
ADAMW_DEFAULTS: dict[str, Any] = {"betas": (0.9, 0.999), "eps": 1e-8}


def _check_beta(where: str, name: str, value: Any) -> None:
    check_real(where, name, value, 0.0, 1.0)
    if value == 1.0:
        raise ValueError(f"{where}: {name} must be in [0, 1), got 1.0")


def _check_betas(where: str, betas: Any) -> None:
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"{where}: betas must be a pair (beta1, beta2) in [0, 1), got {betas!r}")
    _check_beta(where, "betas[0]", betas[0])
    _check_beta(where, "betas[1]", betas[1])


def _check_bool(where: str, name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{where}: {name} must be True or False, got {value!r}")


def validate_group(group: MutableMapping[str, Any], where: str = "SpectralOptimizer") -> None:
    """Check every hyper-parameter of a filled-in group; normalises ``p`` to its plain spec. Raises ValueError."""
    check_choice(where, "algorithm", group["algorithm"], ALGORITHMS)
    check_real(where, "lr", group["lr"], 0.0, float("inf"))
    check_real(where, "weight_decay", group["weight_decay"], 0.0, float("inf"))
    if group["algorithm"] == "adamw":
        _check_betas(where, group["betas"])
        check_real(where, "eps", group["eps"], 0.0, 1.0)
        return
    group["p"] = to_spec(as_schedule(group["p"], name=where))
    check_real(where, "eps", group["eps"], 0.0, 1.0, low_open=True)
    check_choice(where, "method", group["method"], METHODS)
    check_choice(where, "precision", group["precision"], OPTIMIZER_PRECISIONS)
    if group["ns_steps"] is not None:
        check_steps(where, group["ns_steps"], "ns_steps")
    check_choice(where, "base", group["base"], BASES)
    check_choice(where, "order", group["order"], ORDERS)
    if group["base"] == "adam" and group["order"] == "shape_first":
        raise ValueError(
            f"{where}: order='shape_first' is defined for base='momentum' only; use 'momentum_first' or 'none'"
        )
    _check_beta(where, "momentum", group["momentum"])
    _check_bool(where, "nesterov", group["nesterov"])
    if group["nu"] is not None:
        check_real(where, "nu", group["nu"], 0.0, 1.0)
    _check_betas(where, group["betas"])
    check_real(where, "adam_eps", group["adam_eps"], 0.0, 1.0)
    check_choice(where, "scale", group["scale"], SCALES)
    if isinstance(group["rms"], str):
        if group["rms"] not in RMS_RULES:
            raise ValueError(f"{where}: rms must be 'adamw' or a number in (0.0, 10.0], got {group['rms']!r}")
    else:
        check_real(where, "rms", group["rms"], 0.0, 10.0, low_open=True)
    check_real(where, "lora_rms_scale", group["lora_rms_scale"], 0.0, 10.0, low_open=True)
    _check_p_reachable(group, where)


def _check_p_reachable(group: MutableMapping[str, Any], where: str) -> None:
    """Fail at construction, not mid-training, if the p range needs TNS beyond what its fit can reach."""
    lo, hi = as_schedule(group["p"]).bounds()
    method, steps = group["method"], group["ns_steps"] or optimizer_tns_steps(group["eps"])
    for p in (lo, hi):
        if method in ("polar", "newton_schulz") and p != 0.0:
            raise ValueError(
                f"{where}: method={method!r} computes p = 0 only, but p reaches {p:.4g}; use method='auto'"
            )
        could_use_tns = method == "tns" or (method == "auto" and resolve_method("auto", p, (10**6, 10**6)) == "tns")
        if could_use_tns and tns_weights(p, group["eps"], steps).fit_error > MAX_FIT_ERROR:
            raise ValueError(
                f"{where}: p reaches {p:.4g}, which TNS with ns_steps={steps} and eps={group['eps']} cannot compute "
                "accurately (about [-0.5, 1] at 7 steps with eps >= 3e-3, [-0.5, 1.3] at 8 with eps >= 1e-3); "
                "narrow the p range, raise ns_steps or eps"
            )
