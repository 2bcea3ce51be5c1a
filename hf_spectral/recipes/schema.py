"""The recipe schema: one pydantic dataclass per YAML section (types, choices and bounds in the annotations), each
field documented in its ``help`` metadata.

:func:`~.fields.build` makes a :class:`Recipe` from a plain mapping (unknown keys and ill-typed values raise
:class:`RecipeError` naming the key), then :meth:`Recipe.validate` checks it as a whole. An empty value (``null``)
means "the default", so ``--set model.config=null`` removes a section's entry.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field
from pydantic.dataclasses import dataclass

from .errors import RecipeError, unknown_key
from .fields import STRICT, NullMeansDefault, check_lora, check_model_config, check_training_args

ADAMW_ALIAS = {"adamw": "adamw_torch"}
"""Short names accepted next to the hf_spectral and transformers optimizer names."""
COMPARED = ("dynmuon", "muon", "adamw")
section = dataclass(config=STRICT)


def known_optimizer(name: str) -> str:
    """`name` if it is an hf_spectral, short (adamw) or transformers optimizer name."""
    from transformers.training_args import OptimizerNames

    from ..integrations.optim_args import OPTIMIZER_NAMES

    names = [*OPTIMIZER_NAMES, *ADAMW_ALIAS]
    accepted = [*names, *(n.value for n in OptimizerNames if n.value not in OPTIMIZER_NAMES)]
    if name not in accepted:
        listed = f"{', '.join(names)}, or a transformers --optim name"
        raise ValueError(unknown_key(name, accepted, "optimizer name", listed).message)
    return name


AtLeast0 = Annotated[float, Field(ge=0)]
AtLeast1 = Annotated[int, Field(ge=1)]
OptimizerName = Annotated[str, AfterValidator(known_optimizer)]


def doc(text: str, default: Any = None, factory: Any = None) -> Any:
    """A dataclass field with its help text (and its default, or a factory of defaults)."""
    if factory is None:
        return field(default=default, metadata={"help": text})
    return field(default_factory=factory, metadata={"help": text})


@section
class ModelSection(NullMeansDefault):
    """What is trained: a pretrained model, or a new one from a config (random initialisation)."""

    name_or_path: str | None = doc("hub id or local directory for AutoModelForCausalLM.from_pretrained")
    config: dict[str, Any] | None = doc("model_type plus config attributes, for AutoConfig.for_model + from_config")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] | None = doc("weights dtype for from_pretrained")

    def validate(self, key: str) -> None:
        if (self.name_or_path is None) == (self.config is None):
            raise RecipeError(key, "set exactly one of name_or_path (from_pretrained) and config (from_config)")
        if self.config is not None:
            self.config = check_model_config(self.config, f"{key}.config")


@section
class TokenizerTrain(NullMeansDefault):
    """A byte-level BPE tokenizer trained on the recipe's own training text (hf_spectral.corpus.train_tokenizer)."""

    vocab_size: Annotated[int, Field(ge=258)] = doc("vocabulary size, with the 256 byte tokens and <|endoftext|>", 4096)
    max_chars: AtLeast1 | None = doc("characters of training text to learn the merges from (default: all)")


@section
class TokenizerSection(NullMeansDefault):
    """Which tokenizer: a hub id / directory, a locally trained one, or (neither given) the model's own."""

    name_or_path: str | None = doc("hub id or local directory for AutoTokenizer (default: the model's)")
    train: TokenizerTrain | None = doc("train a BPE tokenizer on the training text instead")

    def validate(self, key: str, model: ModelSection) -> None:
        if self.name_or_path is not None and self.train is not None:
            raise RecipeError(key, "set at most one of name_or_path and train")
        if self.name_or_path is None and self.train is None and model.name_or_path is None:
            raise RecipeError(key, "a model built from model.config needs tokenizer.name_or_path or tokenizer.train")


@section
class DataSection(NullMeansDefault):
    """The text: ``stdlib`` (the Python standard library's source, offline) or any ``datasets.load_dataset`` source,
    tokenized, concatenated and cut into blocks of ``block_size`` tokens."""

    dataset: str = doc("stdlib or pydoc (built into Python), or a load_dataset path (hub id, directory)", "stdlib")
    name: str | None = doc("load_dataset configuration name (e.g. wikitext-103-raw-v1)")
    data_files: str | list[str] | dict[str, Any] | None = doc("load_dataset data_files")
    split: str = doc("training split (slices work: train[:99%]); stdlib: train", "train")
    eval_split: str | None = doc("evaluation split (validation, train[99%:]; stdlib: eval); none: no eval")
    text_column: str = doc("column holding the text", "text")
    block_size: AtLeast1 = doc("tokens per training sequence", 512)
    max_train_samples: AtLeast1 | None = doc("use at most this many training blocks")
    max_eval_samples: AtLeast1 | None = doc("use at most this many evaluation blocks")

    def validate(self, key: str) -> None:
        from ..corpus import BUILTIN_CORPORA, SPLITS

        if self.dataset in BUILTIN_CORPORA:
            for name in ("name", "data_files"):
                if getattr(self, name) is not None:
                    raise RecipeError(f"{key}.{name}", f"does not apply to the built-in dataset {self.dataset}")
            for name in ("split", "eval_split"):
                if getattr(self, name) not in (None, *SPLITS):
                    raise RecipeError(f"{key}.{name}", f"{self.dataset} splits are {', '.join(SPLITS)}; got "
                                      f"{getattr(self, name)!r}")  # fmt: skip


@section
class OptimizerOverride(NullMeansDefault):
    """Per-optimizer values for ``compare`` (e.g. a lower lr for adamw); unset fields keep the section's."""

    lr: AtLeast0 | None = doc("learning rate")
    weight_decay: AtLeast0 | None = doc("weight decay")
    optim_args: dict[str, Any] | str | None = doc("optim_args of this optimizer")


@section
class OptimizerSection(NullMeansDefault):
    """The optimizer, as TrainingArguments' optim / optim_args / learning_rate / weight_decay."""

    name: OptimizerName = doc("dynmuon, muon, muonp, spectral_adam, spectral, adamw or a transformers optim", "dynmuon")
    lr: AtLeast0 = doc("learning rate (TrainingArguments.learning_rate)", 5e-5)
    weight_decay: AtLeast0 = doc("decoupled weight decay (TrainingArguments.weight_decay)", 0.0)
    optim_args: dict[str, Any] | str | None = doc("--optim_args keys, as a mapping or a 'k=v,k=v' string")
    overrides: dict[OptimizerName, OptimizerOverride] = doc("per optimizer: lr, weight_decay, optim_args", None, dict)

    @property
    def trainer_name(self) -> str:
        """The name TrainingArguments(optim=...) takes (adamw → adamw_torch)."""
        return ADAMW_ALIAS.get(self.name, self.name)

    def optim_args_string(self, key: str = "optimizer.optim_args") -> str | None:
        """optim_args as TrainingArguments takes them: "k=v,k=v" (lists joined with |, booleans true/false)."""
        if self.optim_args is None or isinstance(self.optim_args, str):
            return self.optim_args
        items = []
        for k, v in self.optim_args.items():
            text = "|".join(map(str, v)) if isinstance(v, list) else str(v).lower() if isinstance(v, bool) else str(v)
            if "," in text or "=" in text:
                raise RecipeError(f"{key}.{k}", f"values cannot contain ',' or '='; got {text!r}")
            items.append(f"{k}={text}")
        return ",".join(items)

    def for_name(self, name: str) -> OptimizerSection:
        """This section switched to optimizer `name` for compare: lr and weight_decay carry over, optim_args only
        when the name is unchanged (p keys of dynmuon mean nothing to adamw), then ``overrides[name]`` applies."""
        over = self.overrides.get(name, OptimizerOverride())
        return OptimizerSection(
            name=name,
            lr=self.lr if over.lr is None else over.lr,
            weight_decay=self.weight_decay if over.weight_decay is None else over.weight_decay,
            optim_args=(self.optim_args if name == self.name else None) if over.optim_args is None else over.optim_args,
        )

    def validate(self, key: str) -> None:
        from ..integrations.optim_args import OPTIMIZER_NAMES, resolve
        from ..integrations.trainer import validate_resolved

        if self.name in OPTIMIZER_NAMES:
            args = self.optim_args_string(f"{key}.optim_args")
            try:
                validate_resolved(resolve(self.name, args, lr=self.lr, weight_decay=self.weight_decay))
            except (TypeError, ValueError) as err:
                raise RecipeError(f"{key}.optim_args", str(err).removeprefix("optim_args: ")) from None
        for name in self.overrides:
            self.for_name(name).validate(f"{key}.overrides.{name}")


@section
class LaunchSection(NullMeansDefault):
    """How to launch on GPUs (informational: `hf-spectral check` and `train` print the command)."""

    accelerate_config: str | None = doc("accelerate config file, relative to the recipe file")
    num_processes: AtLeast1 | None = doc("processes (GPUs) to launch; default: the accelerate config's")

    def validate(self, key: str, base_dir: Path | None) -> None:
        if self.accelerate_config is not None:
            path = (base_dir or Path()) / self.accelerate_config  # an absolute path stays as it is
            if not path.is_file():
                raise RecipeError(f"{key}.accelerate_config", f"no such file: {path}")
            self.accelerate_config = str(path.resolve())

    def command(self, recipe_path: str) -> str:
        """The launch command line for `recipe_path` (the config relative to the working directory if below it)."""
        parts = ["accelerate launch"]
        if self.accelerate_config:
            config, cwd = Path(self.accelerate_config), Path.cwd()
            parts.append(f"--config_file {config.relative_to(cwd) if config.is_relative_to(cwd) else config}")
        if self.num_processes:
            parts.append(f"--num_processes {self.num_processes}")
        return " ".join([*parts, "-m hf_spectral train", recipe_path])


@section
class CompareSection(NullMeansDefault):
    """What `hf-spectral compare` runs: the same recipe once per optimizer and seed."""

    optimizers: list[OptimizerName] = doc("optimizer names (the first is the candidate)", None, lambda: [*COMPARED])
    seeds: AtLeast1 = doc("runs per optimizer, with seeds training.seed, +1, +2, ...", 1)
    baseline: list[OptimizerName] | None = doc(
        "optimizers whose best final eval loss is the target (default: the rest)"
    )

    def validate(self, key: str) -> None:
        if not self.optimizers or len(set(self.optimizers)) != len(self.optimizers):
            raise RecipeError(f"{key}.optimizers", f"must be a non-empty list without repeats; got {self.optimizers}")

    def baselines(self) -> list[str]:
        """The baseline optimizers: those of `baseline` that are compared (``--optim`` may drop some), else every
        optimizer but the first (or the only one)."""
        named = [name for name in self.baseline or () if name in self.optimizers]
        return named or self.optimizers[1:] or list(self.optimizers)


@section
class Recipe(NullMeansDefault):
    """A whole recipe. ``source`` is the file it came from (not a YAML key)."""

    model: ModelSection = doc("the model", None, ModelSection)
    tokenizer: TokenizerSection = doc("the tokenizer", None, TokenizerSection)
    data: DataSection = doc("the training (and evaluation) text", None, DataSection)
    peft: dict[str, Any] | None = doc("peft.LoraConfig fields: train LoRA adapters instead of all weights")
    optimizer: OptimizerSection = doc("the optimizer", None, OptimizerSection)
    training: dict[str, Any] = doc("transformers.TrainingArguments fields, passed through", None, dict)
    launch: LaunchSection = doc("how to launch on GPUs", None, LaunchSection)
    compare: CompareSection = doc("what hf-spectral compare runs", None, CompareSection)
    quick: dict[str, Any] = doc("dotted overrides applied by --quick (a smoke test of the recipe)", None, dict)
    source: str | None = field(default=None, init=False, repr=False, compare=False)

    def validate(self) -> Recipe:
        """Check every section and the sections against each other; returns self (values normalised)."""
        self.model.validate("model")
        self.tokenizer.validate("tokenizer", self.model)
        self.data.validate("data")
        if self.peft is not None:
            self.peft = check_lora(self.peft, "peft")
        self.training = check_training_args(self.training, "training")
        if self.training.get("eval_strategy", "no") != "no" and self.data.eval_split is None:
            raise RecipeError("data.eval_split", f"training.eval_strategy is {self.training['eval_strategy']!r} but "
                              "there is no evaluation split")  # fmt: skip
        self.optimizer.validate("optimizer")
        self.compare.validate("compare")
        for i, name in enumerate(self.compare.optimizers):
            if name not in self.optimizer.overrides and name != self.optimizer.name:
                self.optimizer.for_name(name).validate(f"compare.optimizers[{i}]")
        self.launch.validate("launch", Path(self.source).parent if self.source else None)
        sections = [f.name for f in dataclasses.fields(self) if f.init and f.name != "quick"]
        for dotted in self.quick:
            if str(dotted).split(".")[0] not in sections:
                raise unknown_key(f"quick.{dotted}", sections, "section")
        return self

    def for_run(self, optimizer: str, seed: int) -> Recipe:
        """A copy for one compare run: the optimizer switched to `optimizer` and ``training.seed`` set."""
        run = copy.deepcopy(self)
        run.optimizer = self.optimizer.for_name(optimizer)
        run.training["seed"] = seed
        return run

    def to_dict(self) -> dict[str, Any]:
        """Every key with its value (defaults included), ready for YAML."""
        return {key: value for key, value in dataclasses.asdict(self).items() if key != "source"}
