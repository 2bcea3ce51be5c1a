"""TRL as an entry point: SFTTrainer from Python (examples/trl_sft.py, full fine-tune and LoRA, exact resume) and
the ``trl sft`` command line with ``--use_peft --optim dynmuon --optim_args ...``, on a tiny local model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hf_spectral.schedules import Logistic

pytest.importorskip("trl")
pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))

import trl_sft  # noqa: E402


def _losses(history: list[dict]) -> dict[int, float]:
    return {e["step"]: e["loss"] for e in history if "loss" in e}


def test_sft_trainer_full_finetune_trains_and_resumes_exactly(tmp_path):
    common = ["--max_steps", "6", "--logging_steps", "1", "--save_steps", "3", "--learning_rate", "3e-3"]
    straight = trl_sft.main([*common, "--output_dir", str(tmp_path / "straight")])
    assert type(straight["optimizer"]).__name__ == "DynMuon"
    logged = [e for e in straight["log_history"] if "loss" in e]
    assert len(logged) == 6 and all("spectral/p" in e for e in logged)
    assert logged[-1]["loss"] < logged[0]["loss"]

    checkpoint = tmp_path / "straight" / "checkpoint-3"
    resumed = trl_sft.main(
        [*common, "--output_dir", str(tmp_path / "resumed"), "--resume_from_checkpoint", str(checkpoint)]
    )
    after = {step: loss for step, loss in _losses(resumed["log_history"]).items() if step > 3}
    assert after == {step: loss for step, loss in _losses(straight["log_history"]).items() if step > 3}


def test_sft_trainer_lora_shapes_the_adapter(tmp_path):
    result = trl_sft.main(["--lora", "--max_steps", "2", "--logging_steps", "1", "--output_dir", str(tmp_path)])
    opt = result["optimizer"]
    spectral = [n for g in opt.param_groups if g["algorithm"] == "spectral" for n in g["names"]]
    assert spectral and all(".lora_A." in n or ".lora_B." in n for n in spectral)
    assert all(g.get("lora") for g in opt.param_groups if g["algorithm"] == "spectral")
    assert [g for g in opt.param_groups if g["algorithm"] == "adamw" and g["names"]] == []  # the rest is frozen


def _trl_sft(tmp_path: Path, model: Path, optim_args: str) -> subprocess.CompletedProcess:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    rows = trl_sft.text_dataset("train", max_chars=60_000)
    (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    trl = shutil.which("trl")
    assert trl, "TRL's console script is not installed"
    cmd = [
        trl, "sft", "--model_name_or_path", str(model), "--dataset_name", str(data), "--use_peft", "--lora_r", "4",
        "--lora_alpha", "8", "--optim", "dynmuon", "--optim_args", optim_args, "--learning_rate", "2e-3",
        "--max_steps", "4", "--logging_steps", "1", "--per_device_train_batch_size", "4", "--max_length", "64",
        "--output_dir", str(tmp_path / "out"), "--report_to", "none", "--use_cpu", "--save_steps", "4",
    ]  # fmt: skip
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)


def test_trl_sft_command_line_with_peft(tmp_path):
    model = trl_sft.tiny_local_model(tmp_path / "model")
    result = _trl_sft(tmp_path, model, "p_start=0.25,p_end=-0.25")
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoint = tmp_path / "out" / "checkpoint-4"
    history = json.loads((checkpoint / "trainer_state.json").read_text())["log_history"]
    logged = [e for e in history if "loss" in e]
    assert len(logged) == 4
    schedule = Logistic(start=0.25, end=-0.25, tau=0.04, width=0.04)
    for entry in logged:  # our callback's key, following our schedule: DynMuon trained the adapter
        assert entry["spectral/p"] == pytest.approx(schedule((entry["step"] - 1) / 4), abs=1e-5)
    assert (tmp_path / "out" / "adapter_model.safetensors").is_file() and (checkpoint / "optimizer.pt").is_file()

    bad = _trl_sft(tmp_path, model, "p_strat=0.25")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "error: argument --optim_args: unknown key 'p_strat'" in bad.stderr.strip().splitlines()[-1]
