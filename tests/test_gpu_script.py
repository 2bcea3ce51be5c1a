"""benchmarks/gpu.py: --tiny runs every section on the CPU and reports numbers that make sense; the harness keeps
going past a failing section, and skips or cuts sections short for the time budget, saying so in the report."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from gpu_bench.harness import Report  # noqa: E402

SECTIONS = ("pytest", "kernels", "optimizer_step", "trainer", "quality", "reference")
TINY_SHAPES = ("64×64", "64×176", "128×128", "3×32×48")


def finite_positive(x: object) -> bool:
    return isinstance(x, float) and math.isfinite(x) and x > 0


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """results.json and report.md of one `--tiny` run on the CPU."""
    out = tmp_path_factory.mktemp("gpu_tiny")
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    cmd = [sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--tiny", "--device", "cpu", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    results = json.loads((out / "results.json").read_text())
    return results, (out / "report.md").read_text(), results["sections"]


def rows(section: dict, title: str) -> list[dict]:
    (table,) = [t for t in section["tables"] if t["title"] == title]
    return table["rows"]


@pytest.mark.slow
def test_every_section_ran_and_is_in_both_files(tiny):
    results, report, sections = tiny
    assert tuple(sections) == SECTIONS
    assert results["meta"]["mode"] == "tiny" and results["meta"]["device"].startswith("CPU")
    for key, section in sections.items():
        assert section["status"] == "ok", (key, section["error"], section["notes"])
        assert f"## {section['title']}\n\nStatus: **ok**" in report
        for table in section["tables"]:
            assert f"**{table['title']}**" in report
            assert len(table["rows"]) > 0, (key, table["title"])


@pytest.mark.slow
def test_gpu_tests_were_collected_and_none_failed(tiny):
    section = tiny[2]["pytest"]
    counts, tests = section["data"]["counts"], rows(section, "Tests")
    assert len(tests) >= 30 and counts["failed"] == counts["error"] == 0
    assert counts["passed"] + counts["skipped"] == len(tests)
    assert all(t["outcome"] == "skipped" and "CUDA" in t["message"] for t in tests)  # no CUDA here


@pytest.mark.slow
def test_kernel_rows_time_and_error_every_method(tiny):
    table = rows(tiny[2]["kernels"], "Shaping kernels")
    for shape in TINY_SHAPES:
        by_method = {(r["method"], r["precision"]): r for r in table if r["shape"] == shape}
        assert len(by_method) == 1 + 2 * 4, shape  # torch's NS5; PE-5, NS5, two TNS in mixed and bf16
        for row in by_method.values():
            assert finite_positive(row["time_ms"]) and finite_positive(row["vs_torch_ns5"]), row
            assert finite_positive(row["rel_error"]) and row["rel_error"] < 1, row
        torch_ns5 = by_method[("torch.optim.Muon NS5", "bf16")]
        assert torch_ns5["vs_torch_ns5"] == 1.0
        for p in ("-0.25", "+0.50"):  # mixed TNS is exact to float32 level; κ = 1e4 measured 0.3–0.8 %
            assert by_method[(f"TNS-8 p={p}", "mixed")]["rel_error"] < 0.03
        assert by_method[("PE-5", "mixed")]["rel_error"] < torch_ns5["rel_error"]  # 5 steps: ~0.15 vs NS5's ~0.32


@pytest.mark.slow
def test_kernel_reference_matches_a_float64_svd(tiny):
    checks = rows(tiny[2]["reference"], "Float64 SVD check of the kernels' target")
    assert {c["shape"] for c in checks} == set(TINY_SHAPES)
    assert all(c["rel_diff"] < 1e-4 for c in checks)


@pytest.mark.slow
def test_optimizer_step_rows(tiny):
    section = tiny[2]["optimizer_step"]
    table = {r["optimizer"]: r for r in rows(section, "Optimizer step")}
    assert len(table) == 6 and all(finite_positive(r["step_ms"]) for r in table.values())
    assert table["torch.optim.AdamW"]["vs_adamw"] == 1.0
    assert table["torch.optim.Muon + AdamW"]["vs_torch_muon"] == 1.0
    param_mib = 4 * section["data"]["parameters"] / 2**20  # float32
    adamw_state = table["torch.optim.AdamW"]["state_mib"]
    assert adamw_state == pytest.approx(2 * param_mib, rel=1e-3)  # exp_avg + exp_avg_sq (+ step scalars)
    assert param_mib < table["hf_spectral Muon (PE-5, bf16)"]["state_mib"] < adamw_state  # momentum on matrices
    assert table["hf_spectral DynMuon (mid-schedule, TNS-8)"]["p"] < 0  # the schedule's second half
    assert table["hf_spectral SpectralAdam (p = 0.5, TNS-8)"]["p"] == 0.5
    moe = {r["optimizer"]: r for r in rows(section, "Optimizer step, mixture of experts")}
    assert len(moe) == 4 and all(finite_positive(r["step_ms"]) for r in moe.values())
    assert moe["torch.optim.AdamW"]["vs_adamw"] == 1.0 and "vs_torch_muon" not in moe["torch.optim.AdamW"]
    experts_mib = 4 * section["data"]["moe_expert_parameters"] / 2**20
    shaped, on_adamw = moe["hf_spectral Muon (experts shaped)"], moe["hf_spectral Muon (experts on AdamW)"]
    assert on_adamw["state_mib"] - shaped["state_mib"] == pytest.approx(experts_mib, rel=1e-3)  # AdamW: 2 moments


@pytest.mark.slow
def test_trainer_rows(tiny):
    table = rows(tiny[2]["trainer"], "Trainer end to end")
    assert [(r["mode"], r["optim"]) for r in table] == [
        (mode, optim) for mode in ("full", "lora") for optim in ("adamw_torch", "muon", "dynmuon")
    ]
    classes = {"adamw_torch": "AdamW", "muon": "Muon", "dynmuon": "DynMuon"}
    for row in table:
        assert row["optimizer_class"] == classes[row["optim"]], row
        assert finite_positive(row["step_ms"]) and finite_positive(row["optimizer_ms"]), row
        assert 0 < row["optimizer_share"] < 1 and row["optimizer_ms"] < row["step_ms"] * 1.5, row
    full, lora = table[0]["trainable"], table[3]["trainable"]
    assert 0 < lora < full / 5


@pytest.mark.slow
def test_quality_rows(tiny):
    section = tiny[2]["quality"]
    table = {r["optim"]: r for r in rows(section, "Short quality run")}
    assert list(table) == ["adamw_torch", "muon", "dynmuon"]
    assert table["adamw_torch"]["vs_adamw"] == 0.0
    for row in table.values():  # every optimizer learned something in 20 steps
        assert row["eval_loss"] < section["data"]["initial_eval_loss"] - 0.3, row


def test_harness_records_failures_and_the_budget(tmp_path):
    """A raising section keeps its traceback and the next one runs; sections past the budget are skipped or cut
    short with a note; both files on disk hold everything after each step."""
    report = Report(tmp_path, budget_s=3600, meta={"mode": "test"})

    def boom(section):
        section.add(section.table("T", [("x", "x")]), x=1.5)
        raise ValueError("kernel exploded")

    def partial(section):
        table = section.table("U", [("x", "x")])
        for x in range(3):
            if not section.has_time(10_000.0 if x == 2 else 1.0, f"item {x}"):
                return
            section.add(table, x=x)

    assert report.run("a", "A", boom, need_s=1).status == "failed"
    on_disk = json.loads((tmp_path / "results.json").read_text())["sections"]["a"]
    assert on_disk["status"] == "failed" and "ValueError: kernel exploded" in on_disk["error"]
    assert on_disk["tables"][0]["rows"] == [{"x": 1.5}]  # what was measured before the failure is kept
    assert report.run("b", "B", partial, need_s=1).status == "partial"
    assert report.run("c", "C", lambda s: None, need_s=10_000).status == "skipped"
    sections = json.loads((tmp_path / "results.json").read_text())["sections"]
    assert [r["x"] for r in sections["b"]["tables"][0]["rows"]] == [0, 1]
    assert "before item 2" in sections["b"]["notes"][0] and "time budget" in sections["c"]["notes"][0]
    md = (tmp_path / "report.md").read_text()
    assert "Status: **failed**" in md and "ValueError: kernel exploded" in md and "| 1.5 |" in md
    assert "Status: **partial**" in md and "Status: **skipped**" in md
