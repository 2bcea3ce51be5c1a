"""Supervised fine-tuning with TRL's SFTTrainer and DynMuon: the only change from an AdamW run is ``optim=``.

    python examples/trl_sft.py                                   # offline: a tiny Llama on stdlib source, full FT
    python examples/trl_sft.py --lora                            # the same with a PEFT LoRA adapter
    python examples/trl_sft.py --model Qwen/Qwen2.5-0.5B --lora  # a hub model (needs the hub)

The same from TRL's command line (our names are valid there once hf_spectral is installed):

    trl sft --model_name_or_path Qwen/Qwen2.5-0.5B --dataset_name trl-lib/Capybara \\
        --use_peft --lora_r 16 --optim dynmuon --learning_rate 2e-4 --output_dir out

Offline, the default model is a tiny Llama built from a config and saved locally, with a byte-level BPE tokenizer
trained on the Python standard library's own source, which is also the text it fine-tunes on.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import hf_spectral  # noqa: F401  (registers --optim dynmuon; the .pth autoload does the same without an import)
from hf_spectral.corpus import stdlib_texts, train_tokenizer


def tiny_local_model(directory: Path) -> Path:
    """A small Llama (random weights) and a locally trained tokenizer, saved for ``from_pretrained``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = train_tokenizer(stdlib_texts("train", max_chars=300_000), 512, directory)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(directory)
    return directory


def text_dataset(split: str, max_chars: int, chunk_chars: int = 600):
    """Standard-library source cut into ``{"text": ...}`` rows (TRL's language-modeling format)."""
    from datasets import Dataset

    rows = []
    for text in stdlib_texts(split, max_chars=max_chars):
        rows += [{"text": text[i : i + chunk_chars]} for i in range(0, len(text), chunk_chars)]
    return Dataset.from_list(rows)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="a model id or directory (default: a tiny local Llama)")
    ap.add_argument("--output_dir", type=Path, default=Path("runs/trl-sft"))
    ap.add_argument("--optim", default="dynmuon")
    ap.add_argument("--optim_args", default=None)
    ap.add_argument("--learning_rate", type=float, default=2e-3)
    ap.add_argument("--max_steps", type=int, default=40)
    ap.add_argument("--logging_steps", type=int, default=5)
    ap.add_argument("--save_steps", type=int, default=20)
    ap.add_argument("--lora", action="store_true", help="train a LoRA adapter (r = 8, all linear layers)")
    ap.add_argument("--resume_from_checkpoint", default=None)
    args = ap.parse_args(argv)

    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    model = args.model or str(tiny_local_model(args.output_dir.parent / f"{args.output_dir.name}-tiny-model"))
    config = SFTConfig(
        output_dir=str(args.output_dir),
        optim=args.optim,  # the one change from an AdamW run ("adamw_torch")
        optim_args=args.optim_args,
        learning_rate=args.learning_rate,
        max_steps=args.max_steps,
        per_device_train_batch_size=8,
        max_length=128,
        logging_steps=args.logging_steps,
        save_steps=args.save_steps,
        eval_strategy="no",
        report_to="none",
        use_cpu=args.model is None,
        seed=0,
    )
    peft_config = LoraConfig(r=8, lora_alpha=16, target_modules="all-linear") if args.lora else None
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=text_dataset("train", max_chars=200_000),
        peft_config=peft_config,
    )
    trainer.train(resume_from_checkpoint=args.resume_from_checkpoint)
    trainer.save_state()
    optimizer = getattr(trainer.optimizer, "optimizer", trainer.optimizer)  # behind accelerate's wrapper
    print("OPTIMIZER", type(optimizer).__name__)
    return {"log_history": trainer.state.log_history, "optimizer": optimizer}


if __name__ == "__main__":
    main()
