"""A recipe's data: built-in corpora and load_dataset files are tokenized, joined with EOS and cut into blocks
whose labels are the inputs; a locally trained tokenizer has the requested size; a missing column is named."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hf_spectral.corpus import stdlib_texts
from hf_spectral.recipes import RecipeError, load_recipe
from hf_spectral.recipes.data import prepare

DEMO = Path(__file__).resolve().parents[1] / "recipes" / "demo.yaml"


def _expected_blocks(tokenizer, texts: list[str], block_size: int) -> int:
    tokens = sum(len(tokenizer(t)["input_ids"]) + 1 for t in texts)  # + the EOS after every document
    return tokens // block_size


@pytest.mark.slow
def test_builtin_corpus_with_a_trained_tokenizer(tmp_path):
    recipe = load_recipe(DEMO, [("tokenizer.train", {"vocab_size": 300, "max_chars": 50_000}),
                                ("data.block_size", 32), ("data.max_train_samples", None)])  # fmt: skip
    prepared = prepare(recipe, tmp_path)
    assert len(prepared.tokenizer) == 300 and (tmp_path / "tokenizer" / "tokenizer.json").is_file()
    assert len(prepared.eval) == recipe.data.max_eval_samples
    assert len(prepared.train) == _expected_blocks(prepared.tokenizer, stdlib_texts("train"), 32)
    row = prepared.train[0]
    assert len(row["input_ids"]) == 32 and row["labels"] == row["input_ids"]
    eos = prepared.tokenizer.eos_token_id
    joined = [i for r in prepared.train.select(range(200))["input_ids"] for i in r]
    assert eos in joined  # documents are separated by EOS


def test_load_dataset_text_files(text_files, tokenizer_dir, tmp_path):
    sets = [("tokenizer.train", None), ("tokenizer.name_or_path", str(tokenizer_dir)), ("data.dataset", "text"),
            ("data.data_files", {"train": str(text_files["train"]), "validation": str(text_files["eval"])}),
            ("data.eval_split", "validation"), ("data.block_size", 64), ("data.max_eval_samples", 4)]  # fmt: skip
    prepared = prepare(load_recipe(DEMO, sets), tmp_path)
    lines = text_files["train"].read_text().splitlines()  # the text builder makes one document per line
    expected = _expected_blocks(prepared.tokenizer, lines, 64)
    batches = -(-len(lines) // 1000)  # as run_clm: each 1000 documents are joined and cut, the remainder dropped
    assert expected - batches < len(prepared.train) <= expected
    assert len(prepared.eval) == 4 and all(len(ids) == 64 for ids in prepared.eval["input_ids"])


def test_missing_text_column_is_named(text_files, tokenizer_dir, tmp_path):
    sets = [("tokenizer.train", None), ("tokenizer.name_or_path", str(tokenizer_dir)), ("data.dataset", "text"),
            ("data.data_files", str(text_files["train"])), ("data.eval_split", None), ("data.text_column", "content"),
            ("training.eval_strategy", "no")]  # fmt: skip
    with pytest.raises(RecipeError, match=re.escape("data.text_column: 'content' is not a column of text")):
        prepare(load_recipe(DEMO, sets), tmp_path)
