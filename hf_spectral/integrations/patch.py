"""Make ``--optim dynmuon`` (and the other names) valid in unmodified Hugging Face scripts.

Small, idempotent patches, each applied when its module is first imported (or at once, if it already is):

- ``transformers.training_args``: add our names to ``OptimizerNames`` (so ``TrainingArguments`` and
  ``HfArgumentParser``'s ``--optim`` choices accept them) and check ``--optim_args`` for our names in
  ``TrainingArguments.__post_init__``, so a bad value fails at argument parsing, naming the key;
- ``transformers.trainer_optimizer`` (transformers 5): register our optimizer handler in ``_OPTIMIZER_HANDLERS``
  — transformers' own extension point;
- ``transformers.trainer``: put :class:`SpectralCallback` in ``DEFAULT_CALLBACKS`` (before the reporting
  integrations, so TensorBoard / W&B see our log keys); on transformers 4.x, which has no handler registry, wrap
  ``Trainer.get_optimizer_cls_and_kwargs`` so our names build our optimizer and every other name goes on to
  transformers' own code unchanged;
- ``transformers.hf_argparser`` and TRL's copy ``trl.scripts._hf_argparser``: a bad ``--optim_args`` for our names
  ends as one argparse error line with exit code 2.

Tested on transformers 5.x and 4.57 (the last 4.x release).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

from .optim_args import OPTIMIZER_NAMES, OptimArgsError

_PATCHED_FLAG = "_hf_spectral_patched"


def add_enum_member(enum_cls: Any, name: str, value: str) -> Any:
    """Add ``enum_cls.NAME = value`` to a ``str`` Enum at run time (idempotent)."""
    existing = enum_cls._value2member_map_.get(value)
    if existing is not None:
        return existing
    member = enum_cls._member_type_.__new__(enum_cls, value)
    member._name_, member._value_ = name, value
    member.__objclass__ = enum_cls
    member._sort_order_ = len(enum_cls._member_names_)
    setattr(enum_cls, name, member)
    enum_cls._member_map_[name] = member
    enum_cls._value2member_map_[value] = member
    enum_cls._member_names_.append(name)
    return member


def patch_training_args(module: ModuleType) -> None:
    names = module.OptimizerNames
    for value in OPTIMIZER_NAMES:
        add_enum_member(names, value.upper(), value)
    cls = module.TrainingArguments
    if getattr(cls.__post_init__, _PATCHED_FLAG, False):
        return
    original = cls.__post_init__

    def __post_init__(self: Any) -> None:
        original(self)
        name = getattr(self.optim, "value", self.optim)
        if name in OPTIMIZER_NAMES:
            from .trainer import resolve_training_args, validate_resolved

            try:
                validate_resolved(resolve_training_args(self))
            except (ValueError, TypeError) as err:
                raise OptimArgsError(name, self.optim_args, str(err)) from err

    setattr(__post_init__, _PATCHED_FLAG, True)
    __post_init__.__wrapped__ = original  # type: ignore[attr-defined]
    cls.__post_init__ = __post_init__


def patch_trainer_optimizer(module: ModuleType) -> None:
    from .trainer import optimizer_handler

    handlers = getattr(module, "_OPTIMIZER_HANDLERS", None)
    if handlers is None:
        raise RuntimeError(
            "hf_spectral needs transformers' optimizer handler registry (transformers.trainer_optimizer."
            "_OPTIMIZER_HANDLERS, transformers >= 5); upgrade transformers or pass "
            "optimizer_cls_and_kwargs=hf_spectral.trainer_optimizer(...) to Trainer"
        )
    enum = sys.modules["transformers.training_args"].OptimizerNames
    for value in OPTIMIZER_NAMES:
        handlers[enum(value)] = optimizer_handler


def patch_trainer(module: ModuleType) -> None:
    from .callback import SpectralCallback

    defaults = module.DEFAULT_CALLBACKS
    if SpectralCallback not in defaults:
        defaults.append(SpectralCallback)
    if importlib.util.find_spec("transformers.trainer_optimizer") is None:
        patch_optimizer_dispatch(module.Trainer)
        patch_optimizer_factory(module.Trainer)


def patch_optimizer_dispatch(trainer_cls: Any) -> None:
    """transformers 4.x: ``Trainer.get_optimizer_cls_and_kwargs(args, model)`` is one long if/elif over
    ``OptimizerNames`` that ends in "unsupported optimizer"; answer for our names before it (idempotent)."""
    original = trainer_cls.__dict__["get_optimizer_cls_and_kwargs"]
    if getattr(original, _PATCHED_FLAG, False):
        return
    original_fn = original.__func__ if isinstance(original, staticmethod) else original

    def get_optimizer_cls_and_kwargs(args: Any, model: Any = None) -> tuple[Any, Any]:
        if getattr(args.optim, "value", args.optim) in OPTIMIZER_NAMES:
            from .trainer import optimizer_cls_and_kwargs

            return optimizer_cls_and_kwargs(args, model)
        return original_fn(args, model)

    setattr(get_optimizer_cls_and_kwargs, _PATCHED_FLAG, True)
    get_optimizer_cls_and_kwargs.__wrapped__ = original_fn  # type: ignore[attr-defined]
    trainer_cls.get_optimizer_cls_and_kwargs = staticmethod(get_optimizer_cls_and_kwargs)


def patch_optimizer_factory(trainer_cls: Any) -> None:
    """transformers 4.x: build ``Trainer(optimizer_cls_and_kwargs=hf_spectral.trainer_optimizer(...))`` as 5.x does
    (``factory()(model)``); 4.x would call the factory with its own two parameter groups (idempotent)."""
    original = trainer_cls.create_optimizer
    if getattr(original, _PATCHED_FLAG, False):
        return

    def create_optimizer(self: Any, *args: Any, **kwargs: Any) -> Any:
        from .trainer import SpectralOptimizerFactory

        pair = self.optimizer_cls_and_kwargs
        if self.optimizer is None and pair is not None and isinstance(pair[0], SpectralOptimizerFactory):
            self.optimizer = pair[0]()(self.model, **pair[1])
            return self.optimizer
        return original(self, *args, **kwargs)

    setattr(create_optimizer, _PATCHED_FLAG, True)
    create_optimizer.__wrapped__ = original  # type: ignore[attr-defined]
    trainer_cls.create_optimizer = create_optimizer


def patch_argument_parser(module: ModuleType) -> None:
    """``HfArgumentParser.parse_args_into_dataclasses`` (transformers', and the copy TRL's CLI parses with): a bad
    ``--optim_args`` for our names ends as argparse's own errors do — one line on stderr, exit code 2 — not a
    traceback (idempotent)."""
    cls = module.HfArgumentParser
    original = cls.parse_args_into_dataclasses
    if getattr(original, _PATCHED_FLAG, False):
        return

    def parse_args_into_dataclasses(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return original(self, *args, **kwargs)
        except OptimArgsError as err:
            self.exit(2, f"{self.prog}: error: argument --optim_args: {err.reason} (given: {err.given})\n")

    setattr(parse_args_into_dataclasses, _PATCHED_FLAG, True)
    parse_args_into_dataclasses.__wrapped__ = original  # type: ignore[attr-defined]
    cls.parse_args_into_dataclasses = parse_args_into_dataclasses


PATCHERS: dict[str, Callable[[ModuleType], None]] = {
    "transformers.training_args": patch_training_args,
    "transformers.hf_argparser": patch_argument_parser,
    "trl.scripts._hf_argparser": patch_argument_parser,  # TRL's CLI parses with its own copy of the class
    "transformers.trainer_optimizer": patch_trainer_optimizer,
    "transformers.trainer": patch_trainer,
}
"""Module name → patch, in dependency order."""


def apply(name: str, module: ModuleType) -> None:
    PATCHERS[name](module)
