"""Any p: Trajectory Newton–Schulz (TNS).

Every odd polynomial iteration maps X₀ = U S Vᵀ to X_k = U g_k(S) Vᵀ, so a fixed linear combination of the
iterates is itself a spectral function. TNS runs K quintic steps q_k(y) = a_k·y + b_k·y³ + c_k·y⁵ from
X₀ = M/‖M‖_F and returns

    Y = Σ_k w_k X_k  = U (Σ_k w_k g_k(S)) Vᵀ ≈ U φ(S) Vᵀ,     g₀(s) = s,  g_{k+1} = q_{k+1}(g_k),

where the K+1 scalars w(p, ε) are the least-squares fit of Σ_k w_k g_k(s)/φ(s) ≈ 1 on 400 log-spaced
s ∈ [ε/30, 1] (relative error, ridge 1e-8). The trajectory is one fixed quintic repeated (:data:`TNS_COEFFICIENTS`)
or, where tabled for K (:data:`TNS_TRAJECTORIES`), a sequence of quintics fitted for a floor; for each
(p, ε, K) the one whose fit is better is used. The cost is exactly K quintic steps.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple

import torch
from torch import Tensor

from .precision import iterate_dtype, step_precisions
from .quintic import is_tall, long_block, run_quintic
from .target import normalized, phi

Quintic = tuple[float, float, float]
TNS_COEFFICIENTS: Quintic = (2.54815, -3.50720, 1.60367)
"""The fixed quintic (repeated K times): fits φ within ~1.4 % for p in [−0.5, 1] at K = 8, ε = 1e-3."""
TRAJECTORY_K5_DYNMUON: tuple[Quintic, ...] = (
    (6.6731513295278155, -13.223296698103868, 7.283929107496986),
    (2.8853370301378276, -1.6186194859616927, 0.27629791432826223),
    (3.042554512675345, -2.2324632238672915, 0.48745924364598703),
    (1.9168866038703165, -1.4531570050887503, 0.3467976078183299),
    (2.2691184056710196, -5.024928133157675, 2.7001332374420866),
)
"""Five quintics for DynMuon's p range [−0.1, 0.1] at ε = 5e-3 (the optimizers' ``floor=5e-3``): a large first
step, every iterate bounded by 2 on [0, 1.05]; fit within 2.1 % there, at Muon's five steps (outside it: 6.4 % at
p = −0.25, 3.8 % at 0.5, so other p take 6 steps). At ε = 3e-3, the default floor, no 5-step trajectory found fits
within 7 %."""
TRAJECTORY_K6_EPS3E3: tuple[Quintic, ...] = (
    (2.9905223730461645, -4.287146971023622, 1.9277260371504028),
    (3.47634691534626, -5.512335779741372, 2.5881529138357853),
    (3.462908735326154, -4.260029725538277, 1.6178940096311851),
    (2.4625156293400905, -2.2805993576884305, 0.661634426332165),
    (2.3065182780810773, -2.861674602045126, 1.218758633289284),
    (3.2068332679074456, -3.2273066423299444, 1.6902114185901798),
)
"""Six quintics for ε = 3e-3, every iterate bounded by 1.5 on [0, 1.05] (robust in bf16): fit within 1.3 % for p in
[−0.25, 1] (the fixed quintic needs 7 steps for 1.8 %), 4.3 % at p = −0.5."""
TRAJECTORY_K6_EPS5E3: tuple[Quintic, ...] = (
    (2.9177754293995433, -4.110192252203913, 1.8363360154288146),
    (2.9568072360821867, -4.2092591729660045, 1.8551031145253472),
    (2.66660568470636, -3.555510172395178, 1.5162146993870274),
    (2.5513347262115587, -3.502866708561509, 1.6517519904081353),
    (2.414933539723371, -3.3885894523291524, 1.729705657794236),
    (3.5206197516235362, -3.605942077807112, 1.6041174880189975),
)
"""Six quintics for ε = 5e-3, bounded by 1.5: fit within 0.6 % for p in [−0.25, 1], 1.9 % at p = −0.5."""
TNS_TRAJECTORIES: tuple[tuple[Quintic, ...], ...] = (TRAJECTORY_K5_DYNMUON, TRAJECTORY_K6_EPS3E3, TRAJECTORY_K6_EPS5E3)
"""Per-step trajectories fitted for a floor (shared by every p; only the weights depend on p), found by variable
projection (Nelder–Mead / Powell over the coefficients, the weights by least squares inside): docs/shaping.md,
"What training needs". For each (p, ε, K) `tns_weights` uses whichever of these and the fixed quintic fits best."""
TNS_DEFAULT_STEPS = 8
FIT_POINTS = 400
FIT_FLOOR_FACTOR = 30.0  # the fit grid starts at ε / 30
FIT_RIDGE = 1e-8
MAX_FIT_ERROR = 0.05  # refuse (p, ε, K) whose scalar fit is worse than 5 % on s ∈ [ε, 1]
TNS_BF16_STEPS = 3
"""precision="bf16" runs only the last this-many steps with a bf16 iterate, the earlier ones in "mixed": the
weights of p < 0 amplify rounding noise of the early iterates in the small directions (all-bf16: up to 108 % off
on a rank-3 bf16 matrix at p = −0.5; this split: ≤ 1.7 %; shaping.md, "Precision")."""


class TNSWeights(NamedTuple):
    """Weights w₀…w_K of the iterates, the fit's worst relative error max |Σ w_k g_k(s)/φ(s) − 1| on [ε, 1], and
    the quintic of each step."""

    weights: tuple[float, ...]
    fit_error: float
    coefficients: tuple[Quintic, ...] = ()


def trajectories(steps: int) -> list[tuple[Quintic, ...]]:
    """The candidate trajectories of K = `steps` quintic steps: the fixed quintic, and the tabled ones of K steps."""
    return [(TNS_COEFFICIENTS,) * steps, *(t for t in TNS_TRAJECTORIES if len(t) == steps)]


def _iterates(s: Tensor, coefficients: tuple[Quintic, ...]) -> Tensor:
    """Columns g₀(s) … g_K(s) of the scalar iteration g_{k+1} = q_{k+1}(g_k)."""
    g = [s]
    for a, b, c in coefficients:
        y = g[-1]
        y2 = y * y
        g.append(y * (a + y2 * (b + c * y2)))
    return torch.stack(g, dim=1)


def fit_trajectory(p: float, eps: float, coefficients: tuple[Quintic, ...]) -> TNSWeights:
    """The (K+1)×(K+1) ridge least-squares weights for one trajectory (float64, CPU)."""
    s = torch.logspace(math.log10(eps / FIT_FLOOR_FACTOR), 0.0, FIT_POINTS, dtype=torch.float64)
    A = _iterates(s, coefficients) / phi(s, p, eps).unsqueeze(1)
    gram = A.T @ A + FIT_RIDGE * torch.eye(len(coefficients) + 1, dtype=torch.float64)
    w = torch.linalg.solve(gram, A.T @ torch.ones_like(s))
    relative = (A @ w - 1.0).abs()
    return TNSWeights(tuple(w.tolist()), float(relative[s >= eps].max()), coefficients)


@lru_cache(maxsize=4096)
def tns_weights(p: float, eps: float = 1e-3, steps: int = TNS_DEFAULT_STEPS) -> TNSWeights:
    """The TNS weights w(p, ε) for K = `steps`, on the candidate trajectory that fits φ best (cached)."""
    return min((fit_trajectory(p, eps, c) for c in trajectories(steps)), key=lambda fit: fit.fit_error)


def check_tns_fit(fn: str, p: float, eps: float, steps: int, steps_name: str = "steps", eps_name: str = "eps") -> None:
    """Raise a ValueError naming `fn` if TNS with `steps` steps cannot fit φ at (p, ε) within :data:`MAX_FIT_ERROR`."""
    fit = tns_weights(p, eps, steps)
    if fit.fit_error > MAX_FIT_ERROR:
        raise ValueError(
            f"{fn}: TNS with {steps_name}={steps} and {eps_name}={eps:g} cannot reach p = {p:.4g} (scalar fit "
            f"error {fit.fit_error:.1%} > {MAX_FIT_ERROR:.0%}); it covers about p in [-0.5, 1] at 7 steps with "
            f"{eps_name} >= 3e-3 and [-0.5, 1.3] at 8 with {eps_name} >= 1e-3: narrow the p range, raise "
            f"{steps_name} or {eps_name}, or use method='eigh' / 'svd'"
        )


def tns_batched(X: Tensor, fit: TNSWeights, precision: str, overwrite: bool = False) -> Tensor:
    """Y = Σ_k w_k X_k for a (B, r, c) batch of either orientation (:func:`~.quintic.run_quintic`), with the weights
    and trajectory of `fit` (:func:`tns_weights`); returns the accumulator: float32, or bfloat16 for
    precision="bf16_all".

    X₀ = X/‖X‖_F (:func:`normalized`: exact for any finite X) in the first step's iterate dtype (bfloat16 in
    "bf16_all": X₀ is rounded once, where a float32 X₀ cost two more passes over the matrix); in bf16 all but the last
    :data:`TNS_BF16_STEPS` steps run in "mixed". "bf16_all" accumulates in bfloat16 too: the sum's memory traffic
    was a quarter of the kernel's time on CPU, and on the quality runs' directions it adds 0.01-0.09 points to an
    error of 1.5-4.3 % that the bf16 rounding of the iterates sets (docs/shaping.md, "What training needs").
    `overwrite`: X may serve as the iterate (its contents are lost)."""
    weights, steps = fit.weights, len(fit.coefficients)
    precisions = step_precisions(precision, steps, steps - TNS_BF16_STEPS)
    accumulator = torch.bfloat16 if precision == "bf16_all" else torch.float32
    dtype = iterate_dtype(precisions[0])
    donated = overwrite and X.dtype == dtype and X.is_contiguous()
    start = [normalized(X, dtype, out=X if donated else None)]
    Y = torch.mul(start[0], weights[0], out=torch.empty(start[0].shape, dtype=accumulator, device=X.device))
    # pop: only run_quintic may hold the iterate, so that switching it to bf16 frees the float32 copy
    # each new block is added while it is in cache; a bf16 block into a float32 Y converts on the fly (as
    # fast as converting it first, without a float32 copy)
    right = is_tall(Y)
    run_quintic(start.pop(), fit.coefficients, precisions, held=Y.element_size() / 4,
                each_block=lambda k, cut, x: long_block(Y, cut, right).add_(x, alpha=weights[k]))  # fmt: skip
    return Y
