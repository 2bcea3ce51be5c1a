"""An unmodified HF-style training script (tests/scripts/train_clm.py) run as a subprocess with --optim dynmuon
through each activation path: the .pth autoload hook, `python -m hf_spectral run`, `hf-spectral run`, and
`accelerate launch`; plus the opt-out and bad-argument failures."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hf_spectral.schedules import Logistic

SCRIPT = Path(__file__).parent / "scripts" / "train_clm.py"
STEPS = 6
pytestmark = pytest.mark.slow


def _command(prefix, text_files, tokenizer_dir, out, optim_args="p_start=0.25,p_end=-0.25"):
    return [
        *prefix, str(SCRIPT), "--tokenizer_name", str(tokenizer_dir), "--train_file", str(text_files["train"]),
        "--output_dir", str(out), "--optim", "dynmuon", "--optim_args", optim_args, "--max_steps", str(STEPS),
        "--per_device_train_batch_size", "4", "--learning_rate", "3e-3", "--logging_steps", "1",
        "--report_to", "none", "--use_cpu", "--save_strategy", "no", "--disable_tqdm", "true",
    ]  # fmt: skip


def _run(cmd, autoload=True):
    env = dict(os.environ, HF_SPECTRAL_AUTOLOAD="1" if autoload else "0", TOKENIZERS_PARALLELISM="false")
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


def _check_trained(result, out):
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OPTIMIZER DynMuon" in result.stdout
    history = json.loads((Path(out) / "trainer_state.json").read_text())["log_history"]
    logged = [e for e in history if "loss" in e]
    assert len(logged) == STEPS
    schedule = Logistic(start=0.25, end=-0.25, tau=0.04, width=0.04)
    for entry in logged:
        assert entry["spectral/p"] == pytest.approx(schedule((entry["step"] - 1) / STEPS), abs=1e-5)
    assert logged[-1]["loss"] < logged[0]["loss"]


PATHS = {
    "autoload": ([sys.executable], True),
    "python -m hf_spectral run": ([sys.executable, "-m", "hf_spectral", "run"], False),
    "hf-spectral run": (["hf-spectral", "run"], False),
    "accelerate launch": ([sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--cpu"], True),
}


@pytest.mark.parametrize("path", list(PATHS))
def test_unmodified_script_trains_with_dynmuon(path, text_files, tokenizer_dir, tmp_path):
    prefix, autoload = PATHS[path]
    if prefix[0] == "hf-spectral":
        executable = shutil.which("hf-spectral")
        assert executable, "the hf-spectral console script is not installed (pip install -e .)"
        prefix = [executable, *prefix[1:]]
    result = _run(_command(prefix, text_files, tokenizer_dir, tmp_path), autoload=autoload)
    _check_trained(result, tmp_path)


def test_opting_out_of_autoload_restores_transformers_behaviour(text_files, tokenizer_dir, tmp_path):
    result = _run(_command([sys.executable], text_files, tokenizer_dir, tmp_path), autoload=False)
    assert result.returncode != 0
    assert "invalid choice: 'dynmuon'" in result.stderr


def test_unknown_optim_name_exits_nonzero_listing_ours(text_files, tokenizer_dir, tmp_path):
    cmd = _command([sys.executable], text_files, tokenizer_dir, tmp_path)
    cmd[cmd.index("dynmuon")] = "dynmoon"
    result = _run(cmd)
    assert result.returncode != 0
    assert "invalid choice: 'dynmoon'" in result.stderr and "'dynmuon'" in result.stderr


@pytest.mark.parametrize(
    "optim_args,message",
    [
        ("p_strat=0.25", "unknown key 'p_strat'"),
        ("p_end=-3", "end must be in [-1.0, 2.0], got -3.0"),
        ("momentum=1.5", "momentum must be in [0.0, 1.0], got 1.5"),
    ],
)
def test_bad_optim_args_end_like_an_argparse_error(optim_args, message, text_files, tokenizer_dir, tmp_path):
    """One line, ``<prog>: error: argument --optim_args: ...``, exit code 2 — as HfArgumentParser's own errors."""
    result = _run(_command([sys.executable], text_files, tokenizer_dir, tmp_path, optim_args=optim_args))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("train_clm.py: error: argument --optim_args: ") and message in last
    assert f"--optim_args '{optim_args}'" in last
