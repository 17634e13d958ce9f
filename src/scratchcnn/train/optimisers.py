"""Optimisers (SGD, momentum, Nesterov, Adam) and learning-rate schedules, each update as its equation.

Every optimiser updates a dict of parameter arrays in place from a dict of gradients of the same shapes:

    opt = Adam(weight_decay=1e-4)
    for epoch in range(epochs):
        lr = schedule(learning_rate, epoch)          # e.g. cosine(epochs)(learning_rate, epoch)
        for batch in batches:
            opt.step(net.parameters(), grads, lr)    # θ ← θ − η · (the optimiser's direction)

The conventions are torch.optim's (SGD with momentum and dampening 0, Adam with bias correction,
weight decay as L2 added to the gradient), so that torch can check them (tests/test_optimisers.py).
``state()`` is JSON-able data plus ``"buffers"``, a flat dict of arrays named "<buffer>.<parameter>",
which a checkpoint can store beside the parameters; ``load_state`` restores it exactly.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np

from scratchcnn.errors import ConfigError
from scratchcnn.options import TRAINING, fraction

# The optimisers' defaults: torch.optim's own (μ and λ are options, typed in scratchcnn.options).
MOMENTUM = TRAINING.momentum  # μ
BETA1 = 0.9  # β₁: decay of Adam's first-moment average
BETA2 = 0.999  # β₂: decay of Adam's second-moment average
EPS = 1e-8  # ε: keeps Adam's denominator off zero
WEIGHT_DECAY = TRAINING.weight_decay  # λ: none unless asked for
STEP_GAMMA = 0.1  # γ: the step schedule's factor, as torch's StepLR

Params = dict[str, np.ndarray]
Schedule = Callable[[float, int], float]  # (base learning rate η₀, epoch e counted from 0) → η_e


def _nonnegative(name: str, value: Any, positive: bool = False) -> float:
    ok = isinstance(value, (int, float, np.number)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (positive and value == 0):
        raise ConfigError(f"{name} must be a {'positive' if positive else 'non-negative'} number, got {value!r}")
    return float(value)


class Optimiser(ABC):
    """The shared part: weight decay, the step count t, named buffers, and state round trips."""

    name = "optimiser"
    buffer_names: tuple[str, ...] = ()

    def __init__(self, weight_decay: float = WEIGHT_DECAY) -> None:
        self.weight_decay = _nonnegative("weight_decay", weight_decay)
        self.t = 0  # updates done so far
        self.buffers: dict[str, Params] = {b: {} for b in self.buffer_names}  # buffer → parameter → array

    def settings(self) -> dict[str, Any]:
        """The hyperparameters, JSON-able; a resumed optimiser must have the same ones."""
        return {"weight_decay": self.weight_decay}

    def step(self, params: Params, grads: Params, lr: float) -> None:
        """One update of every array in params (in place) from grads of the same shapes, step size lr."""
        self.t += 1
        for name, theta in params.items():
            g = grads[name]
            if self.weight_decay:
                g = g + self.weight_decay * theta  # g ← g + λ θ  (L2 penalty λ/2 ‖θ‖²)
            self.update(name, theta, g, lr)

    @abstractmethod
    def update(self, name: str, theta: np.ndarray, g: np.ndarray, lr: float) -> None:
        """Move theta (in place) by this optimiser's rule, from its gradient g (weight decay included)."""

    def buffer(self, kind: str, name: str, like: np.ndarray) -> np.ndarray:
        """The buffer ``kind`` of parameter ``name``, zeros of its shape and dtype the first time."""
        if name not in self.buffers[kind]:
            self.buffers[kind][name] = np.zeros_like(like)
        return self.buffers[kind][name]

    def state(self) -> dict[str, Any]:
        """{"optimiser", "settings", "step": JSON-able; "buffers": {"<buffer>.<parameter>": array copy}}."""
        return {"optimiser": self.name, "settings": self.settings(), "step": self.t,
                "buffers": {f"{kind}.{name}": array.copy()
                            for kind, arrays in self.buffers.items() for name, array in arrays.items()}}

    def load_state(self, state: dict[str, Any]) -> None:
        """Continue from ``state()``'s output; refuse one saved by another optimiser or other settings."""
        if state.get("optimiser") != self.name or state.get("settings") != self.settings():
            raise ConfigError(f"the saved optimiser state is {state.get('optimiser')} {state.get('settings')}, "
                              f"not {self.name} {self.settings()}")
        self.t = int(state["step"])
        self.buffers = {b: {} for b in self.buffer_names}
        for key, array in state["buffers"].items():
            kind, _, name = key.partition(".")
            if kind not in self.buffers:
                raise ConfigError(f"the saved optimiser state has an unknown buffer {key!r}")
            self.buffers[kind][name] = np.array(array, copy=True)


class SGD(Optimiser):
    """Plain stochastic gradient descent, the write-up's: θ ← θ − η g."""

    name = "sgd"

    def update(self, name: str, theta: np.ndarray, g: np.ndarray, lr: float) -> None:
        theta -= lr * g  # θ ← θ − η g


class Momentum(Optimiser):
    """Heavy-ball momentum (torch.optim.SGD's convention, dampening 0), or Nesterov's variant.

    v ← μ v + g;  θ ← θ − η v   (Nesterov: θ ← θ − η (g + μ v), with the new v)
    """

    name = "momentum"
    buffer_names = ("velocity",)

    def __init__(self, momentum: float = MOMENTUM, nesterov: bool = False, weight_decay: float = WEIGHT_DECAY) -> None:
        super().__init__(weight_decay)
        self.momentum = fraction("momentum", momentum)
        self.nesterov = bool(nesterov)

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "momentum": self.momentum, "nesterov": self.nesterov}

    def update(self, name: str, theta: np.ndarray, g: np.ndarray, lr: float) -> None:
        v = self.buffer("velocity", name, theta)
        v *= self.momentum  # v ← μ v ...
        v += g  # ... + g
        if self.nesterov:
            theta -= lr * (g + self.momentum * v)  # θ ← θ − η (g + μ v)
        else:
            theta -= lr * v  # θ ← θ − η v


class Adam(Optimiser):
    """Adam (Kingma & Ba 2015) with bias correction, torch.optim.Adam's formula.

    m ← β₁ m + (1 − β₁) g;  s ← β₂ s + (1 − β₂) g²;  θ ← θ − η/(1 − β₁ᵗ) · m / (√s / √(1 − β₂ᵗ) + ε)
    """

    name = "adam"
    buffer_names = ("m", "s")

    def __init__(self, beta1: float = BETA1, beta2: float = BETA2, eps: float = EPS,
                 weight_decay: float = WEIGHT_DECAY) -> None:
        super().__init__(weight_decay)
        self.beta1 = fraction("beta1", beta1)
        self.beta2 = fraction("beta2", beta2)
        self.eps = _nonnegative("eps", eps, positive=True)

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}

    def update(self, name: str, theta: np.ndarray, g: np.ndarray, lr: float) -> None:
        m = self.buffer("m", name, theta)
        s = self.buffer("s", name, theta)
        m += (1 - self.beta1) * (g - m)  # m ← β₁ m + (1 − β₁) g   (torch's lerp form)
        s *= self.beta2  # s ← β₂ s ...
        s += (1 - self.beta2) * g * g  # ... + (1 − β₂) g²
        corrected = 1 - self.beta1 ** self.t  # 1 − β₁ᵗ: m's bias towards its zero start
        denominator = np.sqrt(s) / math.sqrt(1 - self.beta2 ** self.t) + self.eps  # √ŝ + ε
        theta -= (lr / corrected) * m / denominator  # θ ← θ − η m̂ / (√ŝ + ε)


OPTIMISERS: dict[str, type[Optimiser]] = {"sgd": SGD, "momentum": Momentum, "adam": Adam}


# ---- learning-rate schedules: η_e from the base rate η₀ and the epoch e (0 for the first) -----------


def constant() -> Schedule:
    """η_e = η₀: the write-up's fixed step size."""
    return lambda base, epoch: base  # η_e = η₀


def step(every: int, gamma: float = STEP_GAMMA) -> Schedule:
    """η_e = η₀ γ^⌊e / every⌋, as torch's StepLR(step_size=every, gamma)."""
    if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
        raise ConfigError(f"the step schedule's interval must be a whole number ≥ 1, got {every!r}")
    gamma = _nonnegative("gamma", gamma, positive=True)
    return lambda base, epoch: base * gamma ** (epoch // every)  # η_e = η₀ γ^⌊e/every⌋


def cosine(total_epochs: int, min_lr: float = 0.0) -> Schedule:
    """η_e = η_min + (η₀ − η_min)(1 + cos(π e / T)) / 2, as torch's CosineAnnealingLR(T_max=T, eta_min).

    Past T the cosine climbs back, as torch's does; give T = the number of epochs to end at η_min.
    """
    if isinstance(total_epochs, bool) or not isinstance(total_epochs, (int, np.integer)) or total_epochs < 1:
        raise ConfigError(f"the cosine schedule's length must be a whole number ≥ 1, got {total_epochs!r}")
    min_lr = _nonnegative("min_lr", min_lr)

    def rate(base: float, epoch: int) -> float:
        return min_lr + (base - min_lr) * (1 + math.cos(math.pi * epoch / total_epochs)) / 2  # η_min + Δη (1+cos)/2

    return rate


SCHEDULES: dict[str, Callable[..., Schedule]] = {"constant": constant, "step": step, "cosine": cosine}


def make(name: str, *, momentum: float = MOMENTUM, weight_decay: float = WEIGHT_DECAY) -> Optimiser:
    """The optimiser a run's options name: sgd, momentum, nesterov or adam."""
    if name == "sgd":
        return SGD(weight_decay)
    if name in ("momentum", "nesterov"):
        return Momentum(momentum, nesterov=name == "nesterov", weight_decay=weight_decay)
    if name == "adam":
        return Adam(weight_decay=weight_decay)
    raise ConfigError(f"optimiser must be one of sgd, momentum, nesterov, adam; got {name!r}")


def schedule_for(name: str, epochs: int) -> Schedule:
    """The schedule a run's options name, fitted to its number of epochs E: step every ⌈E/3⌉, cosine over E."""
    if name == "step":
        return step(max(1, math.ceil(epochs / 3)))
    if name == "cosine":
        return cosine(epochs)
    if name == "constant":
        return constant()
    raise ConfigError(f"schedule must be one of {', '.join(SCHEDULES)}; got {name!r}")
