"""Launches that do not do what they say, found at train begin and said once, on rank 0, with the fix.

- Several processes launched (``WORLD_SIZE`` > 1) but the Trainer is not distributed: every process trains the
  whole run alone and all of them write the same ``output_dir``. On CPU this is what ``torchrun`` or
  ``accelerate launch`` give unless the script gets ``--use_cpu``.
- An FSDP launch (``ACCELERATE_USE_FSDP`` / ``--fsdp``) whose parameters are not sharded: accelerate enables FSDP
  only on accelerators, so on CPU the run is plain DDP.
- DDP replicas that differ by value: splitting the shaping across ranks would mix their updates, so it stays off.

(``accelerate launch --cpu --num_processes 2`` starts a single process, with nothing in it that says two were
asked for; the docs give the commands that work.)
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from ..distributed.sharding import shard_spec
from ..optimizer import SpectralOptimizer

logger = logging.getLogger("hf_spectral")

USE_CPU_FIX = (
    "on a CPU machine add --use_cpu to the script's own arguments (TrainingArguments(use_cpu=True)), with torchrun "
    "or accelerate launch; on GPUs check that every process sees its GPU"
)


@dataclass(frozen=True)
class LaunchFacts:
    """What the launch asked for and what the Trainer made of it."""

    launched_processes: int  # WORLD_SIZE set by torchrun / accelerate launch, 1 when absent
    trainer_world_size: int  # TrainingArguments.world_size
    trainer_distributed: bool  # TrainingArguments.parallel_mode == DISTRIBUTED
    fsdp_requested: bool  # ACCELERATE_USE_FSDP=true or --fsdp
    sharded: bool  # some parameter of the optimizer is an FSDP2 (DTensor) shard
    output_dir: str


def launch_facts(args: Any, optimizer: SpectralOptimizer, environ: dict[str, str] | None = None) -> LaunchFacts:
    environ = dict(os.environ) if environ is None else environ
    mode = getattr(getattr(args, "parallel_mode", None), "value", getattr(args, "parallel_mode", None))
    return LaunchFacts(
        launched_processes=int(environ.get("WORLD_SIZE", "1") or 1),
        trainer_world_size=int(getattr(args, "world_size", 1)),
        trainer_distributed=mode == "distributed",
        fsdp_requested=environ.get("ACCELERATE_USE_FSDP", "").lower() == "true" or bool(getattr(args, "fsdp", None)),
        sharded=any(shard_spec(t) is not None for group in optimizer.param_groups for t in group["params"]),
        output_dir=str(getattr(args, "output_dir", "")),
    )


def launch_problems(facts: LaunchFacts) -> list[str]:
    """One message per mismatch between the launch and the Trainer, each naming the fix."""
    problems = []
    if facts.launched_processes > 1 and facts.trainer_world_size <= 1:
        problems.append(
            f"{facts.launched_processes} processes were launched (WORLD_SIZE={facts.launched_processes}) but the "
            f"Trainer is not distributed: each process trains the whole run alone and all of them write "
            f"output_dir {facts.output_dir!r}. Fix: {USE_CPU_FIX}."
        )
    if facts.fsdp_requested and not facts.sharded and facts.trainer_world_size > 1:
        problems.append(
            "an FSDP launch, but no parameter is sharded: accelerate enables FSDP on accelerators only, so this run "
            "is DDP (every rank holds the whole model and its optimizer state). Fix: run FSDP on GPUs; on CPU use a "
            "DDP config (recipes/accelerate/ddp_cpu.yaml)."
        )
    return problems


def data_parallel_replicas(facts: LaunchFacts) -> bool:
    """The Trainer runs DDP: distributed, several ranks, whole (not sharded) parameters."""
    return facts.trainer_distributed and facts.trainer_world_size > 1 and not facts.sharded


def is_rank_zero(environ: dict[str, str] | None = None) -> bool:
    """Rank 0 of the launch (by RANK, which every launcher sets; also right when no process group was built)."""
    environ = dict(os.environ) if environ is None else environ
    return environ.get("RANK", "0") in ("0", "")


def warn(message: str) -> None:
    """Loudly, once, on rank 0."""
    if is_rank_zero():
        logger.warning("hf_spectral: %s", message)
