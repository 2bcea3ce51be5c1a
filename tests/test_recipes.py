"""Recipe schema and loading: every shipped recipe validates (plain and --quick) and round-trips through its resolved
YAML; unknown keys and bad values fail naming the key and the file; --set / quick overrides; compare's per-optimizer
switch; the TrainingArguments a recipe produces."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import yaml

from hf_spectral.recipes import RecipeError, dump_recipe, load_recipe, parse_set
from hf_spectral.recipes.fields import dataclass_in, hints
from hf_spectral.recipes.runner import training_arguments
from hf_spectral.recipes.schema import OptimizerOverride, OptimizerSection, Recipe

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))


def test_the_four_recipes_of_the_issue_are_shipped():
    assert {p.stem for p in RECIPES} >= {"demo", "lora_llama_1b", "full_qwen_0.5b", "gpt_pretrain"}


@pytest.mark.parametrize("quick", [False, True], ids=["full", "quick"])
@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_every_recipe_validates_and_round_trips(path, quick, tmp_path):
    recipe = load_recipe(path, quick=quick)
    resolved = tmp_path / "recipe.yaml"
    resolved.write_text(dump_recipe(recipe))
    assert load_recipe(resolved) == recipe  # the resolved file alone reproduces the run
    assert recipe.launch.accelerate_config and Path(recipe.launch.accelerate_config).is_file()


def test_demo_is_the_offline_main_job():
    recipe = load_recipe(ROOT / "recipes" / "demo.yaml")
    assert recipe.model.config is not None and recipe.model.name_or_path is None  # built from a config
    assert recipe.tokenizer.train is not None and recipe.data.dataset == "stdlib"  # nothing from the hub
    assert recipe.compare.optimizers == ["dynmuon", "muon", "adamw"]
    quick = load_recipe(ROOT / "recipes" / "demo.yaml", quick=True)
    assert quick.training["max_steps"] < recipe.training["max_steps"] // 10


def test_hub_recipes_use_the_documented_setups():
    lora = load_recipe(ROOT / "recipes" / "lora_llama_1b.yaml")
    assert lora.peft["r"] > 0 and lora.optimizer.name == "dynmuon"
    assert Path(lora.launch.accelerate_config).name == "fsdp2_lora.yaml"
    full = load_recipe(ROOT / "recipes" / "full_qwen_0.5b.yaml")
    assert full.peft is None and full.optimizer.name == "muonp"
    assert Path(full.launch.accelerate_config).name == "fsdp2.yaml"
    gpt = load_recipe(ROOT / "recipes" / "gpt_pretrain.yaml")
    assert gpt.model.config["model_type"] == "gpt2" and gpt.compare.optimizers == ["dynmuon", "muon", "adamw"]


def _write(tmp_path, data) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _demo_data() -> dict:
    return yaml.safe_load((ROOT / "recipes" / "demo.yaml").read_text())


@pytest.mark.parametrize(
    "key,value,message",
    [
        ("training.max_stepz", 3, "unknown TrainingArguments argument (did you mean 'max_steps'?)"),
        ("model.hidden_size", 3, "unknown key"),
        ("model.config.hiden_size", 3, "unknown LlamaConfig attribute (did you mean 'hidden_size'?)"),
        ("data.blocksize", 3, "unknown key"),
        ("optimizer.optim_args.p_strat", 0.3, "unknown key 'p_strat'"),
        ("peft.rank", 8, "unknown LoraConfig field"),
        ("sections", 1, "unknown key"),
        ("optimizer.overrides.adamw.lrr", 1e-3, "unknown key (did you mean 'lr'?)"),
        ("tokenizer.train.vocab_sise", 512, "unknown key (did you mean 'vocab_size'?)"),
    ],
)
def test_unknown_key_names_the_key_and_the_file(tmp_path, key, value, message):
    data = _demo_data()
    node = data
    for part in key.split(".")[:-1]:
        node = node.setdefault(part, {})
    node[key.split(".")[-1]] = value
    path = _write(tmp_path, data)
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    text = str(info.value)
    assert text.startswith(f"{path}: ")
    name = key if not key.startswith("optimizer.optim_args") else "optimizer.optim_args"
    assert f": {name}: " in text and message in text


@pytest.mark.parametrize(
    "override,key,message",
    [
        (("training.max_steps", "ten"), "training.max_steps", "Input should be a valid integer, unable to parse"),
        (("training.eval_strategy", "sometimes"), "training.eval_strategy", "be 'no', 'steps' or 'epoch'; got 'some"),
        (("training.learning_rate", 0.1), "training.learning_rate", "set it as optimizer.lr"),
        (("optimizer.name", "adamx"), "optimizer.name", "unknown optimizer name"),
        (("optimizer.lr", -1.0), "optimizer.lr", "Input should be greater than or equal to 0; got -1.0"),
        (("optimizer.optim_args", {"p_end": -3}), "optimizer.optim_args", "end must be in [-1.0, 2.0]"),
        (("data.block_size", 0), "data.block_size", "Input should be greater than or equal to 1; got 0"),
        (("data.split", "validation"), "data.split", "stdlib splits are train, eval"),
        (("data.name", "wikitext-2-raw-v1"), "data.name", "does not apply to the built-in dataset stdlib"),
        (("data.eval_split", None), "data.eval_split", "no evaluation split"),
        (("tokenizer.train", None), "tokenizer", "needs tokenizer.name_or_path or tokenizer.train"),
        (("model.name_or_path", "some/model"), "model", "exactly one of name_or_path"),
        (("compare.optimizers", ["muon", "lion"]), "compare.optimizers[1]", "unknown optimizer name"),
        (("compare.baseline", ["adamx"]), "compare.baseline[0]", "unknown optimizer name"),
        (("compare.seeds", 0), "compare.seeds", "Input should be greater than or equal to 1"),
        (("launch.accelerate_config", "missing.yaml"), "launch.accelerate_config", "no such file"),
        (("peft", {"r": 4, "bias": "some"}), "peft.bias", "Input should be 'none', 'all' or 'lora_only'; got 'some'"),
        (("quick", {"trainin.max_steps": 1}), "quick.trainin.max_steps", "unknown section"),
        (("compare.optimizers", ["muon", 3.5]), "compare.optimizers[1]", "unknown optimizer name"),
        (("compare.optimizers", "muon"), "compare.optimizers", "Input should be a valid list; got 'muon'"),
        (("tokenizer.train.vocab_size", 100), "tokenizer.train.vocab_size", "greater than or equal to 258"),
        (("optimizer.overrides", {"adamw": {"lr": "fast"}}), "optimizer.overrides.adamw.lr", "a valid number"),
        (("optimizer.overrides", {"adamx": {"lr": 0.1}}), "optimizer.overrides.adamx", "unknown optimizer name"),
        (("training.bf16", "maybe"), "training.bf16", "Input should be a valid boolean"),
    ],
)
def test_bad_value_names_the_key_and_the_file(override, key, message):
    path = ROOT / "recipes" / "demo.yaml"
    with pytest.raises(RecipeError) as info:
        load_recipe(path, [override])
    assert str(info.value).startswith(f"{path}: {key}: ")
    assert message in str(info.value)


def test_yaml_that_is_not_a_mapping_names_the_file(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- model\n- data\n")
    with pytest.raises(RecipeError, match=re.escape(f"{path}: recipe: must be a mapping")):
        load_recipe(path)


def test_set_values_are_read_as_yaml():
    assert parse_set("training.max_steps=10") == ("training.max_steps", 10)
    assert parse_set("compare.optimizers=[muon, adamw]") == ("compare.optimizers", ["muon", "adamw"])
    assert parse_set("model.config=null") == ("model.config", None)
    assert parse_set("training.bf16=true") == ("training.bf16", True)
    with pytest.raises(RecipeError, match=re.escape("expected KEY.SUB=VALUE")):
        parse_set("training.max_steps")


def test_overrides_apply_after_quick_and_null_restores_the_default(tmp_path):
    path = ROOT / "recipes" / "demo.yaml"
    sets = [parse_set("training.max_steps=7"), parse_set("optimizer.lr=3e-4"), parse_set("data.max_eval_samples=null"),
            parse_set("data.block_size=null"), parse_set("training.eval_steps=null")]  # fmt: skip
    recipe = load_recipe(path, sets, quick=True)
    assert recipe.data.block_size == 512 and "eval_steps" not in recipe.training  # null: the default
    assert recipe.training["max_steps"] == 7  # --set wins over quick
    assert recipe.optimizer.lr == pytest.approx(3e-4)  # YAML reads 3e-4 as a string; the schema makes it a number
    assert recipe.data.max_eval_samples is None
    assert recipe.training["logging_steps"] == load_recipe(path, quick=True).training["logging_steps"]


def test_model_from_pretrained_replaces_config():
    recipe = load_recipe(ROOT / "recipes" / "demo.yaml", [("model.config", None), ("model.name_or_path", "/x")])
    assert recipe.model.name_or_path == "/x" and recipe.model.config is None


def test_compare_switches_optimizer_keeping_lr_and_dropping_foreign_optim_args():
    section = OptimizerSection(
        name="dynmuon", lr=1e-3, weight_decay=0.1, optim_args={"p_start": 0.25},
        overrides={"adamw": OptimizerOverride(lr=5e-4)},
    )  # fmt: skip
    same = section.for_name("dynmuon")
    assert same.optim_args == {"p_start": 0.25} and same.lr == 1e-3
    muon = section.for_name("muon")
    assert muon.optim_args is None and muon.lr == 1e-3 and muon.weight_decay == 0.1
    adamw = section.for_name("adamw")
    assert adamw.lr == 5e-4 and adamw.weight_decay == 0.1 and adamw.trainer_name == "adamw_torch"


def test_for_run_sets_seed_and_optimizer_on_a_copy():
    recipe = load_recipe(ROOT / "recipes" / "gpt_pretrain.yaml")
    run = recipe.for_run("muon", 7)
    assert run.training["seed"] == 7 and run.optimizer.name == "muon"
    assert run.optimizer.optim_args == {"split_fused": True}  # from optimizer.overrides.muon
    assert recipe.training["seed"] == 0 and recipe.optimizer.name == "dynmuon"  # the original is untouched
    assert recipe.for_run("adamw", 0).optimizer.optim_args is None


def test_optim_args_mapping_becomes_the_trainer_string():
    section = OptimizerSection(name="dynmuon", optim_args={"p_start": 0.25, "nesterov": False,
                                                           "adamw_patterns": ["lm_head*", "score*"]})  # fmt: skip
    assert section.optim_args_string() == "p_start=0.25,nesterov=false,adamw_patterns=lm_head*|score*"
    with pytest.raises(RecipeError, match=re.escape("optimizer.optim_args.method: values cannot contain")):
        OptimizerSection(optim_args={"method": "a,b"}).optim_args_string()


def test_training_arguments_carry_the_optimizer_section(tmp_path):
    recipe = load_recipe(ROOT / "recipes" / "demo.yaml", [("optimizer.optim_args", {"p_start": 0.25})])
    args = training_arguments(recipe, tmp_path)
    assert args.optim.value == "dynmuon" and args.optim_args == "p_start=0.25"
    assert args.learning_rate == recipe.optimizer.lr and args.weight_decay == recipe.optimizer.weight_decay
    assert args.max_steps == recipe.training["max_steps"] and args.output_dir == str(tmp_path)
    assert args.prediction_loss_only  # the runner's default: evaluation keeps no logits


def test_training_arguments_refusal_names_the_file(tmp_path):
    recipe = load_recipe(ROOT / "recipes" / "demo.yaml", [("training.save_strategy", "steps"),
                                                          ("training.load_best_model_at_end", True),
                                                          ("training.eval_strategy", "epoch")])  # fmt: skip
    with pytest.raises(RecipeError, match=r"demo\.yaml: training: TrainingArguments refused it"):
        training_arguments(recipe, tmp_path)


def schema_keys(cls: type = Recipe, prefix: str = "") -> list[str]:
    """The dotted key of every field of the schema, nested sections included."""
    keys = []
    for f in (f for f in dataclasses.fields(cls) if f.init):
        keys.append(prefix + f.name)
        sub, per_name = dataclass_in(hints(cls)[f.name])
        if sub is not None:
            keys.extend(schema_keys(sub, f"{prefix}{f.name}.<name>." if per_name else f"{prefix}{f.name}."))
    return keys


def test_docs_describe_every_schema_key():
    """docs/recipes.md names every key of every section, so the reference cannot fall behind the schema."""
    text = (ROOT / "docs" / "recipes.md").read_text()
    keys = schema_keys()
    assert "tokenizer.train.vocab_size" in keys and "compare.baseline" in keys
    missing = [key for key in keys if f"`{key}`" not in text]
    assert not missing


def test_baselines_are_all_but_the_candidate_unless_named():
    recipe = load_recipe(ROOT / "recipes" / "demo.yaml")
    assert recipe.compare.baselines() == ["muon", "adamw"]
    assert load_recipe(ROOT / "recipes" / "gpt_pretrain.yaml").compare.baselines() == ["muon", "adamw"]
    only = load_recipe(ROOT / "recipes" / "demo.yaml", [("compare.optimizers", ["muon"])])
    assert only.compare.baselines() == ["muon"]
    narrowed = load_recipe(ROOT / "recipes" / "gpt_pretrain.yaml", [("compare.optimizers", ["dynmuon", "adamw"])])
    assert narrowed.compare.baselines() == ["adamw"]  # --optim dropped muon from the named baselines
