"""Task (c) of the quality suite: sequence classification with real labels, offline.

Which standard-library package does a block of source code come from? Eight packages of the running Python
(``PACKAGES``), every 5th file of each held out for evaluation, each file cut into blocks of ``block_size`` tokens
(blocks never cross files), the same number of blocks per package (balanced classes). The model is the task-(a)
base model loaded as ``AutoModelForSequenceClassification`` (a new, randomly initialised ``score`` head on the
pre-trained backbone): the usual "fine-tune a classifier from a pre-trained LM" job.
"""

from __future__ import annotations

import random
import sysconfig
from pathlib import Path
from typing import Any

PACKAGES = ("asyncio", "email", "http", "idlelib", "multiprocessing", "tkinter", "unittest", "xml")
EVAL_EVERY = 5
SKIP_PARTS = {"test", "tests", "idle_test"}


def package_files(package: str, split: str) -> list[Path]:
    """The package's ``*.py`` files of a split (tests excluded), in a fixed order."""
    root = Path(sysconfig.get_paths()["stdlib"]) / package
    files = sorted(f for f in root.rglob("*.py") if not SKIP_PARTS & set(f.relative_to(root).parts))
    if not files:
        raise FileNotFoundError(f"classify: no sources for the standard-library package {package!r}")
    held_out = split == "eval"
    return [f for i, f in enumerate(files) if (i % EVAL_EVERY == EVAL_EVERY - 1) == held_out]


def package_blocks(tokenizer: Any, split: str, block_size: int, per_class: int, seed: int = 0) -> Any:
    """A balanced ``datasets.Dataset`` of (input_ids, labels): `per_class` random blocks per package."""
    from datasets import Dataset

    rng = random.Random(seed)
    ids, labels = [], []
    for label, package in enumerate(PACKAGES):
        blocks = []
        for path in package_files(package, split):
            tokens = tokenizer(path.read_text(encoding="utf-8", errors="replace"))["input_ids"]
            blocks += [tokens[i : i + block_size] for i in range(0, len(tokens) - block_size + 1, block_size)]
        if len(blocks) < per_class:
            raise ValueError(f"classify: {package} [{split}] has {len(blocks)} blocks, fewer than {per_class}")
        ids += rng.sample(blocks, per_class)
        labels += [label] * per_class
    return Dataset.from_dict({"input_ids": ids, "labels": labels})


def classifier(base: Path, tokenizer: Any) -> Any:
    """The base model with a new sequence-classification head over `PACKAGES`."""
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(
        str(base), num_labels=len(PACKAGES), pad_token_id=tokenizer.pad_token_id
    )


def accuracy(prediction: Any) -> dict[str, float]:
    """``compute_metrics`` for the Trainer: the fraction of blocks assigned to their package."""
    logits, labels = prediction.predictions, prediction.label_ids
    return {"accuracy": float((logits.argmax(-1) == labels).mean())}
