"""scratchcnn.sklearn.ConvNetClassifier: scikit-learn's own estimator checks, and the estimator at work."""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.base import clone
from sklearn.datasets import load_digits, load_iris, load_wine
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.metrics import accuracy_score
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, MinMaxScaler, StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from scratchcnn.nn.model import ConvNet
from scratchcnn.sklearn import EPOCHS, ConvNetClassifier, infer_image_shape


@parametrize_with_checks([ConvNetClassifier()])
def test_scikit_learn_estimator_checks(estimator, check):
    """Every check of sklearn.utils.estimator_checks, on the defaults, with no expected failures."""
    check(estimator)


@pytest.fixture(scope="module")
def digits():
    """load_digits (8×8 images as 64 features, values 0..16) split 75/25: X_train, X_test, y_train, y_test."""
    X, y = load_digits(return_X_y=True)
    return train_test_split(X, y, random_state=0, stratify=y)


@pytest.fixture(scope="module")
def fitted(digits):
    X_train, _, y_train, _ = digits
    return ConvNetClassifier(random_state=0).fit(X_train, y_train)


def test_defaults_learn_digits(digits, fitted):
    _, X_test, _, y_test = digits
    assert fitted.image_shape_ == (8, 8)
    assert fitted.n_features_in_ == 64
    assert (fitted.pixel_min_, fitted.pixel_max_) == (0.0, 16.0)
    assert fitted.epochs is None  # the network's own: the seed's EPOCHS here
    assert fitted.n_iter_ == fitted.training_.epochs == EPOCHS == len(fitted.history_.epochs)
    assert fitted.score(X_test, y_test) > 0.85


def test_fitted_network(fitted):
    net = fitted.network_
    assert isinstance(net, ConvNet)
    assert net.classes == len(fitted.classes_) == 10
    assert net.input_shape == (8, 8)
    assert net.config["bias"] is True and net.config["pool"] == "decimate"


def test_architecture_parameters_reach_the_network():
    X, y = load_iris(return_X_y=True)
    clf = ConvNetClassifier(filters=2, kernel_size=2, pool="max", activation="relu", bias=False, epochs=1).fit(X, y)
    config = clf.network_.config
    assert (config["filters"], config["kernel_size"], config["pool"], config["activation"], config["bias"]) == (
        2, 2, "max", "relu", False
    )
    assert clf.network_.input_shape == (2, 2)


def test_grid_search_over_learning_rates(digits):
    X_train, X_test, y_train, y_test = digits
    search = GridSearchCV(ConvNetClassifier(random_state=0), {"learning_rate": [0.001, 0.01]}, cv=3)
    search.fit(X_train, y_train)
    assert search.best_params_["learning_rate"] in (0.001, 0.01)
    assert search.best_score_ > 0.8
    assert search.score(X_test, y_test) > 0.8
    assert search.best_estimator_.learning_rate == search.best_params_["learning_rate"]


def test_in_a_pipeline(digits):
    X_train, X_test, y_train, y_test = digits
    pipe = make_pipeline(FunctionTransformer(np.sqrt), MinMaxScaler(), ConvNetClassifier(random_state=0))
    pipe.set_params(convnetclassifier__epochs=10)
    pipe.fit(X_train, y_train)
    assert pipe[-1].epochs == pipe[-1].n_iter_ == 10
    assert pipe[-1].pixel_min_ == 0.0 and pipe[-1].pixel_max_ == 1.0
    assert pipe.score(X_test, y_test) > 0.85
    assert pipe.predict_proba(X_test).shape == (len(X_test), 10)


def test_tabular_features_on_different_scales_in_a_pipeline():
    X, y = load_wine(return_X_y=True)  # features from ~0.1 to ~1 700: one global range squashes most
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0, stratify=y)
    pipe = make_pipeline(StandardScaler(), ConvNetClassifier(random_state=0)).fit(X_train, y_train)
    assert pipe[-1].image_shape_ == (4, 4)  # 13 features, padded
    assert pipe.score(X_test, y_test) > 0.9


def test_string_labels_three_classes():
    X, y = load_iris(return_X_y=True)
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    X_train, X_test, y_train, y_test = train_test_split(X, names, random_state=0, stratify=names)
    clf = ConvNetClassifier(random_state=0).fit(X_train, y_train)
    assert list(clf.classes_) == ["setosa", "versicolor", "virginica"]
    assert clf.network_.classes == 3
    predicted = clf.predict(X_test)
    assert predicted.dtype == y_test.dtype and set(predicted) <= set(clf.classes_)
    assert clf.score(X_test, y_test) > 0.9


def test_predict_proba_columns_follow_classes():
    """Labels in no particular order: column j of predict_proba is the probability of classes_[j]."""
    rng = np.random.default_rng(0)
    labels = np.array(["zebra", "ant", "moth"])
    centres = np.array([[0.9, 0.1, 0.1, 0.1], [0.1, 0.9, 0.1, 0.1], [0.1, 0.1, 0.1, 0.9]])
    which = rng.integers(0, 3, 300)
    X = centres[which] + rng.normal(0, 0.05, (300, 4))
    clf = ConvNetClassifier(random_state=0).fit(X, labels[which])
    assert list(clf.classes_) == ["ant", "moth", "zebra"]
    P = clf.predict_proba(X)
    assert P.shape == (300, 3) and P.dtype == np.float64
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-12)
    assert np.all(clf.classes_[P.argmax(axis=1)] == clf.predict(X))
    column_of_true = np.searchsorted(clf.classes_, labels[which])
    assert np.mean(P[np.arange(300), column_of_true] > 0.5) > 0.95
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(X)), P, rtol=1e-12)


def test_integer_labels_need_not_be_0_to_c(digits):
    X_train, X_test, y_train, y_test = digits
    keep_train, keep_test = np.isin(y_train, (3, 8)), np.isin(y_test, (3, 8))
    shifted = np.where(y_train[keep_train] == 3, -7, 1000)
    clf = ConvNetClassifier(random_state=0).fit(X_train[keep_train], shifted)
    assert list(clf.classes_) == [-7, 1000]
    expected = np.where(y_test[keep_test] == 3, -7, 1000)
    assert clf.score(X_test[keep_test], expected) > 0.9


def test_score_is_accuracy(digits, fitted):
    _, X_test, _, y_test = digits
    assert fitted.score(X_test, y_test) == accuracy_score(y_test, fitted.predict(X_test))


def test_same_random_state_same_model(digits, fitted):
    X_train, X_test, y_train, _ = digits
    again = ConvNetClassifier(random_state=0).fit(X_train, y_train)
    np.testing.assert_array_equal(again.predict_proba(X_test), fitted.predict_proba(X_test))
    np.testing.assert_array_equal(again.network_.W, fitted.network_.W)
    other = ConvNetClassifier(random_state=1).fit(X_train, y_train)
    assert not np.array_equal(other.network_.W, fitted.network_.W)


def test_random_state_none_still_fits(digits):
    X_train, X_test, y_train, y_test = digits
    assert ConvNetClassifier(epochs=3).fit(X_train, y_train).score(X_test, y_test) > 0.8


def test_explicit_image_shape_equals_inferred(digits, fitted):
    X_train, X_test, y_train, _ = digits
    explicit = ConvNetClassifier(image_shape=(8, 8), random_state=0).fit(X_train, y_train)
    assert explicit.image_shape_ == fitted.image_shape_ == (8, 8)
    np.testing.assert_array_equal(explicit.predict_proba(X_test), fitted.predict_proba(X_test))


def test_explicit_image_shape_need_not_be_square(digits):
    X_train, X_test, y_train, y_test = digits
    clf = ConvNetClassifier(image_shape=(4, 16), random_state=0).fit(X_train, y_train)
    assert clf.network_.input_shape == (4, 16)
    assert clf.score(X_test, y_test) > 0.85


@pytest.mark.parametrize("shape", [(7, 9), (1, 64), (64, 1), (8,), "8x8", (8.0, 8.0)])
def test_bad_image_shape_is_refused(digits, shape):
    X_train, _, y_train, _ = digits
    with pytest.raises(ValueError, match="image_shape"):
        ConvNetClassifier(image_shape=shape).fit(X_train, y_train)


@pytest.mark.parametrize(
    ("n_features", "side"), [(1, 2), (2, 2), (4, 2), (5, 3), (9, 3), (10, 4), (64, 8), (65, 9), (784, 28)]
)
def test_inferred_image_shape(n_features, side):
    assert infer_image_shape(n_features) == (side, side)


def test_non_square_feature_count_is_padded():
    """5 features fill a 3×3 image row by row; the other 4 pixels are 0, so they change nothing."""
    rng = np.random.default_rng(1)
    X = rng.uniform(-3, 5, (200, 5))
    X[0, 0], X[1, 1] = -3.0, 5.0  # the range, so that padding with -3 below maps to the same 0
    y = (X[:, 0] + X[:, 4] > 2).astype(int)
    clf = ConvNetClassifier(random_state=0).fit(X, y)
    assert clf.image_shape_ == (3, 3) and clf.n_features_in_ == 5
    assert clf.score(X, y) > 0.8
    padded = ConvNetClassifier(image_shape=(3, 3), random_state=0).fit(np.hstack([X, np.full((200, 4), -3.0)]), y)
    np.testing.assert_array_equal(padded.predict_proba(np.hstack([X, np.full((200, 4), -3.0)])),
                                  clf.predict_proba(X))
    with pytest.raises(ValueError, match="5 features"):
        clf.predict(X[:, :4])


def test_pixels_0_to_255_scale_like_the_network(digits):
    """Training data spanning 0..255 maps by x / 255: the same as handing ConvNet the uint8 images."""
    X_train, X_test, y_train, _ = digits
    X_train = np.rint(X_train * (255 / 16))
    X_test = np.rint(X_test * (255 / 16))
    clf = ConvNetClassifier(random_state=0, epochs=3).fit(X_train, y_train)
    assert (clf.pixel_min_, clf.pixel_max_) == (0.0, 255.0)
    as_uint8 = X_test.astype(np.uint8).reshape(-1, 8, 8)
    np.testing.assert_allclose(clf.predict_proba(X_test), clf.network_.predict_proba(as_uint8), rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(clf.predict(X_test), clf.classes_[clf.network_.predict(as_uint8)])


def test_values_outside_the_training_range_are_clipped(fitted, digits):
    _, X_test, _, _ = digits
    wild = X_test * 10 - 50  # far below 0 and far above 16
    np.testing.assert_array_equal(fitted.predict_proba(wild), fitted.predict_proba(np.clip(wild, 0, 16)))


@pytest.mark.filterwarnings("ignore:invalid value encountered in reduce:RuntimeWarning")  # sklearn's finite check
def test_constant_and_huge_features():
    """max − min overflows here (2e308): the scaling must not."""
    X = np.array([[1e308, -1e308], [-1e308, 1e308]] * 20)
    y = np.array([0, 1] * 20)
    clf = ConvNetClassifier(random_state=0).fit(X, y)
    assert clf.score(X, y) == 1.0
    constant = ConvNetClassifier(random_state=0, epochs=2).fit(np.full((10, 4), 7.0), y[:10])
    assert constant.predict(np.zeros((3, 4))).shape == (3,)


def test_clone_and_pickle(fitted, digits):
    _, X_test, _, _ = digits
    fresh = clone(fitted)
    assert fresh.get_params() == fitted.get_params()
    assert not hasattr(fresh, "network_") and not hasattr(fresh, "classes_")
    with pytest.raises(NotFittedError):
        fresh.predict(X_test)
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.predict_proba(X_test), fitted.predict_proba(X_test))


def test_get_and_set_params_store_values_unchanged():
    clf = ConvNetClassifier(image_shape=[8, 8], learning_rate=0.5)
    assert clf.get_params()["image_shape"] == [8, 8]
    clf.set_params(epochs=2, filters=4)
    assert (clf.epochs, clf.filters, clf.learning_rate) == (2, 4, 0.5)


@pytest.mark.parametrize(
    "params", [{"filters": 0}, {"learning_rate": 0.0}, {"learning_rate": -1.0}, {"epochs": 0},
               {"batch_size": 0}, {"pool": "median"}, {"activation": "tanh"}]
)
def test_bad_parameters_are_refused_at_fit(params):
    X, y = load_iris(return_X_y=True)
    clf = ConvNetClassifier(**params)
    with pytest.raises(ValueError):
        clf.fit(X, y)
    assert not hasattr(clf, "network_") and not hasattr(clf, "classes_")  # nothing half-fitted left behind
    with pytest.raises(NotFittedError):
        clf.predict(X)


def test_one_class_is_refused():
    with pytest.raises(ValueError, match="at least 2 classes"):
        ConvNetClassifier().fit(np.random.default_rng(0).uniform(size=(10, 4)), ["a"] * 10)


def test_nan_is_refused(digits):
    X_train, _, y_train, _ = digits
    bad = X_train.copy()
    bad[3, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ConvNetClassifier().fit(bad, y_train)


def test_divergence_warns_and_keeps_a_usable_model(digits):
    X_train, X_test, y_train, _ = digits
    with pytest.warns(ConvergenceWarning, match="learning_rate=1000.0 is too high"):
        clf = ConvNetClassifier(learning_rate=1000.0, random_state=0).fit(X_train, y_train)
    assert clf.n_iter_ < clf.training_.epochs
    assert np.isfinite(clf.predict_proba(X_test)).all()


def test_core_package_never_imports_scikit_learn():
    code = (
        "import sys; import scratchcnn, scratchcnn.train, scratchcnn.nn.model, scratchcnn.data, scratchcnn.cli; "
        "assert 'sklearn' not in sys.modules, sorted(m for m in sys.modules if 'sklearn' in m); "
        "import scratchcnn.sklearn, sklearn.base; "
        "assert scratchcnn.sklearn.BaseEstimator is sklearn.base.BaseEstimator; "
        "assert sklearn.__file__ != scratchcnn.sklearn.__file__"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
