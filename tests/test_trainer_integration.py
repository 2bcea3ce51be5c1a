"""Trainer integration in-process: names, optim_args validation, the real training length, gradient
accumulation, logging, exact resume, the Python factory and PEFT routing."""

from __future__ import annotations

import math

import pytest
import torch
from datasets import Dataset
from tiny import tiny_llama
from transformers import HfArgumentParser, Trainer, TrainingArguments
from transformers.training_args import OptimizerNames

import hf_spectral
from hf_spectral import DynMuon, MuonP
from hf_spectral.corpus import byte_blocks, stdlib_texts
from hf_spectral.integrations.optim_args import resolve
from hf_spectral.shaper import Shaper
from hf_spectral.updates import adamw_update_rms


def _dataset(n_blocks: int = 48, block: int = 32) -> Dataset:
    blocks = byte_blocks(stdlib_texts("train", max_chars=100_000), block)[:n_blocks]
    return Dataset.from_dict({"input_ids": blocks.tolist(), "labels": blocks.tolist()})


def _args(tmp_path, **kw) -> TrainingArguments:
    base = dict(
        output_dir=str(tmp_path), per_device_train_batch_size=4, learning_rate=3e-3, logging_steps=1,
        save_strategy="no", report_to=[], use_cpu=True, seed=0, disable_tqdm=True, dataloader_num_workers=0,
    )  # fmt: skip
    base.update(kw)
    return TrainingArguments(**base)


def _spectral_optimizer(trainer: Trainer):
    return trainer.optimizer.optimizer  # behind accelerate's AcceleratedOptimizer


def test_names_are_valid_after_import(tmp_path):
    for name in hf_spectral.OPTIMIZER_NAMES:
        assert OptimizerNames(name).value == name
    parser = HfArgumentParser(TrainingArguments)
    (args,) = parser.parse_args_into_dataclasses(
        ["--output_dir", str(tmp_path), "--optim", "dynmuon", "--optim_args", "p_start=0.25,p_end=-0.25"]
    )
    assert args.optim == OptimizerNames("dynmuon")


@pytest.mark.parametrize(
    "optim,optim_args,match",
    [
        ("dynmuon", "p_strat=0.25", "unknown key 'p_strat'"),
        ("dynmuon", "p_start=abc", "p_start must be a number"),
        ("muonp", "p=5", r"p must be in \[-1.0, 2.0\]"),
        ("dynmuon", "p_end=-0.9,floor=1e-3", "cannot reach p = -0.9"),  # 6 TNS steps reach -0.9 at the default eps 1e-2
        ("spectral", "order=later", "order must be one of"),
        ("muon", "p=0.5", "p is fixed at 0"),
        ("dynmuon", "momentum", "expected key=value"),
        ("muon", "rms=big", "rms must be a number"),
        ("muon", "nu=1.5", r"nu must be in \[0.0, 1.0\]"),
        ("muon", "lora_rms_scale=0", r"lora_rms_scale must be in \(0.0, 10.0\]"),
    ],
)
def test_bad_optim_args_fail_when_arguments_are_parsed(tmp_path, optim, optim_args, match):
    with pytest.raises(ValueError, match=match):
        TrainingArguments(output_dir=str(tmp_path), optim=optim, optim_args=optim_args)


def test_trainer_sets_real_length_and_shapes_once_per_optimizer_step(tmp_path, monkeypatch):
    """48 samples, batch 4, gradient accumulation 3, 2 epochs → 4 optimizer steps per epoch, 8 in all: the schedule
    spans 8 steps and shaping runs 8 times (once per optimizer step, never per micro-batch)."""
    calls = []
    original = Shaper.__call__

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Shaper, "__call__", counting)
    args = _args(tmp_path, optim="dynmuon", gradient_accumulation_steps=3, num_train_epochs=2)
    trainer = Trainer(model=tiny_llama(), args=args, train_dataset=_dataset(48))
    trainer.train()
    opt = _spectral_optimizer(trainer)
    assert isinstance(opt, DynMuon)
    expected_steps = 2 * math.ceil(48 / 4 / 3)
    assert trainer.state.max_steps == expected_steps == opt.param_groups[0]["total_steps"]
    assert opt.param_groups[0]["step"] == expected_steps
    assert len(calls) == expected_steps
    logged = [e for e in trainer.state.log_history if "loss" in e]
    assert len(logged) == expected_steps
    for entry in logged:
        assert entry["spectral/p"] == pytest.approx(opt.p_at(opt.param_groups[0], entry["step"] - 1), abs=1e-6)
        # rms="adamw": exactly AdamW's update RMS at that step (β₁ = --adam_beta1 = 0.9)
        assert entry["spectral/update_rms"] == pytest.approx(adamw_update_rms(entry["step"], 0.9), rel=1e-3)
        assert entry["spectral/direction_rms"] > 0 and 1.0 <= entry["spectral/direction_stable_rank"] <= 64
    ranks = [e["spectral/direction_stable_rank"] for e in logged]
    assert len(set(ranks)) > 1  # it tells something: the momentum's spectrum changes over training
    assert logged[0]["spectral/p"] > 0.0 > logged[-1]["spectral/p"]  # positive early, negative late


def test_hyperparameters_map_from_training_arguments(tmp_path):
    args = _args(
        tmp_path, optim="spectral_adam", max_steps=1, weight_decay=0.1, adam_beta1=0.8, adam_beta2=0.99,
        adam_epsilon=1e-6, optim_args="p=0.25,adamw_lr=1e-4",
    )  # fmt: skip
    trainer = Trainer(model=tiny_llama(), args=args, train_dataset=_dataset(8))
    trainer.train()
    groups = {(g["algorithm"], g["weight_decay"]): g for g in _spectral_optimizer(trainer).param_groups}
    spectral = groups[("spectral", 0.1)]
    assert spectral["betas"] == (0.8, 0.99) and spectral["adam_eps"] == 1e-6 and spectral["p"]["value"] == 0.25
    assert spectral["initial_lr"] == 3e-3
    decayed, no_decay = groups[("adamw", 0.1)], groups[("adamw", 0.0)]
    assert decayed["initial_lr"] == no_decay["initial_lr"] == 1e-4
    assert decayed["betas"] == (0.8, 0.99) and decayed["eps"] == 1e-6
    assert any("embed_tokens" in n for n in decayed["names"])
    assert no_decay["names"] and all("norm" in n for n in no_decay["names"])


def test_update_size_keys_map_to_the_optimizer():
    """Muon's defaults follow AdamW's β₁ from TrainingArguments; nu=none / rms=<number> / lora_rms_scale select
    torch's Nesterov mix, Moonlight's constant RMS and unscaled LoRA factors."""
    default = resolve("muon", None, lr=1e-3, adam_betas=(0.8, 0.99))
    assert default.kwargs["betas"] == (0.8, 0.99) and "rms" not in default.kwargs and "nu" not in default.kwargs
    chosen = resolve("muon", "nu=none,rms=0.2,lora_rms_scale=1", lr=1e-3).kwargs
    assert chosen["nu"] is None and chosen["rms"] == 0.2 and chosen["lora_rms_scale"] == 1.0
    assert resolve("muon", "rms=adamw,nu=0.5", lr=1e-3).kwargs["rms"] == "adamw"


def test_svd_statistics_are_logged_on_their_interval(tmp_path):
    args = _args(tmp_path, optim="muonp", max_steps=4, optim_args="stats_every=2")
    trainer = Trainer(model=tiny_llama(), args=args, train_dataset=_dataset(16))
    trainer.train()
    logged = {e["step"]: e for e in trainer.state.log_history if "loss" in e}
    assert "spectral/update_top_sv" not in logged[1]
    for step in (2, 3, 4):  # measured at step 2 and 4; the latest measurement is carried in between
        assert logged[step]["spectral/update_top_sv"] > 0
        assert 1.0 <= logged[step]["spectral/update_effective_rank"] <= 64


def test_resume_continues_exactly(tmp_path):
    """8 steps straight vs 4 steps + checkpoint + resume for 4: same losses and bit-identical weights."""

    def run(out, resume=None):
        args = _args(out, optim="dynmuon", max_steps=8, save_strategy="steps", save_steps=4,
                     optim_args="p_start=0.25,p_end=-0.25")  # fmt: skip
        trainer = Trainer(model=tiny_llama(), args=args, train_dataset=_dataset(64))
        trainer.train(resume_from_checkpoint=resume)
        return trainer

    straight = run(tmp_path / "straight")
    resumed = run(tmp_path / "resumed", resume=str(tmp_path / "straight" / "checkpoint-4"))
    for a, b in zip(straight.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b)
    losses = {e["step"]: e["loss"] for e in straight.state.log_history if "loss" in e}
    resumed_losses = {e["step"]: e["loss"] for e in resumed.state.log_history if "loss" in e and e["step"] > 4}
    assert resumed_losses and all(losses[s] == v for s, v in resumed_losses.items())
    opt_a, opt_b = _spectral_optimizer(straight), _spectral_optimizer(resumed)
    assert opt_a.param_groups[0]["step"] == opt_b.param_groups[0]["step"] == 8
    assert opt_a.current_p() == opt_b.current_p()


def test_python_factory(tmp_path):
    factory = hf_spectral.trainer_optimizer("muonp", 2e-3, weight_decay=0.05, optim_args="p=0.3,lora=B")
    args = _args(tmp_path, max_steps=2)
    trainer = Trainer(model=tiny_llama(), args=args, train_dataset=_dataset(8), optimizer_cls_and_kwargs=factory)
    trainer.train()
    opt = _spectral_optimizer(trainer)
    assert isinstance(opt, MuonP) and opt.param_groups[0]["p"] == {"schedule": "constant", "value": 0.3}
    assert opt.param_groups[0]["initial_lr"] == 2e-3 and opt.param_groups[0]["weight_decay"] == 0.05
    with pytest.raises(ValueError, match="unknown key"):
        hf_spectral.trainer_optimizer("muonp", 1e-3, optim_args="q=1")


def test_peft_lora_is_routed_automatically(tmp_path):
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(tiny_llama(), LoraConfig(r=4, target_modules=["q_proj", "v_proj"], lora_alpha=8))
    args = _args(tmp_path, optim="dynmuon", max_steps=2)
    trainer = Trainer(model=model, args=args, train_dataset=_dataset(8))
    trainer.train()
    opt = _spectral_optimizer(trainer)
    spectral = [n for g in opt.param_groups if g["algorithm"] == "spectral" for n in g["names"]]
    adamw = [n for g in opt.param_groups if g["algorithm"] == "adamw" for n in g["names"]]
    assert len(spectral) == 8 and all(".lora_A." in n or ".lora_B." in n for n in spectral)
    assert adamw == []  # everything else is frozen


@pytest.mark.parametrize(
    "previous,current,milestone",
    [
        (None, 0.1, False),  # nothing to compare with (the first step is logged on its own rule)
        (0.02, -0.01, True),  # p changes sign
        (0.01, 0.0, True),  # p reaches 0
        (0.03, 0.02, False),
        (0.01, -0.001, True),
        (-0.08, -0.0905, True),  # within 5 % of the end value (-0.1) for the first time ...
        (-0.0905, -0.095, False),  # ... and not again
        (0.001, -0.001, True),
    ],
)
def test_p_milestones_of_a_schedule_from_0_1_to_minus_0_1(previous, current, milestone):
    from hf_spectral.integrations.callback import p_milestone

    assert p_milestone(previous, current, 0.1, -0.1) is milestone


def test_p_is_logged_at_the_first_step_and_its_milestones_and_reaches_tensorboard(tmp_path):
    """logging_steps=1000 over 24 steps: the Trainer alone would log nothing; p still shows at step 1, where it
    turns negative, and where it is within 5 % of its end — in log_history and in TensorBoard's event file."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    args = _args(tmp_path, optim="dynmuon", max_steps=24, logging_steps=1000, report_to=["tensorboard"])
    trainer = Trainer(model=tiny_llama(), args=args, train_dataset=_dataset(96))
    trainer.train()
    opt = _spectral_optimizer(trainer)
    p = [opt.p_at(opt.param_groups[0], step - 1) for step in range(1, 25)]  # p of optimizer step 1..24
    first_negative = 1 + next(i for i, value in enumerate(p) if value < 0)
    logged = {e["step"]: e["spectral/p"] for e in trainer.state.log_history if "spectral/p" in e}
    assert 1 in logged and first_negative in logged
    assert 2 <= len(logged) <= 4  # milestones, not every step
    entries = [e for e in trainer.state.log_history if "spectral/p" in e]
    assert all("spectral/direction_stable_rank" in e for e in entries)  # measured on those very steps
    assert len({e["spectral/direction_rms"] for e in entries}) == len(entries)  # fresh, not carried over
    for step, value in logged.items():
        assert value == pytest.approx(p[step - 1], abs=1e-6)

    (event_file,) = tmp_path.rglob("events.out.tfevents.*")  # wherever this transformers puts its TensorBoard logs
    events = EventAccumulator(str(event_file))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert "train/spectral/p" in tags
    assert {e.step: round(e.value, 5) for e in events.Scalars("train/spectral/p")} == {
        step: round(value, 5) for step, value in logged.items()
    }
