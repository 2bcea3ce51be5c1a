"""Building a SpectralOptimizer for Hugging Face Trainer: from ``--optim`` / ``--optim_args`` (through
transformers' optimizer handler registry) or from Python (``Trainer(optimizer_cls_and_kwargs=...)``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from ..optimizer import SpectralOptimizer
from ..routing import partition
from .optim_args import OPTIMIZER_NAMES, Resolved, resolve


def decay_parameter_names(model: nn.Module) -> set[str]:
    """Names that get weight decay under the Trainer's own rule (everything but biases and norms)."""
    from transformers import Trainer

    return set(Trainer.get_decay_parameter_names(None, model))  # the method does not use `self`


def trainer_param_groups(model: nn.Module, routing: Mapping[str, Any], weight_decay: float) -> list[dict[str, Any]]:
    """`partition(model)` groups with the Trainer's weight-decay convention: spectral matrices and decayed AdamW
    tensors get `weight_decay`; biases and norms in the AdamW group get 0."""
    decay = decay_parameter_names(model)
    groups: list[dict[str, Any]] = []
    for group in partition(model, **routing).groups:
        if group["algorithm"] != "adamw":
            groups.append({**group, "weight_decay": weight_decay})
            continue
        for wd, keep in ((weight_decay, True), (0.0, False)):
            members = [(n, t) for n, t in zip(group["names"], group["params"], strict=True) if (n in decay) == keep]
            if members:
                names, params = zip(*members, strict=True)
                groups.append({**group, "names": list(names), "params": list(params), "weight_decay": wd})
    return groups


def build_optimizer(resolved: Resolved, model: nn.Module) -> SpectralOptimizer:
    """The optimizer for `model` from a resolved name + optim_args."""
    groups = trainer_param_groups(model, resolved.routing, resolved.kwargs.get("weight_decay", 0.0))
    return resolved.cls(groups, **resolved.kwargs)


def resolve_training_args(args: Any) -> Resolved:
    """``--optim`` / ``--optim_args`` with the learning rate, weight decay and Adam settings of TrainingArguments."""
    return resolve(
        getattr(args.optim, "value", args.optim),
        args.optim_args,
        lr=args.learning_rate,
        weight_decay=args.weight_decay,
        adam_betas=(args.adam_beta1, args.adam_beta2),
        adam_epsilon=args.adam_epsilon,
    )


def optimizer_cls_and_kwargs(args: Any, model: nn.Module | None) -> tuple[type[SpectralOptimizer], dict[str, Any]]:
    """What the Trainer builds for ``--optim <our name>``: ``(cls, kwargs)`` with our own param groups in
    ``params`` (the Trainer's convention for optimizers that group parameters themselves)."""
    name = getattr(args.optim, "value", args.optim)
    resolved = resolve_training_args(args)
    if model is None:
        raise ValueError(f"--optim {name}: the Trainer did not pass the model, which routing needs")
    groups = trainer_param_groups(model, resolved.routing, args.weight_decay)
    return resolved.cls, {"params": groups, **resolved.kwargs}


def optimizer_handler(ctx: Any) -> tuple[type[SpectralOptimizer], dict[str, Any]]:
    """transformers' ``_OPTIMIZER_HANDLERS`` entry (transformers 5)."""
    return optimizer_cls_and_kwargs(ctx.args, ctx.model)


def trainer_optimizer(
    name: str,
    lr: float,
    *,
    weight_decay: float = 0.0,
    optim_args: str | Mapping[str, Any] | None = None,
    adam_betas: tuple[float, float] = (0.9, 0.999),
    adam_epsilon: float = 1e-8,
) -> tuple[Callable[[], Callable[..., SpectralOptimizer]], dict[str, Any]]:
    """``optimizer_cls_and_kwargs`` for ``Trainer(...)``: a factory that routes the model's parameters itself.

    The Trainer does not pass its TrainingArguments to this path, so the learning rate (and weight decay, Adam
    settings) are given here; the Trainer still builds the LR schedule around them. Everything is validated now.

    Example:
        ``Trainer(model, args, ..., optimizer_cls_and_kwargs=trainer_optimizer("dynmuon", 3e-4, weight_decay=0.1,
        optim_args="p_start=0.25"))``
    """
    resolved = resolve(
        name, optim_args, lr=lr, weight_decay=weight_decay, adam_betas=adam_betas, adam_epsilon=adam_epsilon
    )
    validate_resolved(resolved)
    return SpectralOptimizerFactory(resolved), {}


class SpectralOptimizerFactory:
    """transformers' optimizer-factory protocol: ``factory()(model, **kwargs)`` builds the optimizer for the whole
    model (transformers 5 calls it so; on 4.x our patched ``Trainer.create_optimizer`` does)."""

    def __init__(self, resolved: Resolved) -> None:
        self.resolved = resolved

    def __call__(self) -> Callable[..., SpectralOptimizer]:
        return lambda model, **_: build_optimizer(self.resolved, model)


def validate_resolved(resolved: Resolved) -> None:
    """Check every hyper-parameter up front, as the optimizer's constructor will (no model needed)."""
    resolved.cls.check_arguments(**resolved.kwargs)


__all__ = [
    "OPTIMIZER_NAMES",
    "SpectralOptimizerFactory",
    "build_optimizer",
    "optimizer_handler",
    "trainer_optimizer",
    "trainer_param_groups",
]
