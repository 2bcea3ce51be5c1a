"""Distributed shaping on CPU with gloo, 2 processes: FSDP2 (DTensor row shards, uneven and empty) and DDP equal
one process; work is split across ranks, not repeated; FSDP1 is refused; and the same through Trainer +
accelerate launch (full fine-tuning and LoRA), including an exact resume under FSDP2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = Path(__file__).parent / "dist_scripts"
TRAIN = Path(__file__).parent / "scripts" / "train_clm.py"
MODEL = (
    "hidden_size=48,intermediate_size=75,num_hidden_layers=2,num_attention_heads=3,num_key_value_heads=1,head_dim=16"
)


def _env():
    return dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false", HF_SPECTRAL_AUTOLOAD="1")


def _torchrun(script: Path, out: Path) -> list[dict]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", str(script)]
    result = subprocess.run(cmd, capture_output=True, text=True, env=dict(_env(), OUT_DIR=str(out)), timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]


def test_shaper_matches_single_process_for_uneven_and_empty_shards(tmp_path):
    for report in _torchrun(SCRIPTS / "shaper_equivalence.py", tmp_path):
        for check in report["checks"]:
            assert check["sharded_max_abs_err"] == 0.0, check  # the same whole matrix is shaped, bit for bit
            assert check["replicated_max_abs_err"] == 0.0, check
            counts = check["replicated_matrices_per_rank"]
            assert sum(counts) == check["total_matrices"] and min(counts) > 0  # split, not repeated
            assert check["stats_sharded"] == pytest.approx(check["stats_reference"], rel=1e-6)
            assert check["stats_replicated"] == pytest.approx(check["stats_reference"], rel=1e-6)
        for message in report["fsdp1_errors"]:
            assert message is not None and "FSDP1" in message and "FSDP2" in message


def test_fsdp2_and_ddp_optimizer_steps_match_single_process(tmp_path):
    """Weights after 4 steps agree with the single-process run to fp32 tolerance: the gradients differ only in
    reduction order (~1e-7), which shaping at p ≤ 0 can amplify by up to ~1/ε; measured ≤ 3e-5, bound 1e-4. The
    MoE cases (stacked experts, 3 per layer, sharded 2 + 1) too."""
    reports = _torchrun(SCRIPTS / "optimizer_equivalence.py", tmp_path)
    for case in reports[0]:
        assert case["max_rel_diff"] < 1e-4, case
        assert case["reference_moved"] > 1e-2, case  # the comparison is not vacuous
        assert case["p_last"] == case["p_ref_last"]
        per_rank = case["matrices_shaped_per_rank"]
        assert sum(per_rank) == 4 * case["spectral_matrices"] and min(per_rank) > 0, case
        if case["kind"] == "fsdp2":
            assert case["state_sharded"], case
    assert any(c["optimizer"] == "dynmuon_crossing_zero" and c["p_last"] < 0 for c in reports[0])
    moe = [c for c in reports[0] if c["moe"]]  # MoE experts: each rank shapes the experts it holds (FSDP2)
    assert [c["kind"] for c in moe] == ["fsdp2", "ddp"] and all(c["stacked_groups"] == 1 for c in moe)
    assert all(c["spectral_matrices"] > c["spectral_tensors"] for c in moe)
    for a, b in zip(reports[0], reports[1], strict=True):
        assert a["state_keys"] == b["state_keys"]  # the same optimizer state keys on every rank


def _accelerate_config(tmp_path: Path, name: str) -> Path:
    """A shipped recipes/accelerate config, adapted to 2 CPU processes."""
    config = yaml.safe_load((ROOT / "recipes" / "accelerate" / name).read_text())
    config.update(num_processes=2, use_cpu=True, mixed_precision="no")
    config.pop("gpu_ids", None)
    if "fsdp_config" in config:
        config["fsdp_config"].update(fsdp_cpu_ram_efficient_loading=False, fsdp_activation_checkpointing=False)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    return path


def _script_args(text_files, tokenizer_dir, out, *extra, use_cpu=True):
    return [
        str(TRAIN), "--tokenizer_name", str(tokenizer_dir), "--train_file", str(text_files["train"]),
        "--output_dir", str(out), "--optim", "dynmuon", "--max_steps", "6", "--learning_rate", "3e-3",
        "--logging_steps", "1", "--report_to", "none", "--disable_tqdm", "true", *(["--use_cpu"] if use_cpu else []),
        "--train_sampling_strategy", "sequential", "--config_overrides", MODEL, *extra,
    ]  # fmt: skip


TEARDOWN_ABORT = "terminate called without an active exception"


def _launch(cmd):
    """Run a launch; a 2-rank gloo run of an unmodified script can abort at interpreter exit after finishing (torch's
    gloo threads freed during finalization, pytorch/pytorch#179291; our own scripts avoid it via teardown.finish, a
    stock script cannot): that failure, and only that one, is retried once. Seen once in ~10 full-suite runs."""
    result = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=600)
    if result.returncode != 0 and TEARDOWN_ABORT in result.stderr:
        result = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def _train(text_files, tokenizer_dir, out, *extra, launch=None):
    args = _script_args(text_files, tokenizer_dir, out, *extra)
    if launch is None:
        cmd = [sys.executable, *args]
    else:  # FSDP on CPU needs the test-only shim (accelerate enables FSDP for accelerators only)
        shim = [str(SCRIPTS / "cpu_fsdp_launch.py")] if "fsdp" in launch.name else []
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(launch), *shim, *args]
    result = _launch(cmd)
    history = json.loads((Path(out) / "trainer_state.json").read_text())["log_history"]
    losses = {e["step"]: (e["loss"], e["spectral/p"]) for e in history if "loss" in e}
    return result.stdout, losses


def _assert_same_losses(a, b, tol=1e-5):
    assert a.keys() == b.keys()
    for step in a:
        assert a[step][0] == pytest.approx(b[step][0], abs=tol), (step, a[step], b[step])
        assert a[step][1] == pytest.approx(b[step][1], abs=1e-9)


def test_trainer_fsdp2_matches_one_process_and_resumes_exactly(text_files, tokenizer_dir, tmp_path):
    config = _accelerate_config(tmp_path, "fsdp2.yaml")
    straight_out, straight = _train(text_files, tokenizer_dir, tmp_path / "straight", "--per_device_train_batch_size",
                                    "2", "--save_strategy", "steps", "--save_steps", "3", launch=config)  # fmt: skip
    assert straight_out.count("PARAMETERS DTensor fsdp") == 2  # really sharded
    checkpoint = tmp_path / "straight" / "checkpoint-3"
    assert (checkpoint / "optimizer_0").is_dir()  # sharded optimizer state through torch.distributed.checkpoint
    resume = ["--save_strategy", "no", "--resume_from_checkpoint", str(checkpoint)]
    _, resumed = _train(text_files, tokenizer_dir, tmp_path / "resumed", "--per_device_train_batch_size", "2",
                        *resume, launch=config)  # fmt: skip
    _assert_same_losses(straight, resumed, tol=0.0)
    _, single = _train(text_files, tokenizer_dir, tmp_path / "single", "--per_device_train_batch_size", "4",
                       "--save_strategy", "no")  # fmt: skip
    _assert_same_losses(straight, single)
    assert straight[1][1] > 0 > straight[6][1]  # p crossed 0


def test_trainer_fsdp2_lora_matches_one_process(text_files, tokenizer_dir, tmp_path):
    config = _accelerate_config(tmp_path, "fsdp2_lora.yaml")
    extra = ["--lora_r", "4", "--save_strategy", "no"]
    sharded_out, sharded = _train(text_files, tokenizer_dir, tmp_path / "fsdp", "--per_device_train_batch_size", "2",
                                  *extra, launch=config)  # fmt: skip
    assert "PARAMETERS DTensor fsdp" in sharded_out
    _, single = _train(text_files, tokenizer_dir, tmp_path / "single", "--per_device_train_batch_size", "4", *extra)
    _assert_same_losses(sharded, single)


def test_replicas_are_compared_by_value(tmp_path):
    for report in _torchrun(SCRIPTS / "replica_checksums.py", tmp_path):
        assert report == {"same": True, "off_by_one_ulp": False, "swapped": False, "fewer": False, "none": True}


def test_trainer_ddp_splits_the_shaping(text_files, tokenizer_dir, tmp_path):
    config = ROOT / "recipes" / "accelerate" / "ddp_cpu.yaml"  # shipped as it is: 2 CPU processes
    out, ddp = _train(text_files, tokenizer_dir, tmp_path / "ddp", "--per_device_train_batch_size", "2",
                      "--save_strategy", "no", launch=config)  # fmt: skip
    shaped = [int(line.split()[1]) for line in out.splitlines() if line.startswith("SHAPED")]
    assert "DATA_PARALLEL True" in out and len(shaped) == 2
    assert sum(shaped) == 6 * 14 and min(shaped) > 0  # 14 matrices × 6 steps, split between the ranks
    _, single = _train(text_files, tokenizer_dir, tmp_path / "single", "--per_device_train_batch_size", "4",
                       "--save_strategy", "no")  # fmt: skip
    _assert_same_losses(ddp, single)


def test_processes_without_a_distributed_trainer_are_named_once_with_the_fix(text_files, tokenizer_dir, tmp_path):
    """torchrun on CPU without --use_cpu: two processes, no distributed Trainer — each trains alone."""
    args = _script_args(text_files, tokenizer_dir, tmp_path / "alone", "--save_strategy", "no", use_cpu=False)
    result = _launch([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", *args])
    warning = "2 processes were launched (WORLD_SIZE=2) but the Trainer is not distributed"
    assert result.stderr.count(warning) == 1  # rank 0 only
    assert "add --use_cpu to the script's own arguments" in result.stderr
    assert result.stdout.count("DATA_PARALLEL False") == 2  # no split between runs that are not replicas


def test_fsdp_config_on_cpu_is_named_as_ddp(text_files, tokenizer_dir, tmp_path):
    """An FSDP config on CPU without the test shim: accelerate runs DDP; we say so once."""
    config = _accelerate_config(tmp_path, "fsdp2.yaml")
    args = _script_args(text_files, tokenizer_dir, tmp_path / "fsdp", "--save_strategy", "no")
    result = _launch([sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config), *args])
    assert result.stdout.count("PARAMETERS Parameter") == 2  # not sharded: accelerate ran DDP
    assert result.stderr.count("an FSDP launch, but no parameter is sharded") == 1
