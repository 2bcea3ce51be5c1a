"""hf_spectral: spectral-shaping optimizers (U Σᵖ Vᵀ updates) for Hugging Face Trainer, PEFT and accelerate."""

from .shaping import phi, polar_express, shape_svd, spectral_power, tns_weights

__version__ = "0.1.0"

__all__ = ["__version__", "phi", "polar_express", "shape_svd", "spectral_power", "tns_weights"]
