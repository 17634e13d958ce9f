"""The compiled training engine against the NumPy reference: same steps, same parameters, same losses.

The reference is the plain loop fit() runs without the engine: for each consecutive batch of
``order``, ``net.loss_and_gradients_prepared`` and then ``θ ← θ − η ∂L/∂θ``. Parameters must agree to
rtol 1e-10 in float64 (relative to the largest entry of each array, so that an entry that happens to
be near 0 is not held to a tighter standard than its neighbours) and to 1e-4 in float32.

The engine's options are run-time arguments of one compiled kernel, so the whole module compiles it
once per dtype (a few seconds each, or a fraction of a second from Numba's on-disk cache).
"""

from __future__ import annotations

import itertools
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("numba")

from scratchcnn.nn import engine
from scratchcnn.nn.model import ConvNet

RECORDS = 24
BATCH_SIZES = (1, 3, 7)  # 7 does not divide 24: the last batch holds 3 records
OPTIONS = dict(filters=4, kernel_size=5, pool="max", activation="relu", bias=True)


def reference_epoch(net: ConvNet, X: np.ndarray, y: np.ndarray, order: np.ndarray, learning_rate: float,
                    batch_size: int) -> tuple[int, float]:
    """The NumPy path: batches of ``order``, mean cross-entropy gradients, then θ ← θ − η ∂L/∂θ."""
    params = net.parameters()
    steps, L = 0, math.nan
    with np.errstate(all="ignore"):
        for first in range(0, len(order), batch_size):
            batch = order[first : first + batch_size]
            L, grads = net.loss_and_gradients_prepared(X[batch], y[batch])
            if not math.isfinite(L):
                break
            for name, p in params.items():
                p -= learning_rate * grads[name]
            steps += 1
    return steps, L


def data(shape: tuple[int, int], dtype: str, n: int = RECORDS, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((n, *shape)).astype(dtype), rng.integers(0, 10, n)


def assert_same_parameters(net: ConvNet, ref: ConvNet, rtol: float) -> None:
    for name, p in ref.parameters().items():
        got = getattr(net, name)
        scale = float(np.abs(p).max())
        np.testing.assert_allclose(got, p, rtol=rtol, atol=rtol * scale, err_msg=f"parameter {name}")


def compare(config: dict, shape: tuple[int, int], dtype: str, learning_rate: float, batch_sizes=BATCH_SIZES,
            order: np.ndarray | None = None, rtol: float = 1e-10, seed: int = 0) -> None:
    X, y = data(shape, dtype, seed=seed)
    if order is None:
        order = np.random.default_rng(seed + 1).permutation(len(X))
    for batch_size in batch_sizes:
        net = ConvNet(**config, input_shape=shape, seed=seed, dtype=dtype)
        ref = ConvNet(**config, input_shape=shape, seed=seed, dtype=dtype)
        before = {name: p for name, p in net.parameters().items()}
        steps, loss = engine.sgd_epoch(net, X, y, order, learning_rate, batch_size)
        ref_steps, ref_loss = reference_epoch(ref, X, y, order, learning_rate, batch_size)
        assert steps == ref_steps == math.ceil(len(order) / batch_size), batch_size
        assert loss == pytest.approx(ref_loss, rel=rtol), batch_size
        assert_same_parameters(net, ref, rtol)
        for name, p in net.parameters().items():
            assert p is before[name], f"{name} was replaced, not updated in place"


CONFIGS = [
    dict(filters=K, kernel_size=k, pool=pool, activation=activation, bias=bias)
    for pool, activation, bias, k, K in itertools.product(
        ("decimate", "max", "avg"), ("none", "relu"), (False, True), (1, 2, 3, 5), (1, 3)
    )
]


def config_id(config: dict) -> str:
    return "K{filters}-k{kernel_size}-{pool}-{activation}-{}".format("bias" if config["bias"] else "nobias", **config)


def test_default_network_float64() -> None:
    compare({}, (28, 28), "float64", learning_rate=0.1)


@pytest.mark.parametrize("shape", [(7, 9), (28, 28)], ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("config", CONFIGS, ids=config_id)
def test_every_option_float64(config: dict, shape: tuple[int, int]) -> None:
    compare(config, shape, "float64", learning_rate=0.1)


@pytest.mark.parametrize("shape", [(2, 2), (3, 2), (2, 5), (5, 3), (9, 4)], ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("pool", ["decimate", "max", "avg"])
@pytest.mark.parametrize("kernel_size", [1, 2, 3, 6])
def test_tiny_and_odd_images(shape: tuple[int, int], pool: str, kernel_size: int) -> None:
    """Filters larger than the image, odd sizes (last row/column dropped by pooling), H' or W' of 1."""
    compare(dict(filters=2, kernel_size=kernel_size, pool=pool, activation="relu", bias=True), shape, "float64",
            learning_rate=0.2, batch_sizes=(1, 5))


@pytest.mark.parametrize("config", [{}, OPTIONS, dict(pool="avg", kernel_size=2)], ids=["default", "options", "avg"])
def test_float32(config: dict) -> None:
    """float32 is computed in float32; after a few dozen steps it agrees with NumPy to rounding."""
    compare(config, (28, 28), "float32", learning_rate=0.05, rtol=1e-4)
    compare(config, (7, 9), "float32", learning_rate=0.05, rtol=1e-4, seed=1)


def test_order_with_repeats_and_subset() -> None:
    """order need not be a permutation: any indices into X, repeated or not, in any number."""
    order = np.random.default_rng(5).integers(0, RECORDS, 40)
    compare(OPTIONS, (28, 28), "float64", learning_rate=0.1, order=order)
    compare({}, (28, 28), "float64", learning_rate=0.1, order=order[:5], batch_sizes=(1, 3, 32))


@pytest.mark.parametrize("config", [{}, OPTIONS], ids=["default", "options"])
@pytest.mark.parametrize("batch_size", [1, 3])
def test_stops_before_the_update_of_a_non_finite_loss(config: dict, batch_size: int) -> None:
    """A huge learning rate: the loss overflows after a few steps. The engine stops there, without
    applying that batch's update, and says how many steps it made and which loss stopped it."""
    X, y = data((7, 9), "float64")
    order = np.random.default_rng(1).permutation(RECORDS)
    learning_rate = 1e30 if not config else 1e200
    net = ConvNet(**config, input_shape=(7, 9), dtype="float64")
    ref = ConvNet(**config, input_shape=(7, 9), dtype="float64")
    steps, loss = engine.sgd_epoch(net, X, y, order, learning_rate, batch_size)
    ref_steps, ref_loss = reference_epoch(ref, X, y, order, learning_rate, batch_size)
    assert 1 <= steps < math.ceil(RECORDS / batch_size)
    assert steps == ref_steps
    assert not math.isfinite(loss) and not math.isfinite(ref_loss)
    assert_same_parameters(net, ref, 1e-10)  # the parameters after the last good step


def test_stop_leaves_the_parameters_of_the_last_good_step() -> None:
    """The same, checked directly: an epoch that stopped after s steps equals an epoch of those s batches."""
    X, y = data((7, 9), "float64")
    order = np.random.default_rng(1).permutation(RECORDS)
    net, good = ConvNet(input_shape=(7, 9), dtype="float64"), ConvNet(input_shape=(7, 9), dtype="float64")
    steps, loss = engine.sgd_epoch(net, X, y, order, 1e30, 1)
    assert 1 <= steps < RECORDS and math.isnan(loss)
    good_steps, good_loss = engine.sgd_epoch(good, X, y, order[:steps], 1e30, 1)
    assert good_steps == steps and math.isfinite(good_loss)
    assert_same_parameters(net, good, 0)  # bit for bit: the same computation


def test_empty_order_does_nothing() -> None:
    """An empty order makes no step and returns (0, nan): there is no last batch to report."""
    X, y = data((28, 28), "float32")
    net = ConvNet()
    before = {name: p.copy() for name, p in net.parameters().items()}
    steps, loss = engine.sgd_epoch(net, X, y, np.zeros(0, np.int64), 0.1, 1)
    assert steps == 0 and math.isnan(loss)
    for name, p in net.parameters().items():
        np.testing.assert_array_equal(p, before[name])


def test_non_contiguous_parameters_are_updated_in_place() -> None:
    X, y = data((28, 28), "float64")
    net, ref = ConvNet(dtype="float64"), ConvNet(dtype="float64")
    net.W = np.asfortranarray(net.W)
    W = net.W
    order = np.arange(RECORDS)
    assert engine.sgd_epoch(net, X, y, order, 0.1, 3)[0] == reference_epoch(ref, X, y, order, 0.1, 3)[0]
    assert net.W is W
    assert_same_parameters(net, ref, 1e-10)


def test_bad_arguments_are_refused() -> None:
    X, y = data((28, 28), "float64")
    net = ConvNet(dtype="float64")
    with pytest.raises(ValueError, match="order"):
        engine.sgd_epoch(net, X, y, np.array([0, RECORDS]), 0.1, 1)
    with pytest.raises(ValueError, match="order"):
        engine.sgd_epoch(net, X, y, np.array([-1]), 0.1, 1)
    with pytest.raises(ValueError, match="labels"):
        engine.sgd_epoch(net, X, np.full(RECORDS, 10), np.arange(3), 0.1, 1)
    with pytest.raises(ValueError, match="batch_size"):
        engine.sgd_epoch(net, X, y, np.arange(3), 0.1, 0)
    with pytest.raises(ValueError, match="shape"):
        engine.sgd_epoch(net, X[:, :27], y, np.arange(3), 0.1, 1)


def test_one_compilation_per_dtype() -> None:
    """The options are run-time arguments: every configuration shares the kernel compiled for its dtype."""
    assert engine.warm_up("float64") >= 0
    for config in ({}, OPTIONS, dict(pool="avg", kernel_size=1)):
        for shape in ((7, 9), (28, 28)):
            X, y = data(shape, "float64", n=4)
            engine.sgd_epoch(ConvNet(**config, input_shape=shape, dtype="float64"), X, y, np.arange(4), 0.1, 2)
    float64_signatures = [sig for sig in engine._epoch.signatures if str(sig[0].dtype) == "float64"]
    assert len(float64_signatures) == 1


def test_numpy_fallback_without_numba(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without Numba, sgd_epoch runs the same steps with NumPy."""
    monkeypatch.setattr(engine, "_kernel", lambda: None)
    compare(OPTIONS, (7, 9), "float64", learning_rate=0.1, batch_sizes=(1, 7), rtol=0)


def test_works_when_no_cache_directory_is_writable(tmp_path) -> None:
    """Numba refuses cache=True when it finds no writable cache directory: the engine compiles in memory."""
    script = textwrap.dedent("""
        import numpy as np
        from numba.core import caching

        def refuse(self):
            raise PermissionError("read-only file system")

        caching._CacheLocator.ensure_cache_path = refuse
        from scratchcnn.nn import engine
        from scratchcnn.nn.model import ConvNet
        net = ConvNet(input_shape=(4, 6), dtype="float64")
        X = np.random.default_rng(0).random((5, 4, 6))
        steps, loss = engine.sgd_epoch(net, X, np.arange(5) % 10, np.arange(5), 0.1, 2)
        assert steps == 3 and np.isfinite(loss), (steps, loss)
        assert type(engine._epoch._cache).__name__ == "NullCache"  # compiled in memory, not cached
        print("ok")
    """)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "missing" / "cache"))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


@pytest.mark.parametrize("when", ["absent", "broken"])
def test_without_numba_the_numpy_path_runs(when: str) -> None:
    """Numba absent (the package still imports) or failing to import on first use: NumPy does the epoch."""
    block = "import sys; sys.modules['numba'] = None"  # any `import numba` now raises ImportError
    script = textwrap.dedent(f"""
        {block if when == "absent" else ""}
        import numpy as np
        from scratchcnn.nn import engine
        from scratchcnn.nn.model import ConvNet
        assert engine.NUMBA_AVAILABLE is {when == "broken"}
        {block if when == "broken" else ""}
        assert engine.warm_up("float64") == 0.0 and engine.NUMBA_AVAILABLE is False
        X = np.random.default_rng(0).random((5, 4, 6))
        net = ConvNet(input_shape=(4, 6), dtype="float64")
        print(engine.sgd_epoch(net, X, np.arange(5) % 10, np.arange(5), 0.1, 2)[0])
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "3"


@pytest.mark.parametrize("classes", [2, 13])
def test_the_engine_handles_any_number_of_classes(classes: int) -> None:
    rng = np.random.default_rng(classes)
    X = rng.uniform(size=(30, 9, 8))
    y = rng.integers(0, classes, 30)
    order = rng.integers(0, 30, 40)
    fast = ConvNet(classes=classes, bias=True, input_shape=(9, 8), dtype="float64", seed=2)
    slow = ConvNet(classes=classes, bias=True, input_shape=(9, 8), dtype="float64", seed=2)
    engine.sgd_epoch(fast, X, y, order, 0.05, 3)
    engine.sgd_epoch(slow, X, y, order, 0.05, 3, compiled=False)
    for name, value in slow.parameters().items():
        np.testing.assert_allclose(fast.parameters()[name], value, rtol=1e-10, atol=1e-12)
