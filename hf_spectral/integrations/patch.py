"""Make ``--optim dynmuon`` (and the other names) valid in unmodified Hugging Face scripts.

Three small, idempotent patches, each applied when its transformers module is first imported (or at once, if it
already is):

- ``transformers.training_args``: add our names to ``OptimizerNames`` (so ``TrainingArguments`` and
  ``HfArgumentParser``'s ``--optim`` choices accept them) and check ``--optim_args`` for our names in
  ``TrainingArguments.__post_init__``, so a bad value fails at argument parsing, naming the key;
- ``transformers.trainer_optimizer``: register our optimizer handler in ``_OPTIMIZER_HANDLERS`` — transformers'
  own extension point;
- ``transformers.trainer``: put :class:`SpectralCallback` in ``DEFAULT_CALLBACKS`` (before the reporting
  integrations, so TensorBoard / W&B see our log keys).

Tested against the installed transformers (5.x; ``_OPTIMIZER_HANDLERS`` is required).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

from .optim_args import OPTIMIZER_NAMES

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

            validate_resolved(resolve_training_args(self))

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


PATCHERS: dict[str, Callable[[ModuleType], None]] = {
    "transformers.training_args": patch_training_args,
    "transformers.trainer_optimizer": patch_trainer_optimizer,
    "transformers.trainer": patch_trainer,
}
"""Module name → patch, in dependency order."""


def apply(name: str, module: ModuleType) -> None:
    PATCHERS[name](module)
