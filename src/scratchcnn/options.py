"""One source of every default: the options of a network and of its training, and their checks.

``NetworkOptions`` (the architecture) and ``TrainOptions`` (stochastic gradient descent) are frozen
dataclasses; ``RunOptions`` is both plus the dataset, what ``scratchcnn train`` runs and its checkpoint
saves. ``ConvNet``'s and ``fit``'s keyword defaults, the command line's flags and help, the estimator's
defaults and ``--resume``'s contradiction check are all read from here: a default is typed only here.
Each field's metadata says how the command line offers it (``help``, ``metavar``, ``kind``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from numbers import Integral, Real
from typing import Any

from scratchcnn.errors import ConfigError

ARCHS = ("seed", "wide", "lenet", "softmax")
POOLS = ("decimate", "max", "avg")
ACTIVATIONS = ("none", "relu")
DTYPES = ("float32", "float64")
ENGINES = ("auto", "numba", "numpy")
OPTIMISERS = ("sgd", "momentum", "nesterov", "adam")
SCHEDULES = ("constant", "step", "cosine")
DATASETS = ("mnist", "fashion-mnist", "digits")
BUNDLED = ("digits",)  # shipped inside scikit-learn (the optional extra): no files, no download
DOWNLOADABLE = tuple(name for name in DATASETS if name not in BUNDLED)  # four IDX files each, on disk or downloaded
CLASSES = 10  # classes of MNIST-style datasets: the output layer's default width
INPUT_SHAPE = (28, 28)  # MNIST-style images: the input layer's default size


# ---- checks shared by every place that takes these values -----------------------------------------


def whole_number(name: str, value: Any, minimum: int = 0) -> int:
    """value as an int if it is a whole number ≥ minimum (not a bool); ConfigError otherwise."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:  # Integral: NumPy's too
        raise ConfigError(f"{name} must be a whole number ≥ {minimum}, got {value!r}")
    return int(value)


def choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def validation_size(value: Any) -> float | int:
    """A fraction in [0, 1) or a whole count of records ≥ 0."""
    if isinstance(value, Real) and not isinstance(value, Integral):  # a float, NumPy's too
        if not 0 <= value < 1:
            raise ConfigError(f"validation_size as a fraction must lie in [0, 1), got {value}")
        return float(value)
    return whole_number("validation_size", value, 0)


def input_shape(value: Any, name: str = "input_shape") -> tuple[int, int]:
    """(height, width): two whole numbers ≥ 2, so that 2×2 pooling leaves a pixel."""
    ok = (isinstance(value, (tuple, list)) or hasattr(value, "shape")) and len(value) == 2  # or an array
    if not ok or any(isinstance(v, bool) or not isinstance(v, Integral) for v in value):
        raise ConfigError(f"{name} must be (height, width), two whole numbers, got {value!r}")
    H, W = (int(v) for v in value)
    if H < 2 or W < 2:
        raise ConfigError(f"{name} must be at least (2, 2) so pooling leaves a pixel, got {value!r}")
    return H, W


def _option(default: Any, help: str, *, kind: str, metavar: str | None = None, extendable: bool = False) -> Any:
    """A dataclass field with what the command line needs to offer it.

    kind: "count" (whole ≥ 1), "natural" (whole ≥ 0), "rate" (number > 0), "size" (fraction or count),
    "fraction" (number in [0, 1)), "nonnegative" (number ≥ 0), "text" (a string, e.g. a layer spec),
    "choice" (one of the ``choices`` below), "flag" (on/off). ``extendable``: a resumed run may raise it.
    """
    return field(default=default, metadata={"help": help, "kind": kind, "metavar": metavar, "extendable": extendable})


CHOICES = {"arch": ARCHS, "pool": POOLS, "activation": ACTIVATIONS, "dtype": DTYPES, "engine": ENGINES,
           "dataset": DATASETS, "optimiser": OPTIMISERS, "schedule": SCHEDULES}
SEED_FAMILY = ("filters", "kernel_size", "pool", "activation", "bias")  # the options of the write-up's network


def fraction(name: str, value: Any) -> float:
    """A number in [0, 1), as a momentum must be for the average to forget."""
    if isinstance(value, bool) or not isinstance(value, Real) or not 0 <= value < 1:
        raise ConfigError(f"{name} must be a number in [0, 1), got {value!r}")
    return float(value)


def nonnegative(name: str, value: Any) -> float:
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0:
        raise ConfigError(f"{name} must be a non-negative number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class NetworkOptions:
    """The architecture: a preset (``arch``) or any stack of layers (``layers``, a spec as nn/spec.py reads).

    The seed family's options (K filters of k×k, activation, 2×2 pooling, dense bias) shape the seed and
    wide presets; lenet, softmax and a ``layers`` spec say everything themselves.
    """

    arch: str = _option("seed", "a preset network: seed (the write-up's: conv 3@3×3, decimate, dense), wide "
                        "(conv 32@5×5, ReLU, max pooling, dense with bias), lenet (conv 6@5×5 same, ReLU, max, conv "
                        "16@5×5 valid, ReLU, max, dense 120, ReLU, dense 84, ReLU, dense), softmax (no convolution: "
                        "A = W X + b on the pixels, the baseline the convolution is measured against); each has its "
                        "own training defaults", kind="choice")
    layers: str | None = _option(None, "any stack of layers instead of a preset, comma-separated: conv:KxK[:padding]"
                                 "[-b] (padding bottom-right (default), same or valid; -b: no bias), relu, "
                                 "pool:decimate|max|avg (2×2), flatten, dense[:WIDTH][-b] (the last: a bare dense, "
                                 "one output per class); e.g. conv:8x3:same,relu,pool:max,flatten,dense",
                                 kind="text", metavar="SPEC")
    filters: int = _option(3, "number of convolution filters f_k", kind="count", metavar="K")
    kernel_size: int = _option(3, "filter size k×k", kind="count", metavar="k")
    pool: str = _option("decimate", "2×2 pooling after the convolution", kind="choice")
    activation: str = _option("none", "applied after the convolution", kind="choice")
    bias: bool = _option(False, "add a bias b to the dense layer: A = W Z + b", kind="flag")
    dtype: str = _option("float32", "floating-point precision", kind="choice")

    def __post_init__(self) -> None:
        choice("arch", self.arch, ARCHS)
        if self.layers is not None and (not isinstance(self.layers, str) or not self.layers.strip()):
            raise ConfigError(f"layers must be a spec like conv:8x3,relu,pool:max,flatten,dense; got {self.layers!r}")
        whole_number("filters", self.filters, 1)
        whole_number("kernel_size", self.kernel_size, 1)
        choice("pool", self.pool, POOLS)
        choice("activation", self.activation, ACTIVATIONS)
        choice("dtype", self.dtype, DTYPES)
        numpy_bool = getattr(self.bias, "dtype", None) is not None and self.bias.dtype.kind == "b"  # np.bool_
        if not (isinstance(self.bias, bool) or (numpy_bool and not self.bias.shape)):
            raise ConfigError(f"bias must be True or False, got {self.bias!r}")


@dataclass(frozen=True)
class TrainOptions:
    """Stochastic gradient descent: θ ← θ − η ∂L/∂θ after each batch.

    Defaults chosen by measurement on the shared MNIST (9 000 training records, 2 cores): see README.
    """

    learning_rate: float = _option(0.0005, "step size η in θ ← θ − η ∂L/∂θ", kind="rate", metavar="ETA")
    epochs: int = _option(20, "number of epochs", kind="count", metavar="N", extendable=True)
    batch_size: int = _option(1, "records per update; 1 is the write-up's one-record-at-a-time SGD",
                              kind="count", metavar="N")
    epoch_size: int | None = _option(None, "records per epoch, drawn in turn from the shuffled training set "
                                     "(default: all of it)", kind="count", metavar="N")
    train_size: int | None = _option(None, "use only the first N training records (default: all)",
                                     kind="count", metavar="N")
    validation_size: float | int = _option(0.1, "records held out of the training set for validation: a "
                                           "fraction like 0.1 or a count like 1000; 0 for none",
                                           kind="size", metavar="SIZE")
    seed: int = _option(0, "random seed: same seed, same model, bit for bit", kind="natural", metavar="SEED")
    engine: str = _option("auto", "SGD engine: numba (compiled, fast), numpy (the readable reference, same "
                          "results to float precision), auto: numba when installed", kind="choice")
    optimiser: str = _option("sgd", "how each step moves θ by its gradient g: sgd θ ← θ − η g (the write-up's); "
                             "momentum v ← μ v + g, θ ← θ − η v; nesterov θ ← θ − η (g + μ v); adam (bias-corrected "
                             "moment averages, β₁ 0.9, β₂ 0.999)", kind="choice")
    momentum: float = _option(0.9, "μ of momentum and nesterov", kind="fraction", metavar="MU")
    weight_decay: float = _option(0.0, "λ: adds λ θ to every gradient (an L2 penalty λ/2 ‖θ‖²)",
                                  kind="nonnegative", metavar="LAMBDA")
    schedule: str = _option("constant", "learning rate per epoch e of E: constant η; step: η × 0.1 every ⌈E/3⌉ "
                            "epochs; cosine: η (1 + cos(π e / E)) / 2", kind="choice")

    def __post_init__(self) -> None:
        if isinstance(self.learning_rate, bool) or not isinstance(self.learning_rate, Real) \
                or not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise ConfigError(f"learning_rate must be a positive number, got {self.learning_rate!r}")
        whole_number("epochs", self.epochs, 1)
        whole_number("batch_size", self.batch_size, 1)
        whole_number("seed", self.seed, 0)
        for name in ("epoch_size", "train_size"):
            if getattr(self, name) is not None:
                whole_number(name, getattr(self, name), 1)
        validation_size(self.validation_size)
        choice("engine", self.engine, ENGINES)
        choice("optimiser", self.optimiser, OPTIMISERS)
        fraction("momentum", self.momentum)
        nonnegative("weight_decay", self.weight_decay)
        choice("schedule", self.schedule, SCHEDULES)


@dataclass(frozen=True)
class RunOptions(TrainOptions, NetworkOptions):
    """Everything ``scratchcnn train`` runs with: the dataset, the network and its training."""

    dataset: str = _option("mnist", "which dataset", kind="choice")

    def __post_init__(self) -> None:
        NetworkOptions.__post_init__(self)
        TrainOptions.__post_init__(self)
        choice("dataset", self.dataset, DATASETS)

    @property
    def network(self) -> NetworkOptions:
        return NetworkOptions(**{f.name: getattr(self, f.name) for f in fields(NetworkOptions)})

    @property
    def training(self) -> TrainOptions:
        return TrainOptions(**{f.name: getattr(self, f.name) for f in fields(TrainOptions)})

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


NETWORK = NetworkOptions()
TRAINING = TrainOptions()

# Measured: 1 437 small 8×8 digits need larger steps than MNIST (0.005: test accuracy 0.89–0.91 in 20
# epochs over seeds 0–2, where 0.0005 gives 0.79–0.83).
DATASET_DEFAULTS: dict[str, dict[str, Any]] = {"digits": {"learning_rate": 0.005}}

# Each preset's architecture and training defaults, measured on the shared MNIST (see README, "Deeper networks").
ARCH_DEFAULTS: dict[str, dict[str, Any]] = {
    "seed": {},
    "wide": {"filters": 32, "kernel_size": 5, "activation": "relu", "pool": "max", "bias": True,
             "learning_rate": 0.01, "epochs": 10},
    # Measured (test accuracy, shared MNIST): Adam 0.001 in batches of 16 or 32 and momentum in batches of
    # 16 reach 0.981–0.984 with training accuracy at 1.000; smaller batches and weight decay generalise better.
    "lenet": {"optimiser": "momentum", "learning_rate": 0.005, "batch_size": 4, "epochs": 30, "schedule": "cosine",
              "weight_decay": 0.003},
    # Measured (shared MNIST, batch size 1, plain SGD, seeds 0–2, mean validation / test accuracy): η 0.0005 for
    # 20 epochs 0.913 / 0.903, 40: 0.919 / 0.908; 0.001 for 20: 0.918 / 0.907, 40: 0.923 / 0.910 (the best
    # validation), 60 or 80: no better; 0.002 for 20–60 and 0.005 for 10–40: 0.918–0.922 / 0.907–0.910;
    # 0.01 and 0.02 noisier (test 0.898–0.906). A plateau at ~0.910 test (logistic regression: 0.904, README).
    "softmax": {"learning_rate": 0.001, "epochs": 40},
}


FIGURE_FORMATS = ("png", "svg")  # what ``scratchcnn figures --format`` writes (viz/figures.py)
LAB_RECORDS = 5000  # training records a lab page embeds by default: ~5.2 MB of the page with MNIST (viz/lab.py)
LAB_VALIDATION = 1000  # validation records embedded after them (the write-up's overtraining validates on 1 000)

# The write-up's experiments (``scratchcnn tune`` and ``overtrain``, train/experiments.py).
# Log-spaced, a factor of √10 apart: from too small to learn in a few epochs to large enough to diverge.
LEARNING_RATES = (0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3)
TUNE_EPOCHS = 5
TUNE_TRAIN_SIZE = 5000
TUNE_VALIDATION_SIZE = 1000
OVERTRAIN_RECORDS = 100  # the write-up's epochs of 100 records
OVERTRAIN_VALIDATION = 1000
OVERTRAIN_EPOCHS = 1000
# At 0.005 training accuracy reaches 100 % within ~10 epochs, as in the write-up (0.0005 takes ~75).
OVERTRAIN_LEARNING_RATE = 0.005


# ``scratchcnn gradcheck`` (nn/gradcheck.py). In float64 central differences are good to ~1e-9 relative to a
# gradient (truncation ε²/6·|L‴|, rounding ~u·|A|/ε): 1e-6 passes every correct derivation, while a mistaken
# one is off by 1e-2 or more.
GRADCHECK_EPSILON = 1e-6  # ε of (L(θ + ε) − L(θ − ε)) / 2ε
GRADCHECK_TOLERANCE = 1e-6  # the largest relative error that passes
GRADCHECK_SAMPLES = 200  # entries checked per tensor: all of a smaller tensor, else this many drawn at random
GRADCHECK_RECORDS = 8  # training records the loss is averaged over

SWEEP_RETRIES = 2  # ``scratchcnn sweep``: runs more of a point whose worker died, before it is recorded as failed


def overtrain_learning_rate(network: NetworkOptions = NETWORK) -> float:
    """η for overtraining ``network``: 0.005 for the seed network (and any spec), a preset's own otherwise."""
    preset = NETWORK.arch if network.layers is not None else network.arch
    return ARCH_DEFAULTS[preset].get("learning_rate", OVERTRAIN_LEARNING_RATE)


def run_defaults(dataset: str = RunOptions.dataset, arch: str = RunOptions.arch) -> RunOptions:
    """The options a run of preset ``arch`` on ``dataset`` gets when none are given."""
    return replace(RunOptions(dataset=dataset, arch=arch), **ARCH_DEFAULTS.get(arch, {}),
                   **DATASET_DEFAULTS.get(dataset, {}))


def default_text(name: str) -> str:
    """The default of option ``name`` as help text shows it, with any per-preset or per-dataset exception."""
    def shown(value: Any) -> str:
        return "on" if value is True else "off" if value is False else "none" if value is None else str(value)

    exceptions = [f"{shown(values[name])} for --arch {arch}" for arch, values in ARCH_DEFAULTS.items()
                  if name in values]
    exceptions += [f"{shown(values[name])} for {dataset}" for dataset, values in DATASET_DEFAULTS.items()
                   if name in values]
    return "; ".join([shown(getattr(RunOptions(), name)), *exceptions])


def _check_architecture(given: dict[str, Any]) -> None:
    """--layers says everything about the network; so do --arch lenet and softmax: refuse flags they would ignore."""
    if given.get("layers") is not None and given.get("arch") is not None:
        raise ConfigError("give --arch or --layers, not both: --layers is a whole network by itself")
    whole = "--layers" if given.get("layers") is not None else \
        f"--arch {given['arch']}" if given.get("arch") in ("lenet", "softmax") else None
    ignored = [name for name in SEED_FAMILY if given.get(name) is not None]
    if whole and ignored:
        flag = "--" + ignored[0].replace("_", "-")
        raise ConfigError(f"{flag} shapes the seed and wide networks only; with {whole} write the layers "
                          "you want with --layers (see --help)")


def resolve(given: dict[str, Any], saved: RunOptions | None = None) -> RunOptions:
    """The options of a run: the defaults (for the dataset given) overridden by ``given``.

    Resuming (``saved``): a given option that contradicts the saved one is refused, except that an
    extendable one (epochs) may grow.
    """
    unknown = set(given) - {f.name for f in fields(RunOptions)}
    if unknown:
        raise ConfigError(f"unknown options: {', '.join(sorted(unknown))}")
    _check_architecture(given)
    if saved is None:
        return replace(run_defaults(given.get("dataset", RunOptions.dataset), given.get("arch", RunOptions.arch)),
                       **given)
    for f in fields(RunOptions):
        if f.name not in given:
            continue
        value, before = given[f.name], getattr(saved, f.name)
        if f.metadata["extendable"] and value >= before:
            continue
        if value != before:
            flag = "--" + f.name.replace("_", "-")
            raise ConfigError(f"{flag} {value} contradicts the checkpoint, which was trained with {flag} {before}; "
                              "drop the flag to resume as it was started")
    return replace(saved, **given)
