"""The recipe schema: one dataclass per YAML section, each field documented in its ``help`` metadata.

A recipe is built from a plain mapping by :func:`from_mapping` (unknown keys and ill-typed values raise
:class:`RecipeError` naming the key) and then checked as a whole by :meth:`Recipe.validate`. An empty value
(``null``) means "the default", so ``--set model.config=null`` removes a section's entry.
"""

from __future__ import annotations

import copy
import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .coerce import coerce
from .errors import RecipeError, unknown_key
from .passthrough import check_lora, check_model_config, check_training_args

DTYPES = ("auto", "float32", "bfloat16", "float16")
ADAMW_ALIAS = {"adamw": "adamw_torch"}
"""Short names accepted next to the hf_spectral and transformers optimizer names."""


@dataclass
class ModelSection:
    """What is trained: a pretrained model, or a new one from a config (random initialisation)."""

    name_or_path: str | None = field(
        default=None, metadata={"help": "hub id or local directory for AutoModelForCausalLM.from_pretrained"}
    )
    config: dict[str, Any] | None = field(
        default=None,
        metadata={
            "help": "model_type plus config overrides, for AutoConfig.for_model + AutoModelForCausalLM.from_config"
        },
    )
    dtype: str | None = field(
        default=None, metadata={"help": "weights dtype for from_pretrained: auto, float32, bfloat16, float16"}
    )

    def validate(self, key: str) -> None:
        if (self.name_or_path is None) == (self.config is None):
            raise RecipeError(key, "set exactly one of name_or_path (from_pretrained) and config (from_config)")
        if self.config is not None:
            self.config = check_model_config(self.config, f"{key}.config")
        if self.dtype is not None and self.dtype not in DTYPES:
            raise RecipeError(f"{key}.dtype", f"must be one of {', '.join(DTYPES)}; got {self.dtype!r}")


@dataclass
class TokenizerTrain:
    """A byte-level BPE tokenizer trained on the recipe's own training text (hf_spectral.corpus.train_tokenizer)."""

    vocab_size: int = field(
        default=4096, metadata={"help": "vocabulary size, including the 256 byte tokens and <|endoftext|>"}
    )
    max_chars: int | None = field(
        default=None, metadata={"help": "characters of training text to learn the merges from (default: all)"}
    )


@dataclass
class TokenizerSection:
    """Which tokenizer: a hub id / directory, a locally trained one, or (neither given) the model's own."""

    name_or_path: str | None = field(
        default=None, metadata={"help": "hub id or local directory for AutoTokenizer (default: the model's)"}
    )
    train: TokenizerTrain | None = field(
        default=None, metadata={"help": "train a BPE tokenizer on the training text instead"}
    )

    def validate(self, key: str, model: ModelSection) -> None:
        if self.name_or_path is not None and self.train is not None:
            raise RecipeError(key, "set at most one of name_or_path and train")
        if self.name_or_path is None and self.train is None and model.name_or_path is None:
            raise RecipeError(key, "a model built from model.config needs tokenizer.name_or_path or tokenizer.train")
        if self.train is not None:
            if self.train.vocab_size < 258:
                raise RecipeError(
                    f"{key}.train.vocab_size", f"must be ≥ 258 (256 bytes + 2); got {self.train.vocab_size}"
                )
            _positive(self.train.max_chars, f"{key}.train.max_chars")


@dataclass
class DataSection:
    """The text: ``stdlib`` (the Python standard library's source, offline) or any ``datasets.load_dataset`` source,
    tokenized, concatenated and cut into blocks of ``block_size`` tokens."""

    dataset: str = field(
        default="stdlib",
        metadata={
            "help": "stdlib or pydoc (built into Python), or a load_dataset path (hub id, directory, text, json)"
        },
    )
    name: str | None = field(
        default=None, metadata={"help": "load_dataset configuration name (e.g. wikitext-103-raw-v1)"}
    )
    data_files: str | list[str] | dict[str, Any] | None = field(
        default=None, metadata={"help": "load_dataset data_files"}
    )
    split: str = field(default="train", metadata={"help": "training split (slices work: train[:99%]); stdlib: train"})
    eval_split: str | None = field(
        default=None, metadata={"help": "evaluation split (validation, train[99%:]; stdlib: eval); none: no eval"}
    )
    text_column: str = field(default="text", metadata={"help": "column holding the text"})
    block_size: int = field(default=512, metadata={"help": "tokens per training sequence"})
    max_train_samples: int | None = field(default=None, metadata={"help": "use at most this many training blocks"})
    max_eval_samples: int | None = field(default=None, metadata={"help": "use at most this many evaluation blocks"})

    def validate(self, key: str) -> None:
        from ..corpus import BUILTIN_CORPORA, SPLITS

        if self.dataset in BUILTIN_CORPORA:
            for name in ("name", "data_files"):
                if getattr(self, name) is not None:
                    raise RecipeError(f"{key}.{name}", f"does not apply to the built-in dataset {self.dataset}")
            for name in ("split", "eval_split"):
                value = getattr(self, name)
                if value is not None and value not in SPLITS:
                    raise RecipeError(f"{key}.{name}", f"{self.dataset} splits are {', '.join(SPLITS)}; got {value!r}")
        for name in ("block_size", "max_train_samples", "max_eval_samples"):
            _positive(getattr(self, name), f"{key}.{name}")


@dataclass
class OptimizerOverride:
    """Per-optimizer values for ``compare`` (e.g. a lower lr for adamw); unset fields keep the section's."""

    lr: float | None = field(default=None, metadata={"help": "learning rate"})
    weight_decay: float | None = field(default=None, metadata={"help": "weight decay"})
    optim_args: dict[str, Any] | str | None = field(default=None, metadata={"help": "optim_args of this optimizer"})


@dataclass
class OptimizerSection:
    """The optimizer, as TrainingArguments' optim / optim_args / learning_rate / weight_decay."""

    name: str = field(
        default="dynmuon",
        metadata={"help": "muon, muonp, dynmuon, spectral_adam, spectral, adamw, or any transformers optim"},
    )
    lr: float = field(default=5e-5, metadata={"help": "learning rate (TrainingArguments.learning_rate)"})
    weight_decay: float = field(
        default=0.0, metadata={"help": "decoupled weight decay (TrainingArguments.weight_decay)"}
    )
    optim_args: dict[str, Any] | str | None = field(
        default=None,
        metadata={"help": "optim_args keys (see `hf-spectral optimizers`), as a mapping or a 'k=v,k=v' string"},
    )
    overrides: dict[str, OptimizerOverride] = field(
        default_factory=dict, metadata={"help": "per-optimizer lr / weight_decay / optim_args for compare"}
    )

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
        own_args = self.optim_args if name == self.name else None
        return OptimizerSection(
            name=name,
            lr=self.lr if over.lr is None else over.lr,
            weight_decay=self.weight_decay if over.weight_decay is None else over.weight_decay,
            optim_args=own_args if over.optim_args is None else over.optim_args,
        )

    def validate(self, key: str) -> None:
        from ..integrations.optim_args import OPTIMIZER_NAMES, resolve
        from ..integrations.trainer import validate_resolved

        _check_optimizer_name(self.name, f"{key}.name")
        for name in self.overrides:
            _check_optimizer_name(name, f"{key}.overrides.{name}")
        _non_negative(self.lr, f"{key}.lr")
        _non_negative(self.weight_decay, f"{key}.weight_decay")
        if self.name in OPTIMIZER_NAMES:
            try:
                args = self.optim_args_string(f"{key}.optim_args")
                validate_resolved(resolve(self.name, args, lr=self.lr, weight_decay=self.weight_decay))
            except RecipeError:
                raise
            except (TypeError, ValueError) as err:
                raise RecipeError(f"{key}.optim_args", str(err).removeprefix("optim_args: ")) from None
        for name in self.overrides:
            self.for_name(name).validate(f"{key}.overrides.{name}")


@dataclass
class LaunchSection:
    """How to launch on GPUs (informational: `hf-spectral check` and `train` print the command)."""

    accelerate_config: str | None = field(
        default=None, metadata={"help": "accelerate config file, relative to the recipe file"}
    )
    num_processes: int | None = field(
        default=None, metadata={"help": "processes (GPUs) to launch; default: the accelerate config's"}
    )

    def validate(self, key: str, base_dir: Path | None) -> None:
        _positive(self.num_processes, f"{key}.num_processes")
        if self.accelerate_config is None:
            return
        path = Path(self.accelerate_config)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        if not path.is_file():
            raise RecipeError(f"{key}.accelerate_config", f"no such file: {path}")
        self.accelerate_config = str(path.resolve())

    def command(self, recipe_path: str) -> str:
        """The launch command line for `recipe_path`."""
        parts = ["accelerate launch"]
        if self.accelerate_config:
            parts.append(f"--config_file {_relative(self.accelerate_config)}")
        if self.num_processes:
            parts.append(f"--num_processes {self.num_processes}")
        return " ".join([*parts, "-m hf_spectral train", recipe_path])


@dataclass
class CompareSection:
    """What `hf-spectral compare` runs: the same recipe once per optimizer and seed."""

    optimizers: list[str] = field(
        default_factory=lambda: ["dynmuon", "muon", "adamw"],
        metadata={"help": "optimizer names to compare (the first is the candidate)"},
    )
    seeds: int = field(default=1, metadata={"help": "runs per optimizer, with seeds training.seed, +1, +2, ..."})
    baseline: list[str] | None = field(
        default=None,
        metadata={"help": "optimizers whose best final eval loss is the target (default: all but the first)"},
    )

    def validate(self, key: str) -> None:
        if not self.optimizers or len(set(self.optimizers)) != len(self.optimizers):
            raise RecipeError(f"{key}.optimizers", f"must be a non-empty list without repeats; got {self.optimizers}")
        for i, name in enumerate(self.optimizers):
            _check_optimizer_name(name, f"{key}.optimizers[{i}]")
        _positive(self.seeds, f"{key}.seeds")
        for i, name in enumerate(self.baseline or ()):
            _check_optimizer_name(name, f"{key}.baseline[{i}]")

    def baselines(self) -> list[str]:
        """The baseline optimizers: those of `baseline` that are compared (``--optim`` may drop some), else every
        optimizer but the first (or the only one)."""
        named = [name for name in self.baseline or () if name in self.optimizers]
        return named or self.optimizers[1:] or list(self.optimizers)


@dataclass
class Recipe:
    """A whole recipe. ``source`` is the file it came from (not a YAML key)."""

    model: ModelSection = field(default_factory=ModelSection, metadata={"help": "the model"})
    tokenizer: TokenizerSection = field(default_factory=TokenizerSection, metadata={"help": "the tokenizer"})
    data: DataSection = field(default_factory=DataSection, metadata={"help": "the training (and evaluation) text"})
    peft: dict[str, Any] | None = field(
        default=None, metadata={"help": "peft.LoraConfig fields: train LoRA adapters instead of all weights"}
    )
    optimizer: OptimizerSection = field(default_factory=OptimizerSection, metadata={"help": "the optimizer"})
    training: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "transformers.TrainingArguments fields, passed through"}
    )
    launch: LaunchSection = field(default_factory=LaunchSection, metadata={"help": "how to launch on GPUs"})
    compare: CompareSection = field(default_factory=CompareSection, metadata={"help": "what hf-spectral compare runs"})
    quick: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "dotted overrides applied by --quick (a smoke test of the recipe)"},
    )
    source: str | None = field(default=None, repr=False, compare=False, metadata={"yaml": False})

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
        sections = [f.name for f in dataclasses.fields(self) if f.metadata.get("yaml", True) and f.name != "quick"]
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
        out = dataclasses.asdict(self)
        out.pop("source")
        return out


def from_mapping(cls: type, data: Any, key: str = "") -> Any:
    """An instance of dataclass `cls` from a mapping: unknown keys and ill-typed values raise RecipeError."""
    if not isinstance(data, Mapping):
        raise RecipeError(key or "recipe", f"must be a mapping of keys to values; got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.metadata.get("yaml", True)}
    values = {}
    for name, value in data.items():
        path = f"{key}.{name}" if key else str(name)
        if name not in fields:
            raise unknown_key(path, list(fields))
        if value is not None:
            values[name] = coerce(value, hints[name], path)
    return cls(**values)


def _check_optimizer_name(name: str, key: str) -> None:
    from transformers.training_args import OptimizerNames

    from ..integrations.optim_args import OPTIMIZER_NAMES

    if name in OPTIMIZER_NAMES or name in ADAMW_ALIAS or name in OptimizerNames._value2member_map_:
        return
    names = [*OPTIMIZER_NAMES, *ADAMW_ALIAS]
    others = [n.value for n in OptimizerNames if n.value not in OPTIMIZER_NAMES]
    raise unknown_key(key, [*names, *others], "optimizer name", f"{', '.join(names)}, or a transformers --optim name")


def _positive(value: int | None, key: str) -> None:
    if value is not None and value < 1:
        raise RecipeError(key, f"must be ≥ 1; got {value}")


def _non_negative(value: float, key: str) -> None:
    if value < 0:
        raise RecipeError(key, f"must be ≥ 0; got {value}")


def _relative(path: str) -> str:
    """`path` relative to the working directory when it lies below it."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


def schema_keys(cls: type = Recipe, prefix: str = "") -> list[tuple[str, Any, str]]:
    """(dotted key, default, help) of every key of the schema, nested sections included, in file order."""
    hints = typing.get_type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        if not f.metadata.get("yaml", True):
            continue
        key = f"{prefix}{f.name}"
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        nested = [t for t in (hints[f.name], *typing.get_args(hints[f.name])) if dataclasses.is_dataclass(t)]
        rows.append((key, None if nested else default, f.metadata.get("help", "")))
        if nested:
            per_name = typing.get_origin(hints[f.name]) is dict  # optimizer.overrides.<name>.lr
            rows.extend(schema_keys(nested[0], f"{key}.<name>." if per_name else f"{key}."))
    return rows
