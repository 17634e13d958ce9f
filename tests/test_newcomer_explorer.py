"""The explorer and the 09-weights figure as a newcomer sees them: every map visible on its own colour
scale (printed), the centring checkbox left as the user set it, and the input drawn as MNIST stores it
(white ink on black) by the page and the figures alike. Browser tests reuse tests/test_explorer.py's
Chromium fixture and skip (or fail in CI) the same way without it.
"""

# ruff: noqa: F811 (test_explorer's fixtures, imported, are the parameters of the tests below)

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_explorer import browser, open_page, trained_run  # noqa: F401 (fixtures)

from scratchcnn.nn.model import ConvNet
from scratchcnn.viz.explorer import write_explorer
from scratchcnn.viz.figures import plot_record, plot_weights

# ---- the 09-weights figure ------------------------------------------------------------------------


def test_weights_figure_gives_each_filter_its_own_scale_and_says_it() -> None:
    rng = np.random.default_rng(0)
    W = rng.standard_normal((4, 3, 5, 5)) * np.array([0.01, 1.0, 30.0])[None, :, None, None]
    fig = plot_weights(W, [f"c{n}" for n in range(4)])
    panels = np.array(fig.axes[:4 * 3]).reshape(4, 3)  # the subplots, row by row; the colour bars come after
    for n in range(3):
        limit = np.abs(W[:, n]).max()
        for ax in panels[:, n]:
            norm = ax.images[0].norm
            assert (norm.vmin, norm.vmax) == pytest.approx((-limit, limit))
        assert f"±{limit:.3g}" in panels[0, n].get_title()
    bars = [ax for ax in fig.axes[4 * 3:] if ax.get_xlabel().startswith("W(class, ")]
    assert sorted(ax.get_xlabel() for ax in bars) == [f"W(class, {n}, i, j)" for n in (1, 2, 3)]
    # the weakest filter's strongest weight is full colour, not washed out to white
    weakest = panels[0, 0].images[0]
    assert weakest.to_rgba(np.abs(W[:, 0]).max())[:3] == pytest.approx(weakest.cmap(1.0)[:3])


# ---- the page -------------------------------------------------------------------------------------


def printed_scales(page, symbol: str, K: int) -> np.ndarray:
    """The "±max" printed under each map of a column (symbol f, Y or Z)."""
    texts = [page.locator(f"#scale-{symbol}{n}").inner_text() for n in range(1, K + 1)]
    assert all(t.startswith("±") for t in texts), texts
    return np.array([float(t[1:]) for t in texts])


def canvas_pixels(page, selector: str, n: int = 0) -> np.ndarray:
    """RGB of the n-th canvas matching selector: (height, width, 3)."""
    data = page.locator(selector).nth(n).evaluate(
        "el => [el.height, el.width, Array.from(el.getContext('2d').getImageData(0, 0, el.width, el.height).data)]")
    h, w, rgba = data
    return np.array(rgba, np.uint8).reshape(h, w, 4)[:, :, :3]


@pytest.fixture(scope="module")
def explorer(trained_run: Path, data_dir: Path) -> Path:
    return write_explorer(trained_run / "model.npz", data_dir=data_dir).path


@pytest.mark.browser
def test_each_map_has_its_own_printed_scale_unless_shared(browser, explorer: Path, trained_run: Path) -> None:
    net = ConvNet.load(trained_run / "model.npz")
    page, errors = open_page(browser, explorer)
    page.locator("#picker figure").nth(3).click()
    assert page.locator("#shared-scale").count() == 1
    assert not page.locator("#shared-scale").is_checked()  # per map is the default
    X = np.array(page.evaluate("window.scratchcnn.input()")).reshape(net.input_shape)
    Y, Z = net.feature_maps(X)
    K = net.filters
    own = {"f": np.abs(net.f).reshape(K, -1).max(1), "Y": np.abs(Y).reshape(K, -1).max(1),
           "Z": np.abs(Z).reshape(K, -1).max(1)}
    assert np.ptp(own["Y"]) > 0.1 * own["Y"].max()  # the maps differ in strength: the test means something
    for symbol, expected in own.items():
        np.testing.assert_allclose(printed_scales(page, symbol, K), expected, rtol=1e-3)
    weakest = int(np.argmin(own["Y"]))  # drawn at full strength somewhere: pure red or pure blue
    pixels = canvas_pixels(page, "canvas.map", 2 * weakest).reshape(-1, 3).astype(int)
    assert ((pixels == [255, 0, 0]).all(1) | (pixels == [0, 0, 255]).all(1)).any()

    page.locator("#shared-scale").check()
    for symbol, expected in own.items():
        np.testing.assert_allclose(printed_scales(page, symbol, K), np.full(K, expected.max()), rtol=1e-3)
    pixels = canvas_pixels(page, "canvas.map", 2 * weakest).reshape(-1, 3).astype(int)
    assert not ((pixels == [255, 0, 0]).all(1) | (pixels == [0, 0, 255]).all(1)).any()
    assert errors == []


@pytest.mark.browser
@pytest.mark.parametrize("centred", [False, True])
def test_centring_checkbox_keeps_the_users_setting(browser, explorer: Path, trained_run: Path, data_dir: Path,
                                                   centred: bool) -> None:
    from scratchcnn.data import load_dataset

    net = ConvNet.load(trained_run / "model.npz")
    test = load_dataset("mnist", data_dir, download=False)
    page, errors = open_page(browser, explorer)
    box = page.locator("#centre")
    box.set_checked(centred)
    for step in ("#clear", "#picker figure >> nth=5", "#clear", "#picker figure >> nth=2"):
        page.locator(step).click()
        assert box.is_checked() == centred, f"the checkbox flipped after {step}"
    # a picked test image is the input as it is, whatever the checkbox says
    np.testing.assert_allclose(page.evaluate("window.scratchcnn.probabilities()"),
                               net.predict_proba(test.test_images[2:3])[0], atol=1e-5)
    # a small stroke near a corner: centred (moved to the middle) only when the box is ticked
    page.locator("#clear").click()
    drawing = page.locator("#draw").bounding_box()
    page.mouse.move(drawing["x"] + 0.1 * drawing["width"], drawing["y"] + 0.1 * drawing["height"])
    page.mouse.down()
    page.mouse.move(drawing["x"] + 0.2 * drawing["width"], drawing["y"] + 0.25 * drawing["height"])
    page.mouse.up()
    assert box.is_checked() == centred
    X = np.array(page.evaluate("window.scratchcnn.input()")).reshape(net.input_shape)
    rows = (X.sum(1) * np.arange(X.shape[0])).sum() / X.sum()
    assert (abs(rows - X.shape[0] / 2) < 3) == centred
    assert errors == []


@pytest.mark.browser
def test_input_ink_is_white_on_black_like_the_record_figure(browser, explorer: Path, data_dir: Path) -> None:
    from scratchcnn.data import load_dataset

    image = load_dataset("mnist", data_dir, download=False).test_images[0]
    page, errors = open_page(browser, explorer)
    page.locator("#picker figure").nth(0).click()
    shown = plot_record(image, "7").axes[0].images[0]  # figure 01-record, in the report too
    expected = np.rint(255 * shown.to_rgba(image)[:, :, :3]).astype(int)
    assert expected[0, 0].tolist() == [0, 0, 0]  # MNIST's own: 0 is black paper
    for selector in ("#input", "#picker canvas", "#draw"):
        got = canvas_pixels(page, selector).astype(int)
        assert np.abs(got - expected).max() <= 1, selector
    assert errors == []
