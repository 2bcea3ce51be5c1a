"""The Trainer integration on transformers 4.57, the last 4.x release (pyproject allows it).

A virtual environment on top of this one (``--system-site-packages``: the same torch, peft, accelerate and this
checkout of hf_spectral) gets transformers 4.57 and a ``datasets`` that works with its hub client, from the package
index; then the integration tests and one unmodified script run there. Skipped only when the index cannot be
reached.
"""

from __future__ import annotations

import os
import subprocess
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
TESTS = Path(__file__).parent
TRANSFORMERS_4 = "transformers==4.57.*"
REQUIREMENTS = (TRANSFORMERS_4, "datasets>=3,<5")  # datasets 5 needs huggingface_hub >= 1.31; 4.57 needs < 1.0


def _env() -> dict[str, str]:
    return dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", HF_SPECTRAL_AUTOLOAD="1")


@pytest.fixture(scope="module")
def python4(tmp_path_factory) -> Path:
    """The interpreter of a virtual environment with transformers 4.57."""
    root = tmp_path_factory.mktemp("transformers4")
    venv.EnvBuilder(system_site_packages=True, with_pip=True).create(root)
    python = root / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *REQUIREMENTS],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if install.returncode != 0:
        pytest.skip(f"could not install {TRANSFORMERS_4} from the package index: {install.stderr[-500:]}")
    version = subprocess.run(
        [str(python), "-c", "import transformers; print(transformers.__version__)"],
        capture_output=True,
        text=True,
        env=_env(),
    )
    assert version.stdout.strip().startswith("4.57."), version.stdout + version.stderr
    return python


def test_trainer_integration_passes_on_transformers_4(python4):
    """Our ``--optim`` names, ``--optim_args`` checks, the callback, resume, the Python factory and PEFT routing,
    through transformers 4.57's Trainer (which has no optimizer handler registry)."""
    result = subprocess.run(
        [str(python4), "-m", "pytest", "-q", "-p", "no:cacheprovider", str(TESTS / "test_trainer_integration.py")],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=900,
        cwd=TESTS.parent,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout


def test_unmodified_script_trains_on_transformers_4(python4, text_files, tmp_path):
    """The stock-style script with only ``--optim dynmuon`` and a bad ``--optim_args`` (one line, exit 2)."""
    from test_trainer_activation import _check_trained, _command

    tokenizer_dir = tmp_path / "tokenizer"  # saved by 4.57 itself (a 5.x tokenizer_config names a 5.x-only class)
    train = (
        "from hf_spectral.corpus import stdlib_texts, train_tokenizer; "
        f"train_tokenizer(stdlib_texts('train', max_chars=300_000), 512, {str(tokenizer_dir)!r})"
    )
    made = subprocess.run([str(python4), "-c", train], capture_output=True, text=True, env=_env(), timeout=300)
    assert made.returncode == 0, made.stderr[-2000:]

    cmd = _command([str(python4)], text_files, tokenizer_dir, tmp_path)
    result = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=900)
    _check_trained(result, tmp_path)

    bad = _command([str(python4)], text_files, tokenizer_dir, tmp_path / "bad", optim_args="p_strat=1")
    result = subprocess.run(bad, capture_output=True, text=True, env=_env(), timeout=900)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "error: argument --optim_args: unknown key 'p_strat'" in result.stderr.strip().splitlines()[-1]
