"""Real text that is on every machine without a hub, from the running Python itself.

``stdlib``  source code: the top-level ``*.py`` modules of the standard library, sorted by name (≈ 4.7 MB);
``pydoc``   English prose: the Python language reference topics that ``help()`` shows (``pydoc_data.topics``,
            ≈ 0.5 MB), sorted by topic.

Every 10th stdlib file and every 4th pydoc topic (≈ 68 K characters) are held out for evaluation. (The exact
content depends on the Python version.)
"""

from __future__ import annotations

import sysconfig
from pathlib import Path

import torch

SPLITS = ("train", "eval")
EVAL_EVERY = 10
PYDOC_EVAL_EVERY = 4  # 79 topics: every 10th would leave only 11 K characters to evaluate on


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
    texts: list[str] = []
    total = 0
    for path in stdlib_files(split):  # read lazily: stop once max_chars are in
        if max_chars is not None and total >= max_chars:
            break
        texts.append(path.read_text(encoding="utf-8", errors="replace"))
        total += len(texts[-1])
    return truncate_texts(texts, max_chars)


def pydoc_texts(split: str = "train", max_chars: int | None = None) -> list[str]:
    """The reference-documentation topics of a split (``pydoc_data.topics``), truncated to `max_chars` in total."""
    if split not in SPLITS:
        raise ValueError(f"pydoc_texts: split must be one of {SPLITS}, got {split!r}")
    from pydoc_data.topics import topics

    held_out = split == "eval"
    every = PYDOC_EVAL_EVERY
    texts = [topics[k] for i, k in enumerate(sorted(topics)) if (i % every == every - 1) == held_out]
    return truncate_texts(texts, max_chars)


BUILTIN_CORPORA = {"stdlib": stdlib_texts, "pydoc": pydoc_texts}
"""Built-in corpora by name: ``name(split, max_chars) -> list[str]``."""


def truncate_texts(texts: list[str], max_chars: int | None) -> list[str]:
    """The texts cut to `max_chars` characters in total (None: all of them)."""
    if max_chars is None:
        return texts
    out, total = [], 0
    for text in texts:
        if total >= max_chars:
            break
        out.append(text[: max_chars - total])
        total += len(out[-1])
    return out


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
