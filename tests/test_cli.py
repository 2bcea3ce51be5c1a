"""The `hf-spectral` command: a bad recipe exits non-zero naming the key and the file (in process, and from the
installed console script); `check` prints the resolved recipe and the launch command; the `optimizers` listing; and
`train` under `accelerate launch -m hf_spectral`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hf_spectral.cli import main
from hf_spectral.integrations.optim_args import KEYS, OPTIMIZER_NAMES

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "recipes" / "demo.yaml"


def _bad_recipe(tmp_path: Path) -> Path:
    data = yaml.safe_load(DEMO.read_text())
    data["training"]["max_stepz"] = 10
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("command", ["train", "compare", "check"])
def test_bad_recipe_exits_nonzero_naming_key_and_file(command, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(
            [command, str(_bad_recipe(tmp_path)), "--output-dir", str(tmp_path / "out")][
                : 2 if command == "check" else 4
            ]
        )
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'typo.yaml'}: training.max_stepz: unknown TrainingArguments argument" in err
    assert not (tmp_path / "out").exists()  # nothing ran


def test_bad_set_value_exits_nonzero_naming_the_key(capsys):
    with pytest.raises(SystemExit) as info:
        main(["check", str(DEMO), "--set", "optimizer.optim_args.p_end=-3"])
    assert info.value.code == 2
    assert f"{DEMO}: optimizer.optim_args: end must be in [-1.0, 2.0]" in capsys.readouterr().err


def test_missing_recipe_file_exits_nonzero(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", str(tmp_path / "nope.yaml")])
    assert info.value.code == 2 and "nope.yaml: recipe: cannot read the file" in capsys.readouterr().err


def test_check_prints_the_resolved_recipe_and_launch_command(capsys):
    assert (
        main(
            [
                "check",
                str(DEMO),
                "--quick",
                "--set",
                "compare.optimizers=[muon, adamw]",
                "--set",
                "training.max_steps=3",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    resolved = yaml.safe_load(out)
    assert resolved["training"]["max_steps"] == 3 and resolved["compare"]["optimizers"] == ["muon", "adamw"]
    assert "accelerate launch --config_file " in out and f"-m hf_spectral train {DEMO}" in out


def test_optimizers_listing_is_unchanged(capsys):
    assert main(["optimizers"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in OPTIMIZER_NAMES) and all(key in out for key in KEYS)


@pytest.mark.slow
def test_console_script_exit_status(tmp_path):
    executable = shutil.which("hf-spectral")
    assert executable, "the hf-spectral console script is not installed (pip install -e .)"
    result = subprocess.run([executable, "check", str(_bad_recipe(tmp_path))], capture_output=True, text=True)
    assert result.returncode == 2
    assert "typo.yaml: training.max_stepz: unknown TrainingArguments argument" in result.stderr


@pytest.mark.slow
def test_train_under_accelerate_launch(tmp_path):
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--cpu",
           "-m", "hf_spectral", "train", str(DEMO), "--quick", "--output-dir", str(tmp_path)]  # fmt: skip
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false")
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    history = json.loads((tmp_path / "trainer_state.json").read_text())["log_history"]
    logged = [e["step"] for e in history if "loss" in e]
    assert logged[0] == 1 and {2, 4, 6} <= set(logged)  # every logging_steps, plus step 1 and p's milestones
    assert (tmp_path / "recipe.yaml").is_file()
