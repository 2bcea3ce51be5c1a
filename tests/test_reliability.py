"""Reliability of SpectralOptimizer.step: a step that raises changes nothing, non-finite detection without false
alarms, gradients at the edges of floating point, LR schedulers, checkpoints and bad gradients (issue 12)."""

from __future__ import annotations

import copy
import inspect
import warnings

import pytest
import torch
from torch.optim import lr_scheduler

from hf_spectral import DynMuon, Muon, MuonP, NonFiniteGradientError, SpectralOptimizer


def _params(shapes, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(*s, generator=g, dtype=dtype)) for s in shapes]


def _grads(params, step, scale=1.0, seed=100):
    g = torch.Generator().manual_seed(seed + step)
    for t in params:
        t.grad = scale * torch.randn(t.shape, generator=g, dtype=t.dtype)


def _three_groups(seed=0, total_steps=50, **kwargs):
    """spectral (first) → adamw → spectral (last, 96×160 so that it is shaped by TNS), each with state."""
    params = _params([(24, 40), (7,), (96, 160)], seed=seed)
    groups = [
        {"params": params[:1], "algorithm": "spectral", "names": ["first.weight"]},
        {"params": params[1:2], "algorithm": "adamw", "names": ["norm.weight"]},
        {"params": params[2:], "algorithm": "spectral", "names": ["last.weight"]},
    ]
    return params, SpectralOptimizer(groups, p="dynmuon_record", total_steps=total_steps, weight_decay=0.1, **kwargs)


def _snapshot(opt, params):
    return [t.detach().clone() for t in params], copy.deepcopy(opt.state_dict())


def _assert_unchanged(opt, params, snapshot):
    weights, state = snapshot
    for t, w in zip(params, weights, strict=True):
        assert torch.equal(t.detach(), w)
    after = opt.state_dict()
    assert after["param_groups"] == state["param_groups"]
    assert after["skipped_steps"] == state["skipped_steps"]
    assert after["state"].keys() == state["state"].keys()
    for k, v in state["state"].items():
        assert after["state"][k].keys() == v.keys()
        for key, value in v.items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(after["state"][k][key], value), (k, key)
            else:
                assert after["state"][k][key] == value, (k, key)


def _nonfinite(opt, params):
    params[2].grad[5, 7] = float("nan")
    return NonFiniteGradientError, "NaN or Inf"


def _no_total_steps(opt, params):
    for group in opt.param_groups:
        group["total_steps"] = None
    return ValueError, "set_total_steps"


def _complex_param(opt, params):
    z = torch.nn.Parameter(torch.randn(8, 8, dtype=torch.complex64))
    z.grad = torch.randn(8, 8, dtype=torch.complex64)
    opt.param_groups[2]["params"].append(z)
    return TypeError, "complex64"


def _sparse_adamw(opt, params):
    params[1].grad = params[1].grad.to_sparse()
    return RuntimeError, "'norm.weight' has a sparse gradient"


def _sparse_spectral(opt, params):
    params[2].grad = params[2].grad.to_sparse()
    return RuntimeError, "'last.weight' has a sparse gradient"


def _unreachable_p(opt, params):
    opt.param_groups[2]["p"] = {"schedule": "constant", "value": -0.9}
    opt.param_groups[2]["floor"] = 1e-3  # 7 TNS steps cannot reach -0.9 at floor 1e-3
    return ValueError, "cannot reach p = -0.9"


def _bad_method(opt, params):
    opt.param_groups[2]["method"] = "qr"
    return ValueError, "method must be one of"


def _flattened(opt, params):
    v = torch.nn.Parameter(torch.randn(30))
    v.grad = torch.randn(30)
    opt.param_groups[2]["params"].append(v)
    return ValueError, "needs a matrix"


@pytest.mark.parametrize(
    "fail",
    [_nonfinite, _no_total_steps, _complex_param, _sparse_adamw, _sparse_spectral, _unreachable_p, _bad_method,
     _flattened],
    ids=lambda f: f.__name__.strip("_"),
)  # fmt: skip
def test_a_step_that_raises_changes_nothing(fail):
    """The failure sits in the last group, after a spectral and an AdamW group that would already have been
    updated: every parameter, state tensor and param group must be bitwise as before the step."""
    params, opt = _three_groups()
    for k in range(2):
        _grads(params, k)
        opt.step()
    _grads(params, 2)
    error, match = fail(opt, params)
    snapshot = _snapshot(opt, params)
    with pytest.raises(error, match=match):
        opt.step()
    _assert_unchanged(opt, params, snapshot)


def test_dynmuon_without_total_steps_then_set_equals_a_fresh_optimizer():
    """The first step raises (no total_steps); after set_total_steps the step is the one a fresh optimizer takes."""
    (w,), (fresh_w,) = _params([(48, 80)], seed=1), _params([(48, 80)], seed=1)
    opt, fresh = DynMuon([w]), DynMuon([fresh_w], total_steps=10)
    _grads([w], 0)
    _grads([fresh_w], 0)
    with pytest.raises(ValueError, match="set_total_steps"):
        opt.step()
    assert not opt.state[w] and opt.param_groups[0]["step"] == 0
    opt.set_total_steps(10)
    opt.step()
    fresh.step()
    assert torch.equal(w.detach(), fresh_w.detach())
    assert torch.equal(opt.state[w]["momentum_buffer"], fresh.state[fresh_w]["momentum_buffer"])


def test_complex_spectral_parameter_is_refused_at_construction():
    z = torch.nn.Parameter(torch.randn(8, 8, dtype=torch.complex64))
    with pytest.raises(TypeError, match="real floating-point matrix"):
        SpectralOptimizer([{"params": [z], "algorithm": "spectral"}])


@pytest.mark.parametrize("algorithm", ["spectral", "adamw"])
def test_sparse_gradient_error_names_the_parameter(algorithm):
    (w,) = _params([(16, 24)], seed=2)
    opt = SpectralOptimizer([{"params": [w], "algorithm": algorithm, "names": ["embed.weight"]}])
    w.grad = torch.randn(16, 24).to_sparse()
    with pytest.raises(RuntimeError, match=r"'embed\.weight' has a sparse gradient.*dense gradients"):
        opt.step()
    unnamed = SpectralOptimizer([{"params": [w], "algorithm": algorithm}])
    with pytest.raises(RuntimeError, match=r"of shape \(16, 24\) in param group 0 has a sparse gradient"):
        unnamed.step()


@pytest.mark.parametrize("magnitude", [1e20, 1e30, 3e36])
def test_huge_finite_gradients_are_no_nonfinite_alarm(magnitude):
    """‖G‖₂ of entries ~1e20 overflows float32; the entries are finite, so the step must run (and stay finite)."""
    params, opt = _three_groups()
    _grads(params, 0, scale=magnitude)
    opt.step()
    assert opt.skipped_steps == 0
    assert all(bool(torch.isfinite(t).all()) for t in params)


def test_half_precision_gradients_whose_norm_overflows_are_no_alarm():
    """float16 gradients with entries ~3e4: their 2-norm overflows float16 (65504) but every entry is finite."""
    params = _params([(96, 160), (7,)], seed=3, dtype=torch.float16)
    opt = SpectralOptimizer(
        [{"params": params[:1], "algorithm": "spectral"}, {"params": params[1:], "algorithm": "adamw"}], lr=1e-3
    )
    before = [t.detach().clone() for t in params]
    _grads(params, 0, scale=1e4)
    assert not torch.isfinite(torch.linalg.vector_norm(params[0].grad))
    opt.step()
    for t, b in zip(params, before, strict=True):
        assert bool(torch.isfinite(t).all()) and not torch.equal(t.detach(), b)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_nonfinite_entries_are_still_found(bad):
    params, opt = _three_groups(nonfinite="skip")
    _grads(params, 0, scale=1e30)
    params[0].grad[3, 3] = bad
    opt.step()
    assert opt.skipped_steps == 1


def test_empty_gradients_are_fine_in_the_nonfinite_check():
    """An FSDP2 rank can hold zero rows of a matrix; the max-abs check must skip empty tensors."""
    w, e = torch.nn.Parameter(torch.randn(4, 4)), torch.nn.Parameter(torch.zeros(0))
    opt = SpectralOptimizer([{"params": [w], "algorithm": "spectral"}, {"params": [e], "algorithm": "adamw"}])
    w.grad, e.grad = torch.randn(4, 4), torch.zeros(0)
    opt.step()
    assert opt.param_groups[0]["step"] == 1


def test_step_without_gradients_changes_nothing():
    """No gradient anywhere (e.g. a closure that returned early): no state, and the p schedule does not advance."""
    (w,) = _params([(32, 48)], seed=4)
    opt = DynMuon([w], total_steps=10)
    p0 = opt.current_p()
    assert opt.step(lambda: 1.5) == 1.5
    assert opt.param_groups[0]["step"] == 0 and opt.current_p() == p0 and not opt.state


@pytest.mark.parametrize("magnitude", [1e-23, 1e-30, 1e-38])
@pytest.mark.parametrize(
    ("factory", "precision", "tolerance"),
    [(MuonP, "fp32", 1e-5), (DynMuon, "fp32", 1e-5), (Muon, "bf16", 1e-2), (MuonP, "auto", 3e-2),
     (Muon, "auto", 3e-2), (DynMuon, "auto", 3e-2)],
    ids=["MuonP-fp32", "DynMuon-fp32", "Muon-bf16", "MuonP-default", "Muon-default", "DynMuon-default"],
)  # fmt: skip
def test_tiny_finite_gradients_keep_weights_finite_and_the_update_sized(factory, precision, tolerance, magnitude):
    """Gradients far below 1 are finite: the update must be finite and the one a unit-sized gradient gives (the
    shaping is scale free). The scaled gradient G·magnitude is not G times a power of two, so its float32 digits
    differ from G's in the last bit: in float32 that is invisible (1e-5), through bf16 (after a mixed start) it is
    bf16 rounding (1e-2), and through an all-bf16 iterate (the CPU default, "bf16_all") a last-bit difference can
    flip bf16 roundings that the iteration then carries: measured 0.05-2.4 %, hence 3e-2."""
    updates = []
    for scale in (1.0, magnitude):
        (w,) = _params([(96, 160)], seed=5)
        w0 = w.detach().clone()
        opt = factory([w], lr=1.0, total_steps=10, precision=precision)
        _grads([w], 0, scale=scale)
        opt.step()
        updates.append(w.detach() - w0)
    assert bool(torch.isfinite(updates[1]).all())
    assert float((updates[1] - updates[0]).norm() / updates[0].norm()) < tolerance


# ------------------------------------------------------------------------------------------------- LR schedulers
def _scheduler(name, opt):
    """Each torch LR scheduler with small, valid arguments."""
    s = lr_scheduler
    makers = {
        "LambdaLR": lambda: s.LambdaLR(opt, lambda k: 0.9**k),
        "MultiplicativeLR": lambda: s.MultiplicativeLR(opt, lambda k: 0.9),
        "StepLR": lambda: s.StepLR(opt, step_size=2),
        "MultiStepLR": lambda: s.MultiStepLR(opt, milestones=[1, 3]),
        "ConstantLR": lambda: s.ConstantLR(opt, factor=0.5, total_iters=2),
        "LinearLR": lambda: s.LinearLR(opt, start_factor=0.2, total_iters=3),
        "ExponentialLR": lambda: s.ExponentialLR(opt, gamma=0.8),
        "SequentialLR": lambda: s.SequentialLR(
            opt, [s.LinearLR(opt, start_factor=0.5, total_iters=2), s.ExponentialLR(opt, gamma=0.9)], milestones=[2]
        ),
        "CosineAnnealingLR": lambda: s.CosineAnnealingLR(opt, T_max=4),
        "ChainedScheduler": lambda: s.ChainedScheduler([s.ConstantLR(opt, factor=0.5), s.ExponentialLR(opt, 0.9)]),
        "ReduceLROnPlateau": lambda: s.ReduceLROnPlateau(opt, patience=0),
        "CyclicLR": lambda: s.CyclicLR(opt, base_lr=1e-4, max_lr=1e-2, step_size_up=2),
        "OneCycleLR": lambda: s.OneCycleLR(opt, max_lr=1e-2, total_steps=6),
        "CosineAnnealingWarmRestarts": lambda: s.CosineAnnealingWarmRestarts(opt, T_0=2),
        "PolynomialLR": lambda: s.PolynomialLR(opt, total_iters=4),
        "SWALR": lambda: torch.optim.swa_utils.SWALR(opt, swa_lr=1e-3, anneal_epochs=2),
    }
    return makers[name]()


TORCH_SCHEDULERS = sorted(
    name
    for name, cls in vars(lr_scheduler).items()
    if inspect.isclass(cls)
    and issubclass(cls, (lr_scheduler.LRScheduler, lr_scheduler.ReduceLROnPlateau))
    and not name.startswith("_")
    and name != "LRScheduler"
)


@pytest.mark.parametrize("name", [*TORCH_SCHEDULERS, "SWALR"])
def test_every_torch_lr_scheduler_drives_the_optimizer(name):
    """Every scheduler torch ships (found by introspection, so a new one fails here until it is listed) accepts the
    optimizer — OneCycleLR and CyclicLR with their default momentum cycling — and its lr reaches the weights."""
    params, opt = _three_groups()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. SequentialLR's deprecation notes
        scheduler = _scheduler(name, opt)
    for k in range(4):
        _grads(params, k)
        before = params[0].detach().clone()
        lr = opt.param_groups[0]["lr"]
        opt.step()
        assert not torch.equal(params[0].detach(), before) or lr == 0
        scheduler.step(1.0) if name == "ReduceLROnPlateau" else scheduler.step()
    assert all(bool(torch.isfinite(t).all()) for t in params)


@pytest.mark.parametrize("cls", ["OneCycleLR", "CyclicLR"])
def test_momentum_cycling_moves_betas_like_torch_adamw(cls):
    """cycle_momentum=True cycles betas[0]: the AdamW group steps exactly as torch.optim.AdamW under the same
    scheduler, and the spectral groups' rms='adamw' β₁ follows it."""
    (a,), (b,) = _params([(7, 3)], seed=6), _params([(7, 3)], seed=6)
    ours = SpectralOptimizer([{"params": [a], "algorithm": "adamw"}], lr=1e-2, adamw_betas=(0.9, 0.99))
    ref = torch.optim.AdamW([b], lr=1e-2, betas=(0.9, 0.99), weight_decay=0.0)
    kw = {"max_lr": 1e-2, "total_steps": 8} if cls == "OneCycleLR" else {"base_lr": 1e-3, "max_lr": 1e-2}
    sched = [getattr(lr_scheduler, cls)(o, **kw) for o in (ours, ref)]
    seen = set()
    for k in range(6):
        _grads([a], k)
        _grads([b], k)
        ours.step()
        ref.step()
        for s in sched:
            s.step()
        seen.add(ours.param_groups[0]["betas"][0])
        assert ours.param_groups[0]["betas"] == ref.param_groups[0]["betas"]
    assert len(seen) > 3
    assert torch.equal(a.detach(), b.detach())


# ---------------------------------------------------------------------------------------------------- checkpoints
def test_skipped_steps_survive_a_state_dict_round_trip():
    params, opt = _three_groups(nonfinite="skip")
    _grads(params, 0)
    params[0].grad[0, 0] = float("inf")
    opt.step()
    assert opt.skipped_steps == 1
    _, resumed = _three_groups(nonfinite="skip")
    resumed.load_state_dict(copy.deepcopy(opt.state_dict()))
    assert resumed.skipped_steps == 1


def test_loaded_total_steps_wins_and_a_different_one_warns():
    """The checkpoint's total_steps replaces the constructor's (as every loaded hyper-parameter does in torch.optim);
    a different value already set is reported, with how to keep it."""
    params, opt = _three_groups()
    _grads(params, 0)
    opt.step()
    saved = opt.state_dict()
    (_, same), (_, other), (_, unset) = (_three_groups(total_steps=n) for n in (50, 80, None))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        same.load_state_dict(copy.deepcopy(saved))
        unset.load_state_dict(copy.deepcopy(saved))
    with pytest.warns(UserWarning, match=r"checkpoint's total_steps=50 replaces total_steps=80.*set_total_steps\(80\)"):
        other.load_state_dict(copy.deepcopy(saved))
    for o in (same, other, unset):
        assert [g["total_steps"] for g in o.param_groups] == [50, 50, 50]
    other.add_param_group({"params": [torch.nn.Parameter(torch.randn(4, 4))]})
    assert other.param_groups[-1]["total_steps"] == 50


# ------------------------------------------------------------------------------------------------------ optim_args
def test_trailing_comma_in_optim_args_is_a_clear_error():
    """transformers' Trainer splits --optim_args on ',' itself and fails with 'not enough values to unpack' on an
    empty entry: refuse it when the arguments are parsed, saying what is wrong."""
    from transformers import TrainingArguments

    from hf_spectral.integrations.optim_args import parse_optim_args

    with pytest.raises(ValueError, match="trailing or doubled comma"):
        parse_optim_args("p=0.5,", "muonp")
    with pytest.raises(ValueError, match="trailing or doubled comma"):
        TrainingArguments(output_dir="unused", optim="muonp", optim_args="p=0.5,,momentum=0.9", use_cpu=True)
