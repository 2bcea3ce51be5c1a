"""SpectralOptimizer: Muon, Muon^p, DynMuon and spectral Adam as one torch.optim.Optimizer.

Spectral groups (2D hidden matrices), per step t with gradient G:

    base="momentum", order="momentum_first" (default):  B ← μB + (1−μ)G;  D = (1−ν)G + νB (Nesterov mix) or B;  O = S(D)
    base="momentum", order="shape_first":                O = EMA_μ(S(G))   (mixed as above)
    base="momentum", order="none":                       O = S(G)
    base="adam":  D = m̂/(√v̂ + ε) (order="none": β₁ = 0);  O = S(D)

    S(D) = spectral_power(D, p(t)) · scale,   W ← W·(1 − lr·wd) − lr·O

With the default scale="rms", rms="adamw", O has the RMS AdamW's own update has at step t (see
:func:`hf_spectral.updates.adamw_update_rms`: 1 at t = 1, → 0.23), times ``lora_rms_scale`` for LoRA factors.
AdamW groups (embeddings, heads, norms, biases, …) run torch's own AdamW arithmetic. p(t) is read from the
optimizer's step count and ``total_steps``; everything needed to resume (moments, step counts, schedule) is in
``state_dict``. State is created lazily at the first ``step()``.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.optim.adamw import adamw as adamw_functional

from .checks import check_choice
from .config import AdamWConfig, SpectralConfig, check_group_common
from .distributed.sharding import ShardSpec, is_dtensor, shard_spec
from .schedules import PSpec, Schedule, as_schedule
from .shaper import Shaper, ShapingItem
from .shaping import check_shaping_arguments
from .shaping.target import max_abs
from .stats import UpdateStats
from .updates import MatrixLayout, ShapingSettings, adamw_update_rms, kernel_steps, spectral_update

S, A = SpectralConfig, AdamWConfig  # the signature's defaults are the configs' (one place defines each)

NONFINITE = ("raise", "skip")
EPS_DEPRECATION = (
    "SpectralOptimizer: eps (the floor ε of φ) is now called floor, so that it is not mistaken for Adam's ε; "
    "eps will be removed in the next release"
)
STATS_SVD_TENSORS = 8
"""On a statistics step, the matrices of the first this-many parameters of each spectral group get an SVD."""


class NonFiniteGradientError(FloatingPointError):
    """A gradient contained NaN or Inf and ``nonfinite="raise"``; nothing was updated."""


class SpectralOptimizer(torch.optim.Optimizer):
    """Spectral shaping U Σᵖ Vᵀ for matrix parameters and AdamW for everything else, in one optimizer.

    Args:
        params: an ``nn.Module`` or ``(name, parameter)`` pairs (routed by :func:`hf_spectral.partition`), a
            :class:`hf_spectral.Partition`, param-group dicts (each may set ``algorithm="spectral"|"adamw"``; groups
            without it are split by dimension: 2D → spectral, other → adamw) or a plain iterable of tensors.
        lr: learning rate of every group (AdamW groups: ``adamw_lr`` if given). With the default scaling the
            spectral update has the RMS of AdamW's update at the same step, so an AdamW learning rate carries over.
        weight_decay: decoupled weight decay W ← W(1 − lr·wd) (AdamW groups: ``adamw_weight_decay`` if given).
        p: spectral power — a float in [−1, 2], a schedule (:mod:`hf_spectral.schedules`), a spec dict or a preset
            name such as ``"dynmuon"``.
        floor: ε of φ(s) = s(s² + ε²)^((p−1)/2), relative to ‖D‖_F, in (0, 1]: directions of the update below
            ε·‖D‖_F are damped rather than amplified (default 3e-3; :class:`hf_spectral.config.SpectralConfig`
            gives each default and its reason). ``eps`` is its deprecated former name.
        method, precision, ns_steps: passed to :func:`hf_spectral.spectral_power` (``ns_steps`` is its ``steps``;
            default: the fewest TNS steps that fit φ within 2.5 %, 6 at the default floor for p ≥ −0.3, see
            :func:`hf_spectral.config.optimizer_tns_steps`; 5 for Polar Express). precision ``"auto"`` (default):
            ``"bf16_all"`` on CPU; on CUDA ``"bf16"`` for Polar Express / Newton–Schulz and ``"mixed"`` for TNS.
        base: ``"momentum"`` (first moment, Muon style) or ``"adam"`` (shape Adam's m̂/(√v̂ + ε)).
        order: ``"momentum_first"`` (average then shape), ``"shape_first"`` (shape then average) or ``"none"``.
        momentum: first-moment coefficient μ in [0, 1) (base="momentum").
        nesterov, nu: with nesterov=True the shaped direction is (1−ν)G + νB, ν in [0, 1]; ``nu=None`` means ν = μ
            (Nesterov as in Keller Jordan's Muon and torch.optim.Muon). nesterov=False shapes B itself.
        betas, adam_eps: Adam moments and ε for base="adam"; ``betas[0]`` is also the β₁ of the AdamW whose update
            RMS ``rms="adamw"`` matches.
        scale: ``"rms"`` (update RMS = ``rms``), ``"spectral"`` (×√max(1, m/n), Keller Jordan's), ``"preserve"``
            (keep the pre-shaping update's Frobenius norm: p = 1 is then exactly SGD-momentum / AdamW) or ``"none"``.
        rms: target update RMS for scale="rms": ``"adamw"`` (default: AdamW's update RMS at this step, from 1 at the
            first step to √((1−β₁)/(1+β₁)) ≈ 0.23) or a constant in (0, 10] (Moonlight's rule: 0.2).
        lora_rms_scale: multiplier in (0, 10] of the target RMS for spectral groups marked ``lora=True`` (PEFT LoRA
            factors, as `partition` groups them); 2 by default, measured (docs/benchmarks.md).
        adamw_lr, adamw_betas, adamw_eps, adamw_weight_decay: the AdamW groups' hyper-parameters.
        total_steps: number of optimizer steps in training, needed by p schedules (or call :meth:`set_total_steps`).
        nonfinite: a NaN/Inf gradient ``"raise"`` s :class:`NonFiniteGradientError` or ``"skip"`` s the step; in
            both cases no parameter or state is touched.
        stats_every: every this many steps, record SVD statistics (top singular value, effective rank) of a few
            shaped updates in :attr:`last_stats` (0: never). The update RMS is recorded on steps flagged by
            :meth:`collect_stats_next_step` (the Trainer callback flags logging steps).
    """

    def __init__(
        self,
        params: Any,
        lr: float = 1e-3,
        *,
        weight_decay: float = 0.0,
        p: PSpec = S.p,
        floor: float = S.floor,
        method: str = S.method,
        precision: str = S.precision,
        ns_steps: int | None = S.ns_steps,
        base: str = S.base,
        order: str = S.order,
        momentum: float = S.momentum,
        nesterov: bool = S.nesterov,
        nu: float | None = S.nu,
        betas: tuple[float, float] = S.betas,
        adam_eps: float = S.adam_eps,
        scale: str = S.scale,
        rms: float | str = S.rms,
        lora_rms_scale: float = S.lora_rms_scale,
        adamw_lr: float | None = None,
        adamw_betas: tuple[float, float] = A.betas,
        adamw_eps: float = A.eps,
        adamw_weight_decay: float | None = None,
        total_steps: int | None = None,
        nonfinite: str = "raise",
        stats_every: int = 0,
        eps: float | None = None,
    ) -> None:
        arguments = {k: v for k, v in locals().items() if k not in ("self", "params", "__class__")}
        self._algorithm_defaults = self._group_defaults(arguments)
        self.nonfinite = nonfinite
        self.stats_every = stats_every
        self._initial_total_steps = total_steps
        self.skipped_steps = 0
        self.last_stats: dict[str, float] = {}
        self._collect_stats = False
        self.shaper = Shaper()
        self._schedules: dict[int, tuple[dict[str, Any], Schedule]] = {}
        # "betas" in the defaults is what torch's OneCycleLR / CyclicLR look for to cycle momentum: they then cycle
        # betas[0] of every group (AdamW's β₁; the β₁ of base="adam" and of rms="adamw" in spectral groups).
        super().__init__(_as_param_groups(params), {"lr": lr, "weight_decay": weight_decay, "betas": tuple(betas)})

    @classmethod
    def check_arguments(cls, **kwargs: Any) -> None:
        """Raise the error the constructor would raise for these keyword arguments, without any parameter (the
        Trainer integration checks ``--optim_args`` this way before the model exists)."""
        bound = inspect.signature(cls).bind(None, **kwargs)
        bound.apply_defaults()
        arguments = {k: v for k, v in bound.arguments.items() if k != "params"}
        arguments.update(arguments.pop("kwargs", {}))
        base = inspect.signature(SpectralOptimizer).bind(None, **arguments)
        base.apply_defaults()
        cls._group_defaults({k: v for k, v in base.arguments.items() if k != "params"})

    @classmethod
    def _group_defaults(cls, arguments: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        """Check the constructor's arguments (through the configs) and return the param-group defaults of each
        algorithm (the spectral ones, the AdamW ones)."""
        a = arguments
        check_choice("SpectralOptimizer", "nonfinite", a["nonfinite"], NONFINITE)
        stats_every = a["stats_every"]
        if isinstance(stats_every, bool) or not isinstance(stats_every, int) or stats_every < 0:
            raise ValueError(f"SpectralOptimizer: stats_every must be an integer >= 0, got {stats_every!r}")
        _check_total_steps(a["total_steps"])
        check_group_common(a)
        cls._check_preset(a)
        if a["eps"] is not None:
            if a["floor"] != SpectralConfig.floor:
                raise ValueError("SpectralOptimizer: pass floor only (eps is its deprecated former name)")
            warnings.warn(EPS_DEPRECATION, FutureWarning, stacklevel=4)
            a = {**a, "floor": a["eps"]}
        spectral = {f.name: a[f.name] for f in fields(SpectralConfig)}
        spectral["p"] = SpectralConfig(**spectral).p
        adamw = {"betas": tuple(a["adamw_betas"]), "eps": a["adamw_eps"]}
        if a["adamw_lr"] is not None:
            adamw["lr"] = a["adamw_lr"]
        if a["adamw_weight_decay"] is not None:
            adamw["weight_decay"] = a["adamw_weight_decay"]
        AdamWConfig.from_group({**a, **adamw})
        return {"spectral": {**spectral, "betas": tuple(a["betas"])}, "adamw": adamw}

    @classmethod
    def _check_preset(cls, arguments: Mapping[str, Any]) -> None:
        """Presets refuse arguments outside what they are (e.g. Muon: p ≠ 0)."""

    # ----------------------------------------------------------------------------------------------- groups
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group; missing hyper-parameters come from the constructor's defaults for its ``algorithm``."""
        group = dict(param_group)
        params = group["params"]
        group["params"] = [params] if isinstance(params, Tensor) else list(params)
        algorithm = group.setdefault("algorithm", "spectral")
        if algorithm == "spectral" and "eps" in group:
            warnings.warn(EPS_DEPRECATION, FutureWarning, stacklevel=2)
            group.setdefault("floor", group.pop("eps"))
        for key, value in self._algorithm_defaults.get(algorithm, {}).items():
            group.setdefault(key, value)
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        steps_so_far = self.param_groups[0]["step"] if getattr(self, "param_groups", None) else 0
        group.setdefault("step", steps_so_far)
        group.setdefault("total_steps", self._initial_total_steps)
        _validate_group(group)
        if algorithm == "spectral":
            for t in group["params"]:
                _check_matrix_param(t, group)
        super().add_param_group(group)

    def state_dict(self) -> dict[str, Any]:
        """torch's state dict plus ``skipped_steps`` (the count of steps skipped for non-finite gradients)."""
        state = super().state_dict()
        state["skipped_steps"] = self.skipped_steps
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict. As in torch.optim, the loaded param groups win: their ``total_steps`` (and every other
        hyper-parameter) replace the constructor's, with a warning when a ``total_steps`` already set differs;
        call :meth:`set_total_steps` after loading to change it. ``skipped_steps`` is restored when present;
        checkpoints written before the floor ε was renamed (``eps`` in spectral groups) load as ``floor``."""
        state_dict = dict(state_dict)
        skipped = state_dict.pop("skipped_steps", None)
        state_dict["param_groups"] = [_renamed_floor(g) for g in state_dict["param_groups"]]
        _check_same_groups(state_dict["param_groups"], self.param_groups)
        before = [group["total_steps"] for group in self.param_groups]
        super().load_state_dict(state_dict)
        after = [group["total_steps"] for group in self.param_groups]
        changed = sorted({(b, a) for b, a in zip(before, after, strict=True) if b is not None and b != a}, key=str)
        for old, new in changed:
            warnings.warn(
                f"SpectralOptimizer.load_state_dict: the checkpoint's total_steps={new} replaces total_steps={old} "
                "(loaded param groups win, as for every hyper-parameter in torch.optim); call "
                f"optimizer.set_total_steps({old}) after loading to keep {old}",
                stacklevel=2,
            )
        if after:
            self._initial_total_steps = after[0]
        if skipped is not None:
            self.skipped_steps = int(skipped)

    def set_total_steps(self, total_steps: int) -> None:
        """Set the number of optimizer steps training will take (the denominator of the schedule's progress)."""
        total_steps = _check_total_steps(total_steps)
        self._initial_total_steps = total_steps
        for group in self.param_groups:
            group["total_steps"] = total_steps

    def p_at(self, group: Mapping[str, Any], step: int | None = None) -> float:
        """p of a spectral group at optimizer step `step` (default: the next step), t = step / total_steps."""
        schedule = self._schedule(group)
        step = group["step"] if step is None else step
        if not schedule.needs_total_steps:
            return schedule(0.0)
        total = group["total_steps"]
        if not total:
            raise ValueError(
                "SpectralOptimizer: a p schedule needs the number of training steps: pass total_steps=... or call "
                "optimizer.set_total_steps(n) (the Trainer integration does this for you)"
            )
        return schedule(step / total)

    def _schedule(self, group: Mapping[str, Any]) -> Schedule:
        """The group's p schedule, parsed once per spec (``group["p"]`` stays a plain dict for state_dict)."""
        cached = self._schedules.get(id(group))
        if cached is None or cached[0] != group["p"]:
            cached = (dict(group["p"]), as_schedule(group["p"]))
            self._schedules[id(group)] = cached
        return cached[1]

    def _p_for_step(self, group: Mapping[str, Any]) -> float:
        """p of the step being taken. A step with lr = 0 changes no weight whatever p is, so it may run before
        ``total_steps`` is known (torch.distributed.checkpoint takes such a step to create state before loading)."""
        if group["lr"] == 0 and not group["total_steps"]:
            return self._schedule(group)(0.0)
        return self.p_at(group)

    def current_p(self) -> float | None:
        """p used by the latest step of the first spectral group (before any step: the first step's p); None if no
        spectral group. For logging."""
        for group in self.param_groups:
            if group["algorithm"] == "spectral":
                return self.p_at(group, max(group["step"] - 1, 0))
        return None

    def collect_stats_next_step(self) -> None:
        """Record the update RMS (and SVD statistics, if due) of the next step in :attr:`last_stats`."""
        self._collect_stats = True

    # ------------------------------------------------------------------------------------------------- step
    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One optimisation step over all groups. Atomic: everything that can be checked (gradients' layout and
        dtype, p and the shaping arguments, NaN/Inf) is checked before any parameter or state changes, so a step
        that raises leaves the optimizer as it was. A step without any gradient changes nothing (the p schedule
        does not advance)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        plans = [self._plan_group(i, group) for i, group in enumerate(self.param_groups)]
        if not any(plan.params for plan in plans):
            return loss
        if self._found_nonfinite([t for plan in plans for t in plan.params]):
            if self.nonfinite == "raise":
                raise NonFiniteGradientError(
                    "SpectralOptimizer: a gradient contains NaN or Inf; no parameter or optimizer state was changed. "
                    "Pass nonfinite='skip' to skip such steps instead."
                )
            self.skipped_steps += 1
            return loss
        stats = self._stats_for_this_step()
        for plan in plans:
            if plan.params and plan.settings is None:
                self._adamw_step(plan.group, plan.params)
            elif plan.params:
                self._spectral_step(plan, stats)
            plan.group["step"] += 1
        if stats is not None:
            self.last_stats.update(stats.summary())
        return loss

    def _plan_group(self, index: int, group: dict[str, Any]) -> _GroupPlan:
        """The parameters with a gradient and, for a spectral group, the shaping settings of this step; raises
        (changing nothing) on a sparse or complex gradient, a parameter that is no matrix, a p that cannot be
        computed (no ``total_steps`` for a schedule) or shaping arguments ``spectral_power`` would refuse."""
        params = [t for t in group["params"] if t.grad is not None]
        for t in params:
            if t.grad.is_sparse:
                raise RuntimeError(
                    f"SpectralOptimizer: parameter {_param_name(t, group, index)} has a sparse gradient; "
                    "SpectralOptimizer (like torch.optim.AdamW) needs dense gradients (e.g. nn.Embedding(sparse=False))"
                )
        if group["algorithm"] == "adamw" or not params:
            return _GroupPlan(group, params)
        for t in params:
            _check_matrix_param(t, group, index)
        layouts = [_layout(t, group) for t in params]
        settings = ShapingSettings.for_group(group, self._p_for_step(group), _target_rms(group))
        for shape in {s for layout in layouts for s in layout.block_shapes()}:
            check_shaping_arguments(
                shape, settings.p, eps=settings.floor, method=settings.method, precision=settings.precision,
                steps=kernel_steps(settings, shape),
            )  # fmt: skip
        return _GroupPlan(group, params, settings, layouts, [_shard(t, group) for t in params])

    def _stats_for_this_step(self) -> UpdateStats | None:
        step = self.param_groups[0]["step"] + 1 if self.param_groups else 0
        svd_due = bool(self.stats_every) and step % self.stats_every == 0
        if not (self._collect_stats or svd_due):
            return None
        self._collect_stats = False
        return UpdateStats(svd_tensors=STATS_SVD_TENSORS if svd_due else 0)

    def _found_nonfinite(self, params: list[Tensor]) -> bool:
        """Any NaN/Inf entry in any gradient, agreed by every rank when parameters are sharded (one sync per step).

        Tested by finiteness, not through a norm: max |g| is finite for every finite gradient (a 2-norm of entries
        around 1e20 overflows float32 and would raise a false alarm), and NaN propagates through the max."""
        grads = [_local(t.grad) for t in params]
        grads = [g for g in grads if g.numel()]  # an FSDP2 rank may hold no rows of a matrix
        device = params[0].device if params else torch.device("cpu")
        if grads:
            maxima = [max_abs(g) for g in grads]  # (torch._foreach_norm(ord=inf) is 8x slower on CPU)
            device = maxima[0].device
            bad = (~torch.isfinite(torch.stack([m.float().to(device) for m in maxima]))).any().float()
        else:
            bad = torch.zeros((), device=device)
        if dist.is_available() and dist.is_initialized() and any(is_dtensor(t) for t in params):
            dist.all_reduce(bad, op=dist.ReduceOp.MAX)  # ranks see different shards: all must skip or none
        return bool(bad)

    def enable_data_parallel(self, process_group: dist.ProcessGroup | None = None) -> None:
        """Under DDP (every rank holds the same parameters): split the shaping of replicated matrices across the
        ranks of `process_group` (default: the world) and all-gather the results, instead of every rank shaping
        every matrix. The Trainer callback calls this when the model is wrapped in DDP."""
        self.shaper.replica_group = process_group if process_group is not None else dist.group.WORLD

    def disable_data_parallel(self) -> None:
        """Shape every replicated matrix on every rank again (the default)."""
        self.shaper.replica_group = None

    def _spectral_step(self, plan: _GroupPlan, stats: UpdateStats | None = None) -> None:
        """torch.optim.Muon's shape: collect the group's tensors, then one functional update."""
        group = plan.group
        grads, states = self._init_spectral_group(group, plan.params)

        def shape(directions: list[Tensor], private: bool) -> list[Tensor]:
            items = zip(directions, plan.layouts, plan.shards, strict=True)
            return self.shaper([ShapingItem(D, layout, shard, private) for D, layout, shard in items], plan.settings,
                               stats)  # fmt: skip

        spectral_update(
            [_local(t) for t in plan.params], grads, states, shape,
            base=group["base"], order=group["order"], momentum=group["momentum"], nu=_nu(group), betas=group["betas"],
            adam_eps=group["adam_eps"], lr=group["lr"], weight_decay=group["weight_decay"],
        )  # fmt: skip

    def _init_spectral_group(
        self, group: Mapping[str, Any], params: list[Tensor]
    ) -> tuple[list[Tensor], list[dict[str, Tensor]]]:
        """The local gradients and state tensors of a spectral group's parameters with a gradient, creating the
        state at first use (as torch.optim does: under accelerate's FSDP2 the optimizer is built before the model
        is sharded, and state created then would be full-size and keyed by the replaced parameters).

        State per parameter: base="momentum": ``momentum_buffer`` (B), unless order="none"; base="adam":
        ``exp_avg`` (m, unless order="none"), ``exp_avg_sq`` (v) and ``step`` (a float32 tensor on the CPU, as
        torch's AdamW keeps it)."""
        grads, states = [], []
        for t in params:
            state = self.state[t]
            if group["base"] == "adam":
                if not state:
                    state["step"] = torch.tensor(0.0, dtype=torch.float32)
                    state["exp_avg_sq"] = torch.zeros_like(t.grad)
                    if group["order"] != "none":
                        state["exp_avg"] = torch.zeros_like(t.grad)
                elif not isinstance(state["step"], Tensor):  # checkpoints before 0.2 stored an int
                    state["step"] = torch.tensor(float(state["step"]), dtype=torch.float32)
            elif group["order"] != "none" and not state:
                state["momentum_buffer"] = torch.zeros_like(t.grad)
            grads.append(_local(t.grad))
            states.append({key: _local(value) if key != "step" else value for key, value in state.items()})
        return grads, states

    def _adamw_step(self, group: dict[str, Any], with_grad: list[Tensor]) -> None:
        params, grads, exp_avgs, exp_avg_sqs, steps = [], [], [], [], []
        for t in with_grad:
            state = self.state[t]
            if not state:
                state["step"] = torch.tensor(0.0, dtype=torch.float32)
                state["exp_avg"] = torch.zeros_like(t, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(t, memory_format=torch.preserve_format)
            params.append(t)
            grads.append(t.grad)
            exp_avgs.append(state["exp_avg"])
            exp_avg_sqs.append(state["exp_avg_sq"])
            steps.append(state["step"])
        beta1, beta2 = group["betas"]
        adamw_functional(
            params, grads, exp_avgs, exp_avg_sqs, [], steps,
            amsgrad=False, beta1=beta1, beta2=beta2, lr=group["lr"], weight_decay=group["weight_decay"],
            eps=group["eps"], maximize=False,
        )  # fmt: skip


@dataclass
class _GroupPlan:
    """What one step will do to one group, settled before anything changes: the parameters with a gradient and,
    for a spectral group, the shaping settings, matrix layouts and shard specs."""

    group: dict[str, Any]
    params: list[Tensor]
    settings: ShapingSettings | None = None
    layouts: list[MatrixLayout] = field(default_factory=list)
    shards: list[ShardSpec | None] = field(default_factory=list)


def _check_same_groups(saved: list[dict[str, Any]], current: list[dict[str, Any]]) -> None:
    """Raise (before anything is loaded) when a checkpoint's param groups do not match the optimizer's: the routing
    that built them differs, and torch's own error would not say how to get it back."""
    shape = lambda groups: [(g.get("algorithm", "?"), len(g["params"])) for g in groups]  # noqa: E731
    if shape(saved) != shape(current):
        raise ValueError(
            "SpectralOptimizer.load_state_dict: the checkpoint's param groups (algorithm, tensors) "
            f"{shape(saved)} do not match this optimizer's {shape(current)}: the parameters were routed differently "
            "when it was saved. Build the optimizer with the routing of that run (the same lora, conv, "
            "split_fused and patterns; checkpoints of hf_spectral 0.2 or earlier of a mixture-of-experts model "
            "had the experts on AdamW: pass experts='adamw', --optim_args experts=adamw)."
        )


def _renamed_floor(group: dict[str, Any]) -> dict[str, Any]:
    """A saved param group with the floor under its name before 0.2 (``eps`` in a spectral group) renamed."""
    if group.get("algorithm") != "spectral" or "eps" not in group or "floor" in group:
        return group
    renamed = {k: v for k, v in group.items() if k != "eps"}
    renamed["floor"] = group["eps"]
    return renamed


def _validate_group(group: dict[str, Any]) -> None:
    """Check a filled-in group through its config (normalising ``p`` to its plain spec); raises ValueError."""
    check_choice("SpectralOptimizer", "algorithm", group["algorithm"], ("spectral", "adamw"))
    check_group_common(group)
    if group["algorithm"] == "adamw":
        AdamWConfig.from_group(group)
    else:
        group["p"] = SpectralConfig.from_group(group).p


def _nu(group: Mapping[str, Any]) -> float:
    """ν of the mix (1−ν)G + νB: 1 without Nesterov, μ for ``nu=None``."""
    if not group["nesterov"]:
        return 1.0
    return group["momentum"] if group["nu"] is None else group["nu"]


def _target_rms(group: Mapping[str, Any]) -> float:
    """The update RMS of the step being taken: AdamW's own at this step (rms="adamw") or the constant, times
    ``lora_rms_scale`` in a LoRA group."""
    rms = group["rms"]
    if rms == "adamw":
        rms = adamw_update_rms(group["step"] + 1, group["betas"][0])
    return rms * group["lora_rms_scale"] if group.get("lora") else rms


def _check_total_steps(total_steps: int | None) -> int | None:
    if total_steps is not None and (
        isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1
    ):
        raise ValueError(f"SpectralOptimizer: total_steps must be a positive integer or None, got {total_steps!r}")
    return total_steps


def _local(t: Tensor) -> Tensor:
    """The local shard of a DTensor, or the tensor itself."""
    return t.to_local() if is_dtensor(t) else t


def _layout(t: Tensor, group: Mapping[str, Any]) -> MatrixLayout:
    if group.get("stacked"):  # the experts this rank holds (FSDP2 shards dim 0: whole experts)
        return MatrixLayout(tuple(_local(t).shape), stacked=True)
    return MatrixLayout(tuple(t.shape), group.get("split_rows"), group.get("split_cols"),
                        interleaved_cols=group.get("interleaved_cols"))  # fmt: skip


def _shard(t: Tensor, group: Mapping[str, Any]) -> ShardSpec | None:
    """The shard spec of a row-sharded matrix; None for a plain tensor and for stacked experts, whose dim-0
    shards are whole matrices shaped where they are (the placements are checked all the same)."""
    spec = shard_spec(t)
    return None if group.get("stacked") else spec


def _check_matrix_param(t: Tensor, group: Mapping[str, Any], index: int | None = None) -> None:
    """Spectral parameters must be real floating-point matrices (or conv kernels viewed as matrices); split specs
    must tile them."""
    if not t.is_floating_point():
        raise TypeError(
            f"SpectralOptimizer: spectral parameter {_param_name(t, group, index)} has dtype {t.dtype}; spectral "
            "shaping needs a real floating-point matrix (route complex parameters to algorithm='adamw')"
        )
    if t.ndim < 2:
        raise ValueError(
            f"SpectralOptimizer: spectral parameter {_param_name(t, group, index)} has shape {tuple(t.shape)}; "
            "spectral shaping needs a matrix (ndim >= 2). If it was flattened by FSDP1 or ZeRO-3, use FSDP2 "
            "(accelerate fsdp_version: 2) or DDP; otherwise route it to algorithm='adamw'."
        )
    if group.get("stacked") and t.ndim != 3:
        raise ValueError(
            f"SpectralOptimizer: spectral parameter {_param_name(t, group, index)} is in a stacked group, which "
            f"holds MoE experts as (experts, rows, cols) tensors, but has {t.ndim} dimensions"
        )
    rows, cols = t.shape[0], math.prod(t.shape[1:])
    interleaved = group.get("interleaved_cols")
    if interleaved is not None and (not isinstance(interleaved, int) or interleaved < 1 or cols % interleaved):
        raise ValueError(
            f"SpectralOptimizer: interleaved_cols={interleaved!r} must be a positive integer dividing the {cols} "
            f"columns of {_param_name(t, group, index)}"
        )
    for key, size in (("split_rows", rows), ("split_cols", cols)):
        split = group.get(key)
        if split is not None and (sum(split) != size or min(split) < 1):
            raise ValueError(
                f"SpectralOptimizer: {key}={tuple(split)} must be positive and sum to {size} for "
                f"{_param_name(t, group, index)}"
            )


def _param_name(t: Tensor, group: Mapping[str, Any], index: int | None = None) -> str:
    """The parameter's name if the group carries ``names``, else its shape (and group index) for error messages."""
    names = group.get("names")
    if names:
        for n, u in zip(names, group["params"], strict=False):
            if u is t:
                return repr(n)
    where = f" in param group {index}" if index is not None else ""
    return f"of shape {tuple(t.shape)}{where}"


def _as_param_groups(params: Any) -> list[dict[str, Any]]:
    """Normalise the accepted ``params`` forms into param-group dicts (see SpectralOptimizer)."""
    from .routing import Partition, partition

    if isinstance(params, nn.Module):
        params = partition(params)
    if isinstance(params, Partition):
        return [dict(g) for g in params.groups]
    items = list(params) if isinstance(params, Iterable) else [params]
    if not items:
        raise ValueError("SpectralOptimizer: got an empty parameter list")
    if all(isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], str) for x in items):
        return [dict(g) for g in partition(items).groups]
    if all(isinstance(x, Tensor) for x in items):
        if len({t.ndim == 2 for t in items}) > 1:  # looks like model.parameters(): embeddings would go spectral
            warnings.warn(
                "SpectralOptimizer got bare tensors of mixed dimensions: 2D ones go to spectral shaping and the rest "
                "to AdamW, but embeddings and output heads cannot be recognised without names. Pass the model or "
                "model.named_parameters() instead.",
                stacklevel=3,
            )
        items = [{"params": items}]
    groups = []
    for group in items:
        if not isinstance(group, Mapping):
            raise TypeError(f"SpectralOptimizer: params must be tensors, (name, tensor) pairs or dicts, got {group!r}")
        if "algorithm" in group:
            groups.append(dict(group))
            continue
        tensors = [group["params"]] if isinstance(group["params"], Tensor) else list(group["params"])
        for algorithm, members in (
            ("spectral", [t for t in tensors if t.ndim == 2]),
            ("adamw", [t for t in tensors if t.ndim != 2]),
        ):
            if members:
                groups.append({**group, "params": members, "algorithm": algorithm})
    return groups
