"""SpectralOptimizer: peer equivalence (torch Muon, torch AdamW), update maths per order/base, state round trips,
validation and non-finite handling."""

from __future__ import annotations

import copy

import pytest
import torch

from hf_spectral import (
    TORCH_MUON_PARITY,
    DynMuon,
    Muon,
    MuonP,
    NonFiniteGradientError,
    SpectralAdam,
    SpectralOptimizer,
    spectral_power,
)
from hf_spectral.config import SpectralConfig
from hf_spectral.updates import adamw_update_rms

EPS = SpectralConfig.floor  # the optimizers' ε floor, which the references below must use


def _params(shapes, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(*s, generator=g, dtype=dtype)) for s in shapes]


def _grads(params, step, seed=100):
    g = torch.Generator().manual_seed(seed + step)
    for t in params:
        t.grad = torch.randn(t.shape, generator=g, dtype=t.dtype)


def _run(opt, params, steps, start=0):
    for k in range(start, start + steps):
        _grads(params, k)
        opt.step()


SHAPES = [(32, 48), (64, 24), (40, 40)]


def _assert_same_trajectory(opt, ours, ref, theirs, steps):
    """Both optimizers see the same gradients for `steps` steps and end at the same weights (to 1e-6)."""
    for k in range(steps):
        _grads(ours, k)
        _grads(theirs, k)
        opt.step()
        ref.step()
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_muon_matches_torch_optim_muon(precision):
    """Muon with TORCH_MUON_PARITY (Keller's NS5, scale="spectral", ν = μ): each step equals torch.optim.Muon's to
    bf16 tolerance.

    torch.optim.Muon iterates in bf16; its own update is 1.2–1.6 % (relative Frobenius) away from the same
    iteration in float32 on these shapes, and two bf16 implementations differ by ~2 %. Tolerance: 3 % of the step."""
    tol = 3e-2
    ours, theirs = _params(SHAPES), _params(SHAPES)
    kw = {"lr": 0.02, "weight_decay": 0.1, "momentum": 0.95, "nesterov": True}
    opt = Muon([{"params": ours, "algorithm": "spectral"}], **{**TORCH_MUON_PARITY, "precision": precision}, **kw)
    ref = torch.optim.Muon(theirs, **kw)
    for k in range(3):
        with torch.no_grad():  # same weights before every step; the momentum buffers evolve independently
            for a, b in zip(ours, theirs, strict=True):
                a.copy_(b)
        before = [t.detach().clone() for t in theirs]
        _grads(ours, k)
        _grads(theirs, k)
        opt.step()
        ref.step()
        for a, b, w0 in zip(ours, theirs, before, strict=True):
            step = b.detach() - w0
            assert float((a.detach() - b.detach()).norm() / step.norm()) < tol


def test_adam_base_p_one_preserve_equals_adamw():
    """base="adam", p = 1, scale="preserve": the shaping is the identity, so the step is AdamW's (to 1e-6)."""
    ours, theirs = _params(SHAPES, seed=1), _params(SHAPES, seed=1)
    kw = {"lr": 1e-2, "weight_decay": 0.05}
    opt = SpectralAdam(ours, p=1.0, scale="preserve", betas=(0.9, 0.999), adam_eps=1e-8, **kw)
    ref = torch.optim.AdamW(theirs, betas=(0.9, 0.999), eps=1e-8, **kw)
    _assert_same_trajectory(opt, ours, ref, theirs, steps=5)


def test_adamw_groups_equal_torch_adamw():
    shapes = [(10,), (7, 5), (3, 4, 2)]
    ours, theirs = _params(shapes, seed=2), _params(shapes, seed=2)
    opt = SpectralOptimizer(
        [{"params": ours, "algorithm": "adamw"}], lr=3e-3, weight_decay=0.01, adamw_betas=(0.8, 0.99), adamw_eps=1e-6
    )
    ref = torch.optim.AdamW(theirs, lr=3e-3, weight_decay=0.01, betas=(0.8, 0.99), eps=1e-6)
    _assert_same_trajectory(opt, ours, ref, theirs, steps=6)
    assert set(opt.state[ours[0]]) == {"step", "exp_avg", "exp_avg_sq"}


@pytest.mark.parametrize(("nesterov", "nu", "mix"), [(True, None, 0.9), (True, 0.7, 0.7), (True, 0.0, 0.0),
                                                    (False, 0.7, 1.0)])  # fmt: skip
def test_momentum_first_shapes_the_nesterov_mix(nesterov, nu, mix):
    """D = (1−ν)G + νB with B ← μB + (1−μ)G: ν = μ for nu=None (Nesterov), 1 without Nesterov, else ν itself."""
    (W,) = _params([(24, 40)], seed=3)
    W0 = W.detach().clone()
    opt = MuonP([W], lr=0.1, p=0.5, momentum=0.9, nesterov=nesterov, nu=nu, scale="none", method="eigh")
    buf = torch.zeros_like(W)
    for k in range(3):
        _grads([W], k)
        G = W.grad.clone()
        opt.step()
        buf = 0.9 * buf + 0.1 * G
        W0 = W0 - 0.1 * spectral_power((1 - mix) * G + mix * buf, 0.5, eps=EPS, method="eigh")
    torch.testing.assert_close(W.detach(), W0, rtol=1e-5, atol=1e-6)


def test_shape_first_averages_shaped_gradients():
    (W,) = _params([(24, 40)], seed=4)
    W0 = W.detach().clone()
    opt = MuonP([W], lr=0.1, p=0.25, momentum=0.8, nesterov=False, order="shape_first", scale="none", method="eigh")
    buf = torch.zeros_like(W)
    for k in range(3):
        _grads([W], k)
        S = spectral_power(W.grad, 0.25, eps=EPS, method="eigh")
        opt.step()
        buf = 0.8 * buf + 0.2 * S
        W0 = W0 - 0.1 * buf
    torch.testing.assert_close(W.detach(), W0, rtol=1e-5, atol=1e-6)


def test_order_none_shapes_the_raw_gradient():
    (W,) = _params([(24, 40)], seed=5)
    W0 = W.detach().clone()
    opt = MuonP([W], lr=0.1, p=-0.25, order="none", scale="none", method="eigh")
    _grads([W], 0)
    expected = W0 - 0.1 * spectral_power(W.grad, -0.25, eps=EPS, method="eigh")
    opt.step()
    torch.testing.assert_close(W.detach(), expected, rtol=1e-5, atol=1e-6)
    assert not opt.state[W]  # no momentum state


def test_rms_scale_gives_target_rms_independent_of_gradient_size():
    (W,) = _params([(48, 96)], seed=6)
    for magnitude in (1e-6, 1.0, 1e4):
        opt = SpectralOptimizer([W], lr=1.0, p=0.3, rms=0.2, order="none")
        W0 = W.detach().clone()
        W.grad = magnitude * torch.randn(W.shape, generator=torch.Generator().manual_seed(7))
        opt.step()
        rms = float((W.detach() - W0).pow(2).mean().sqrt())
        assert abs(rms - 0.2) < 1e-4, (magnitude, rms)


@pytest.mark.parametrize("beta1", [0.9, 0.8, 0.0])
def test_adamw_update_rms_is_what_adamw_does_on_noise(beta1):
    """The closed form ρ(t) against torch.optim.AdamW itself on zero-mean noise gradients (a 512×512 matrix, so the
    sample RMS is within ~0.5 % of its expectation): 1 at the first step, → √((1−β₁)/(1+β₁))."""
    W = torch.nn.Parameter(torch.zeros(512, 512))
    opt = torch.optim.AdamW([W], lr=1.0, betas=(beta1, 0.999), eps=1e-12, weight_decay=0.0)
    g = torch.Generator().manual_seed(0)
    for t in range(1, 101):
        before = W.detach().clone()
        W.grad = torch.randn(W.shape, generator=g)
        opt.step()
        if t in (1, 2, 3, 5, 10, 20, 50, 100):
            measured = float((W.detach() - before).pow(2).mean().sqrt())
            assert measured == pytest.approx(adamw_update_rms(t, beta1), rel=2e-2), t
    assert adamw_update_rms(10_000, beta1) == pytest.approx(((1 - beta1) / (1 + beta1)) ** 0.5)


def test_default_rms_follows_adamw_and_lora_groups_scale_it():
    """rms="adamw": the update RMS at step t is ρ(t) for the group's β₁, whatever the gradient's size; a group
    marked lora=True gets lora_rms_scale × that."""
    plain, lora = _params([(48, 96), (8, 96)], seed=8)
    opt = SpectralOptimizer(
        [{"params": [plain], "algorithm": "spectral"}, {"params": [lora], "algorithm": "spectral", "lora": True}],
        lr=1.0, p=0.0, method="eigh", order="none", betas=(0.8, 0.95), lora_rms_scale=1.5,
    )  # fmt: skip
    g = torch.Generator().manual_seed(9)
    for t, magnitude in zip(range(1, 5), (1e-6, 1.0, 1e4, 3.0), strict=True):
        before = [plain.detach().clone(), lora.detach().clone()]
        for W in (plain, lora):
            W.grad = magnitude * torch.randn(W.shape, generator=g)
        opt.step()
        rms = [float((W.detach() - b).pow(2).mean().sqrt()) for W, b in zip((plain, lora), before, strict=True)]
        assert rms[0] == pytest.approx(adamw_update_rms(t, 0.8), rel=1e-4)
        assert rms[1] == pytest.approx(1.5 * adamw_update_rms(t, 0.8), rel=1e-4)


def test_zero_gradient_gives_zero_update_no_nan():
    """LoRA A's gradient is exactly zero while B = 0: the update must be zero, not NaN."""
    (W,) = _params([(8, 64)], seed=8)
    W0 = W.detach().clone()
    opt = SpectralOptimizer([W], lr=0.1, p=-0.25)
    W.grad = torch.zeros_like(W)
    opt.step()
    assert torch.equal(W.detach(), W0)


def test_split_rows_shapes_blocks_separately():
    (W,) = _params([(30, 16)], seed=9)
    W0 = W.detach().clone()
    opt = SpectralOptimizer(
        [{"params": [W], "algorithm": "spectral", "split_rows": (10, 10, 10)}], lr=1.0, p=0.5, order="none",
        scale="none", method="eigh",
    )  # fmt: skip
    _grads([W], 0)
    expected = W0 - torch.cat([spectral_power(b, 0.5, eps=EPS, method="eigh") for b in W.grad.split(10)])
    opt.step()
    torch.testing.assert_close(W.detach(), expected, rtol=1e-5, atol=1e-6)


def test_conv_kernel_is_shaped_as_a_matrix():
    (K,) = _params([(8, 3, 3, 3)], seed=10)
    K0 = K.detach().clone()
    opt = SpectralOptimizer([{"params": [K], "algorithm": "spectral"}], lr=1.0, p=0.5, order="none", scale="none")
    _grads([K], 0)
    expected = K0 - spectral_power(K.grad.reshape(8, 27), 0.5, eps=EPS).reshape(K.shape)
    opt.step()
    torch.testing.assert_close(K.detach(), expected, rtol=1e-5, atol=1e-6)


def test_bare_tensors_are_split_by_dimension_with_a_warning():
    params = _params([(8, 8), (8,)], seed=11)
    with pytest.warns(UserWarning, match="named_parameters"):
        opt = SpectralOptimizer(params)
    assert [g["algorithm"] for g in opt.param_groups] == ["spectral", "adamw"]


def test_dynmuon_schedule_follows_step_count():
    (W,) = _params([(16, 16)], seed=12)
    opt = DynMuon([W], total_steps=100)
    schedule_p = [opt.p_at(opt.param_groups[0], k) for k in range(100)]
    assert schedule_p[0] == pytest.approx(-0.1 + 0.2 / (1 + torch.e ** (-1)))
    assert schedule_p[4] == pytest.approx(0.0)  # t = τ: halfway between 0.1 and −0.1
    assert schedule_p[-1] == pytest.approx(-0.1, abs=1e-3)
    paper = DynMuon([W], total_steps=100, p="dynmuon_paper")
    assert paper.p_at(paper.param_groups[0], 4) == pytest.approx(0.375)  # halfway between 1.0 and −0.25
    seen = []
    for k in range(6):
        _grads([W], k)
        opt.step()
        seen.append(opt.current_p())
    assert seen == pytest.approx(schedule_p[:6])


def test_schedule_without_total_steps_raises_clearly():
    (W,) = _params([(16, 16)], seed=13)
    opt = DynMuon([W])
    _grads([W], 0)
    with pytest.raises(ValueError, match="set_total_steps"):
        opt.step()
    opt.set_total_steps(10)
    opt.step()
    assert opt.param_groups[0]["step"] == 1


@pytest.mark.parametrize(
    "factory",
    [
        lambda ps: DynMuon(ps, p="dynmuon_record", total_steps=12, weight_decay=0.1),
        lambda ps: SpectralAdam(ps, p=0.25, weight_decay=0.1),
        lambda ps: MuonP(ps, p=0.5, order="shape_first"),
        lambda ps: Muon(ps),
    ],
    ids=["dynmuon", "spectral_adam", "muonp_shape_first", "muon"],
)
def test_state_dict_round_trip_is_bit_exact(factory):
    """Resume mid-schedule from a state_dict: the next steps equal an uninterrupted run, bit for bit."""
    shapes = [(24, 40), (40, 24), (7,)]
    straight, resumed = _params(shapes, seed=14), _params(shapes, seed=14)
    opt = factory([{"params": straight[:2], "algorithm": "spectral"}, {"params": straight[2:], "algorithm": "adamw"}])
    _run(opt, straight, 12)

    first = factory([{"params": resumed[:2], "algorithm": "spectral"}, {"params": resumed[2:], "algorithm": "adamw"}])
    _run(first, resumed, 5)
    saved = copy.deepcopy(first.state_dict())
    del first
    second = factory([{"params": resumed[:2], "algorithm": "spectral"}, {"params": resumed[2:], "algorithm": "adamw"}])
    second.load_state_dict(saved)
    assert second.param_groups[0]["step"] == 5
    _run(second, resumed, 7, start=5)
    for a, b in zip(straight, resumed, strict=True):
        assert torch.equal(a, b)


def test_spectral_adam_checkpoints_with_an_integer_step_still_resume_exactly():
    """Checkpoints written before the per-parameter step became a tensor (torch's AdamW convention) stored an int:
    they load, and the run continues as if uninterrupted."""
    shapes = [(24, 40), (40, 24)]
    straight, resumed = _params(shapes, seed=31), _params(shapes, seed=31)
    _run(SpectralAdam(straight, p=0.25), straight, 6)
    first = SpectralAdam(resumed, p=0.25)
    _run(first, resumed, 3)
    saved = copy.deepcopy(first.state_dict())
    for state in saved["state"].values():
        assert isinstance(state["step"], torch.Tensor) and state["step"].dtype == torch.float32
        state["step"] = int(state["step"])  # the old format
    second = SpectralAdam(resumed, p=0.25)
    second.load_state_dict(saved)
    _run(second, resumed, 3, start=3)
    for a, b in zip(straight, resumed, strict=True):
        assert torch.equal(a, b)


def test_eps_is_a_deprecated_alias_of_floor():
    """The floor ε of φ was called eps (clashing with adam_eps / adamw_eps): the old keyword and param-group key
    still work for one release, with a FutureWarning; checkpoints that stored it as eps load as floor."""
    (W,) = _params([(24, 40)], seed=32)
    with pytest.warns(FutureWarning, match="now called floor"):
        opt = MuonP([W], p=-0.25, eps=1e-3)
    assert opt.param_groups[0]["floor"] == 1e-3 and "eps" not in opt.param_groups[0]
    with pytest.warns(FutureWarning, match="now called floor"):
        grouped = SpectralOptimizer([{"params": [W], "algorithm": "spectral", "eps": 1e-2}])
    assert grouped.param_groups[0]["floor"] == 1e-2
    with pytest.raises(ValueError, match="pass floor only"):
        MuonP([W], floor=1e-3, eps=1e-3)

    shapes = [(24, 40), (7,)]
    straight, resumed = _params(shapes, seed=33), _params(shapes, seed=33)
    groups = lambda ps: [{"params": ps[:1], "algorithm": "spectral"}, {"params": ps[1:], "algorithm": "adamw"}]  # noqa: E731
    _run(DynMuon(groups(straight), floor=1e-3, total_steps=6), straight, 6)
    first = DynMuon(groups(resumed), floor=1e-3, total_steps=6)
    _run(first, resumed, 3)
    saved = copy.deepcopy(first.state_dict())
    saved["param_groups"][0]["eps"] = saved["param_groups"][0].pop("floor")  # as written before the rename
    second = DynMuon(groups(resumed), total_steps=6)  # the checkpoint's floor (1e-3) wins, as every loaded value
    second.load_state_dict(saved)
    assert second.param_groups[0]["floor"] == 1e-3 and "eps" not in second.param_groups[0]
    assert second.param_groups[1]["eps"] == 1e-8  # AdamW's own eps is untouched
    _run(second, resumed, 3, start=3)
    for a, b in zip(straight, resumed, strict=True):
        assert torch.equal(a, b)


def test_state_is_created_lazily():
    (W,) = _params([(16, 16)], seed=15)
    opt = Muon([W])
    assert len(opt.state) == 0
    _grads([W], 0)
    opt.step()
    assert set(opt.state[W]) == {"momentum_buffer"}


def test_add_param_group_inherits_step_count():
    a, b = _params([(16, 16), (16, 16)], seed=16)
    opt = DynMuon([a], total_steps=50)
    _run(opt, [a], 3)
    opt.add_param_group({"params": [b]})
    assert opt.param_groups[1]["step"] == 3 and opt.param_groups[1]["total_steps"] == 50
    assert opt.param_groups[1]["p"] == opt.param_groups[0]["p"]


@pytest.mark.parametrize("mode", ["raise", "skip"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nonfinite_gradient_never_touches_weights_or_state(mode, bad):
    params = _params([(16, 24), (5,)], seed=17)
    opt = SpectralOptimizer(
        [{"params": params[:1], "algorithm": "spectral"}, {"params": params[1:], "algorithm": "adamw"}],
        nonfinite=mode,
    )
    _run(opt, params, 2)
    weights = [t.detach().clone() for t in params]
    state = copy.deepcopy(opt.state_dict())
    _grads(params, 5)
    params[0].grad[3, 4] = bad
    if mode == "raise":
        with pytest.raises(NonFiniteGradientError, match="NaN or Inf"):
            opt.step()
    else:
        opt.step()
        assert opt.skipped_steps == 1
    for t, w in zip(params, weights, strict=True):
        assert torch.equal(t.detach(), w)
    after = opt.state_dict()
    assert after["param_groups"] == state["param_groups"]
    for k, v in state["state"].items():
        for key, tensor in v.items():
            assert torch.equal(after["state"][k][key], tensor)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"lr": -1.0}, r"lr must be in \[0.0, inf\]"),
        ({"weight_decay": -0.1}, "weight_decay must be in"),
        ({"p": 2.5}, r"p must be in \[-1.0, 2.0\]"),
        ({"p": -0.9, "floor": 1e-3}, "cannot reach p = -0.9"),
        ({"p": {"schedule": "logistic", "start": 1.0, "end": -0.25, "width": 0.0}}, r"width must be in \(0.0, 1.0\]"),
        ({"p": {"schedule": "wave"}}, "'schedule' in"),
        ({"p": {"schedule": "linear", "begin": 1.0}}, "unknown keys"),
        ({"p": "dynmoon"}, "unknown schedule preset"),
        ({"floor": 0.0}, r"floor must be in \(0.0, 1.0\]"),
        ({"method": "qr"}, "method must be one of"),
        ({"precision": "fp8"}, "precision must be one of"),
        ({"ns_steps": 0}, r"ns_steps must be an integer in \[1, 100\]"),
        ({"base": "lion"}, "base must be one of"),
        ({"order": "later"}, "order must be one of"),
        ({"base": "adam", "order": "shape_first"}, "shape_first.*base='momentum' only"),
        ({"momentum": 1.0}, r"momentum must be in \[0, 1\)"),
        ({"momentum": 1.5}, "momentum must be in"),
        ({"nesterov": "yes"}, "nesterov must be True or False"),
        ({"betas": (0.9,)}, "betas must be a pair"),
        ({"betas": (0.9, 1.2)}, r"betas\[1\] must be in"),
        ({"scale": "max"}, "scale must be one of"),
        ({"rms": 0.0}, r"rms must be in \(0.0, 10.0\]"),
        ({"method": "polar", "p": 0.5}, "computes p = 0 only"),
        ({"adamw_betas": (1.0, 0.9)}, r"betas\[0\] must be in \[0, 1\)"),
        ({"adamw_eps": -1.0}, "eps must be in"),
        ({"total_steps": 0}, "total_steps must be a positive integer"),
        ({"nonfinite": "ignore"}, "nonfinite must be one of"),
    ],
)
def test_bad_hyperparameters_name_the_argument(kwargs, match):
    params = _params([(8, 8), (8,)], seed=18)
    groups = [{"params": params[:1], "algorithm": "spectral"}, {"params": params[1:], "algorithm": "adamw"}]
    with pytest.raises(ValueError, match=match):
        SpectralOptimizer(groups, **kwargs)


def test_one_dimensional_spectral_param_is_refused():
    (v,) = _params([(64,)], seed=19)
    with pytest.raises(ValueError, match="FSDP2"):
        SpectralOptimizer([{"params": [v], "algorithm": "spectral"}])


def test_muon_refuses_nonzero_p():
    with pytest.raises(ValueError, match="p is fixed at 0"):
        Muon(_params([(8, 8)]), p=0.5)


def test_zero_lr_step_runs_before_total_steps_is_known():
    """torch.distributed.checkpoint creates optimizer state with one lr = 0 step before loading a checkpoint,
    before the Trainer callback has set total_steps: that step must run; a real step must still refuse."""
    (W,) = _params([(16, 16)], seed=20)
    W0 = W.detach().clone()
    opt = DynMuon([W], lr=0.0)
    W.grad = torch.zeros_like(W)
    opt.step()
    assert torch.equal(W.detach(), W0) and set(opt.state[W]) == {"momentum_buffer"}
    opt.param_groups[0]["lr"] = 0.1
    with pytest.raises(ValueError, match="set_total_steps"):
        opt.step()
