"""ConvNetClassifier with deeper networks: arch (seed, wide, lenet), layers (a spec or layer objects), the
optimiser's parameters, each preset's training defaults, and one-line refusals naming what is wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.base import clone
from sklearn.datasets import load_digits, load_iris
from sklearn.exceptions import NotFittedError
from sklearn.utils import estimator_checks

from scratchcnn.data import load_dataset
from scratchcnn.errors import ConfigError
from scratchcnn.nn.model import ConvNet
from scratchcnn.nn.network import from_spec
from scratchcnn.nn.stack import Stack
from scratchcnn.nn.stack_layers import Conv, Dense, Flatten, Pool, ReLU
from scratchcnn.options import ARCH_DEFAULTS, TRAINING
from scratchcnn.sklearn import EPOCHS, LEARNING_RATE, ConvNetClassifier

SPEC = "conv:4x3:same,relu,pool:max,flatten,dense"


def spec_layers() -> list[Any]:
    """SPEC as layer objects."""
    return [Conv(4, 3, "same", bias=True), ReLU(), Pool("max"), Flatten(), Dense(bias=True)]


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """400 of load_digits' 8×8 images (64 features, values 0..16) and their labels."""
    X, y = load_digits(return_X_y=True)
    return X[:400], y[:400]


@pytest.fixture(scope="module")
def mnist_rows(data_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Real MNIST as scikit-learn sees it: 300 training and 200 test rows of 784 pixels 0..255."""
    data = load_dataset("mnist", data_dir, download=False)
    rows = data.train_images[:500].reshape(500, -1).astype(np.float64)
    return rows[:300], data.train_labels[:300], rows[300:], data.train_labels[300:500]


@pytest.fixture(scope="module")
def lenet(mnist_rows: tuple[np.ndarray, ...]) -> ConvNetClassifier:
    X, y, _, _ = mnist_rows
    return ConvNetClassifier(arch="lenet", epochs=3, random_state=0).fit(X, y)


# ---- the presets -------------------------------------------------------------------------------


def test_lenet_fits_and_predicts_on_mnist_rows(lenet: ConvNetClassifier, mnist_rows: tuple[np.ndarray, ...]) -> None:
    _, _, X_test, y_test = mnist_rows
    assert isinstance(lenet.network_, Stack)
    assert lenet.network_.spec() == from_spec("lenet").spec()
    assert lenet.image_shape_ == (28, 28) and lenet.n_iter_ == 3
    P = lenet.predict_proba(X_test)
    assert P.shape == (200, 10)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-6)
    assert np.array_equal(lenet.predict(X_test), lenet.classes_[P.argmax(axis=1)])
    losses = [e.train_loss for e in lenet.history_.epochs]
    assert losses[-1] < losses[0]  # it learns, in 3 epochs of 10 batches
    assert lenet.score(X_test, y_test) > 0.4  # measured: 0.69 (chance: 0.1)
    # Rows of pixels 0..255 are scaled as the network scales uint8 images
    images = X_test.astype(np.uint8).reshape(-1, 28, 28)
    np.testing.assert_allclose(P, lenet.network_.predict_proba(images), rtol=1e-5, atol=1e-7)


def test_lenet_trains_with_its_own_defaults_unless_told(lenet: ConvNetClassifier,
                                                        mnist_rows: tuple[np.ndarray, ...]) -> None:
    own = ARCH_DEFAULTS["lenet"]
    used = lenet.training_
    assert (used.optimiser, used.learning_rate, used.batch_size, used.schedule) == (
        own["optimiser"], own["learning_rate"], own["batch_size"], own["schedule"])
    assert used.epochs == 3 and used.validation_size == 0  # given
    assert lenet.learning_rate is None and lenet.batch_size == TRAINING.batch_size  # parameters stay as given
    X, y, _, _ = mnist_rows
    told = ConvNetClassifier(arch="lenet", optimiser="sgd", learning_rate=0.01, batch_size=8, schedule="step",
                             momentum=0.5, weight_decay=1e-4, epochs=1, random_state=0).fit(X[:40], y[:40])
    used = told.training_
    assert (used.optimiser, used.learning_rate, used.batch_size, used.schedule, used.momentum, used.weight_decay) == (
        "sgd", 0.01, 8, "step", 0.5, 1e-4)


def test_lenet_on_images_too_small_names_the_layer_and_the_image(digits: tuple[np.ndarray, ...]) -> None:
    X, y = digits
    clf = ConvNetClassifier(arch="lenet")
    with pytest.raises(ConfigError, match=r"layer 4 of 12 'conv:16x5:valid'.*8×8 images") as error:
        clf.fit(X, y)
    assert "\n" not in str(error.value)
    assert not hasattr(clf, "network_")


def test_wide_takes_its_own_architecture_and_training(digits: tuple[np.ndarray, ...]) -> None:
    X, y = digits
    clf = ConvNetClassifier(arch="wide", random_state=0).fit(X, y)
    wide = ARCH_DEFAULTS["wide"]
    assert isinstance(clf.network_, ConvNet)
    config = clf.network_.config
    family = ("filters", "kernel_size", "pool", "activation", "bias")
    assert {name: config[name] for name in family} == {name: wide[name] for name in family}
    assert (clf.training_.learning_rate, clf.training_.epochs) == (wide["learning_rate"], wide["epochs"])
    assert clf.n_iter_ == wide["epochs"]
    narrower = ConvNetClassifier(arch="wide", filters=2, pool="avg", learning_rate=0.001, epochs=1).fit(X, y)
    assert (narrower.network_.filters, narrower.network_.kernel_size, narrower.network_.pool) == (
        2, wide["kernel_size"], "avg")
    assert (narrower.training_.learning_rate, narrower.training_.epochs) == (0.001, 1)


def test_seed_defaults_are_the_estimators_measured_ones(digits: tuple[np.ndarray, ...]) -> None:
    X, y = digits
    used = ConvNetClassifier(random_state=0).fit(X, y).training_
    assert (used.learning_rate, used.epochs, used.optimiser, used.batch_size, used.schedule) == (
        LEARNING_RATE, EPOCHS, TRAINING.optimiser, TRAINING.batch_size, TRAINING.schedule)


# ---- layers: a spec string or layer objects ----------------------------------------------------


@pytest.fixture(scope="module")
def by_spec(digits: tuple[np.ndarray, ...]) -> ConvNetClassifier:
    X, y = digits
    return ConvNetClassifier(layers=SPEC, epochs=3, random_state=0).fit(X, y)


def test_a_spec_fits_and_predicts(by_spec: ConvNetClassifier) -> None:
    X, y = load_digits(return_X_y=True)
    assert isinstance(by_spec.network_, Stack)
    assert by_spec.network_.spec() == SPEC + ":10"
    assert by_spec.training_.learning_rate == LEARNING_RATE  # a spec trains as the seed network does here
    assert by_spec.predict(X[400:]).shape == (len(X) - 400,)
    assert by_spec.score(X[400:], y[400:]) > 0.8  # measured: 0.91 after 3 epochs of 400 images


def test_layer_objects_train_as_their_spec_and_are_left_untouched(by_spec: ConvNetClassifier,
                                                                  digits: tuple[np.ndarray, ...]) -> None:
    X, y = digits
    layers = spec_layers()
    clf = ConvNetClassifier(layers=layers, epochs=3, random_state=0).fit(X, y)
    assert clf.layers is layers
    assert layers[-1].width is None and all(layer.params == {} for layer in layers)  # fit worked on a copy
    assert clf.network_.layers[0] is not layers[0]
    for name, value in by_spec.network_.parameters().items():
        assert clf.network_.parameters()[name].tobytes() == value.tobytes(), name
    refit = clf.fit(X, y)  # a second fit starts afresh from the same, unchanged layers
    np.testing.assert_array_equal(refit.predict_proba(X), by_spec.predict_proba(X))


def test_a_spec_of_the_write_ups_shape_is_the_default_network(digits: tuple[np.ndarray, ...]) -> None:
    X, y = digits
    default = ConvNetClassifier(epochs=3, random_state=0).fit(X, y)
    spec = ConvNetClassifier(layers="conv:3x3-b,pool:decimate,flatten,dense", epochs=3, random_state=0).fit(X, y)
    assert isinstance(spec.network_, ConvNet)  # so it trains with the compiled kernel
    np.testing.assert_array_equal(spec.network_.W, default.network_.W)
    np.testing.assert_array_equal(spec.predict_proba(X), default.predict_proba(X))


@pytest.mark.parametrize("params", [
    {"arch": "lenet"}, {"layers": SPEC}, {"layers": spec_layers()},
    {"optimiser": "nesterov", "momentum": 0.8, "weight_decay": 0.01, "schedule": "cosine"},
])
def test_clone_and_get_params_round_trip(params: dict[str, Any]) -> None:
    clf = ConvNetClassifier(**params)
    fresh = clone(clf)
    got, want = fresh.get_params(), clf.get_params()
    if isinstance(params.get("layers"), list):  # layer objects are copied: compare them by their spec
        assert [layer.spec() for layer in got.pop("layers")] == [layer.spec() for layer in want.pop("layers")]
        assert fresh.layers is not clf.layers
    assert got == want
    for name, value in params.items():
        if name != "layers":
            assert got[name] == value, name
    assert not hasattr(fresh, "network_")


@pytest.mark.parametrize("check", [
    estimator_checks.check_get_params_invariance, estimator_checks.check_set_params,
    estimator_checks.check_estimators_overwrite_params, estimator_checks.check_dont_overwrite_parameters,
    estimator_checks.check_fit_idempotent, estimator_checks.check_estimators_pickle,
], ids=lambda check: check.__name__)
@pytest.mark.parametrize("layers", [SPEC, "objects"])
def test_scikit_learns_parameter_checks_with_layers(check: Any, layers: str) -> None:
    """scikit-learn's checks that parameters survive fit, cloning and pickling (its whole suite: the defaults)."""
    clf = ConvNetClassifier(layers=spec_layers() if layers == "objects" else layers, epochs=2)
    check(type(clf).__name__, clf)


# ---- refusals: one line naming the parameter or the layer --------------------------------------


@pytest.mark.parametrize(("params", "named"), [
    ({"layers": "conv:0x3,flatten,dense"}, ["layer 1 of 3", "'conv:0x3'"]),
    ({"layers": "conv:2x3,maxpool,flatten,dense"}, ["layer 2 of 4", "'maxpool'", "unknown layer"]),
    ({"layers": "conv:2x3,dense"}, ["layer 2 of 2", "'dense'", "flatten"]),
    ({"layers": "conv:2x9:valid,flatten,dense"}, ["layer 1 of 3", "'conv:2x9:valid'", "8×8 images"]),
    ({"layers": "flatten,dense:5"}, ["'dense:5'", "10 outputs"]),
    ({"layers": [Conv(2, 3, bias=True), Dense(bias=True)]}, ["layer 2 of 2", "'dense", "flatten"]),
    ({"layers": " "}, ["layers must be"]),
    ({"layers": 42}, ["layers must be", "42"]),
    ({"layers": []}, ["layers must be"]),
    ({"layers": ["conv:2x3", "flatten", "dense"]}, ["layers must be", "stack_layers"]),
    ({"arch": "lenet", "layers": SPEC}, ["arch or layers, not both"]),
    ({"arch": "deep"}, ["arch must be one of", "lenet", "'deep'"]),
    ({"arch": "lenet", "filters": 8}, ["filters=8", "arch='lenet'", "seed and wide"]),
    ({"layers": SPEC, "bias": False}, ["bias=False", "layers", "seed and wide"]),
    ({"layers": SPEC, "pool": "max"}, ["pool='max'", "layers"]),
    ({"optimiser": "adagrad"}, ["optimiser", "adagrad"]),
    ({"schedule": "linear"}, ["schedule", "linear"]),
    ({"momentum": 1.0}, ["momentum", "[0, 1)"]),
    ({"weight_decay": -0.1}, ["weight_decay"]),
    ({"arch": "wide", "batch_size": 0}, ["batch_size"]),
], ids=lambda value: repr(value) if isinstance(value, dict) else None)
def test_a_bad_network_is_refused_at_fit_in_one_line(params: dict[str, Any], named: list[str],
                                                    digits: tuple[np.ndarray, ...]) -> None:
    X, y = digits
    clf = ConvNetClassifier(**params)  # scikit-learn's rule: nothing is checked before fit
    with pytest.raises(ConfigError) as error:
        clf.fit(X, y)
    message = str(error.value)
    assert "\n" not in message
    for fragment in named:
        assert fragment in message, message
    assert not hasattr(clf, "network_") and not hasattr(clf, "classes_")
    with pytest.raises(NotFittedError):
        clf.predict(X)


def test_seed_family_parameters_left_at_their_defaults_are_no_contradiction() -> None:
    X, y = load_iris(return_X_y=True)
    clf = ConvNetClassifier(layers="conv:2x2:same,relu,pool:max,flatten,dense", filters=3, bias=True, epochs=1)
    assert clf.fit(X, y).network_.spec() == "conv:2x2:same,relu,pool:max,flatten,dense:3"
