"""A recipe's text → tokenizer → fixed-length blocks for causal-LM training (as transformers' run_clm.py):
documents are tokenized, joined with the EOS token in groups of 1000, and cut into ``block_size`` blocks whose
labels are the inputs (the model shifts them); each group's last partial block is dropped."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

from .errors import RecipeError
from .schema import DataSection, Recipe

GROUP = 1000
"""Documents joined before cutting into blocks (run_clm's value): the remainder of each group is dropped."""


@dataclass
class Prepared:
    """What every run of a recipe shares: the tokenizer and the tokenized training / evaluation blocks."""

    tokenizer: Any
    train: Any
    eval: Any | None


def load_texts(data: DataSection, split: str) -> Any:
    """A ``datasets.Dataset`` of the split's raw text, in the column ``data.text_column``."""
    from datasets import Dataset, load_dataset

    from ..corpus import BUILTIN_CORPORA

    if data.dataset in BUILTIN_CORPORA:
        return Dataset.from_dict({data.text_column: BUILTIN_CORPORA[data.dataset](split)})
    raw = load_dataset(data.dataset, data.name, data_files=data.data_files, split=split)
    if data.text_column not in raw.column_names:
        raise RecipeError("data.text_column", f"{data.text_column!r} is not a column of {data.dataset} [{split}]; "
                          f"columns: {', '.join(raw.column_names)}")  # fmt: skip
    return raw


def build_tokenizer(recipe: Recipe, raw_train: Any, directory: Path) -> Any:
    """The recipe's tokenizer; ``tokenizer.train`` trains one on the first ``max_chars`` characters of the training
    text and saves it in `directory` (the main process trains, the others load it)."""
    from accelerate import PartialState
    from transformers import AutoTokenizer

    section = recipe.tokenizer
    if section.train is None:
        return AutoTokenizer.from_pretrained(section.name_or_path or recipe.model.name_or_path)
    from ..corpus import train_tokenizer, truncate_texts

    state = PartialState()
    with state.main_process_first():
        if not state.is_main_process:
            return AutoTokenizer.from_pretrained(str(directory))
        texts = truncate_texts(list(raw_train[recipe.data.text_column]), section.train.max_chars)
        return train_tokenizer(texts, section.train.vocab_size, directory)


def lm_blocks(raw: Any, tokenizer: Any, data: DataSection, max_samples: int | None) -> Any:
    """Tokenize, join (EOS between documents) and cut into blocks; at most `max_samples` blocks, in order."""
    eos, column, block_size = tokenizer.eos_token_id, data.text_column, data.block_size

    def tokenize(batch: dict[str, list]) -> dict[str, list]:
        ids = tokenizer(batch[column])["input_ids"]
        return {"input_ids": [[*x, eos] if eos is not None and x[-1:] != [eos] else x for x in ids]}

    def group(batch: dict[str, list]) -> dict[str, list]:
        joined = list(chain.from_iterable(batch["input_ids"]))
        blocks = [joined[i : i + block_size] for i in range(0, len(joined) - block_size + 1, block_size)]
        return {"input_ids": blocks, "labels": [list(b) for b in blocks]}

    tokenized = raw.map(tokenize, batched=True, remove_columns=raw.column_names, desc="tokenize")
    blocks = tokenized.map(group, batched=True, batch_size=GROUP, desc=f"blocks of {block_size}")
    if len(blocks) == 0:
        raise RecipeError("data.block_size", f"{block_size} is longer than the whole split ({len(raw)} texts)")
    if max_samples is not None and max_samples < len(blocks):
        blocks = blocks.select(range(max_samples))
    return blocks


def prepare(recipe: Recipe, directory: Path) -> Prepared:
    """Tokenizer (trained into ``directory/tokenizer`` if the recipe says so) and the blocks of both splits."""
    from accelerate import PartialState

    data = recipe.data
    with PartialState().main_process_first():
        raw_train = load_texts(data, data.split)
        raw_eval = load_texts(data, data.eval_split) if data.eval_split else None
    tokenizer = build_tokenizer(recipe, raw_train, directory / "tokenizer")
    with PartialState().main_process_first():
        train = lm_blocks(raw_train, tokenizer, data, data.max_train_samples)
        evaluation = None if raw_eval is None else lm_blocks(raw_eval, tokenizer, data, data.max_eval_samples)
    return Prepared(tokenizer, train, evaluation)
