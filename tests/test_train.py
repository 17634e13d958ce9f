"""Training and evaluation: a real run on MNIST, determinism, the history, the record stream,
split sizes, divergence, argument checks, batches, confusion matrix and evaluate."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np
import pytest

from scratchcnn import ConvNet
from scratchcnn.data import load_dataset
from scratchcnn.errors import ConfigError
from scratchcnn.nn.metrics import confusion_matrix, evaluate
from scratchcnn.train.sgd import EpochRecord, History, RecordStream, fit, split_sizes

SHAPE = (12, 12)


# ---- helpers -----------------------------------------------------------------------------------


def synthetic(n: int, seed: int = 0, shape: tuple[int, int] = SHAPE) -> tuple[np.ndarray, np.ndarray]:
    """A learnable dataset: faint noise plus a bright 2×2 block whose place gives the class."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 10
    X = rng.random((n, *shape)) * 0.2
    for i, c in enumerate(y):
        r, q = divmod(int(c), 5)
        X[i, 2 + 4 * r : 4 + 4 * r, 1 + 2 * q : 3 + 2 * q] += 0.8
    return X.clip(0, 1), y


def indexed(n: int, shape: tuple[int, int] = SHAPE) -> tuple[np.ndarray, np.ndarray]:
    """Images whose pixel (0, 0) is index/1000, so a trainer's batches can be traced back to records."""
    X = np.zeros((n, *shape))
    X[:, 0, 0] = np.arange(n) / 1000
    return X, np.arange(n) % 10


class Recording(ConvNet):
    """A ConvNet that notes which records (by the pixel of ``indexed``) each training step used."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.batches: list[np.ndarray] = []

    def loss_and_gradients_prepared(self, X, y):
        self.batches.append(np.rint(X[:, 0, 0].astype(np.float64) * 1000).astype(int))
        return super().loss_and_gradients_prepared(X, y)


def params_copy(net: ConvNet) -> dict[str, np.ndarray]:
    return {name: p.copy() for name, p in net.parameters().items()}


def assert_params_equal(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].dtype == b[name].dtype
        assert np.array_equal(a[name], b[name]), name


def without_seconds(history: History) -> list[tuple]:
    return [(e.epoch, e.records, e.train_accuracy, e.train_loss, e.validation_accuracy, e.validation_loss)
            for e in history.epochs]


# ---- a real run --------------------------------------------------------------------------------


def test_one_epoch_on_real_mnist_learns_the_digits(data_dir: Path) -> None:
    data = load_dataset("mnist", data_dir)
    net = ConvNet()
    history = fit(net, data.train_images, data.train_labels, epochs=1, learning_rate=0.001, batch_size=1,
                  validation_size=0.1)
    accuracy, loss = evaluate(net, net.prepare(data.test_images), data.test_labels.astype(np.int64))
    assert accuracy > 0.85
    assert loss < 0.6
    [record] = history.epochs
    assert record.records == round(0.9 * len(data.train_images))
    assert record.train_accuracy > 0.85
    assert record.validation_accuracy is not None and record.validation_accuracy > 0.85
    assert history.stopped is None


# ---- determinism -------------------------------------------------------------------------------


def run(seed: int, **options) -> tuple[History, dict[str, np.ndarray]]:
    X, y = synthetic(60)
    net = ConvNet(input_shape=SHAPE, seed=0)
    options = {"epochs": 3, "learning_rate": 0.05, "validation_size": 0.2, "batch_size": 4, **options}
    history = fit(net, X, y, seed=seed, **options)
    return history, params_copy(net)


def test_same_seed_gives_the_same_history_and_parameters_bit_for_bit() -> None:
    history_a, params_a = run(seed=7)
    history_b, params_b = run(seed=7)
    assert without_seconds(history_a) == without_seconds(history_b)
    assert_params_equal(params_a, params_b)


def test_a_different_seed_gives_a_different_run() -> None:
    history_a, params_a = run(seed=7)
    history_b, params_b = run(seed=8)
    assert without_seconds(history_a) != without_seconds(history_b)
    assert not all(np.array_equal(params_a[name], params_b[name]) for name in params_a)


def test_the_seed_decides_the_validation_split() -> None:
    """Held-out records depend on the seed: the same seed holds out the same ones."""
    def held_out(seed: int) -> set[int]:
        X, y = indexed(50)
        net = Recording(input_shape=SHAPE)
        fit(net, X, y, epochs=1, learning_rate=0.01, validation_size=10, seed=seed, engine="numpy")
        return set(range(50)) - set(np.concatenate(net.batches).tolist())

    assert len(held_out(0)) == 10
    assert held_out(0) == held_out(0)
    assert held_out(0) != held_out(1)


# ---- history -----------------------------------------------------------------------------------


def test_history_has_one_record_per_epoch() -> None:
    X, y = synthetic(40)
    seen: list[EpochRecord] = []
    history = fit(ConvNet(input_shape=SHAPE), X, y, epochs=3, learning_rate=0.05, validation_size=0.25,
                  on_epoch=seen.append)
    assert [e.epoch for e in history.epochs] == [1, 2, 3]
    assert [e.records for e in history.epochs] == [30, 60, 90]
    assert seen == history.epochs
    for e in history.epochs:
        for accuracy in (e.train_accuracy, e.validation_accuracy):
            assert accuracy is not None and 0 <= accuracy <= 1
        assert e.train_loss > 0 and e.validation_loss is not None and e.validation_loss > 0
        assert e.seconds > 0
    assert history.stopped is None


def test_records_count_epoch_size_not_the_training_set() -> None:
    X, y = synthetic(40)
    history = fit(ConvNet(input_shape=SHAPE), X, y, epochs=4, epoch_size=7, learning_rate=0.05)
    assert [e.records for e in history.epochs] == [7, 14, 21, 28]


def test_no_validation_set_gives_none() -> None:
    X, y = synthetic(30)
    history = fit(ConvNet(input_shape=SHAPE), X, y, epochs=2, learning_rate=0.05, validation_size=0)
    assert [e.records for e in history.epochs] == [30, 60]
    assert all(e.validation_accuracy is None and e.validation_loss is None for e in history.epochs)
    assert all(0 <= e.train_accuracy <= 1 for e in history.epochs)


def test_history_to_csv() -> None:
    X, y = synthetic(30)
    history = fit(ConvNet(input_shape=SHAPE), X, y, epochs=3, learning_rate=0.05, validation_size=0)
    text = history.to_csv()
    lines = text.splitlines()
    assert lines[0] == "epoch,records,train_accuracy,train_loss,validation_accuracy,validation_loss,seconds"
    assert len(lines) == 1 + 3
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert [int(r["records"]) for r in rows] == [30, 60, 90]
    assert float(rows[1]["train_accuracy"]) == history.epochs[1].train_accuracy
    assert rows[0]["validation_accuracy"] == ""


def test_empty_history_serialises() -> None:
    history = History(stopped="why")
    assert history.to_csv().splitlines() == [",".join(EpochRecord.__dataclass_fields__)]


# ---- the record stream -------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "take"), [(7, 3), (10, 10), (10, 1), (5, 12), (100, 33)])
def test_record_stream_yields_each_index_once_per_pass(n: int, take: int) -> None:
    stream = RecordStream(n, np.random.default_rng(0))
    passes = 6
    parts = [stream.take(take) for _ in range(-(-passes * n // take))]
    assert all(len(part) == take for part in parts)
    drawn = np.concatenate(parts)
    for p in range(passes):
        assert sorted(drawn[p * n : (p + 1) * n].tolist()) == list(range(n)), f"pass {p}"


def test_record_stream_takes_exactly_the_count_and_reshuffles() -> None:
    stream = RecordStream(50, np.random.default_rng(1))
    parts = [stream.take(20) for _ in range(10)]
    assert [len(p) for p in parts] == [20] * 10
    drawn = np.concatenate(parts)
    assert not np.array_equal(drawn[:50], drawn[50:100])  # a new order each pass
    assert not np.array_equal(drawn[:50], np.arange(50))  # shuffled at all


def test_small_epochs_cover_the_training_set_evenly() -> None:
    """100 records per epoch over 250 training records: 5 epochs are exactly 2 passes."""
    X, y = indexed(300)
    net = Recording(input_shape=SHAPE)
    history = fit(net, X, y, epochs=5, epoch_size=100, learning_rate=0.01, validation_size=50, engine="numpy")
    assert [e.records for e in history.epochs] == [100, 200, 300, 400, 500]
    seen = np.concatenate(net.batches)
    assert len(seen) == 500
    first, second = sorted(seen[:250].tolist()), sorted(seen[250:].tolist())
    assert len(set(first)) == 250
    assert first == second


# ---- split sizes -------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "train_size", "validation_size", "expected"), [
    (1000, None, 0.1, (1000, 100)),
    (1000, None, 0.0, (1000, 0)),
    (1000, None, 0, (1000, 0)),
    (1000, None, 250, (1000, 250)),
    (1000, None, 999, (1000, 999)),
    (1000, 500, 0.1, (500, 50)),
    (1000, 500, 40, (500, 40)),
    (1000, 5000, 0.2, (1000, 200)),
    (1000, 1, 0.1, (1, 0)),
    (10, None, 0.5, (10, 5)),
])
def test_split_sizes(n: int, train_size: int | None, validation_size: float | int,
                     expected: tuple[int, int]) -> None:
    assert split_sizes(n, train_size, validation_size) == expected


@pytest.mark.parametrize(("n", "train_size", "validation_size"), [
    (1000, 0, 0.1),
    (1000, -5, 0.1),
    (1000, None, 1.0),
    (1000, None, 1.5),
    (1000, None, -0.1),
    (1000, None, math.nan),
    (1000, None, 1000),
    (1000, None, 5000),
    (1000, None, -1),
    (1000, 100, 100),
    (2, None, 0.9),
    (0, None, 0.1),
])
def test_split_sizes_rejects_bad_values(n: int, train_size: int | None, validation_size: float | int) -> None:
    with pytest.raises(ConfigError):
        split_sizes(n, train_size, validation_size)


def test_split_sizes_takes_a_numpy_float32_fraction() -> None:
    assert split_sizes(100, None, np.float32(0.2)) == (100, 20)


# ---- training works ----------------------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [1, 8])
def test_training_lowers_the_loss(batch_size: int) -> None:
    X, y = synthetic(60)
    net = ConvNet(input_shape=SHAPE)
    prepared = net.prepare(X)
    accuracy_before, loss_before = evaluate(net, prepared, y)
    history = fit(net, X, y, epochs=8, learning_rate=0.3 if batch_size == 1 else 1.0, batch_size=batch_size,
                  validation_size=0)
    accuracy_after, loss_after = evaluate(net, prepared, y)
    assert loss_after < 0.5 * loss_before
    assert accuracy_after > accuracy_before
    assert accuracy_after >= 0.9
    assert history.epochs[-1].train_loss < history.epochs[0].train_loss
    assert history.epochs[-1].train_loss == pytest.approx(loss_after, rel=1e-5)


def test_batches_are_the_right_size() -> None:
    X, y = indexed(30)
    net = Recording(input_shape=SHAPE)
    fit(net, X, y, epochs=2, epoch_size=20, batch_size=8, learning_rate=0.01, validation_size=0, engine="numpy")
    assert [len(b) for b in net.batches] == [8, 8, 4, 8, 8, 4]


def test_batch_larger_than_the_epoch_is_one_update_per_epoch() -> None:
    X, y = synthetic(40)
    net = Recording(input_shape=SHAPE)
    before = params_copy(net)
    history = fit(net, X, y, epochs=3, batch_size=1000, learning_rate=0.5, validation_size=0, engine="numpy")
    assert [len(b) for b in net.batches] == [40, 40, 40]
    assert [e.records for e in history.epochs] == [40, 80, 120]
    assert not np.array_equal(before["W"], net.W)
    assert history.epochs[-1].train_loss < history.epochs[0].train_loss


def test_fit_accepts_uint8_images_and_labels() -> None:
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (20, *SHAPE), dtype=np.uint8)
    y = (np.arange(20) % 10).astype(np.uint8)
    history = fit(ConvNet(input_shape=SHAPE), X, y, epochs=1, learning_rate=0.001, validation_size=0)
    assert len(history.epochs) == 1


# ---- divergence --------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_huge_learning_rate_in_the_first_epoch_keeps_the_initial_parameters(dtype: str) -> None:
    X, y = synthetic(40)
    net = ConvNet(input_shape=SHAPE, dtype=dtype)
    initial = params_copy(net)
    learning_rate = 1e6 if dtype == "float32" else 1e200
    with np.errstate(all="ignore"):
        history = fit(net, X, y, epochs=3, learning_rate=learning_rate, validation_size=0)
    assert history.epochs == []
    assert history.stopped is not None
    assert "learning rate" in history.stopped
    assert f"{learning_rate:g}" in history.stopped
    assert "epoch 1" in history.stopped
    assert_params_equal(params_copy(net), initial)
    assert all(np.isfinite(p).all() for p in net.parameters().values())


def test_divergence_later_keeps_the_parameters_of_the_last_completed_epoch() -> None:
    """float32, learning rate 3: epochs 1-5 complete (huge but finite losses), epoch 6 overflows."""
    X, y = synthetic(60)
    options = {"epoch_size": 5, "learning_rate": 3.0, "validation_size": 0}
    with np.errstate(all="ignore"):
        diverging = ConvNet(input_shape=SHAPE)
        history = fit(diverging, X, y, epochs=10, **options)
        reference = ConvNet(input_shape=SHAPE)
        reference_history = fit(reference, X, y, epochs=len(history.epochs), **options)
    assert 1 < len(history.epochs) < 10, "the setting should diverge after the first epoch"
    assert history.stopped is not None and "learning rate 3" in history.stopped
    assert f"epoch {len(history.epochs) + 1}" in history.stopped
    assert reference_history.stopped is None
    assert without_seconds(reference_history) == without_seconds(history)
    assert all(np.isfinite(p).all() for p in diverging.parameters().values())
    assert_params_equal(params_copy(diverging), params_copy(reference))


def test_an_epoch_with_an_infinite_or_nan_loss_is_not_kept() -> None:
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (40, 28, 28), dtype=np.uint8)  # as conftest.make_fake_dataset(seed=0)
    y = np.arange(40) % 10
    with np.errstate(all="ignore"):
        history = fit(ConvNet(dtype="float64"), X, y, epochs=8, epoch_size=5, learning_rate=1000,
                      validation_size=0)
    # Today: 8 epochs, stopped is None, and epoch 8's train_loss is NaN.
    assert all(math.isfinite(e.train_loss) for e in history.epochs)
    assert history.stopped is not None


# ---- bad arguments -----------------------------------------------------------------------------


@pytest.mark.parametrize("options", [
    {"learning_rate": 0},
    {"learning_rate": -0.1},
    {"learning_rate": math.nan},
    {"learning_rate": math.inf},
    {"epochs": 0},
    {"epochs": -1},
    {"batch_size": 0},
    {"batch_size": -3},
    {"epoch_size": 0},
    {"epoch_size": -1},
    {"train_size": 0},
    {"validation_size": 1.0},
    {"validation_size": 20},
    {"validation_size": -1},
], ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_fit_rejects_bad_arguments(options: dict) -> None:
    X, y = synthetic(20)
    net = ConvNet(input_shape=SHAPE)
    before = params_copy(net)
    with pytest.raises(ConfigError):
        fit(net, X, y, **{"epochs": 1, "learning_rate": 0.01, **options})
    assert_params_equal(params_copy(net), before)


def test_fit_rejects_mismatched_images_and_labels() -> None:
    X, y = synthetic(20)
    with pytest.raises(ConfigError):
        fit(ConvNet(input_shape=SHAPE), X, y[:-1], epochs=1)
    with pytest.raises(ConfigError):
        fit(ConvNet(input_shape=(28, 28)), X, y, epochs=1)
    with pytest.raises(ConfigError):
        fit(ConvNet(input_shape=SHAPE), X, y + 5, epochs=1)


# ---- confusion matrix and evaluate -------------------------------------------------------------


def test_confusion_matrix_on_a_hand_example() -> None:
    y_true = np.array([0, 0, 1, 2, 9, 9, 9, 3])
    y_pred = np.array([0, 1, 1, 9, 9, 9, 0, 3])
    expected = np.zeros((10, 10), dtype=np.int64)
    expected[0, 0] = 1
    expected[0, 1] = 1
    expected[1, 1] = 1
    expected[2, 9] = 1
    expected[9, 9] = 2
    expected[9, 0] = 1
    expected[3, 3] = 1
    C = confusion_matrix(y_true, y_pred)
    assert C.shape == (10, 10)
    assert np.issubdtype(C.dtype, np.integer)
    assert np.array_equal(C, expected)
    assert np.array_equal(confusion_matrix(y_true.astype(np.uint8), y_pred.astype(np.uint8)), expected)


def test_confusion_matrix_of_all_pairs() -> None:
    y_true, y_pred = (a.ravel() for a in np.meshgrid(np.arange(10), np.arange(10), indexing="ij"))
    assert np.array_equal(confusion_matrix(y_true, y_pred), np.ones((10, 10)))
    assert confusion_matrix(np.array([], dtype=np.int64), np.array([], dtype=np.int64)).sum() == 0


def test_evaluate_matches_a_manual_computation() -> None:
    X, y = synthetic(50, seed=3)
    net = ConvNet(input_shape=SHAPE, seed=4, dtype="float64")
    fit(net, X, y, epochs=1, learning_rate=0.01, validation_size=0)
    prepared = net.prepare(X)
    accuracy, loss = evaluate(net, prepared, y)

    A, _ = net.forward(prepared)
    P = np.exp(A) / np.exp(A).sum(axis=1, keepdims=True)
    assert accuracy == np.mean(A.argmax(axis=1) == y)
    assert 0 < accuracy < 1, "the check is weak unless some predictions are right and some wrong"
    assert loss == pytest.approx(-np.mean(np.log(P[np.arange(len(y)), y])), rel=1e-12)
    assert isinstance(accuracy, float) and isinstance(loss, float)


def test_evaluate_with_huge_scores_stays_finite() -> None:
    """The log-sum-exp is shifted: scores near 1e4 do not overflow e^a."""
    X, y = synthetic(20)
    net = ConvNet(input_shape=SHAPE, dtype="float64")
    net.W *= 1e5
    accuracy, loss = evaluate(net, net.prepare(X), y)
    assert math.isfinite(loss) and loss >= 0
    assert 0 <= accuracy <= 1


def test_evaluate_of_nothing_is_nan() -> None:
    net = ConvNet(input_shape=SHAPE)
    accuracy, loss = evaluate(net, np.zeros((0, *SHAPE), np.float32), np.zeros(0, np.int64))
    assert math.isnan(accuracy) and math.isnan(loss)


@pytest.mark.parametrize("batch_size", [1, 7])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_numba_and_numpy_engines_give_the_same_history_and_parameters(batch_size: int, dtype: str) -> None:
    """The compiled engine is the reference maths, faster: same seed, same history and parameters."""
    pytest.importorskip("numba")
    rng = np.random.default_rng(3)
    X = rng.integers(0, 256, (120, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, 120)
    runs = {}
    for engine in ("numpy", "numba"):
        net = ConvNet(seed=5, dtype=dtype, pool="max", activation="relu", bias=True)
        history = fit(net, X, y, epochs=3, batch_size=batch_size, learning_rate=0.01, validation_size=20,
                      engine=engine)
        assert history.engine == engine
        runs[engine] = (net, history)
    (reference, reference_history), (fast, fast_history) = runs["numpy"], runs["numba"]
    tolerance = 1e-9 if dtype == "float64" else 1e-4
    for name, value in reference.parameters().items():
        np.testing.assert_allclose(fast.parameters()[name], value, rtol=tolerance, atol=tolerance)
    for slow_epoch, fast_epoch in zip(reference_history.epochs, fast_history.epochs, strict=True):
        assert fast_epoch.train_accuracy == pytest.approx(slow_epoch.train_accuracy, abs=0.01)
        assert fast_epoch.train_loss == pytest.approx(slow_epoch.train_loss, rel=tolerance * 10)


def test_an_unknown_engine_is_refused() -> None:
    with pytest.raises(ConfigError, match="engine"):
        fit(ConvNet(), np.zeros((10, 28, 28), np.uint8), np.zeros(10, int), epochs=1, engine="cuda")
