"""Loaded at interpreter start by ``hf_spectral_autoload.pth``: a lazy import hook that makes ``--optim dynmuon``
work in Hugging Face scripts without importing hf_spectral. Imports nothing heavy; patches transformers modules
only when (and if) they are imported. Opt out with ``HF_SPECTRAL_AUTOLOAD=0``."""

from __future__ import annotations

import os
import sys

TARGETS = (
    "transformers.training_args",
    "transformers.hf_argparser",
    "transformers.trainer_optimizer",
    "transformers.trainer",
    "trl.scripts._hf_argparser",
)
ENV = "HF_SPECTRAL_AUTOLOAD"


def _patch(name: str, module: object) -> None:
    try:
        from hf_spectral.integrations.patch import apply

        apply(name, module)
    except Exception as err:  # never break `import transformers`
        sys.stderr.write(f"[hf_spectral] could not patch {name}: {err!r}\n")


class SpectralPatchFinder:
    """A meta-path finder that loads nothing itself: it wraps the real loader so the patch runs right after."""

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> object:
        if fullname not in TARGETS:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        exec_module = loader.exec_module

        def exec_then_patch(module: object) -> None:
            exec_module(module)
            _patch(fullname, module)

        loader.exec_module = exec_then_patch
        return spec


def enabled() -> bool:
    return os.environ.get(ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def install(force: bool = False) -> None:
    """Install the hook (idempotent) and patch whatever is already imported. `force` ignores the opt-out
    (used by ``import hf_spectral`` and ``hf-spectral run``, which are explicit requests)."""
    if not (force or enabled()):
        return
    if not any(isinstance(f, SpectralPatchFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, SpectralPatchFinder())
    for name in TARGETS:
        module = sys.modules.get(name)
        # A module still executing (we are imported from inside its import) gets patched by the hook when done.
        if module is not None and not getattr(getattr(module, "__spec__", None), "_initializing", False):
            _patch(name, module)
