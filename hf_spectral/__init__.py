"""hf_spectral: spectral-shaping optimizers (U Σᵖ Vᵀ updates) for Hugging Face Trainer, PEFT and accelerate."""

from .optimizer import NonFiniteGradientError, SpectralOptimizer
from .presets import TORCH_MUON_PARITY, DynMuon, Muon, MuonP, SpectralAdam
from .routing import Partition, partition
from .schedules import Constant, Cosine, Linear, Logistic, Schedule
from .shaping import phi, polar_express, shape_svd, spectral_power, tns_weights

__version__ = "0.2.0"


def __getattr__(name: str):
    """Trainer-facing names load on first use, so that `import hf_spectral` does not import transformers."""
    if name in ("trainer_optimizer", "OPTIMIZER_NAMES"):
        from .integrations import trainer

        return getattr(trainer, name)
    if name == "SpectralCallback":
        from .integrations.callback import SpectralCallback

        return SpectralCallback
    raise AttributeError(f"module 'hf_spectral' has no attribute {name!r}")


def _install_transformers_patches() -> None:
    """`import hf_spectral` is an explicit request: make our --optim names valid (now or when transformers loads)."""
    import _hf_spectral_autoload

    _hf_spectral_autoload.install(force=True)


_install_transformers_patches()

__all__ = [
    "OPTIMIZER_NAMES",
    "TORCH_MUON_PARITY",
    "Constant",
    "Cosine",
    "DynMuon",
    "Linear",
    "Logistic",
    "Muon",
    "MuonP",
    "NonFiniteGradientError",
    "Partition",
    "Schedule",
    "SpectralAdam",
    "SpectralCallback",
    "SpectralOptimizer",
    "__version__",
    "partition",
    "phi",
    "polar_express",
    "shape_svd",
    "spectral_power",
    "tns_weights",
    "trainer_optimizer",
]
