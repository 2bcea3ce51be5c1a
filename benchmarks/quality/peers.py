"""Other Muon implementations, run in the quality suite on the same parameter split as ours.

Each peer gets the matrices that `hf_spectral.partition` sends to the spectral group; everything else (embeddings,
heads, norms, biases) gets ``torch.optim.AdamW`` with the Trainer's weight-decay rule, exactly as in our optimizer.
So the peers differ from our Muon only in what their own Muon step does.

    torch_muon      torch.optim.Muon, adjust_lr_fn="match_rms_adamw" (update RMS 0.2: the AdamW learning rate is
                    meant to carry over), momentum 0.95, Nesterov
    heavyball_muon  heavyball.Muon (pip install heavyball): momentum 0.9, update G + EMA(G) (a Nesterov mix that
                    weights the fresh gradient more), ×√max(1, m/n); eager mode (torch.compile off on CPU)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from hf_spectral.integrations.trainer import trainer_param_groups


class Paired(torch.optim.Optimizer):
    """A peer's Muon on the spectral matrices and torch AdamW on the rest, stepped together. ``param_groups`` are
    the two optimizers' own group dicts, so the Trainer's LR schedule reaches both (tests/test_quality_peers.py)."""

    def __init__(self, muon: torch.optim.Optimizer, adamw: torch.optim.Optimizer | None) -> None:
        self.parts = [o for o in (muon, adamw) if o is not None]
        self.defaults = {}
        self.state = {}
        self._optimizer_step_pre_hooks = {}
        self._optimizer_step_post_hooks = {}

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        """The parts' current group dicts (read each time: load_state_dict, which accelerate calls when it wraps
        the optimizer, gives each part new dicts, and the LR schedule must reach those)."""
        return [g for o in self.parts for g in o.param_groups]

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = closure() if closure is not None else None
        for o in self.parts:
            o.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        for o in self.parts:
            o.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return {"parts": [o.state_dict() for o in self.parts]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        for o, sd in zip(self.parts, state_dict["parts"], strict=True):
            o.load_state_dict(sd)


def _split(model: nn.Module, weight_decay: float) -> tuple[list[nn.Parameter], list[dict[str, Any]]]:
    """(spectral matrices, AdamW groups with the Trainer's decay rule) as our optimizer would split them."""
    groups = trainer_param_groups(model, {}, weight_decay)
    matrices = [p for g in groups if g["algorithm"] == "spectral" for p in g["params"]]
    adamw = [{"params": g["params"], "weight_decay": g["weight_decay"]} for g in groups if g["algorithm"] == "adamw"]
    return matrices, adamw


def _adamw(groups: list[dict[str, Any]], lr: float) -> torch.optim.Optimizer | None:
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-8) if groups else None


def torch_muon(model: nn.Module, lr: float, weight_decay: float) -> Paired:
    matrices, adamw = _split(model, weight_decay)
    muon = torch.optim.Muon(matrices, lr=lr, weight_decay=weight_decay, adjust_lr_fn="match_rms_adamw")
    return Paired(muon, _adamw(adamw, lr))


def heavyball_muon(model: nn.Module, lr: float, weight_decay: float) -> Paired:
    import heavyball

    heavyball.utils.compile_mode = None  # eager: torch.compile of every shape costs minutes on CPU
    matrices, adamw = _split(model, weight_decay)
    muon = heavyball.Muon(matrices, lr=lr, weight_decay=weight_decay)
    return Paired(muon, _adamw(adamw, lr))


PEERS: dict[str, Callable[[nn.Module, float, float], Paired]] = {
    "torch_muon": torch_muon,
    "heavyball_muon": heavyball_muon,
}


def available(name: str) -> bool:
    """Whether a peer can run here (heavyball is an optional install; torch.optim.Muon needs torch ≥ 2.9)."""
    if name == "heavyball_muon":
        try:
            import heavyball  # noqa: F401
        except ImportError:
            return False
        return True
    return hasattr(torch.optim, "Muon")


def trainer_optimizer(name: str, lr: float, weight_decay: float) -> tuple[Any, dict[str, Any]]:
    """``Trainer(optimizer_cls_and_kwargs=...)`` for a peer: a factory the Trainer calls with the model."""

    def factory() -> Callable[..., Paired]:
        return lambda model, **_: PEERS[name](model, lr, weight_decay)

    return factory, {}
