"""The launch checks on the facts alone (the real launches are in test_distributed.py): no warning for launches
that do what they say, one per mismatch otherwise, and DDP splitting decided by the Trainer's parallel mode."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from transformers.training_args import ParallelMode

from hf_spectral.integrations.launch import data_parallel_replicas, is_rank_zero, launch_facts, launch_problems
from hf_spectral.presets import Muon


def _args(world_size: int, mode: ParallelMode, fsdp: str = "") -> SimpleNamespace:
    return SimpleNamespace(world_size=world_size, parallel_mode=mode, fsdp=fsdp, output_dir="out")


@pytest.fixture
def optimizer():
    return Muon([torch.nn.Parameter(torch.randn(4, 3))], lr=1e-3)


@pytest.mark.parametrize(
    "environ,args",
    [
        ({}, _args(1, ParallelMode.NOT_PARALLEL)),  # python script.py
        ({"WORLD_SIZE": "1"}, _args(1, ParallelMode.NOT_PARALLEL)),  # accelerate launch --num_processes 1
        ({"WORLD_SIZE": "2"}, _args(2, ParallelMode.DISTRIBUTED)),  # torchrun ... --use_cpu, or GPUs
    ],
)
def test_launches_that_do_what_they_say_raise_no_warning(environ, args, optimizer):
    assert launch_problems(launch_facts(args, optimizer, environ)) == []


def test_processes_without_a_distributed_trainer(optimizer):
    facts = launch_facts(_args(1, ParallelMode.NOT_PARALLEL), optimizer, {"WORLD_SIZE": "8"})
    (problem,) = launch_problems(facts)
    assert "8 processes were launched" in problem and "'out'" in problem and "--use_cpu" in problem
    assert not data_parallel_replicas(facts)  # a process group may exist, but these are not replicas


def test_fsdp_without_shards_is_ddp(optimizer):
    environ = {"WORLD_SIZE": "2", "ACCELERATE_USE_FSDP": "true"}
    facts = launch_facts(_args(2, ParallelMode.DISTRIBUTED), optimizer, environ)
    (problem,) = launch_problems(facts)
    assert "no parameter is sharded" in problem and "ddp_cpu.yaml" in problem
    assert data_parallel_replicas(facts)  # it is DDP, so the shaping may be split (after the replica check)


def test_rank_zero_follows_the_launchers_rank():
    assert is_rank_zero({}) and is_rank_zero({"RANK": "0"}) and not is_rank_zero({"RANK": "3"})
