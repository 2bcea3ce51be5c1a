"""Real text that is on every machine without a hub: the Python standard library's own source files.

The corpus is the top-level ``*.py`` modules of the running interpreter's standard library, sorted by name;
every 10th file is held out for evaluation. (Its exact content therefore depends on the Python version.)
"""

from __future__ import annotations

import sysconfig
from pathlib import Path

import torch

SPLITS = ("train", "eval")
EVAL_EVERY = 10


def stdlib_files(split: str = "train") -> list[Path]:
    """The standard library modules of a split, in a fixed order."""
    if split not in SPLITS:
        raise ValueError(f"stdlib_files: split must be one of {SPLITS}, got {split!r}")
    files = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))
    if not files:
        raise FileNotFoundError("stdlib_files: no standard-library sources found next to this Python interpreter")
    held_out = split == "eval"
    return [f for i, f in enumerate(files) if (i % EVAL_EVERY == EVAL_EVERY - 1) == held_out]


def stdlib_texts(split: str = "train", max_chars: int | None = None) -> list[str]:
    """The source text of each file of a split, truncated to `max_chars` characters in total."""
    texts, total = [], 0
    for path in stdlib_files(split):
        text = path.read_text(encoding="utf-8", errors="replace")
        if max_chars is not None:
            text = text[: max_chars - total]
        texts.append(text)
        total += len(text)
        if max_chars is not None and total >= max_chars:
            break
    return texts


def byte_blocks(texts: list[str], block_size: int) -> torch.Tensor:
    """UTF-8 bytes of the concatenated texts as (N, block_size) int64 token ids in [0, 256) (no tokenizer needed)."""
    data = torch.frombuffer(bytearray("\n".join(texts).encode("utf-8")), dtype=torch.uint8).long()
    n = data.numel() // block_size
    return data[: n * block_size].view(n, block_size)


def write_text_files(directory: str | Path, max_chars: int | None = None) -> dict[str, Path]:
    """Write the train and eval splits as ``train.txt`` / ``eval.txt`` (for ``load_dataset("text", ...)``)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split in SPLITS:
        paths[split] = directory / f"{split}.txt"
        paths[split].write_text("\n".join(stdlib_texts(split, max_chars)), encoding="utf-8")
    return paths


def train_tokenizer(texts: list[str], vocab_size: int, directory: str | Path):
    """Train a byte-level BPE tokenizer on `texts` locally and save it as a ``PreTrainedTokenizerFast`` directory
    (loadable with ``AutoTokenizer.from_pretrained(directory)``)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    fast.save_pretrained(str(directory))
    return fast
