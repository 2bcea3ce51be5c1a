"""SpectralCallback: gives the optimizer the Trainer's real length and logs p and update statistics.

Besides every ``logging_steps``, a log line is forced on the first step and on the steps where p passes a
milestone of its schedule (changes sign, crosses halfway, comes within 5 % of its end value).

Logged keys (train logs only, next to ``loss``): ``spectral/p`` (the p of the latest step), ``spectral/update_rms``
(RMS of the scaled shaped update before the learning rate, averaged over matrices, measured on logging steps), and
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

    def on_step_end(self, args: Any, state: Any, control: Any, optimizer: Any = None, **kwargs: Any) -> None:
        """Log on the first step and when p passes a milestone (:func:`p_milestone`), whatever ``logging_steps``
        says: with a short run or a long logging interval the high-p phase can otherwise end unseen."""
        opt = unwrap_optimizer(optimizer)
        if opt is None:
            return
        p = opt.current_p()
        previous, self._previous_p = getattr(self, "_previous_p", None), p
        if p is None or state.global_step < 1:
            return
        bounds = _schedule_bounds(opt)
        if state.global_step == 1 or (bounds is not None and p_milestone(previous, p, *bounds)):
            control.should_log = True

    def on_step_begin(self, args: Any, state: Any, control: Any, optimizer: Any = None, **kwargs: Any) -> None:
        opt = unwrap_optimizer(optimizer)
        every = getattr(state, "logging_steps", 0) or 0
        if opt is not None and every and (state.global_step + 1) % every == 0:
            opt.collect_stats_next_step()

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
