"""One training run of a recipe through ``transformers.Trainer``: the model from ``from_pretrained`` or
``from_config`` (in LoRA adapters when the recipe has a ``peft`` section), the data of data.py.

The run directory holds ``recipe.yaml`` (the resolved recipe: every key, defaults included), ``trainer_state.json``
(its ``log_history``: every Trainer log — loss, eval_loss, learning_rate, spectral/p, ... — and the train_runtime),
the Trainer's ``checkpoint-*`` directories (per ``training.save_*``) and the final model and tokenizer. Logs stream
as they happen through ``training.report_to`` (tensorboard, wandb, ...).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .data import Prepared, prepare
from .errors import RecipeError
from .load import dump_recipe
from .schema import Recipe
from .summary import RunRecord, series

RUNNER_DEFAULTS = {"prediction_loss_only": True}
"""TrainingArguments the runner sets unless the recipe does: evaluation needs the loss only (keeping every logit
of an evaluation set costs gigabytes)."""


def training_arguments(recipe: Recipe, output_dir: Path) -> Any:
    """TrainingArguments from the recipe's ``training`` section plus its optimizer section."""
    from transformers import TrainingArguments

    opt = recipe.optimizer
    kwargs = {
        **RUNNER_DEFAULTS,
        **recipe.training,
        "output_dir": str(output_dir),
        "optim": opt.trainer_name,
        "optim_args": opt.optim_args_string(),
        "learning_rate": opt.lr,
        "weight_decay": opt.weight_decay,
    }
    try:
        return TrainingArguments(**kwargs)
    except (TypeError, ValueError) as err:
        raise RecipeError("training", f"TrainingArguments refused it: {err}", recipe.source) from None


def default_run_dir(recipe: Recipe, suffix: str = "") -> Path:
    """``training.output_dir`` if the recipe sets it, else ``runs/<recipe name><suffix>``."""
    if recipe.training.get("output_dir"):
        return Path(recipe.training["output_dir"])
    return Path("runs") / (Path(recipe.source or "recipe").stem + suffix)


def build_model(recipe: Recipe, tokenizer: Any) -> Any:
    """The model to train. A config-built model takes its vocabulary size and special token ids from the tokenizer
    unless its config sets them."""
    from transformers import AutoConfig, AutoModelForCausalLM

    section = recipe.model
    if section.config is not None:
        overrides = {k: v for k, v in section.config.items() if k != "model_type"}
        overrides.setdefault("vocab_size", len(tokenizer))
        for name in ("bos_token_id", "eos_token_id", "pad_token_id"):  # as the tokenizer says, unless the recipe does
            overrides.setdefault(name, getattr(tokenizer, name))
        model = AutoModelForCausalLM.from_config(AutoConfig.for_model(section.config["model_type"], **overrides))
    else:
        kwargs = {"dtype": section.dtype} if section.dtype else {}
        model = AutoModelForCausalLM.from_pretrained(section.name_or_path, **kwargs)
    if recipe.peft is not None:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(**recipe.peft))
    return model


def train(
    recipe: Recipe,
    run_dir: Path,
    prepared: Prepared | None = None,
    *,
    callbacks: Sequence[Any] = (),
    model: Any = None,
    trainer_kwargs: Mapping[str, Any] | None = None,
) -> RunRecord:
    """Train `recipe` into `run_dir`. `prepared`: data and tokenizer shared by several runs; `callbacks`: extra
    Trainer callbacks (e.g. measurements); `model`: a model built by the caller (default: the recipe's);
    `trainer_kwargs`: extra Trainer arguments (e.g. ``optimizer_cls_and_kwargs``, ``compute_metrics``)."""
    from transformers import Trainer, default_data_collator, set_seed

    run_dir.mkdir(parents=True, exist_ok=True)
    args = training_arguments(recipe, run_dir)
    if args.process_index == 0:
        (run_dir / "recipe.yaml").write_text(dump_recipe(recipe), encoding="utf-8")
    prepared = prepared or prepare(recipe, run_dir)
    set_seed(args.seed)  # before the model: a config-built model's weights come from this seed
    trainer = Trainer(
        model=model if model is not None else build_model(recipe, prepared.tokenizer),
        args=args,
        train_dataset=prepared.train,
        eval_dataset=prepared.eval,
        data_collator=default_data_collator,
        processing_class=prepared.tokenizer,
        callbacks=list(callbacks),
        **(trainer_kwargs or {}),
    )
    trainer.train(resume_from_checkpoint=args.resume_from_checkpoint)
    if prepared.eval is not None and trainer.state.global_step not in series(trainer.state.log_history, "eval_loss"):
        trainer.evaluate()  # the final eval loss is always measured at the last step
    trainer.save_model()
    trainer.save_state()
    return RunRecord.from_history(list(trainer.state.log_history), run_dir)
