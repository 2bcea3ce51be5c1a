"""Pure spectral-shaping maths: tensor in, tensor out; no optimizer state, no distributed code."""

from .api import ABLATION_METHODS, EIGH_MAX_SIDE, METHODS, check_shaping_arguments, resolve_method, spectral_power
from .polar import NEWTON_SCHULZ_COEFFICIENTS, POLAR_EXPRESS_COEFFICIENTS, polar_express
from .precision import PRECISIONS, resolve_precision, result_dtype
from .target import phi, shape_svd
from .tns import TNS_COEFFICIENTS, TNS_DEFAULT_STEPS, TNS_TRAJECTORIES, TNSWeights, tns_weights

__all__ = [
    "ABLATION_METHODS",
    "EIGH_MAX_SIDE",
    "METHODS",
    "NEWTON_SCHULZ_COEFFICIENTS",
    "POLAR_EXPRESS_COEFFICIENTS",
    "PRECISIONS",
    "TNS_COEFFICIENTS",
    "TNS_DEFAULT_STEPS",
    "TNS_TRAJECTORIES",
    "TNSWeights",
    "check_shaping_arguments",
    "phi",
    "polar_express",
    "resolve_method",
    "resolve_precision",
    "result_dtype",
    "shape_svd",
    "spectral_power",
    "tns_weights",
]
