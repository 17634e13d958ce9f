"""Training by stochastic gradient descent: fit, the shuffled record stream, the per-epoch history.

One step on a batch B:  θ ← θ − η ∂L_B/∂θ  for every parameter θ, η the learning rate and L_B the mean
cross-entropy over B. Batch size 1 is the write-up's stochastic gradient descent (one record per update).
Other optimisers (momentum, Nesterov, Adam) and schedules of η over the epochs: train/optimisers.py.
"""

from __future__ import annotations

import csv
import io
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from scratchcnn.errors import ConfigError
from scratchcnn.nn import engine as engines
from scratchcnn.nn import stack_engine
from scratchcnn.nn.metrics import evaluate
from scratchcnn.nn.model import ConvNet
from scratchcnn.nn.network import as_stack
from scratchcnn.nn.stack import Stack
from scratchcnn.options import ENGINES, TRAINING, TrainOptions
from scratchcnn.train import optimisers


@dataclass
class EpochRecord:
    """What one epoch did: accuracies and mean losses after it, and its training time."""

    epoch: int
    records: int  # training records seen so far
    train_accuracy: float
    train_loss: float
    validation_accuracy: float | None
    validation_loss: float | None
    seconds: float


@dataclass
class History:
    """Per-epoch records of a training run; ``stopped`` says why it ended early, if it did."""

    epochs: list[EpochRecord] = field(default_factory=list)
    stopped: str | None = None
    engine: str | None = None  # which SGD engine ran: "numba" or "numpy"
    compile_seconds: float = 0.0  # compiling (or loading) the numba kernel, not counted in epoch seconds

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(EpochRecord.__dataclass_fields__), lineterminator="\n")
        writer.writeheader()
        writer.writerows(asdict(e) for e in self.epochs)
        return out.getvalue()


def resolve_engine(engine: str) -> str:
    """The engine "auto" stands for here ("numba" when Numba is installed); refuse an unavailable one."""
    if engine not in ENGINES:
        raise ConfigError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    available = engines.numba_available()
    if engine == "numba" and not available:
        raise ConfigError("the numba engine needs Numba: pip install numba, or use --engine numpy")
    return "numba" if engine == "auto" and available else "numpy" if engine == "auto" else engine


def split_sizes(n: int, train_size: int | None, validation_size: float | int) -> tuple[int, int]:
    """(records used, records held out for validation) from the user's options."""
    if train_size is not None:
        if train_size < 1:
            raise ConfigError(f"train_size must be at least 1, got {train_size}")
        n = min(n, train_size)
    if isinstance(validation_size, (float, np.floating)):  # a fraction of the records
        if not 0 <= validation_size < 1:
            raise ConfigError(f"validation_size as a fraction must lie in [0, 1), got {validation_size}")
        held_out = round(validation_size * n)
    else:  # a count of records
        held_out = int(validation_size)
    if not 0 <= held_out < n:
        raise ConfigError(f"validation_size {validation_size} leaves no training records out of {n}")
    return n, held_out


@dataclass
class TrainState:
    """Where a run stands after an epoch: everything needed to continue it exactly (a checkpoint)."""

    epoch: int  # epochs completed
    step: int  # SGD updates made
    rng_state: dict[str, Any]  # the record stream's random generator (numpy bit_generator.state)
    order: np.ndarray  # the shuffled record order of the current pass over the training set
    position: int  # how far into ``order`` the stream has got
    history: History
    optimiser: dict[str, Any] | None = None  # the optimiser's state() (its buffers: momentum, Adam's averages)


class RecordStream:
    """Training records in shuffled order, epoch after epoch; reshuffled each time all have been seen.

    An epoch of ``epoch_size`` records takes the next ones from the stream, so epochs smaller than
    the training set still cover it evenly.
    """

    def __init__(self, n: int, rng: np.random.Generator, order: np.ndarray | None = None, position: int = 0) -> None:
        self.n, self.rng = n, rng
        self.order = rng.permutation(n) if order is None else order  # a checkpoint passes its own
        self.position = position

    def take(self, count: int) -> np.ndarray:
        parts = []
        while count > 0:
            if self.position == self.n:
                self.order, self.position = self.rng.permutation(self.n), 0
            part = self.order[self.position : self.position + count]
            self.position += len(part)
            count -= len(part)
            parts.append(part)
        return np.concatenate(parts)


def fit(
    net: ConvNet | Stack,
    images: Any,
    labels: Any,
    *,
    learning_rate: float = TRAINING.learning_rate,
    epochs: int = TRAINING.epochs,
    batch_size: int = TRAINING.batch_size,
    epoch_size: int | None = TRAINING.epoch_size,
    train_size: int | None = TRAINING.train_size,
    validation_size: float | int = TRAINING.validation_size,
    seed: int = TRAINING.seed,
    engine: str = TRAINING.engine,
    optimiser: str = TRAINING.optimiser,
    momentum: float = TRAINING.momentum,
    weight_decay: float = TRAINING.weight_decay,
    schedule: str = TRAINING.schedule,
    progress: bool = False,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    save_state: Callable[[TrainState], None] | None = None,
    resume: TrainState | None = None,
) -> History:
    """Train net in place by SGD on images: (N, H, W) and labels: (N,). Returns the History.

    The first ``train_size`` records are used; ``validation_size`` of them (a fraction < 1, or a
    count) are held out at random. Each epoch trains on ``epoch_size`` records (default: all the
    rest) in batches of ``batch_size``. The same seed gives the same history and parameters.
    After each epoch ``on_epoch`` gets its record and ``save_state`` the TrainState; passing such a
    state back as ``resume`` (with the same data, options and parameters) continues the run exactly.
    A NaN or infinite loss stops training and restores the parameters of the last good epoch.
    ``engine``: "numba" (compiled), "numpy" (the readable reference) or "auto" (numba if installed).
    ``optimiser`` (sgd, momentum, nesterov, adam), ``momentum`` μ, ``weight_decay`` λ and ``schedule``
    (η per epoch: constant, step, cosine) are train/optimisers.py's.
    """
    TrainOptions(learning_rate=learning_rate, epochs=epochs, batch_size=batch_size, epoch_size=epoch_size,
                 train_size=train_size, validation_size=validation_size, seed=seed, engine=engine,
                 optimiser=optimiser, momentum=momentum, weight_decay=weight_decay, schedule=schedule)  # checks them
    X = net.check_images(images)  # uint8 stays 1 byte a pixel: scaled batch by batch
    y = net.prepare_labels(labels, len(X))
    opt = optimisers.make(optimiser, momentum=momentum, weight_decay=weight_decay)
    rate = optimisers.schedule_for(schedule, epochs)
    if resume is not None and resume.optimiser is not None:
        opt.load_state(resume.optimiser)
    plain = optimiser == "sgd" and not weight_decay  # θ ← θ − η g: what the seed network's kernel does
    kernel = _kernel(net, resolve_engine(engine) == "numba", plain)
    n, held_out = split_sizes(len(X), train_size, validation_size)
    rng = np.random.default_rng(seed)
    split = rng.permutation(n)
    X_val, y_val = X[split[:held_out]], y[split[:held_out]]
    X_train, y_train = X[split[held_out:]], y[split[held_out:]]
    epoch_size = len(X_train) if epoch_size is None else epoch_size
    if resume is None:
        stream, history, step = RecordStream(len(X_train), rng), History(), 0
    else:
        if len(resume.order) != len(X_train):
            raise ConfigError(f"the saved state is for {len(resume.order)} training records, not {len(X_train)}")
        rng.bit_generator.state = resume.rng_state
        stream = RecordStream(len(X_train), rng, resume.order.copy(), resume.position)
        history, step = History(list(resume.history.epochs), resume.history.stopped), resume.step
    first_epoch = len(history.epochs) + 1
    history.engine = "numba" if kernel else "numpy"
    warm_up = {"seed": engines.warm_up, "stack": stack_engine.warm_up}.get(kernel, lambda dtype: 0.0)
    history.compile_seconds = warm_up(net.dtype)  # kept out of epoch times
    params = net.parameters()
    bar = tqdm(total=max(epochs - first_epoch + 1, 0) * epoch_size, unit="img", disable=not progress,
               leave=False, dynamic_ncols=True)
    # Overflow on the way to divergence is expected and reported by the guard below, not as warnings.
    with bar, np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for epoch in range(first_epoch, epochs + 1):
            last_good = {name: p.copy() for name, p in params.items()}
            start = time.perf_counter()
            order = stream.take(epoch_size)
            eta = rate(learning_rate, epoch - 1)  # η_e: the schedule's rate for this epoch (e from 0)
            steps, L = _epoch(net, X_train, y_train, order, eta, batch_size, opt, kernel=kernel, plain=plain)
            step += steps
            bar.update(epoch_size)
            seconds = time.perf_counter() - start
            record = EpochRecord(
                epoch, epoch * epoch_size, *evaluate(net, X_train, y_train),
                *_or_none(evaluate(net, X_val, y_val)), seconds=seconds,
            )
            if not all(math.isfinite(v) for v in (L, record.train_loss, record.validation_loss or 0.0)):
                for name, p in params.items():
                    p[...] = last_good[name]
                history.stopped = (
                    f"loss became NaN or infinite in epoch {epoch}: learning rate {learning_rate:g} is too "
                    f"high; kept the parameters after epoch {epoch - 1}. Try a smaller --learning-rate."
                )
                break
            history.epochs.append(record)
            bar.set_postfix(epoch=epoch, train=f"{record.train_accuracy:.3f}", val=_fmt(record.validation_accuracy))
            if on_epoch:
                on_epoch(record)
            if save_state:
                save_state(TrainState(epoch, step, rng.bit_generator.state, stream.order, stream.position, history,
                                      opt.state()))
    return history


def _by_own_names(update: stack_engine.Update | None, params: dict[str, np.ndarray]) -> stack_engine.Update | None:
    """update (for a ConvNet's parameters, by name) for the gradients of ``as_stack(net)``: "0.f" → "f"."""
    if update is None:
        return None
    return lambda grads: update({key.split(".", 1)[1]: g.reshape(params[key.split(".", 1)[1]].shape)
                                 for key, g in grads.items()})


def _kernel(net: ConvNet | Stack, numba: bool, plain: bool) -> str | None:
    """The compiled engine that trains net: "seed" (nn/engine.py: a ConvNet by plain SGD, the write-up's
    network bit for bit), "stack" (nn/stack_engine.py: any Stack; a ConvNet with ReLU and max pooling,
    which it computes fused and faster), or None: the NumPy path (no Numba; a ConvNet with an optimiser)."""
    fused = isinstance(net, ConvNet) and net.activation == "relu" and net.pool == "max"
    if not numba:
        return None
    if isinstance(net, Stack) or fused:
        return "stack"
    return "seed" if plain else None


def _epoch(net: ConvNet | Stack, X: np.ndarray, y: np.ndarray, order: np.ndarray, eta: float, batch_size: int,
           opt: optimisers.Optimiser, *, kernel: str | None, plain: bool) -> tuple[int, float]:
    """One epoch of updates over ``order``: (steps done, last batch's loss); stops at a non-finite loss.

    kernel: "seed" (nn/engine.py), "stack" (nn/stack_engine.py) or None (NumPy, the equations as written).
    """
    params = net.parameters()
    update = None if plain else lambda grads: opt.step(params, grads, eta)  # None: θ ← θ − η ∂L/∂θ in place
    if kernel == "stack" and isinstance(net, ConvNet):  # as the stack it is, sharing its arrays
        steps, L = stack_engine.epoch(as_stack(net), X, y, order, eta, batch_size, _by_own_names(update, params))
    elif kernel == "stack":
        steps, L = stack_engine.epoch(net, X, y, order, eta, batch_size, update)
    elif plain and isinstance(net, ConvNet):
        steps, L = engines.sgd_epoch(net, X, y, order, eta, batch_size, kernel == "seed")
    else:
        steps, L = net.sgd_steps(X, y, order, eta, batch_size, update)
    if plain:
        opt.t += steps  # the step count plain SGD's own steps would have kept (it is saved in checkpoints)
    return steps, L


def _or_none(pair: tuple[float, float]) -> tuple[float | None, float | None]:
    return tuple(None if math.isnan(v) else v for v in pair)  # type: ignore[return-value]


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
