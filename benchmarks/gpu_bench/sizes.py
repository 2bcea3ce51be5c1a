"""Problem sizes of benchmarks/gpu.py: FULL for one H100/H200 inside about 8 minutes, TINY for a CPU check in CI."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TINYLLAMA: dict[str, Any] = {
    "vocab_size": 32000, "hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 22,
    "num_attention_heads": 32, "num_key_value_heads": 4, "max_position_embeddings": 2048,
}  # fmt: skip
"""TinyLlama-1.1B's shape (1.10 B parameters), built from this config with random weights (no hub)."""
SMALL_LLAMA: dict[str, Any] = {
    "vocab_size": 32000, "hidden_size": 512, "intermediate_size": 1408, "num_hidden_layers": 8,
    "num_attention_heads": 8, "num_key_value_heads": 4, "max_position_embeddings": 1024,
}  # fmt: skip
"""The quality run's model: 56 M parameters (33 M of them in the untied embedding and head)."""
QWEN3_MOE_4_LAYERS: dict[str, Any] = {
    "vocab_size": None, "hidden_size": 2048, "moe_intermediate_size": 768, "intermediate_size": 6144,
    "num_experts": 128, "num_experts_per_tok": 8, "num_hidden_layers": 4, "num_attention_heads": 32,
    "num_key_value_heads": 4, "head_dim": 128, "max_position_embeddings": 2048,
}  # fmt: skip
"""Four layers of Qwen3-30B-A3B's shape (128 experts of 2048 × 768 per layer, 8 active): 2.5 B parameters, 2.4 B of
them in 1536 stacked expert matrices."""
TINY_MOE: dict[str, Any] = {
    "vocab_size": None, "hidden_size": 64, "moe_intermediate_size": 32, "intermediate_size": 128, "num_experts": 4,
    "num_experts_per_tok": 2, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
    "head_dim": 16, "max_position_embeddings": 128,
}  # fmt: skip
"""--tiny's MoE model."""
TINY_LLAMA: dict[str, Any] = {
    "vocab_size": None, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 128,
}  # fmt: skip
"""--tiny's model for every section (vocab_size None: the tokenizer's)."""


@dataclass(frozen=True)
class Sizes:
    """Every size the sections use."""

    name: str
    budget_s: float
    """Default wall-clock budget of the whole run, from the script's start."""
    pytest_timeout_s: float
    kernel_shapes: tuple[tuple[int, ...], ...]
    """(m, n) matrices and one (B, m, n) stack."""
    kernel_p: tuple[float, ...]
    kernel_warmup: int
    kernel_repeats: int
    svd_check_max_elements: int
    """Check the construction's target (at the first p) against a float64 SVD (shape_svd) on shapes up to this
    many elements."""
    llama: dict[str, Any]
    """The model of the optimizer-step and Trainer sections (vocab_size None: the tokenizer's)."""
    moe: dict[str, Any]
    """The mixture-of-experts model (Qwen3-MoE config) of the optimizer-step section."""
    step_warmup: int
    step_repeats: int
    corpus_chars: int | None
    """Characters of standard-library source to train the tokenizer on and cut into blocks (None: all)."""
    tokenizer_vocab: int
    seq_len: int
    micro_batch: int
    trainer_warmup_steps: int
    trainer_steps: int
    """Measured Trainer steps (after the warm-up steps)."""
    lora_r: int
    quality_llama: dict[str, Any]
    quality_steps: int
    quality_batch: int
    quality_seq_len: int
    quality_eval_blocks: int
    quality_lr: float


FULL = Sizes(
    name="full",
    budget_s=450.0,
    pytest_timeout_s=150.0,
    kernel_shapes=((4096, 4096), (4096, 11008), (8192, 8192), (22, 2048, 2048)),
    kernel_p=(-0.25, 0.5),
    kernel_warmup=3,
    kernel_repeats=10,
    svd_check_max_elements=4096 * 4096,
    llama=TINYLLAMA,
    moe=QWEN3_MOE_4_LAYERS,
    step_warmup=2,
    step_repeats=10,
    corpus_chars=None,
    tokenizer_vocab=32000,
    seq_len=1024,
    micro_batch=4,
    trainer_warmup_steps=3,
    trainer_steps=10,
    lora_r=16,
    quality_llama=SMALL_LLAMA,
    quality_steps=240,
    quality_batch=8,
    quality_seq_len=512,
    quality_eval_blocks=128,
    quality_lr=1e-3,
)

TINY = Sizes(
    name="tiny",
    budget_s=240.0,
    pytest_timeout_s=120.0,
    kernel_shapes=((64, 64), (64, 176), (128, 128), (3, 32, 48)),
    kernel_p=(-0.25, 0.5),
    kernel_warmup=1,
    kernel_repeats=2,
    svd_check_max_elements=128 * 128,
    llama=TINY_LLAMA,
    moe=TINY_MOE,
    step_warmup=1,
    step_repeats=2,
    corpus_chars=150_000,
    tokenizer_vocab=512,
    seq_len=64,
    micro_batch=2,
    trainer_warmup_steps=1,
    trainer_steps=2,
    lora_r=4,
    quality_llama=TINY_LLAMA,
    quality_steps=20,
    quality_batch=4,
    quality_seq_len=64,
    quality_eval_blocks=8,
    quality_lr=3e-3,
)
