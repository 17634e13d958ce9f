"""The explorer page for any network: it receives the network as a stack and runs one JavaScript function per
layer type. Its probabilities P and every layer's output must equal the NumPy stack's for the seed network,
lenet, and stacks with same/valid padding, avg pooling, ReLU after pooling and nonzero biases. Browser tests
reuse tests/test_explorer.py's Chromium fixture and skip (or fail in CI) the same way without it.
"""

# ruff: noqa: F811 (test_explorer's fixtures, imported, are the parameters of the tests below)

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import make_fake_dataset, run_main
from test_explorer import browser, embedded, open_page, page_probabilities  # noqa: F401 (a fixture)

from scratchcnn.nn.model import ConvNet
from scratchcnn.nn.network import Network, as_stack, from_spec, load_model
from scratchcnn.nn.stack import Stack
from scratchcnn.nn.stack_layers import Conv, Pool, ReLU
from scratchcnn.viz.explorer import build_page, write_explorer

MIXED = "conv:4x4:same,relu,pool:avg,conv:3x3:valid,pool:max,relu,conv:5x2,flatten,dense:7,relu,dense"
NETWORKS = {  # name: (spec, options)
    "seed": ("seed", {}),
    "lenet": ("lenet", {}),
    "mixed": (MIXED, {}),
    "mixed-float64-13x12-3-classes": (MIXED, {"dtype": "float64", "input_shape": (13, 12), "classes": 3}),
    "no-convolution": ("flatten,dense:16,relu,dense-b", {}),
}


def with_biases(net: Network, seed: int = 1) -> Network:
    """net (on mnist) with every bias set to random nonzero values (they start at 0), so that b shows."""
    rng = np.random.default_rng(seed)
    for name, value in as_stack(net).parameters().items():
        if name.endswith(".b"):
            value[...] = rng.normal(0, 0.3, value.shape)
    net.dataset = "mnist"
    return net


def network(spec: str, seed: int = 5, **options) -> Network:
    """from_spec's network with every bias set to random nonzero values."""
    return with_biases(from_spec(spec, seed=seed, **options), seed)


def layer_outputs(net: Network, images: np.ndarray) -> list[np.ndarray]:
    """Each layer's output for images (N, H, W), computed by the NumPy layers one by one."""
    stack = as_stack(net)
    X, outputs = stack.prepare(images), []
    for layer in stack.layers:
        X, _ = layer.forward(X)
        outputs.append(X)
    return outputs


def conv_blocks(stack: Stack) -> list[tuple[int, bool]]:
    """(filters, followed by a pooling) of each convolution: the rows and columns the page draws."""
    blocks = []
    for i, layer in enumerate(stack.layers):
        if isinstance(layer, Conv):
            after = stack.layers[i + 1 : i + 3]
            after = after[1:] if after and isinstance(after[0], ReLU) else after
            blocks.append((layer.filters, bool(after) and isinstance(after[0], Pool)))
    return blocks


# ---- the page's data, without a browser -----------------------------------------------------------


def test_from_spec_gives_the_expected_kinds() -> None:
    assert isinstance(network("seed"), ConvNet) and isinstance(network("lenet"), Stack)
    assert all(isinstance(network(spec, **options), Stack) for spec, options in list(NETWORKS.values())[2:])


@pytest.mark.parametrize("name", NETWORKS)
def test_page_holds_the_stack_exactly(name: str) -> None:
    spec, options = NETWORKS[name]
    net = network(spec, **options)
    stack = as_stack(net)
    data = embedded(build_page(net))
    assert data["config"] == json.loads(json.dumps(stack.config))
    assert data["shapes"] == [list(shape) for shape in stack.shapes]
    assert data["specs"] == [layer.spec() for layer in stack.layers]
    assert set(data["params"]) == set(stack.parameters())
    for key, value in stack.parameters().items():
        np.testing.assert_array_equal(np.asarray(data["params"][key], value.dtype).reshape(value.shape), value)
    biases = [key for key in data["params"] if key.endswith(".b")]
    assert all(np.abs(data["params"][key]).min() > 0 for key in biases)  # the biases are really exercised


def test_explore_writes_a_page_for_a_saved_stack(tmp_path: Path, capsys) -> None:
    model = network("lenet").save(tmp_path / "run" / "model.npz")
    assert isinstance(load_model(model), Stack)
    fake = make_fake_dataset(tmp_path / "data", n_test=12)
    status, out, err = run_main(["explore", model, "--data-dir", fake], capsys)
    assert status == 0 and err == "" and "Traceback" not in out
    page = (tmp_path / "run" / "explorer.html").read_text(encoding="utf-8")
    assert "12 layers: conv:6x5:same → relu → pool:max → conv:16x5:valid" in page
    assert len(embedded(page)["images"]["labels"]) == 12


# ---- the page in Chromium -------------------------------------------------------------------------


@pytest.mark.browser
@pytest.mark.parametrize("name", NETWORKS)
def test_page_computes_what_numpy_computes(browser, tmp_path: Path, name: str) -> None:
    spec, options = NETWORKS[name]
    net = network(spec, **options)
    images = np.random.default_rng(1).integers(0, 256, (6, *net.input_shape), dtype=np.uint8)
    images[:, :3] = 0  # some black rows, as in MNIST: zeros through the padding and the ReLUs
    path = tmp_path / "page.html"
    path.write_text(build_page(net, images=images, labels=np.arange(6) % net.classes), encoding="utf-8")
    page, errors = open_page(browser, path)
    np.testing.assert_allclose(page_probabilities(page, 6), net.predict_proba(images), atol=1e-5)

    # every layer's output, for the test image shown (the first), is the NumPy layer's
    got = page.evaluate("window.scratchcnn.outputs()")
    want = layer_outputs(net, images[:1])
    assert len(got) == len(want) == len(as_stack(net).layers)
    for i, (page_out, numpy_out) in enumerate(zip(got, want, strict=True)):
        np.testing.assert_allclose(page_out, numpy_out.ravel(), rtol=1e-4, atol=1e-5, err_msg=f"layer {i}")

    # one table per convolution, one row per filter: Y_k, and Z_k after a pooling
    blocks = conv_blocks(as_stack(net))
    assert page.locator("table.layers").count() == len(blocks)
    assert page.locator("canvas.map").count() == sum(K * (1 + pooled) for K, pooled in blocks)
    assert page.locator("#layers h3").count() == (len(blocks) if len(blocks) > 1 else 0)
    assert page.evaluate("window.scratchcnn.timeForward(20)") < 20
    assert errors == []


@pytest.fixture(scope="module")
def trained_lenet(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> tuple[Stack, Path]:
    from scratchcnn.data import load_dataset
    from scratchcnn.train import fit

    data = load_dataset("mnist", data_dir, download=False)
    net = network("lenet")
    fit(net, data.train_images[:600], data.train_labels[:600], learning_rate=0.002, epochs=1, batch_size=32,
        validation_size=0, engine="numpy")
    return net, net.save(tmp_path_factory.mktemp("lenet") / "run" / "model.npz")


@pytest.mark.browser
def test_trained_lenet_page_draws_every_convolution(browser, trained_lenet, data_dir: Path) -> None:
    from scratchcnn.data import load_dataset

    net, model = trained_lenet
    test = load_dataset("mnist", data_dir, download=False)
    page, errors = open_page(browser, write_explorer(model, data_dir=data_dir).path)
    np.testing.assert_allclose(page_probabilities(page, 10), net.predict_proba(test.test_images[:10]), atol=1e-5)
    page.locator("#picker figure").nth(4).click()
    np.testing.assert_allclose(page.evaluate("window.scratchcnn.probabilities()"),
                               net.predict_proba(test.test_images[4:5])[0], atol=1e-5)

    # the second convolution's maps: Y_k after its ReLU (layer 5), 10×10, each with its printed scale
    outputs = layer_outputs(net, test.test_images[4:5])
    Y2 = outputs[4][0]
    assert Y2.shape == (16, 10, 10)
    scales = [float(page.locator(f"#scale-Y{n}-2").inner_text()[1:]) for n in range(1, 17)]
    np.testing.assert_allclose(scales, np.abs(Y2).reshape(16, -1).max(1), rtol=1e-3, atol=1e-6)
    maps = page.locator("canvas.map")
    first = maps.nth(6 * 2)  # after the first convolution's 6 rows of Y_k and Z_k
    size = first.evaluate("el => el.clientWidth")
    i, j = 3, 6
    first.hover(position={"x": 1 + (j + 0.5) * size / 10, "y": 1 + (i + 0.5) * size / 10})
    heading = page.locator("#detail h2").inner_text()
    assert heading.startswith(f"convolution 2: Y1({i}, {j}) = ")
    assert abs(float(heading.split("= ")[1]) - Y2[0, i, j]) < 1e-3
    detail = page.locator("#detail").inner_text()
    assert "c = 6" in detail and "c = 7" not in detail  # one partial sum per input channel
    assert not page.locator("#window").is_visible()  # its window lies in Z of the first block, not in X
    first_pooled = outputs[2][0]
    assert np.isclose(float(page.locator("#scale-Z1").inner_text()[1:]), np.abs(first_pooled[0]).max(), rtol=1e-3)
    assert errors == []
