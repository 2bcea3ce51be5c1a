"""A causal-LM training script written like transformers' examples/pytorch/language-modeling/run_clm.py:
HfArgumentParser + TrainingArguments + Trainer, and nothing from hf_spectral. The tests run it unmodified with
``--optim dynmuon`` through each activation path (autoload hook, ``python -m hf_spectral run``, ``hf-spectral run``).

The model is built from a config (no hub download); data and tokenizer come from local files.
"""

import json
import sys
from dataclasses import dataclass, field
from itertools import chain

from datasets import load_dataset
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    HfArgumentParser,
    Trainer,
    TrainingArguments,
    default_data_collator,
    set_seed,
)


@dataclass
class ModelArguments:
    tokenizer_name: str = field(metadata={"help": "local tokenizer directory"})
    model_type: str = field(default="llama")
    config_overrides: str = field(default="hidden_size=64,intermediate_size=128,num_hidden_layers=2")
    lora_r: int = field(default=0, metadata={"help": "LoRA rank (0: full fine-tuning)"})


@dataclass
class DataTrainingArguments:
    train_file: str = field(metadata={"help": "a .txt file"})
    validation_file: str | None = field(default=None)
    block_size: int = field(default=64)
    max_train_samples: int | None = field(default=None)


def main():
    parser = HfArgumentParser((ModelArguments, DataTrainingArguments, TrainingArguments))
    model_args, data_args, training_args = parser.parse_args_into_dataclasses()
    set_seed(training_args.seed)

    data_files = {"train": data_args.train_file}
    if data_args.validation_file:
        data_files["validation"] = data_args.validation_file
    raw = load_dataset("text", data_files=data_files)
    tokenizer = AutoTokenizer.from_pretrained(model_args.tokenizer_name)

    config = AutoConfig.for_model(model_args.model_type, vocab_size=len(tokenizer))
    config.update_from_string(model_args.config_overrides)
    model = AutoModelForCausalLM.from_config(config)
    if model_args.lora_r:
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(r=model_args.lora_r, lora_alpha=2 * model_args.lora_r, target_modules=["q_proj", "v_proj"])
        model = get_peft_model(model, lora)

    tokenized = raw.map(lambda b: tokenizer(b["text"]), batched=True, remove_columns=["text"])
    block = data_args.block_size

    def group_texts(examples):
        joined = {k: list(chain(*examples[k])) for k in examples}
        total = (len(joined["input_ids"]) // block) * block
        out = {k: [v[i : i + block] for i in range(0, total, block)] for k, v in joined.items()}
        out["labels"] = out["input_ids"].copy()
        return out

    lm = tokenized.map(group_texts, batched=True)
    train = lm["train"]
    if data_args.max_train_samples is not None:
        train = train.select(range(data_args.max_train_samples))
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=train,
        eval_dataset=lm.get("validation"),
        data_collator=default_data_collator,
    )
    result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    trainer.save_state()
    optimizer = trainer.optimizer.optimizer
    kind = type(next(trainer.model.parameters())).__name__
    lines = [f"OPTIMIZER {type(optimizer).__name__}", f"PARAMETERS {kind} {'fsdp' if trainer.is_fsdp_enabled else ''}"]
    shaper = getattr(optimizer, "shaper", None)  # diagnostics for the distributed tests
    if shaper is not None:
        lines.append(f"SHAPED {shaper.matrices_shaped} DATA_PARALLEL {shaper.replica_group is not None}")
    lines.append(f"METRICS {json.dumps(result.metrics)}")
    for line in lines:  # one write per line: the ranks of a multi-process run print at once, unbuffered
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
