"""Sections d and e through transformers.Trainer: step time and the optimizer's share on the TinyLlama-shaped model
(full fine-tuning and LoRA), and a short quality run on a small model (eval loss of AdamW, Muon, DynMuon)."""

from __future__ import annotations

import math
import statistics
import tempfile
import time
from typing import Any

import torch
from timing import synchronize
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_callback import PrinterCallback

import hf_spectral  # noqa: F401  (registers --optim muon / dynmuon with transformers)

from .data import BlockDataset, TokenCorpus, build_llama, parameter_count
from .harness import Section, release_memory
from .sizes import Sizes

OPTIMS = ("adamw_torch", "muon", "dynmuon")
TRAINER_LR = 2e-4


class StepTimer(TrainerCallback):
    """Seconds between consecutive optimizer steps (all of the step: data, forward, backward, clipping, optimizer)
    and inside ``optimizer.step()``, with the device synchronised at each of these points."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.steps: list[float] = []
        self.optimizer: list[float] = []
        self._last_end: float | None = None
        self._opt_start = 0.0

    def _now(self) -> float:
        synchronize(self.device)
        return time.perf_counter()

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._last_end = self._now()

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._opt_start = self._now()

    def on_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.optimizer.append(self._now() - self._opt_start)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        now = self._now()
        self.steps.append(now - self._last_end)
        self._last_end = now

    def summary(self, warmup: int) -> dict[str, float]:
        """Median step and optimizer milliseconds after `warmup` steps, and the optimizer's share of the time."""
        steps, opt = self.steps[warmup:], self.optimizer[warmup:]
        if not steps:
            raise RuntimeError(f"StepTimer: {len(self.steps)} steps recorded, none after the {warmup} warm-up steps")
        return {
            "step_ms": 1e3 * statistics.median(steps),
            "optimizer_ms": 1e3 * statistics.median(opt),
            "optimizer_share": sum(opt) / sum(steps),
        }


def training_args(out: str, device: torch.device, optim: str, max_steps: int, batch: int, lr: float, **kw: Any):
    """TrainingArguments for a timed run: no saving, logging or reporting; bf16 autocast on CUDA."""
    return TrainingArguments(
        output_dir=out, max_steps=max_steps, per_device_train_batch_size=batch, per_device_eval_batch_size=batch,
        learning_rate=lr, optim=optim, bf16=device.type == "cuda", use_cpu=device.type == "cpu",
        save_strategy="no", report_to="none", disable_tqdm=True, dataloader_num_workers=0, seed=0, **kw,
    )  # fmt: skip


def quiet_trainer(model: torch.nn.Module, args: TrainingArguments, train: BlockDataset, callbacks: list, **kw: Any):
    """A Trainer that does not print its log lines (the report holds what is measured)."""
    trainer = Trainer(model=model, args=args, train_dataset=train, callbacks=callbacks, **kw)
    trainer.remove_callback(PrinterCallback)
    return trainer


def optimizer_class(trainer: Trainer) -> str:
    """Class name of the optimizer the Trainer built (under accelerate's wrapper)."""
    return type(getattr(trainer.optimizer, "optimizer", trainer.optimizer)).__name__


def lora(model: torch.nn.Module, r: int) -> torch.nn.Module:
    from peft import LoraConfig, get_peft_model

    return get_peft_model(model, LoraConfig(r=r, lora_alpha=2 * r, target_modules="all-linear", task_type="CAUSAL_LM"))


def run_trainer(section: Section, sizes: Sizes, device: torch.device, corpus: TokenCorpus) -> None:
    """Full fine-tuning and LoRA with each optimizer: median step time and the time inside optimizer.step()."""
    blocks = corpus.blocks("train", sizes.seq_len)
    steps = sizes.trainer_warmup_steps + sizes.trainer_steps
    section.note(
        f"transformers.Trainer, {'bf16 autocast, ' if device.type == 'cuda' else ''}float32 parameters, micro-batch "
        f"{sizes.micro_batch} × {sizes.seq_len} tokens of standard-library source (tokenizer trained here, "
        f"{len(corpus.tokenizer)} tokens; {len(blocks)} training blocks), lr {TRAINER_LR}, {steps} steps of which "
        f"the first {sizes.trainer_warmup_steps} are not counted; LoRA r = {sizes.lora_r}, α = {2 * sizes.lora_r} "
        "on every linear layer. Step: median time between consecutive optimizer steps (the data loader, forward, "
        "backward, clipping and optimizer); optimizer: median time inside optimizer.step() (a TrainerCallback "
        "synchronises the device before and after it, one extra synchronisation per step); share: optimizer time "
        "÷ step time over the counted steps. DynMuon's total_steps is this run's, so p sweeps its whole schedule."
    )
    table = section.table(
        "Trainer end to end",
        [("mode", "mode"), ("optim", "--optim"), ("optimizer_class", "optimizer"), ("step_ms", "step (ms)"),
         ("optimizer_ms", "optimizer (ms)"), ("optimizer_share", "optimizer share"), ("tokens_per_s", "tokens/s"),
         ("peak_gib", "peak (GiB)"), ("trainable", "trainable params")],
    )  # fmt: skip
    for mode in ("full", "lora"):
        for optim in OPTIMS:
            if not section.has_time(25.0, f"{mode} / {optim}"):
                return
            model = build_llama(sizes.llama, len(corpus.tokenizer), device)
            if mode == "lora":
                model = lora(model, sizes.lora_r)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            timer = StepTimer(device)
            with tempfile.TemporaryDirectory() as out:
                args = training_args(out, device, optim, steps, sizes.micro_batch, TRAINER_LR, logging_steps=10**6)
                trainer = quiet_trainer(model, args, BlockDataset(blocks), [timer])
                trainer.train()
            result = timer.summary(sizes.trainer_warmup_steps)
            section.add(
                table, mode=mode, optim=optim, optimizer_class=optimizer_class(trainer), **result,
                tokens_per_s=sizes.micro_batch * sizes.seq_len / (result["step_ms"] / 1e3),
                peak_gib=torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
                trainable=parameter_count(model, trainable_only=True),
            )  # fmt: skip
            del model, trainer
            release_memory()


def run_quality(section: Section, sizes: Sizes, device: torch.device, corpus: TokenCorpus) -> None:
    """A short pre-training run of a small Llama with AdamW, Muon and DynMuon at AdamW's learning rate."""
    train = BlockDataset(corpus.blocks("train", sizes.quality_seq_len))
    eval_set = BlockDataset(corpus.blocks("eval", sizes.quality_seq_len)[: sizes.quality_eval_blocks])
    steps, lr = sizes.quality_steps, sizes.quality_lr
    warmup = max(1, steps // 10)
    section.note(
        f"Pre-training from random weights on standard-library source: {steps} steps × {sizes.quality_batch} × "
        f"{sizes.quality_seq_len} tokens ({len(train)} training blocks), lr {lr} for every optimizer (AdamW's rate, "
        f"the drop-in setting), {warmup} warm-up steps then cosine, weight decay 0.1, one seed; eval loss on "
        f"{len(eval_set)} held-out blocks (files the tokenizer and training never saw). One seed: differences "
        "below a few hundredths of a nat are within noise."
    )
    table = section.table(
        "Short quality run",
        [("optim", "--optim"), ("eval_loss", "eval loss"), ("vs_adamw", "− AdamW"), ("train_loss", "last train loss"),
         ("step_ms", "step (ms)"), ("wall_s", "wall (s)")],
    )  # fmt: skip
    eval_losses: dict[str, float] = {}
    for optim in OPTIMS:
        need = 1.3 * max((r["wall_s"] for r in table.rows), default=20.0)
        if not section.has_time(need, optim):
            return
        model = build_llama(sizes.quality_llama, len(corpus.tokenizer), device)
        section.data.setdefault("parameters", parameter_count(model))
        timer = StepTimer(device)
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as out:
            args = training_args(
                out, device, optim, steps, sizes.quality_batch, lr, lr_scheduler_type="cosine", warmup_steps=warmup,
                weight_decay=0.1, logging_steps=max(1, steps // 10),
            )  # fmt: skip
            trainer = quiet_trainer(model, args, train, [timer], eval_dataset=eval_set)
            if "initial_eval_loss" not in section.data:
                section.data["initial_eval_loss"] = trainer.evaluate()["eval_loss"]
            trainer.train()
            eval_losses[optim] = trainer.evaluate()["eval_loss"]
            train_losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
        section.add(
            table, optim=optim, eval_loss=eval_losses[optim],
            vs_adamw=eval_losses[optim] - eval_losses["adamw_torch"] if "adamw_torch" in eval_losses else None,
            train_loss=train_losses[-1] if train_losses else math.nan,
            step_ms=timer.summary(min(5, steps - 1))["step_ms"], wall_s=time.perf_counter() - started,
        )  # fmt: skip
        del model, trainer
        release_memory()
