"""The optimisers and schedules of scratchcnn.train.optimisers against torch.optim, on identical gradients."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import skip_or_fail

from scratchcnn.errors import ConfigError
from scratchcnn.train import optimisers as opt

try:
    import torch
except ImportError:  # CI installs torch; a user's machine may lack it
    torch = None

SHAPES = {"f": (3, 5, 5), "W": (10, 3, 4, 4), "b": (10,)}
LR = 0.05
STEPS = 20

# (our optimiser, torch's optimiser with the same settings), each with and without weight decay
CASES = {
    "sgd": (lambda: opt.SGD(), lambda p: torch.optim.SGD(p, lr=LR)),
    "sgd-decay": (lambda: opt.SGD(weight_decay=0.1), lambda p: torch.optim.SGD(p, lr=LR, weight_decay=0.1)),
    "momentum": (lambda: opt.Momentum(), lambda p: torch.optim.SGD(p, lr=LR, momentum=opt.MOMENTUM)),
    "momentum-decay": (lambda: opt.Momentum(momentum=0.8, weight_decay=0.1),
                       lambda p: torch.optim.SGD(p, lr=LR, momentum=0.8, weight_decay=0.1)),
    "nesterov": (lambda: opt.Momentum(nesterov=True),
                 lambda p: torch.optim.SGD(p, lr=LR, momentum=opt.MOMENTUM, nesterov=True)),
    "nesterov-decay": (lambda: opt.Momentum(nesterov=True, weight_decay=0.1),
                       lambda p: torch.optim.SGD(p, lr=LR, momentum=opt.MOMENTUM, nesterov=True, weight_decay=0.1)),
    "adam": (lambda: opt.Adam(), lambda p: torch.optim.Adam(p, lr=LR)),
    "adam-decay": (lambda: opt.Adam(beta1=0.8, beta2=0.99, eps=1e-6, weight_decay=0.1),
                   lambda p: torch.optim.Adam(p, lr=LR, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
}


@pytest.fixture(autouse=True)
def needs_torch() -> None:
    if torch is None:
        skip_or_fail("torch is not installed (pip install torch): it is the oracle here")


def start(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: rng.normal(0, 1, shape) for name, shape in SHAPES.items()}


def gradients(seed: int = 1, steps: int = STEPS) -> list[dict[str, np.ndarray]]:
    """A random gradient per step and parameter, of mixed scales so Adam's normalisation matters."""
    rng = np.random.default_rng(seed)
    return [{name: rng.normal(0, 1, shape) * rng.choice([1e-3, 1, 10], shape) for name, shape in SHAPES.items()}
            for _ in range(steps)]


def run_ours(optimiser: opt.Optimiser, params: dict[str, np.ndarray], grads: list, lr: float = LR) -> None:
    for g in grads:
        optimiser.step(params, g, lr)


def run_torch(make, params: dict[str, np.ndarray], grads: list) -> dict[str, np.ndarray]:
    tensors = {name: torch.tensor(value, dtype=torch.float64, requires_grad=True) for name, value in params.items()}
    optimiser = make(list(tensors.values()))
    for g in grads:
        for name, t in tensors.items():
            t.grad = torch.tensor(g[name], dtype=torch.float64)
        optimiser.step()
    return {name: t.detach().numpy() for name, t in tensors.items()}


@pytest.mark.parametrize("case", CASES)
def test_each_optimiser_matches_torch_optim(case: str) -> None:
    ours, theirs = CASES[case]
    params, grads = start(), gradients()
    expected = run_torch(theirs, params, grads)
    initial = {name: value.copy() for name, value in params.items()}
    run_ours(ours(), params, grads)
    for name in SHAPES:
        assert params[name].dtype == np.float64
        assert not np.allclose(params[name], initial[name]), name  # it moved, so the comparison means something
        np.testing.assert_allclose(params[name], expected[name], rtol=1e-10, atol=0, err_msg=f"{case} {name}")


def test_the_optimisers_differ_from_each_other() -> None:
    """The oracle comparisons above would pass for a mix-up only if the cases agreed: they do not."""
    finals = []
    for case in ("sgd", "momentum", "nesterov", "adam", "adam-decay"):
        params = start()
        run_ours(CASES[case][0](), params, gradients())
        finals.append(params["W"])
    for i, a in enumerate(finals):
        for b in finals[i + 1:]:
            assert not np.allclose(a, b)


def torch_rates(make_scheduler, epochs: int = 30) -> list[float]:
    optimiser = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=LR)
    scheduler = make_scheduler(optimiser)
    rates = []
    for _ in range(epochs):
        rates.append(optimiser.param_groups[0]["lr"])
        optimiser.step()
        scheduler.step()
    return rates


@pytest.mark.parametrize(("ours", "theirs"), [
    (lambda: opt.constant(), lambda o: torch.optim.lr_scheduler.ConstantLR(o, factor=1.0)),
    (lambda: opt.step(7), lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=7)),
    (lambda: opt.step(4, gamma=0.5), lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=4, gamma=0.5)),
    (lambda: opt.cosine(30), lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=30)),
    (lambda: opt.cosine(30, min_lr=1e-3),
     lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=30, eta_min=1e-3)),
    (lambda: opt.cosine(12, min_lr=1e-3),  # past T the cosine climbs back, in torch too
     lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=12, eta_min=1e-3)),
], ids=["constant", "step", "step-gamma", "cosine", "cosine-min", "cosine-past-end"])
def test_schedules_match_torch_schedulers_over_30_epochs(ours, theirs) -> None:
    schedule = ours()
    expected = torch_rates(theirs)
    got = [schedule(LR, epoch) for epoch in range(30)]
    assert got[0] == LR
    # absolute floor for the cosine's exact zero, which torch's recursive update reaches only to rounding
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-15)


def test_schedules_change_the_rate() -> None:
    assert opt.step(7)(LR, 7) == pytest.approx(LR * opt.STEP_GAMMA)
    assert opt.cosine(30)(LR, 15) == pytest.approx(LR / 2)
    assert opt.cosine(30)(LR, 30) == pytest.approx(0, abs=1e-18)


@pytest.mark.parametrize("case", ["sgd-decay", "momentum", "nesterov-decay", "adam", "adam-decay"])
def test_state_round_trip_resumes_bit_for_bit(case: str) -> None:
    """10 steps, state saved (its JSON part through json), a fresh optimiser loads it, 10 more = 20 in a row."""
    make = CASES[case][0]
    grads = gradients()
    straight = start()
    run_ours(make(), straight, grads)

    params, first = start(), make()
    run_ours(first, params, grads[:10])
    state = first.state()
    buffers = {key: np.array(value) for key, value in state.pop("buffers").items()}  # as a checkpoint's arrays
    saved = json.loads(json.dumps(state))
    del first
    second = make()
    second.load_state({**saved, "buffers": buffers})
    run_ours(second, params, grads[10:])
    for name in SHAPES:
        assert np.array_equal(params[name], straight[name]), f"{case} {name}"
    assert second.state()["step"] == STEPS


def test_the_round_trip_needs_the_buffers() -> None:
    """Without its buffers, a resumed momentum run differs: the test above checks something."""
    grads = gradients()
    straight, params = start(), start()
    run_ours(opt.Momentum(), straight, grads)
    first = opt.Momentum()
    run_ours(first, params, grads[:10])
    second = opt.Momentum()
    second.load_state({**first.state(), "buffers": {}})
    run_ours(second, params, grads[10:])
    assert not np.allclose(params["W"], straight["W"])


def test_load_state_refuses_another_optimiser_or_other_settings() -> None:
    state = opt.Adam().state()
    with pytest.raises(ConfigError, match="adam"):
        opt.Momentum().load_state(state)
    with pytest.raises(ConfigError, match="beta1"):
        opt.Adam(beta1=0.5).load_state(state)


@pytest.mark.parametrize("make", [
    lambda: opt.Momentum(momentum=1.0), lambda: opt.Adam(beta2=-0.1), lambda: opt.Adam(eps=0),
    lambda: opt.SGD(weight_decay=-1), lambda: opt.step(0), lambda: opt.cosine(0), lambda: opt.cosine(5, min_lr=-1),
])
def test_bad_settings_are_refused(make) -> None:
    with pytest.raises(ConfigError):
        make()
