"""The quality benchmark suite cannot rot: each task runs end to end in its --quick form (a few steps per
optimizer, one lr, one seed) and writes its table, sweep, results and figures."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pytest

RUN = Path(__file__).resolve().parent.parent / "benchmarks" / "quality" / "run.py"


def _ablation_count(monkeypatch) -> int:
    """len(ABLATIONS) of run.py, imported as the script runs (its folder on sys.path, for its sibling modules)."""
    monkeypatch.syspath_prepend(str(RUN.parent))
    return len(importlib.import_module("run").ABLATIONS)


@pytest.mark.slow
def test_every_task_runs_quick(tmp_path, monkeypatch):
    result = subprocess.run(
        [sys.executable, str(RUN), "all", "--quick", "--out", str(tmp_path)], capture_output=True, text=True,
        timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    ablations = _ablation_count(monkeypatch)
    assert ablations > 0
    outputs = ["pretrain", "finetune_full", "finetune_lora", "classify", *(f"ablation_{i}" for i in range(ablations))]
    for name in outputs:
        out = tmp_path / name
        summary = (out / "summary.md").read_text()
        runs = json.loads((out / "results.json").read_text())
        labels = {r["label"] for r in runs}
        assert all(f"| {label} |" in summary for label in labels), name
        assert all(r["final_eval_loss"] > 0 for r in runs)
        assert matplotlib.image.imread(out / "loss_curves.png").ndim == 3
    labels = {r["label"] for r in json.loads((tmp_path / "pretrain" / "results.json").read_text())}
    ours = {"adamw", "muon", "dynmuon", "dynmuon_paper", "dynmuon_record", "muonp_0.5", "spectral_adam"}
    peers = {"torch_muon"} | ({"heavyball_muon"} if importlib.util.find_spec("heavyball") else set())
    assert labels == ours | peers
    summary = (tmp_path / "pretrain" / "summary.md").read_text()
    assert "drop-in: every optimizer at AdamW's chosen lr" in summary and "own best lr" in summary
    classified = json.loads((tmp_path / "classify" / "results.json").read_text())
    assert all(0.0 <= r["final_eval_accuracy"] <= 1.0 for r in classified)
