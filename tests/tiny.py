"""Tiny models built from configs (no hub) and a real-text batch stream, shared by the tests."""

from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from hf_spectral.corpus import byte_blocks, stdlib_texts


def tiny_llama(*, tie: bool = False, vocab_size: int = 256, hidden: int = 64, layers: int = 2, seed: int = 0):
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=tie,
    )
    return LlamaForCausalLM(config)


def text_batches(steps: int, batch_size: int = 8, block_size: int = 64, seed: int = 0, max_chars: int = 400_000):
    """`steps` batches of byte-level blocks drawn from standard-library source text."""
    blocks = byte_blocks(stdlib_texts("train", max_chars=max_chars), block_size)
    g = torch.Generator().manual_seed(seed)
    return [blocks[torch.randint(len(blocks), (batch_size,), generator=g)] for _ in range(steps)]
