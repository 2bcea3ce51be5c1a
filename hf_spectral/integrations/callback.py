"""SpectralCallback: gives the optimizer the Trainer's real length and logs p and update statistics.

Besides every ``logging_steps``, a log line is forced on the first step and on the steps where p passes a
milestone of its schedule (changes sign, crosses halfway, comes within 5 % of its end value).

Logged keys (train logs only, next to ``loss``): ``spectral/p`` (the p of the latest step);
``spectral/direction_rms`` and ``spectral/direction_stable_rank`` (the direction before shaping: its RMS and
‖M‖_F²/σ₁²) and ``spectral/update_rms`` (RMS of the scaled shaped update before the learning rate), means over
matrices measured on the logged steps; and
with ``stats_every`` > 0 ``spectral/update_top_sv`` and ``spectral/update_effective_rank`` (latest measurement),
plus ``spectral/skipped_steps`` once a non-finite gradient was skipped.
"""

from __future__ import annotations

from typing import Any

import torch.distributed as dist
from transformers import TrainerCallback

from ..distributed.replicas import replicas_agree
from ..optimizer import SpectralOptimizer
from ..schedules import as_schedule
from . import launch


def unwrap_optimizer(optimizer: Any) -> SpectralOptimizer | None:
    """Our optimizer behind accelerate's ``AcceleratedOptimizer`` (or other ``.optimizer`` wrappers), else None."""
    for _ in range(4):
        if isinstance(optimizer, SpectralOptimizer):
            return optimizer
        optimizer = getattr(optimizer, "optimizer", None)
    return None


def _schedule_bounds(opt: SpectralOptimizer) -> tuple[float, float] | None:
    """(p at the start, p at the end) of the first spectral group's schedule; None for a constant p."""
    for group in opt.param_groups:
        if group["algorithm"] == "spectral":
            schedule = as_schedule(group["p"])
            return (schedule(0.0), schedule(1.0)) if schedule.needs_total_steps else None
    return None


def _milestone_ahead(opt: SpectralOptimizer) -> bool:
    """Whether the coming step's p passes a milestone of the first spectral group's schedule."""
    bounds = _schedule_bounds(opt)
    if bounds is None:
        return False
    group = next(g for g in opt.param_groups if g["algorithm"] == "spectral")
    if not group.get("total_steps"):
        return False
    previous = opt.p_at(group, group["step"] - 1) if group["step"] > 0 else None
    return p_milestone(previous, opt.p_at(group), *bounds)


def p_milestone(previous: float | None, current: float, start: float, end: float) -> bool:
    """Whether a step from p = `previous` to p = `current` passes a milestone of a schedule from `start` to `end`:
    p changes sign (e.g. DynMuon turning negative), or p crosses halfway, or comes within 5 % of its end value."""
    if previous is None or previous == current:
        return False
    if previous * current < 0 or current == 0.0:  # crossed or reached 0 (previous != current)
        return True
    span = end - start
    if span == 0:
        return False
    progress_before, progress_now = (previous - start) / span, (current - start) / span
    return any(progress_before < mark <= progress_now for mark in (0.5, 0.95))


class SpectralCallback(TrainerCallback):
    """Sets ``total_steps`` at train begin (``state.max_steps``: optimizer steps, gradient accumulation counted,
    final even on resume), warns about launches that do not do what they say (:mod:`.launch`), splits the shaping
    across ranks when the Trainer runs DDP and the replicas agree by value, and adds ``spectral/*`` values to the
    Trainer's logs. A no-op for other optimizers."""

    def on_train_begin(self, args: Any, state: Any, control: Any, optimizer: Any = None, **kwargs: Any) -> None:
        opt = unwrap_optimizer(optimizer)
        if opt is None:
            return
        if state.max_steps > 0:
            opt.set_total_steps(int(state.max_steps))
        facts = launch.launch_facts(args, opt)
        for problem in launch.launch_problems(facts):
            launch.warn(problem)
        if launch.data_parallel_replicas(facts) and dist.is_initialized():
            params = [t for group in opt.param_groups for t in group["params"]]
            if replicas_agree(params):
                opt.enable_data_parallel()
            else:
                launch.warn(
                    "the DDP replicas hold different parameter values at train begin, so the shaping is not split "
                    "across ranks (each rank shapes every matrix); check that the model is wrapped in DDP"
                )

    def on_step_begin(self, args: Any, state: Any, control: Any, optimizer: Any = None, **kwargs: Any) -> None:
        """Collect statistics in the coming optimizer step when it will be logged: every ``logging_steps``, the
        first step, and a step where p passes a milestone (:func:`p_milestone`) — those are logged whatever
        ``logging_steps`` says, since with a short run or a long interval the high-p phase can end unseen."""
        opt = unwrap_optimizer(optimizer)
        if opt is None:
            return
        upcoming = state.global_step + 1
        every = getattr(state, "logging_steps", 0) or 0
        self._force_log = upcoming == 1 or _milestone_ahead(opt)
        if self._force_log or (every and upcoming % every == 0):
            opt.collect_stats_next_step()

    def on_step_end(self, args: Any, state: Any, control: Any, optimizer: Any = None, **kwargs: Any) -> None:
        if getattr(self, "_force_log", False):
            control.should_log = True
            self._force_log = False

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, optimizer: Any = None, **kw: Any
    ) -> None:
        opt = unwrap_optimizer(optimizer)
        if opt is None or logs is None or "loss" not in logs:
            return
        extra: dict[str, float] = {}
        p = opt.current_p()
        if p is not None:
            extra["spectral/p"] = round(p, 6)
        extra.update({f"spectral/{k}": v for k, v in opt.last_stats.items()})
        if opt.skipped_steps:
            extra["spectral/skipped_steps"] = opt.skipped_steps
        logs.update(extra)
        # Trainer.log stored a copy in log_history before calling us: keep trainer_state.json in step with the logs.
        history = getattr(state, "log_history", None)
        if history and history[-1].get("step") == state.global_step and "loss" in history[-1]:
            history[-1].update(extra)
