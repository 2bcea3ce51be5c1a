"""SpectralCallback: gives the optimizer the Trainer's real length and logs p and update statistics.

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
from . import launch


def unwrap_optimizer(optimizer: Any) -> SpectralOptimizer | None:
    """Our optimizer behind accelerate's ``AcceleratedOptimizer`` (or other ``.optimizer`` wrappers), else None."""
    for _ in range(4):
        if isinstance(optimizer, SpectralOptimizer):
            return optimizer
        optimizer = getattr(optimizer, "optimizer", None)
    return None


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
