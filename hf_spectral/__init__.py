"""hf_spectral: spectral-shaping optimizers (U Σᵖ Vᵀ updates) for Hugging Face Trainer, PEFT and accelerate."""

from .optimizer import NonFiniteGradientError, SpectralOptimizer
from .presets import DynMuon, Muon, MuonP, SpectralAdam
from .routing import Partition, partition
from .schedules import Constant, Cosine, Linear, Logistic, Schedule
from .shaping import phi, polar_express, shape_svd, spectral_power, tns_weights

__version__ = "0.1.0"

__all__ = [
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
    "SpectralOptimizer",
    "__version__",
    "partition",
    "phi",
    "polar_express",
    "shape_svd",
    "spectral_power",
    "tns_weights",
]
