"""The comparison table and figures from log histories (no training): means and sds over seeds, the target from
the baselines, steps to reach it, and PNGs that decode."""

from __future__ import annotations

import math
import statistics

import pytest
from matplotlib.image import imread

from hf_spectral.recipes.plots import loss_figure
from hf_spectral.recipes.summary import RunRecord, curve, markdown, summarize


def _history(train: list[float], evals: list[float], every: int = 10, p: dict[int, float] | None = None) -> list[dict]:
    """Trainer-style log history: a train loss every `every` steps, an eval loss every 2·`every`, and the
    ``spectral/p`` the callback logs at the steps of `p`."""
    out = [{"loss": v, "step": every * (i + 1)} for i, v in enumerate(train)]
    out += [{"eval_loss": v, "step": 2 * every * (i + 1)} for i, v in enumerate(evals)]
    out += [{"spectral/p": v, "step": step} for step, v in (p or {}).items()]
    return sorted(out, key=lambda e: e["step"])


def _runs() -> dict[str, list[RunRecord]]:
    """A candidate that gets below the baselines' best final eval loss (2.0, by muon) at step 40, and two
    baselines; two seeds each."""
    return {
        "dynmuon": [
            RunRecord(_history([4.0, 3.0, 2.5, 2.0], [3.0, 1.9], p={1: 0.66, 40: -0.25}), 10.0),
            RunRecord(_history([4.2, 3.2, 2.7, 2.2], [3.2, 2.1], p={1: 0.66, 40: -0.25}), 12.0),
        ],
        "muon": [
            RunRecord(_history([4.0, 3.5, 3.0, 2.5], [3.5, 1.9], p={1: 0.0, 40: 0.0}), 8.0),
            RunRecord(_history([4.0, 3.5, 3.0, 2.5], [3.5, 2.1], p={1: 0.0, 40: 0.0}), 9.0),
        ],
        "adamw": [
            RunRecord(_history([4.0, 3.8, 3.6, 3.4], [3.9, 3.0]), 7.0),
            RunRecord(_history([4.0, 3.8, 3.6, 3.4], [3.9, 3.2]), 7.0),
        ],
    }


def test_curve_is_mean_and_sd_over_runs_at_common_steps():
    a = [{"loss": 3.0, "step": 1}, {"loss": 2.0, "step": 2}, {"loss": 1.0, "step": 3}]
    b = [{"loss": 5.0, "step": 1}, {"loss": 4.0, "step": 2}]
    c = curve([a, b], "loss")
    assert c.steps == [1, 2]
    assert c.mean == [4.0, 3.0]
    assert c.sd == pytest.approx([statistics.stdev([3.0, 5.0]), statistics.stdev([2.0, 4.0])])
    assert curve([a, b], "eval_loss") is None


def test_summary_target_steps_and_rows():
    runs = _runs()
    summary = summarize(runs, ["muon", "adamw"])
    assert summary.metric == "eval_loss" and summary.seeds == 2
    assert summary.target_by == "muon" and summary.target == pytest.approx(2.0)
    rows = {row.optimizer: row for row in summary.rows}
    assert list(rows) == ["dynmuon", "muon", "adamw"]
    assert rows["dynmuon"].steps_to_target == 40  # mean eval loss (1.9 + 2.1)/2 = 2.0 ≤ 2.0 at step 40
    assert rows["muon"].steps_to_target == 40
    assert rows["adamw"].steps_to_target is None
    assert rows["dynmuon"].final_train == pytest.approx((2.1, statistics.stdev([2.0, 2.2])))
    assert rows["adamw"].wall_time == (7.0, 0.0)
    ppl = [math.exp(1.9), math.exp(2.1)]  # per run, then mean ± sd: not exp of the mean loss
    assert rows["muon"].eval_perplexity == pytest.approx((statistics.fmean(ppl), statistics.stdev(ppl)))
    p = summary.curves["dynmuon"]["spectral/p"]  # from the logged spectral/p, as the optimizer's callback logs it
    assert summary.curves["adamw"]["spectral/p"] is None and (p.steps, p.mean) == ([1, 40], [0.66, -0.25])


def test_run_record_from_a_trainer_log_history():
    history = [*_history([4.0, 3.0], [2.5]), {"train_runtime": 12.5, "train_loss": 3.5, "step": 20}]
    record = RunRecord.from_history(history)
    assert record.wall_time == 12.5  # the Trainer's train_runtime
    assert record.describe() == "step 20: loss 3.0000, eval_loss 2.5000; 12.5 s"


def test_without_evaluation_the_train_loss_is_compared():
    runs = {name: [RunRecord([e for e in r.history if "loss" in e], r.wall_time) for r in rs]
            for name, rs in _runs().items()}  # fmt: skip
    summary = summarize(runs, ["adamw"])
    assert summary.metric == "loss" and summary.target_by == "adamw" and summary.target == pytest.approx(3.4)
    assert {row.optimizer: row.steps_to_target for row in summary.rows} == {"dynmuon": 20, "muon": 30, "adamw": 40}


def test_markdown_has_one_row_per_optimizer_with_mean_and_sd():
    table = markdown(summarize(_runs(), ["muon", "adamw"]))
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| optimizer")]
    assert [r.split("|")[1].strip() for r in rows] == ["dynmuon", "muon", "adamw"]
    assert "steps to eval loss ≤ 2.0000" in table and "reached by muon" in table
    assert "2.0000 ± 0.1414" in rows[0]  # final eval loss of dynmuon: mean of 1.9 and 2.1, sample sd
    assert rows[2].split("|")[5].strip() == "—"  # adamw never reached the target
    assert rows[2].split("|")[4].strip() == f"{statistics.fmean([math.exp(3.0), math.exp(3.2)]):.2f} ± " + (
        f"{statistics.stdev([math.exp(3.0), math.exp(3.2)]):.2f}"
    )


def test_figure_is_a_png_that_decodes(tmp_path):
    """One figure: train loss, eval loss and p side by side."""
    image = imread(loss_figure(summarize(_runs(), ["muon", "adamw"]), tmp_path / "loss.png"))
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 3 * image.shape[0]
    assert image[..., :3].std() > 0.05  # something is drawn, not a blank canvas
