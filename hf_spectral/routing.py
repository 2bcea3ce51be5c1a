"""Which parameter goes where: `partition` sends hidden weight matrices to the spectral group (updates shaped
U Σᵖ Vᵀ) and everything else — embeddings, output and task heads, poolers, norms, biases, vectors — to AdamW, and
records why.

Rules, first match wins:

1. ``requires_grad=False`` → frozen (left out of every group).
2. User patterns ``skip`` / ``spectral`` / ``adamw``: shell-style globs (`fnmatch.fnmatchcase`, so ``*`` also
   crosses dots) matched against the full parameter name and, for PEFT, the name without ``base_model.model.``.
   ``skip`` wins over the other two; a name matched by both ``spectral`` and ``adamw`` is an error; a pattern that
   matches no parameter gets a warning (a pattern list may be shared between model families).
3. Roles → adamw, every trainable tensor inside them (LoRA factors and ``modules_to_save`` copies included):
   input embedding (``get_input_embeddings()``), output head (``get_output_embeddings()``), any ``nn.Embedding``,
   and the task head and poolers of the transformers model (the model itself, or the one PEFT or another wrapper
   holds). Task head: every parameter outside the backbone ``model.base_model`` (``score``, ``classifier.*``,
   ``qa_outputs``, RoBERTa's ``classifier.dense`` / ``out_proj``, BERT's ``cls.predictions.transform``), except a
   whole transformers model nested there; where ``base_model`` is the model itself (T5, CLIP), the children named
   in `HEAD_NAMES`. Pooler: a module named ``pooler`` or of a class ``*Pooler*`` inside the backbone. Why: a head
   maps hidden states to the task's outputs (a classifier has one row per label, often freshly initialized) and
   a pooler prepares its input; they are not hidden layers, and shaped updates fine-tune them badly.
4. PEFT: ``lora_A`` / ``lora_B`` → spectral (a group of their own, marked ``lora=True``) or adamw by the ``lora``
   option; ``lora_embedding_A/B`` and anything under ``modules_to_save`` → adamw. The factors of LoRA on stacked
   MoE experts (PEFT ``target_parameters``) hold one factor per expert and are shaped per expert (A: row blocks,
   B: interleaved columns, as PEFT lays them out).
5. Norm modules (class name contains ``Norm``), biases, tensors with ndim < 2, 2-D tensors with a side of 1 → adamw;
   the (experts, rows, cols) weights of a mixture-of-experts layer (a 3-D tensor of a module whose class name
   contains ``Expert``, or named ``...experts.<name>`` when only names are known: transformers' ``*Experts``
   modules, ``gate_up_proj`` / ``down_proj``) → the ``experts`` option, in a group marked ``stacked=True`` whose
   tensors the optimizer shapes one expert matrix at a time (DBRX's 2-D (experts·ffn, hidden) weights: a
   ``split_rows`` group, a row block per expert); conv weights (ndim > 2) → the ``conv`` option; other
   ndim > 2 tensors → adamw.
6. Every other 2-D tensor → spectral (transformers' ``Conv1D`` included: shaping commutes with transposition).

A trainable tensor that is not a whole weight (FSDP1 flat parameter, DeepSpeed ZeRO-3 partition, 1-D weight of an
``nn.Linear``) raises ValueError: it is never quietly sent to AdamW. With ``split_fused=True`` fused QKV weights
get a spectral group of their own whose ``split_rows`` / ``split_cols`` tell the optimizer to shape Q, K, V apart.
"""

from __future__ import annotations

import fnmatch
import sys
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from .checks import check_choice

LORA_MODES = ("both", "B", "none")
CONV_MODES = ("adamw", "spectral")
EXPERT_MODES = ("spectral", "adamw")
FUSED_QKV_PATTERNS = ("*qkv_proj.weight", "*c_attn.weight", "*W_pack.weight", "*in_proj_weight")
"""Fused attention projections stored as contiguous [Q; K; V] blocks (Phi-3, GPT-2, Qwen-1, Baichuan,
nn.MultiheadAttention). GPT-NeoX / Falcon / Bloom ``query_key_value`` interleave the heads, so a contiguous
split would mix Q, K and V: they are not listed."""
GROUP_KEYS = frozenset(
    {"params", "names", "algorithm", "split_rows", "split_cols", "interleaved_cols", "lora", "stacked"}
)
"""Keys a partition writes into every group; `Partition.param_groups` refuses to override them."""
MAX_REASON_ROWS = 16
HEAD_NAMES = ("classifier", "score", "qa_outputs", "classification_head")
"""transformers' names for task heads, used where the structure does not tell: the children of a model whose
``base_model`` is itself (T5ForQuestionAnswering, CLIPForImageClassification) or of a wrapper around one, and the
first name part when only names are known."""
PEFT_PREFIX = "base_model.model."
"""What PEFT puts in front of the wrapped model's parameter names; user patterns also match without it."""
TASK_HEAD = "task head (outside the backbone)"
NAMED_HEAD = "task head (by name)"
POOLER = "pooler"

_FLATTENED_HINT = (
    "spectral shaping needs every weight matrix whole (or as an FSDP2 DTensor shard of it). Use FSDP2 "
    "(`torch.distributed.fsdp.fully_shard`; accelerate `fsdp_version: 2`) or DDP; FSDP1 and DeepSpeed ZeRO-3 "
    "are not supported"
)


@dataclass(frozen=True)
class Assignment:
    """Where one parameter went: algorithm is "spectral", "adamw" or "frozen"; reason says which rule decided."""

    algorithm: str
    reason: str
    shape: tuple[int, ...]
    numel: int


@dataclass
class Partition:
    """Param groups for the optimizer (spectral groups first, then adamw; empty groups omitted) and, per
    parameter name in model order, the `Assignment` that put it there."""

    groups: list[dict[str, Any]]
    assignments: dict[str, Assignment]

    def names(self, algorithm: str) -> list[str]:
        """Parameter names assigned to `algorithm` ("spectral", "adamw" or "frozen"), in model order."""
        check_choice("Partition.names", "algorithm", algorithm, ("spectral", "adamw", "frozen"))
        return [name for name, a in self.assignments.items() if a.algorithm == algorithm]

    def param_groups(
        self, *, spectral: Mapping[str, Any] | None = None, adamw: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """New group dicts with the `spectral` / `adamw` hyper-parameters merged into every group of that
        algorithm, e.g. ``param_groups(spectral={"lr": 0.02}, adamw={"lr": 3e-4})``."""
        extra = {"spectral": dict(spectral or {}), "adamw": dict(adamw or {})}
        for algorithm, hyper in extra.items():
            reserved = sorted(GROUP_KEYS & hyper.keys())
            if reserved:
                raise ValueError(
                    f"Partition.param_groups: {algorithm} must not set {reserved}; those keys come from the partition"
                )
        return [
            {**group, "params": list(group["params"]), "names": list(group["names"]), **extra[group["algorithm"]]}
            for group in self.groups
        ]

    def __str__(self) -> str:
        totals: dict[str, list[int]] = {"spectral": [0, 0], "adamw": [0, 0], "frozen": [0, 0]}
        by_reason: dict[tuple[str, str], list[int]] = {}
        for a in self.assignments.values():
            for row in (totals[a.algorithm], by_reason.setdefault((a.reason, a.algorithm), [0, 0])):
                row[0] += 1
                row[1] += a.numel
        lines = _table(["algorithm", "tensors", "parameters"], [[alg, *counts] for alg, counts in totals.items()])
        if len(by_reason) <= MAX_REASON_ROWS:
            order = list(totals)
            ranked = sorted(by_reason.items(), key=lambda item: (order.index(item[0][1]), -item[1][1]))
            rows = [[reason, alg, *counts] for (reason, alg), counts in ranked]
            lines += ["", *_table(["reason", "algorithm", "tensors", "parameters"], rows)]
        else:
            lines.append(f"({len(by_reason)} distinct reasons: see .assignments)")
        return "\n".join(lines)


def partition(
    model: nn.Module | Iterable[tuple[str, Tensor]],
    *,
    lora: str = "both",
    conv: str = "adamw",
    experts: str = "spectral",
    split_fused: bool = False,
    spectral: Sequence[str] | str = (),
    adamw: Sequence[str] | str = (),
    skip: Sequence[str] | str = (),
    fused_qkv_patterns: Sequence[str] = FUSED_QKV_PATTERNS,
) -> Partition:
    """Split the trainable parameters of `model` into spectral and adamw param groups (rules: module docstring).

    Args:
        model: an ``nn.Module`` (a ``transformers`` or ``peft`` model, or any module), or an iterable of
            ``(name, tensor)`` pairs; then only names and shapes are known (embedding: a name part containing
            ``embed`` or equal to ``wte`` / ``wpe``; output head: a name part ``lm_head`` or the name
            ``output.weight``; ndim > 2: a conv weight).
        lora: which LoRA factors are shaped: ``"both"``, ``"B"`` (A → adamw) or ``"none"``.
        conv: where conv weights (ndim > 2) go: ``"adamw"`` or ``"spectral"`` (the optimizer flattens them to
            ``(shape[0], -1)``).
        experts: where the stacked (experts, rows, cols) weights of mixture-of-experts layers go: ``"spectral"``
            (each expert's matrix shaped on its own, as a separate nn.Linear would be) or ``"adamw"``.
        split_fused: give fused QKV weights (names matching `fused_qkv_patterns`) their own spectral group with
            ``"split_rows"`` (row block sizes, ``nn.Linear`` layout (out, in)) or, for transformers' ``Conv1D``
            (layout (in, out)), ``"split_cols"``: (q, k, v) sizes from ``model.config`` when they add up, else
            equal thirds. Needs an ``nn.Module``.
        spectral, adamw, skip: glob patterns on parameter names (full, or without PEFT's ``base_model.model.``)
            that force a tensor to that algorithm or leave it out. Forcing a tensor with ndim < 2 to spectral is an
            error; a pattern that matches nothing is warned about, since one pattern list (``score.*``,
            ``classifier.*``) may serve several model families.
        fused_qkv_patterns: glob patterns of fused [Q; K; V] weights, used with `split_fused`.

    Reasons in `Partition.assignments` (and ``print(partition(model))``) name the rule. Heads of transformers task
    models go to AdamW by structure, not by name: ``"output head"`` (``get_output_embeddings()``), ``"task head
    (outside the backbone)"`` (every parameter outside ``model.base_model``: it turns hidden states into the task's
    outputs), ``"pooler"`` (the backbone's pooler, which feeds that head) and ``"task head (by name)"`` (a child in
    `HEAD_NAMES` where the structure does not tell); LoRA factors on them read ``"LoRA of <role>"``.

    Raises:
        ValueError: on flattened parameters (FSDP1 flat params, ZeRO-3 partitions, 1-D ``nn.Linear`` weights),
            on a forced non-matrix, on a name matched by both spectral and adamw patterns and on fused weights
            that cannot be split.
    """
    check_choice("partition", "lora", lora, LORA_MODES)
    check_choice("partition", "conv", conv, CONV_MODES)
    check_choice("partition", "experts", experts, EXPERT_MODES)
    patterns = {"skip": _as_patterns("skip", skip), "spectral": _as_patterns("spectral", spectral)}
    patterns["adamw"] = _as_patterns("adamw", adamw)
    fused_patterns = _as_patterns("fused_qkv_patterns", fused_qkv_patterns)
    if isinstance(model, nn.Module):
        named = list(model.named_parameters(remove_duplicate=False))
        places = _ModulePlaces(model)
    else:
        named = _checked_pairs(model)
        places = _NamePlaces()
        if split_fused:
            raise ValueError("partition: split_fused=True needs an nn.Module (layouts and config), got named tensors")
    tensors: dict[int, tuple[Tensor, list[str]]] = {}
    for name, p in named:
        tensors.setdefault(id(p), (p, []))[1].append(name)

    assignments: dict[str, Assignment] = {}
    placed: list[tuple[str, Tensor, _GroupKey]] = []
    matched: set[tuple[str, str]] = set()
    for p, names in tensors.values():
        name = names[0]
        aliases = _pattern_names(names)
        hits = {kind: _matching(aliases, pats) for kind, pats in patterns.items()}
        matched.update((kind, pat) for kind, pats in hits.items() for pat in pats)
        if p.requires_grad:
            _refuse_flattened(name, p, places.owner(name))
        algorithm, reason = _route(names, p, places, hits, lora, conv, experts)
        key: _GroupKey = algorithm if algorithm != "spectral" else ()
        if algorithm == "spectral" and _is_experts(name, p, places.owner(name)):
            key = (("stacked", True),)
        elif algorithm == "spectral" and (rows := _expert_rows(p, places.owner(name))):
            key = (("split_rows", rows),)
        elif split_fused and algorithm == "spectral" and p.ndim == 2 and _matching([name], fused_patterns):
            key = (_fused_split(name, p, places),)
            reason = f"fused QKV, {key[0][0]}={key[0][1]}"
        elif algorithm == "spectral" and _lora_factor(name) in ("A", "B"):
            per_expert = _expert_lora_split(name, p, places)
            key = (("lora", True), *per_expert)
            reason += ", a matrix per expert" if per_expert else ""
        assignments[name] = Assignment(algorithm, reason, tuple(p.shape), p.numel())
        if algorithm != "frozen":
            placed.append((name, p, key))
    example = next((name for name, _, _ in placed), next(iter(assignments), "<none>"))
    _warn_unmatched(patterns, matched, example)
    return Partition(_groups(placed), assignments)


_GroupKey = str | tuple[tuple[str, Any], ...]
"""A group: "adamw", "frozen", or a spectral group given by the entries it carries besides params and names: ()
plain, (("lora", True),) LoRA factors (the optimizer sizes their updates apart), (("stacked", True),) stacked MoE
expert weights, (("split_rows" | "split_cols", block sizes),) fused Q, K, V, and a LoRA factor of MoE experts
(("lora", True), ("split_rows", sizes) | ("interleaved_cols", experts))."""


def _groups(placed: list[tuple[str, Tensor, _GroupKey]]) -> list[dict[str, Any]]:
    """Param groups in the order plain spectral, the other spectral groups (first appearance), adamw; none empty."""
    groups: dict[_GroupKey, dict[str, Any]] = {}
    for name, p, key in placed:
        if key not in groups:
            extra = dict(key) if isinstance(key, tuple) else {}
            groups[key] = {"params": [], "names": [], "algorithm": "adamw" if key == "adamw" else "spectral", **extra}
        groups[key]["params"].append(p)
        groups[key]["names"].append(name)
    rank = {(): 0, "adamw": 2}
    return [groups[key] for key in sorted(groups, key=lambda key: rank.get(key, 1))]


def _warn_unmatched(patterns: dict[str, tuple[str, ...]], matched: set[tuple[str, str]], example: str) -> None:
    """Warn about a user pattern that matches no parameter name: a typo, or a pattern for another model family
    (``score.*|classifier.*`` shared between Llama and BERT), which must not stop training."""
    for kind, pats in patterns.items():
        for pat in pats:
            if (kind, pat) not in matched:
                warnings.warn(
                    f"partition: {kind} pattern {pat!r} matches no parameter name (shell glob via fnmatch, on the "
                    f"full name and without {PEFT_PREFIX!r}); names look like {example!r}",
                    UserWarning,
                    stacklevel=3,
                )


def _pattern_names(names: list[str]) -> list[str]:
    """The names user patterns are matched against: each name, and it without PEFT's ``base_model.model.``."""
    return names + [name.removeprefix(PEFT_PREFIX) for name in names if name.startswith(PEFT_PREFIX)]


def _route(
    names: list[str], p: Tensor, places: _Places, hits: dict[str, list[str]], lora: str, conv: str, experts: str
) -> tuple[str, str]:
    """(algorithm, reason) for one tensor known under `names` (more than one when tied)."""
    name = names[0]
    if not p.requires_grad:
        return "frozen", "requires_grad=False"
    if hits["skip"]:
        return "frozen", f"user pattern {hits['skip'][0]!r}"
    if hits["spectral"] and hits["adamw"]:
        raise ValueError(
            f"partition: parameter {name!r} matches spectral pattern {hits['spectral'][0]!r} and adamw pattern "
            f"{hits['adamw'][0]!r}; make the patterns disjoint"
        )
    if hits["spectral"]:
        if p.ndim < 2:
            raise ValueError(
                f"partition: parameter {name!r} has shape {tuple(p.shape)} and cannot be forced to spectral by "
                f"pattern {hits['spectral'][0]!r}: spectral shaping needs ndim >= 2 (conv weights are flattened to "
                "(shape[0], -1))"
            )
        return "spectral", f"user pattern {hits['spectral'][0]!r}"
    if hits["adamw"]:
        return "adamw", f"user pattern {hits['adamw'][0]!r}"
    return _default_route(names, p, places, lora, conv, experts)


def _default_route(names: list[str], p: Tensor, places: _Places, lora: str, conv: str, experts: str) -> tuple[str, str]:
    """Rules 3–6 of the module docstring, for a trainable tensor no user pattern claimed."""
    name = names[0]
    owner = places.owner(name)
    lora_factor = _lora_factor(name)
    role = _tied_role([places.role(n) for n in names])
    if role is not None:
        if lora_factor is not None:
            return "adamw", f"LoRA of {role}"
        return "adamw", f"{role}, modules_to_save copy" if "modules_to_save" in name.split(".") else role
    if lora_factor == "embedding":
        return "adamw", "LoRA embedding"
    if lora_factor is not None:
        wanted = lora == "both" or lora == lora_factor
        fits = p.ndim == 2 or (p.ndim > 2 and conv == "spectral")
        return ("spectral" if wanted and fits else "adamw"), f"LoRA {lora_factor}"
    if "modules_to_save" in name.split("."):
        return "adamw", "modules_to_save"
    if owner is not None and "Norm" in type(owner).__name__:
        return "adamw", "norm"
    if name.rsplit(".", 1)[-1].endswith("bias"):
        return "adamw", "bias"
    if p.ndim < 2:
        return "adamw", "1D/scalar"
    if _is_experts(name, p, owner) or _expert_rows(p, owner):
        return experts, "MoE experts (a matrix per expert)"
    if p.ndim > 2:
        if owner is None or isinstance(owner, nn.modules.conv._ConvNd):
            return conv, "conv weight"
        return "adamw", "ndim > 2 (not a conv weight)"
    if min(p.shape) == 1:
        return "adamw", "vector (a side of 1)"
    return "spectral", "2D hidden matrix"


def _is_experts(name: str, p: Tensor, owner: nn.Module | None) -> bool:
    """A mixture-of-experts layer's stacked (experts, rows, cols) weight: 3-D, held by a module whose class name
    contains ``Expert`` (transformers' ``MixtralExperts``, ``Qwen3MoeExperts``, ``GptOssExperts``, ...), or, known
    by name only, named ``...experts.<name>``."""
    if p.ndim != 3:
        return False
    if owner is not None:
        return "Expert" in type(owner).__name__
    return name.split(".")[-2:-1] == ["experts"]


def _expert_rows(p: Tensor, owner: nn.Module | None) -> tuple[int, ...] | None:
    """Row blocks of a 2-D weight that concatenates E experts' matrices along its rows (DBRX's ``DbrxExpertGLU``:
    (E·ffn, hidden), the owner an ``*Expert*`` module with ``moe_num_experts`` / ``num_experts`` = E)."""
    if p.ndim != 2 or owner is None or "Expert" not in type(owner).__name__:
        return None
    count = next((getattr(owner, a) for a in ("moe_num_experts", "num_experts") if hasattr(owner, a)), None)
    if not isinstance(count, int) or count <= 1 or p.shape[0] % count:
        return None
    return (p.shape[0] // count,) * count


def _expert_lora_split(name: str, p: Tensor, places: _Places) -> tuple[tuple[str, Any], ...]:
    """For a LoRA factor of stacked MoE experts (PEFT ``target_parameters``: a ``ParamWrapper`` whose
    ``num_experts`` is E), how it holds one factor per expert: A (E·r, in) as E row blocks, B (out, E·r) with
    expert e's columns at e, e + E, e + 2E, ... (PEFT's layout); () for any other LoRA factor."""
    wrapper = places.module(name.split(".lora_A.")[0].split(".lora_B.")[0])
    count = getattr(wrapper, "num_experts", 1)
    if not isinstance(count, int) or count <= 1 or p.ndim != 2:
        return ()
    if _lora_factor(name) == "A" and p.shape[0] % count == 0:
        return (("split_rows", (p.shape[0] // count,) * count),)
    if _lora_factor(name) == "B" and p.shape[1] % count == 0:
        return (("interleaved_cols", count),)
    return ()


def _tied_role(roles: list[str | None]) -> str | None:
    """The role of a tensor known under several names: an embedding tied to the output head says so."""
    found = [role for role in roles if role is not None]
    embedding = next((role for role in found if "embedding" in role), None)
    if embedding is not None and "output head" in found:
        return f"{embedding} (tied to output head)"
    return found[0] if found else None


def _lora_factor(name: str) -> str | None:
    """LoRA factor kind: "A" / "B" for ``...lora_A.<adapter>.weight``, "embedding" for ``lora_embedding_A/B``."""
    parts = name.split(".")
    if "lora_embedding_A" in parts or "lora_embedding_B" in parts:
        return "embedding"
    if "lora_A" in parts:
        return "A"
    if "lora_B" in parts:
        return "B"
    return None


class _NamePlaces:
    """Roles from names alone, for an iterable of (name, tensor): no modules, no config."""

    config = None

    def owner(self, name: str) -> nn.Module | None:
        return None

    def module(self, name: str) -> nn.Module | None:
        return None

    def role(self, name: str) -> str | None:
        parts = name.removeprefix(PEFT_PREFIX).split(".")
        if any("embed" in part for part in parts) or "wte" in parts or "wpe" in parts:
            return "embedding"
        if "lm_head" in parts or name == "output.weight":
            return "output head"
        if parts[0] in HEAD_NAMES:
            return NAMED_HEAD
        if POOLER in parts:
            return POOLER
        return None


class _ModulePlaces:
    """Roles from the module tree: the module holding each parameter, the input-embedding / output-head module
    prefixes found through ``get_input_embeddings`` / ``get_output_embeddings``, and the task head and poolers of
    the transformers model in the tree (`_TaskParts`)."""

    def __init__(self, model: nn.Module) -> None:
        self.config = getattr(model, "config", None)
        self.owners: dict[str, nn.Module] = {}
        self.modules: dict[str, nn.Module] = {}
        prefixes: dict[int, str] = {}
        for module_name, module in model.named_modules(remove_duplicate=False):
            prefixes.setdefault(id(module), module_name)
            self.modules[module_name] = module
            for local, _ in module.named_parameters(recurse=False):
                self.owners[f"{module_name}.{local}" if module_name else local] = module
        self.input_prefix = _prefix(prefixes, _accessor(model, "get_input_embeddings"))
        head = _accessor(model, "get_output_embeddings")
        self.head_prefix = _prefix(prefixes, head)
        self.head_by_name = head is None
        self.task = _TaskParts.of(model)

    def owner(self, name: str) -> nn.Module | None:
        return self.owners.get(name)

    def module(self, name: str) -> nn.Module | None:
        return self.modules.get(name)

    def role(self, name: str) -> str | None:
        if _under(name, self.input_prefix):
            return "input embedding"
        if _under(name, self.head_prefix):
            return "output head"
        task_role = self.task.role(name)
        if task_role is not None:
            return task_role
        if isinstance(self.owner(name), (nn.Embedding, nn.EmbeddingBag)):
            return "embedding"
        if self.head_by_name and _NamePlaces().role(name) == "output head":
            return "output head"
        return None


@dataclass(frozen=True)
class _TaskParts:
    """Where the transformers model inside a module tree keeps its backbone, task head and poolers, as module
    name prefixes (None: no transformers model, or ``base_model`` is the model itself)."""

    root: str | None
    backbone: str | None
    nested: tuple[str, ...]
    named_heads: tuple[str, ...]
    poolers: tuple[str, ...]

    @classmethod
    def of(cls, model: nn.Module) -> _TaskParts:
        """The parts of the outermost transformers ``PreTrainedModel`` in `model` (`model` itself, or the one a
        PEFT model or another wrapper holds); the children of `model` named in `HEAD_NAMES` count as heads too."""
        named_heads = _named_children(model, "", HEAD_NAMES)
        pretrained = _pretrained_model_class()
        found = [] if pretrained is None else [(n, m) for n, m in model.named_modules() if isinstance(m, pretrained)]
        if not found:
            return cls(None, None, (), named_heads, ())
        root, task_model = found[0]
        base = getattr(task_model, "base_model", task_model)
        backbone = None if base is task_model else next((n for n, m in model.named_modules() if m is base), None)
        if backbone is None:
            named_heads += _named_children(task_model, root, HEAD_NAMES)
            body, nested = root, ()
        else:
            body = backbone
            nested = tuple(n for n, _ in found[1:] if n != backbone and not _under(n, backbone))
        poolers = tuple(n for n, m in model.named_modules() if _under(n, body) and _is_pooler(n, m))
        return cls(root, backbone, nested, named_heads, poolers)

    def role(self, name: str) -> str | None:
        """The task role of parameter `name`: pooler, task head (outside the backbone / by name), or None."""
        if any(_under(name, pooler) for pooler in self.poolers):
            return POOLER
        outside = self.backbone is not None and _under(name, self.root) and not _under(name, self.backbone)
        if outside and not any(_under(name, other) for other in self.nested):
            return TASK_HEAD
        if any(_under(name, head) for head in self.named_heads):
            return NAMED_HEAD
        return None


def _pretrained_model_class() -> type | None:
    """transformers' ``PreTrainedModel`` if transformers is loaded (a transformers model implies it is)."""
    modeling_utils = sys.modules.get("transformers.modeling_utils")
    return getattr(modeling_utils, "PreTrainedModel", None)


def _named_children(module: nn.Module, prefix: str, names: tuple[str, ...]) -> tuple[str, ...]:
    """Full prefixes of the children of `module` (itself at `prefix`) whose attribute name is in `names`."""
    return tuple(f"{prefix}.{child}" if prefix else child for child, _ in module.named_children() if child in names)


def _is_pooler(name: str, module: nn.Module) -> bool:
    """A pooler (BERT's ``pooler``, ``ViTPooler``...): a module named ``pooler`` or of a class named ``*Pooler*``."""
    return name.rsplit(".", 1)[-1] == POOLER or "Pooler" in type(module).__name__


_Places = _ModulePlaces | _NamePlaces


def _accessor(model: nn.Module, method: str) -> nn.Module | None:
    """``model.<method>()`` (transformers' embedding accessors, forwarded by PEFT), or None where absent."""
    getter = getattr(model, method, None)
    if getter is None:
        return None
    try:
        module = getter()
    except (NotImplementedError, AttributeError):
        return None
    return module if isinstance(module, nn.Module) else None


def _prefix(prefixes: dict[int, str], module: nn.Module | None) -> str | None:
    return None if module is None else prefixes.get(id(module))


def _under(name: str, prefix: str | None) -> bool:
    return prefix is not None and (prefix == "" or name.startswith(prefix + "."))


def _is_conv1d(module: nn.Module | None) -> bool:
    """transformers' ``Conv1D`` (GPT-2), weight stored (in, out); checked without importing transformers."""
    pytorch_utils = sys.modules.get("transformers.pytorch_utils")
    return pytorch_utils is not None and isinstance(module, pytorch_utils.Conv1D)


def _holds_matrix(module: nn.Module | None) -> bool:
    """Modules whose ``weight`` is a matrix by construction: nn.Linear, nn.Embedding, transformers' Conv1D."""
    return isinstance(module, (nn.Linear, nn.Embedding)) or _is_conv1d(module)


def _refuse_flattened(name: str, p: Tensor, owner: nn.Module | None) -> None:
    """Raise on parameters that are not whole weights: FSDP1 flat params, ZeRO-3 partitions, 1-D matrix weights."""
    if "flat_param" in name or "_fsdp_wrapped_module" in name.split("."):
        found = "an FSDP1 (FullyShardedDataParallel) flat parameter"
    elif hasattr(p, "ds_shape") or hasattr(p, "ds_numel"):
        found = f"a DeepSpeed ZeRO-3 partition (ds_shape={tuple(getattr(p, 'ds_shape', ()))})"
    elif _holds_matrix(owner) and name.rsplit(".", 1)[-1] == "weight" and p.ndim != 2:
        found = (
            f"a {type(owner).__name__} weight of shape {tuple(p.shape)}, not 2-D (FSDP1 with use_orig_params "
            "flattens weights to 1-D shards)"
        )
    else:
        return
    raise ValueError(f"partition: parameter {name!r} is {found}; {_FLATTENED_HINT}")


def _fused_split(name: str, p: Tensor, places: _Places) -> tuple[str, tuple[int, ...]]:
    """("split_rows" | "split_cols", (q, k, v) block sizes) for a fused QKV weight."""
    key, axis = ("split_cols", 1) if _is_conv1d(places.owner(name)) else ("split_rows", 0)
    size = p.shape[axis]
    sizes = _qkv_sizes(places.config)
    if sizes is not None and sum(sizes) == size:
        return key, sizes
    if size % 3 == 0:
        return key, (size // 3,) * 3
    raise ValueError(
        f"partition: fused weight {name!r} of shape {tuple(p.shape)} cannot be split into Q, K, V along dim {axis}: "
        f"{size} is neither 3 equal blocks nor the config's (q, k, v) sizes {sizes}; pass split_fused=False or "
        "narrow fused_qkv_patterns"
    )


def _qkv_sizes(config: Any) -> tuple[int, int, int] | None:
    """(heads · head_dim, kv_heads · head_dim, kv_heads · head_dim) from a transformers config, if it has them."""
    if config is not None and hasattr(config, "get_text_config"):
        config = config.get_text_config()
    heads = getattr(config, "num_attention_heads", None)
    hidden = getattr(config, "hidden_size", None)
    if not isinstance(heads, int) or heads <= 0:
        return None
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or (hidden // heads if isinstance(hidden, int) else None)
    if not isinstance(head_dim, int):
        return None
    return heads * head_dim, kv_heads * head_dim, kv_heads * head_dim


def _as_patterns(argument: str, patterns: Sequence[str] | str) -> tuple[str, ...]:
    """A single glob or a sequence of globs, as a tuple of strings."""
    patterns = (patterns,) if isinstance(patterns, str) else tuple(patterns)
    bad = [pat for pat in patterns if not isinstance(pat, str)]
    if bad:
        raise TypeError(f"partition: {argument} must be a glob string or a sequence of them, got {bad[0]!r}")
    return patterns


def _checked_pairs(named: Iterable[tuple[str, Tensor]]) -> list[tuple[str, Tensor]]:
    pairs = list(named)
    for item in pairs:
        pair = isinstance(item, tuple) and len(item) == 2
        if not (pair and isinstance(item[0], str) and isinstance(item[1], Tensor)):
            raise TypeError(
                f"partition: model must be an nn.Module or an iterable of (name, tensor) pairs, got an item {item!r}"
            )
    return pairs


def _matching(names: list[str], patterns: tuple[str, ...]) -> list[str]:
    """The patterns that match any of `names` (the names of one tensor)."""
    return [pat for pat in patterns if any(fnmatch.fnmatchcase(name, pat) for name in names)]


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    """Rows as aligned text: text columns left, integer columns right with thousands separators."""
    cells = [header] + [[f"{v:,}" if isinstance(v, int) else str(v) for v in row] for row in rows]
    numeric = [isinstance(v, int) for v in rows[0]] if rows else [False] * len(header)
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return [
        "  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(row, widths, numeric, strict=True)).rstrip()
        for row in cells
    ]
