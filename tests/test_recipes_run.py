"""Recipes run end to end on CPU through the `hf-spectral` command (in process): the demo's quick form, compare on
two optimizers with two seeds, train's run directory, and the hub recipes with local substitutes (a tiny model
saved with save_pretrained, standard-library text) for the from_pretrained, LoRA and full-finetune paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from matplotlib.image import imread
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, Qwen2Config

from hf_spectral.cli import main
from hf_spectral.recipes import load_recipe
from hf_spectral.recipes.summary import series
from hf_spectral.schedules import PRESETS, Constant

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

LOCAL_DATA = [  # standard-library text in place of a hub dataset, small blocks
    "data.dataset=stdlib", "data.name=null", "data.split=train", "data.eval_split=eval", "data.text_column=text",
    "data.block_size=64", "data.max_train_samples=64", "data.max_eval_samples=16", "training.bf16=false",
    "training.per_device_train_batch_size=4", "training.per_device_eval_batch_size=8", "training.max_steps=4",
    "training.eval_steps=2", "training.logging_steps=1", "training.disable_tqdm=true",
]  # fmt: skip


def _sets(items: list[str]) -> list[str]:
    return [arg for item in items for arg in ("--set", item)]


def _table_rows(path: Path) -> dict[str, list[str]]:
    lines = [line for line in path.read_text().splitlines() if line.startswith("| ") and "optimizer |" not in line]
    return {cells[0]: cells[1:] for cells in ([c.strip() for c in line.strip("|").split("|")] for line in lines)}


def _decodes(path: Path) -> None:
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 200 and image[..., :3].std() > 0.05


def _history(run_dir: Path) -> list[dict]:
    return json.loads((run_dir / "trainer_state.json").read_text())["log_history"]


def test_moe_demo_quick_form_shapes_the_experts(tmp_path):
    """The MoE demo's quick form runs for every optimizer, the spectral ones logging their shaping (that the experts
    go to a stacked group and are shaped per expert is tests/test_moe_experts.py's)."""
    recipe = load_recipe(ROOT / "recipes" / "moe_demo.yaml", quick=True)
    assert recipe.model.config["model_type"] == "mixtral" and recipe.model.config["num_local_experts"] > 1
    assert main(["compare", str(ROOT / "recipes" / "moe_demo.yaml"), "--quick", "--output-dir", str(tmp_path)]) == 0
    assert list(_table_rows(tmp_path / "summary.md")) == ["dynmuon", "muon", "adamw"]
    for name in ("dynmuon", "muon"):
        logged = [e for e in _history(tmp_path / "runs" / f"{name}-seed0") if "spectral/update_rms" in e]
        assert logged


def test_demo_quick_form_runs_end_to_end(tmp_path):
    assert main(["compare", str(ROOT / "recipes" / "demo.yaml"), "--quick", "--output-dir", str(tmp_path)]) == 0
    _decodes(tmp_path / "loss_curves.png")
    rows = _table_rows(tmp_path / "summary.md")
    assert list(rows) == ["dynmuon", "muon", "adamw"]
    steps = load_recipe(ROOT / "recipes" / "demo.yaml", quick=True).training["max_steps"]
    for name in rows:
        history = _history(tmp_path / "runs" / f"{name}-seed0")
        losses = [e["loss"] for e in history if "loss" in e]
        assert losses and all(torch.isfinite(torch.tensor(losses)))
        assert max(e["step"] for e in history if "eval_loss" in e) == steps  # the final eval is at the last step
        assert float(rows[name][0]) == pytest.approx(losses[-1], abs=1e-4)  # the table's final train loss
    logged_p = series(_history(tmp_path / "runs" / "dynmuon-seed0"), "spectral/p")
    assert logged_p
    for step, p in logged_p.items():  # step k used p(t = (k − 1)/steps) of the DynMuon preset
        assert p == pytest.approx(PRESETS["dynmuon"]((step - 1) / steps), abs=1e-6)
    curves = json.loads((tmp_path / "summary.json").read_text())["curves"]  # the figure's p: the logged one
    assert curves["adamw"]["spectral/p"] is None
    p_curve = curves["dynmuon"]["spectral/p"]
    assert (p_curve["steps"], p_curve["mean"], set(p_curve["sd"])) == ([*logged_p], [*logged_p.values()], {0.0})


def test_compare_two_optimizers_two_seeds(tmp_path):
    """The GPT-2 pretraining recipe (fused c_attn split by split_fused) with a local tokenizer and text."""
    sets = [*LOCAL_DATA, "tokenizer.name_or_path=null", "tokenizer.train={vocab_size: 512, max_chars: 200000}",
            "model.config.n_embd=64", "model.config.n_layer=2", "model.config.n_head=4",
            "model.config.n_positions=64"]  # fmt: skip
    argv = ["compare", str(ROOT / "recipes" / "gpt_pretrain.yaml"), "--optim", "dynmuon,adamw", "--seeds", "2"]
    assert main([*argv, *_sets(sets), "--output-dir", str(tmp_path)]) == 0
    _decodes(tmp_path / "loss_curves.png")
    rows = _table_rows(tmp_path / "summary.md")
    assert list(rows) == ["dynmuon", "adamw"]
    assert all("±" in rows[name][1] for name in rows)  # mean ± sd over the two seeds
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert runs == ["adamw-seed0", "adamw-seed1", "dynmuon-seed0", "dynmuon-seed1"]
    first = [e["loss"] for e in _history(tmp_path / "runs" / "dynmuon-seed0") if "loss" in e]
    second = [e["loss"] for e in _history(tmp_path / "runs" / "dynmuon-seed1") if "loss" in e]
    assert first != second  # different seeds: different initial weights and batches


def test_train_writes_the_run_directory(tmp_path, capsys):
    path = ROOT / "recipes" / "demo.yaml"
    sets = ["training.save_strategy=steps", "training.save_steps=3"]
    assert main(["train", str(path), "--quick", *_sets(sets), "--output-dir", str(tmp_path)]) == 0
    resolved = load_recipe(tmp_path / "recipe.yaml")
    expected = load_recipe(path, [("training.save_strategy", "steps"), ("training.save_steps", 3)], quick=True)
    assert resolved == expected
    assert (tmp_path / "checkpoint-3").is_dir() and (tmp_path / "checkpoint-6").is_dir()
    history = _history(tmp_path)  # every Trainer log, p next to each train loss
    train_logs = [e for e in history if "loss" in e]
    assert train_logs and all("spectral/p" in e for e in train_logs) and any("eval_loss" in e for e in history)
    steps = expected.training["max_steps"]
    assert json.loads((tmp_path / "trainer_state.json").read_text())["global_step"] == steps
    final = f"step {steps}: loss {train_logs[-1]['loss']:.4f}, eval_loss {series(history, 'eval_loss')[steps]:.4f}"
    assert final in capsys.readouterr().out  # the final numbers, printed
    assert (tmp_path / "model.safetensors").is_file() and (tmp_path / "tokenizer.json").is_file()


STAND_INS = {  # the hub models' own config.json values, with 1 layer: the real matrix shapes, random weights
    "lora_llama_1b": LlamaConfig(  # TinyLlama/TinyLlama-1.1B-Chat-v1.0
        vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=1, num_attention_heads=32,
        num_key_value_heads=4, max_position_embeddings=2048, rms_norm_eps=1e-5, rope_theta=10000.0,
        tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
    ),
    "full_qwen_0.5b": Qwen2Config(  # Qwen/Qwen2.5-0.5B
        vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=1, num_attention_heads=14,
        num_key_value_heads=2, max_position_embeddings=32768, rms_norm_eps=1e-6, rope_theta=1000000.0,
        tie_word_embeddings=True, bos_token_id=151643, eos_token_id=151643,
    ),
}  # fmt: skip


def _stand_in_dir(recipe: str, directory: Path, tokenizer_dir: Path) -> Path:
    """A local stand-in for the recipe's hub model: its architecture and shapes, 1 layer, random weights, and the
    locally trained tokenizer (its ids are a subset of the model's vocabulary)."""
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(STAND_INS[recipe]).save_pretrained(directory)
    AutoTokenizer.from_pretrained(tokenizer_dir).save_pretrained(directory)
    return directory


@pytest.mark.parametrize("recipe", ["lora_llama_1b", "full_qwen_0.5b"])
def test_hub_recipe_runs_from_a_local_stand_in_of_its_model(recipe, tokenizer_dir, tmp_path):
    model_dir = _stand_in_dir(recipe, tmp_path / "model", tokenizer_dir)
    sets = [*LOCAL_DATA, f"model.name_or_path={model_dir}", "model.dtype=float32", "data.block_size=32"]
    sets += ["training.max_steps=2", "training.eval_steps=2"]  # real-size matrices: 2 steps keep it under a minute
    out = tmp_path / "run"
    assert (
        main(["train", str(ROOT / "recipes" / f"{recipe}.yaml"), "--quick", *_sets(sets), "--output-dir", str(out)])
        == 0
    )
    history = _history(out)
    p_values = [e["spectral/p"] for e in history if "spectral/p" in e]
    assert len(p_values) == 2
    if recipe.startswith("lora"):  # DynMuon on the LoRA factors; only the adapter is saved, and B left zero
        assert p_values[0] > 0 > p_values[-1]
        assert not (out / "model.safetensors").exists()
        adapter = load_file(out / "adapter_model.safetensors")
        lora_b = [t for name, t in adapter.items() if "lora_B" in name]
        assert lora_b and all(t.abs().max() > 0 for t in lora_b)
    else:  # Muon^p with p = 0.5 on every hidden matrix of the full model, starting from the saved weights
        assert p_values == [Constant(0.5).value] * 2
        before, after = load_file(model_dir / "model.safetensors"), load_file(out / "model.safetensors")
        assert before.keys() == after.keys()
        moved = [name for name in before if not torch.equal(before[name], after[name])]
        assert any("mlp.down_proj" in name for name in moved) and any("embed_tokens" in name for name in moved)
