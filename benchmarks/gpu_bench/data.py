"""Real text without a hub or `datasets`: the standard library's source, a BPE tokenizer trained on it here, token
blocks as a plain torch Dataset, and Llama models built from a config with random weights."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from transformers import LlamaConfig, LlamaForCausalLM

from hf_spectral.corpus import stdlib_texts, train_tokenizer


class TokenCorpus:
    """Standard-library source (every 10th file held out as "eval") as token ids of a locally trained tokenizer."""

    def __init__(self, workdir: Path, vocab_size: int, max_chars: int | None) -> None:
        self.workdir, self.vocab_size, self.max_chars = Path(workdir), vocab_size, max_chars
        self._ids: dict[str, Tensor] = {}

    @cached_property
    def tokenizer(self) -> Any:
        return train_tokenizer(stdlib_texts("train", self.max_chars), self.vocab_size, self.workdir / "tokenizer")

    def ids(self, split: str) -> Tensor:
        """The split's files tokenized and joined by the end-of-text token, as one int64 vector."""
        if split not in self._ids:
            tok = self.tokenizer
            eos = [tok.eos_token_id]
            encoded = tok(stdlib_texts(split, self.max_chars), add_special_tokens=False)["input_ids"]
            self._ids[split] = torch.tensor([i for ids in encoded for i in (*ids, *eos)], dtype=torch.long)
        return self._ids[split]

    def blocks(self, split: str, block_size: int) -> Tensor:
        """(N, block_size) consecutive token blocks of the split."""
        ids = self.ids(split)
        n = ids.numel() // block_size
        if n == 0:
            raise ValueError(f"TokenCorpus: the {split} split has {ids.numel()} tokens, fewer than one {block_size}")
        return ids[: n * block_size].view(n, block_size)


class BlockDataset(torch.utils.data.Dataset):
    """Causal-LM examples {"input_ids", "labels"} from token blocks (the model shifts the labels itself)."""

    def __init__(self, blocks: Tensor) -> None:
        self.blocks = blocks

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {"input_ids": self.blocks[i], "labels": self.blocks[i]}


def build_llama(config: dict[str, Any], vocab_size: int, device: torch.device, seed: int = 0) -> LlamaForCausalLM:
    """A float32 Llama with random weights built directly on `device`; ``vocab_size: None`` in `config` takes
    `vocab_size`."""
    return _random_model(LlamaForCausalLM, LlamaConfig, config, vocab_size, device, seed)


def build_moe(config: dict[str, Any], vocab_size: int, device: torch.device, seed: int = 0) -> torch.nn.Module:
    """A float32 Qwen3-MoE with random weights built directly on `device` (``vocab_size: None``: `vocab_size`)."""
    from transformers import Qwen3MoeConfig, Qwen3MoeForCausalLM

    return _random_model(Qwen3MoeForCausalLM, Qwen3MoeConfig, config, vocab_size, device, seed)


def _random_model(
    model_cls: type, config_cls: type, config: dict[str, Any], vocab_size: int, device: torch.device, seed: int
) -> torch.nn.Module:
    kwargs = dict(config)
    if kwargs.get("vocab_size") is None:
        kwargs["vocab_size"] = vocab_size
    torch.manual_seed(seed)
    with device:
        return model_cls(config_cls(**kwargs))


def parameter_count(model: torch.nn.Module, trainable_only: bool = False) -> int:
    return sum(t.numel() for t in model.parameters() if t.requires_grad or not trainable_only)
