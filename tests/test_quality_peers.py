"""The quality suite's peer optimizers really follow the Trainer's learning-rate schedule (accelerate replaces the
parts' param-group dicts when it wraps the optimizer; a stale copy once left the peers at a constant lr)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from tiny import tiny_llama
from transformers import Trainer, TrainerCallback, TrainingArguments

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks" / "quality"))
import peers


class PartLearningRates(TrainerCallback):
    def __init__(self) -> None:
        self.seen: list[list[float]] = []

    def on_step_end(self, args, state, control, optimizer=None, **kwargs):
        paired = getattr(optimizer, "optimizer", optimizer)
        self.seen.append([g["lr"] for part in paired.parts for g in part.param_groups])


@pytest.mark.skipif(not peers.available("torch_muon"), reason="torch.optim.Muon needs torch >= 2.9")
def test_peer_parts_follow_the_lr_schedule(tmp_path):
    ids = torch.randint(0, 256, (32, 16), generator=torch.Generator().manual_seed(0)).tolist()
    args = TrainingArguments(
        output_dir=str(tmp_path), max_steps=4, per_device_train_batch_size=8, learning_rate=1e-2,
        lr_scheduler_type="linear", report_to="none", save_strategy="no", disable_tqdm=True,
    )  # fmt: skip
    seen = PartLearningRates()
    trainer = Trainer(
        model=tiny_llama(), args=args, train_dataset=Dataset.from_dict({"input_ids": ids, "labels": ids}),
        optimizer_cls_and_kwargs=peers.trainer_optimizer("torch_muon", 1e-2, 0.1), callbacks=[seen],
    )  # fmt: skip
    trainer.train()
    # linear decay over 4 steps: the lr of step k+1 is 1e-2 · (1 − (k+1)/4), in every group of both parts
    for k, lrs in enumerate(seen.seen):
        assert lrs == pytest.approx([1e-2 * (1 - (k + 1) / 4)] * len(lrs)), k
    assert len(seen.seen[0]) >= 2  # Muon's group and at least one AdamW group
