"""The explorer page's Evidence panel (evidence.js) and the user's own picture (own_picture.js), in Chromium.

Evidence: for the current input, class j's row holds the terms W_{j,i} x_i of the last dense layer's score
A_j = Σ_i W_{j,i} x_i + b_j; they must add up to the page's A_j, equal NumPy's terms computed from the
network's parameters and feature maps, highlight the class of largest P, and follow a new drawing or new
parameters. Own picture: a PNG/JPEG's bytes go through the browser's decoder and picture.js into the input,
which must be what picture.js makes of Pillow's pixels of the same file, and the class must be the one
``scratchcnn predict`` gives (read_digit, then predict). Browser tests reuse tests/test_explorer.py's
Chromium fixture and fail the same way without it.
"""

# ruff: noqa: F811 (test_explorer's browser fixture, imported, is a parameter of the tests below)

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest
from test_explorer import browser, open_page  # noqa: F401 (a fixture)
from test_stack_explorer import layer_outputs, network, with_biases

from scratchcnn.data import load_dataset
from scratchcnn.data.images import read_digit
from scratchcnn.nn.model import ConvNet
from scratchcnn.nn.network import Network, as_stack
from scratchcnn.nn.spec import build
from scratchcnn.viz.explorer import build_page

pytestmark = pytest.mark.browser
IMAGES = 8  # test images embedded in each page


@pytest.fixture(scope="module")
def mnist(data_dir: Path):
    return load_dataset("mnist", data_dir, download=False)


def open_net(browser, net: Network, mnist, path: Path):
    path.write_text(build_page(net, images=mnist.test_images[:IMAGES], labels=mnist.test_labels[:IMAGES]),
                    encoding="utf-8")
    return open_page(browser, path)


def show_evidence(page) -> None:
    """Scroll the Evidence panel into view and let two frames pass: off screen, the panel is not redrawn."""
    page.locator("#evidence-panel").scroll_into_view_if_needed()
    page.evaluate("new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")


def last_dense(net: Network) -> int:
    return max(i for i, spec in enumerate(as_stack(net).config["layers"]) if spec["type"] == "dense")


def numpy_terms(net: Network, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(W_{j,i} x_i as (C, n), b (C,), A (C,)) of the last dense layer, from NumPy's layers."""
    d, params = last_dense(net), as_stack(net).parameters()
    outputs = layer_outputs(net, image[None])
    W = params[f"{d}.W"].astype(np.float64)
    b = params[f"{d}.b"].astype(np.float64) if f"{d}.b" in params else np.zeros(len(W))
    return W * outputs[d - 1][0].astype(np.float64), b, outputs[d][0].astype(np.float64)


# ---- Evidence --------------------------------------------------------------------------------------

NETS = {  # name: (network, its maps [K, R, Q], whether its last layer has a bias b, tolerance against NumPy)
    "seed-float64": (lambda: build("seed", seed=0, dtype="float64"), [3, 14, 14], False, 1e-9),
    "seed-float32": (lambda: build("seed", seed=0), [3, 14, 14], False, 1e-5),
    "wide-float64-bias": (lambda: with_biases(network("conv:32x5,relu,pool:max,flatten,dense", seed=2,
                                                      dtype="float64")), [32, 14, 14], True, 1e-9),
    "convnet-max-relu-bias": (lambda: with_biases(ConvNet(filters=4, kernel_size=5, pool="max", activation="relu",
                                                          bias=True, dtype="float64", seed=3)), [4, 14, 14], True,
                              1e-9),
}


@pytest.mark.parametrize("name", NETS)
def test_evidence_rows_add_up_to_the_scores_and_equal_numpy(browser, mnist, tmp_path: Path, name: str) -> None:
    make, shape, has_bias, tolerance = NETS[name]
    net = make()
    net.dataset = "mnist"
    page, errors = open_net(browser, net, mnist, tmp_path / "page.html")
    d = last_dense(net)
    for n in (0, 5):
        page.evaluate("n => window.scratchcnn.selectImage(n)", n)
        ev = page.evaluate("window.scratchcnn.evidence()")
        assert ev["form"] == "maps" and ev["shape"] == shape and ev["layer"] == d
        terms = np.array([row["contributions"] for row in ev["classes"]])
        bias = np.array([row["bias"] for row in ev["classes"]])
        total = np.array([row["total"] for row in ev["classes"]])
        A = np.array(page.evaluate("d => Array.from(window.scratchcnn.outs[d])", d))
        # each row adds up, with b_j, to the layer's output: A_j = Σ_{k,p,q} W_{j,k}(p, q) Z_k(p, q) + b_j
        np.testing.assert_allclose(terms.sum(axis=1) + bias, A, rtol=0, atol=1e-9)
        np.testing.assert_array_equal(total, A)
        assert np.abs(bias).min() > 0 if has_bias else not bias.any()  # set at random: the sums include them
        # and the terms are NumPy's, from the network's parameters and its own feature maps
        want, want_b, want_A = numpy_terms(net, mnist.test_images[n])
        scale = np.abs(want).max()
        np.testing.assert_allclose(terms, want, rtol=0, atol=tolerance * scale)
        np.testing.assert_allclose(bias, want_b, rtol=0, atol=tolerance)
        np.testing.assert_allclose(A, want_A, rtol=0, atol=tolerance * max(1.0, np.abs(want_A).max()))
        assert ev["scale"] == pytest.approx(np.abs(terms).max(), rel=1e-12)
        # the highlighted row is the class of largest P
        P = np.array(page.evaluate("window.scratchcnn.probabilities()"))
        show_evidence(page)
        rows = page.locator("table.evidence tr").all()[1:]
        top = [i for i, row in enumerate(rows) if "top" in (row.get_attribute("class") or "")]
        assert ev["predicted"] == int(P.argmax()) and top == [int(P.argmax())]
    K, C = shape[0], net.classes
    assert page.locator("#evidence canvas").count() == K * C
    assert page.locator("#evidence canvas").first.evaluate("el => [el.width, el.height]") == [shape[2], shape[1]]
    assert page.locator("#evidence-scale").inner_text().startswith("colour scale ±")
    assert errors == []


def test_lenet_shows_the_hidden_units_it_reads(browser, mnist, tmp_path: Path) -> None:
    net = with_biases(network("lenet", dtype="float64"))
    page, errors = open_net(browser, net, mnist, tmp_path / "page.html")
    page.evaluate("window.scratchcnn.selectImage(2)")
    ev = page.evaluate("window.scratchcnn.evidence()")
    assert ev["form"] == "hidden" and ev["shape"] == [84]
    terms = np.array([row["contributions"] for row in ev["classes"]])
    bias = np.array([row["bias"] for row in ev["classes"]])
    want, want_b, want_A = numpy_terms(net, mnist.test_images[2])
    assert terms.shape == (10, 84)
    np.testing.assert_allclose(terms, want, rtol=0, atol=1e-9 * np.abs(want).max())
    np.testing.assert_allclose(terms.sum(axis=1) + bias, [row["total"] for row in ev["classes"]], rtol=0, atol=1e-9)
    np.testing.assert_allclose(terms.sum(axis=1) + want_b, want_A, rtol=0, atol=1e-9)
    hint = page.locator("#evidence-hint").inner_text()
    assert "reads 84 hidden units, not maps" in hint
    strips = page.locator("#evidence canvas")
    assert strips.count() == 10 and strips.first.evaluate("el => [el.width, el.height]") == [84, 1]
    assert errors == []


def test_evidence_follows_drawing_and_parameters(browser, mnist, tmp_path: Path) -> None:
    net = build("seed", seed=0)
    net.dataset = "mnist"
    page, errors = open_net(browser, net, mnist, tmp_path / "page.html")
    page.locator("#clear").click()
    blank = page.evaluate("window.scratchcnn.evidence()")
    box = page.locator("#draw").bounding_box()
    page.mouse.move(box["x"] + 0.5 * box["width"], box["y"] + 0.2 * box["height"])
    page.mouse.down()
    for t in np.linspace(0, 1, 15):
        page.mouse.move(box["x"] + 0.5 * box["width"], box["y"] + (0.2 + 0.6 * t) * box["height"])
    page.mouse.up()
    drawn = page.evaluate("window.scratchcnn.evidence()")
    before = np.array([row["contributions"] for row in blank["classes"]])
    after = np.array([row["contributions"] for row in drawn["classes"]])
    assert np.abs(after - before).max() > 1e-3
    X = np.array(page.evaluate("window.scratchcnn.input()")).reshape(net.input_shape)
    np.testing.assert_allclose(after, numpy_terms(net, X)[0], rtol=0, atol=1e-5 * np.abs(after).max())

    # new parameters (as the Train panel sends them): W doubled doubles every term, and the table redraws
    d = last_dense(net)
    W = as_stack(net).parameters()[f"{d}.W"]
    show_evidence(page)
    caption = page.locator("#evidence-scale").inner_text()
    page.evaluate("([key, w]) => window.scratchcnn.setParameters({[key]: w})", [f"{d}.W", (2 * W).ravel().tolist()])
    doubled = np.array([row["contributions"] for row in page.evaluate("window.scratchcnn.evidence()")["classes"]])
    np.testing.assert_allclose(doubled, 2 * after, rtol=1e-12, atol=0)
    scale = page.evaluate("window.scratchcnn.evidence().scale")
    assert caption != (now := page.locator("#evidence-scale").inner_text())
    assert now.startswith("colour scale " + page.evaluate("s => window.scratchcnn.draw.scaleText(s)", scale))

    # off screen the table waits; back on screen it shows the input of the moment
    page.evaluate("window.scrollTo(0, 0)")
    page.evaluate("new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")
    assert page.locator("#evidence-panel").bounding_box()["y"] > 1000  # below the 1000-pixel viewport
    page.evaluate("([key, w]) => window.scratchcnn.setParameters({[key]: w})", [f"{d}.W", (-W).ravel().tolist()])
    assert page.locator("#evidence-scale").inner_text() == now
    show_evidence(page)
    scale = page.evaluate("window.scratchcnn.evidence().scale")
    assert page.locator("#evidence-scale").inner_text().startswith(
        "colour scale " + page.evaluate("s => window.scratchcnn.draw.scaleText(s)", scale))

    ms = page.evaluate("window.scratchcnn.timeEvidence(300)")  # a figure, not a test: timings vary with load
    print(f"Evidence redraw, seed network: {ms * 1000:.0f} µs")
    assert errors == []


# ---- the user's own picture ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(mnist) -> Network:
    """The seed network after 2 epochs on 2 000 records: good enough to read clear digits."""
    from scratchcnn.train import fit

    net = build("seed", seed=0)
    net.dataset = "mnist"
    fit(net, mnist.train_images[:2000], mnist.train_labels[:2000], epochs=2, batch_size=1, learning_rate=0.02,
        validation_size=0, seed=0)
    return net


def picture_file(digit: np.ndarray, path: Path, size: int = 300) -> Path:
    """MNIST's white-on-black digit as a photo-like picture: dark ink on white paper, size×size pixels."""
    from PIL import Image

    Image.fromarray(255 - digit).resize((size, size), Image.Resampling.BILINEAR).save(path)
    return path


# Bytes reach the page as base64 text (a JSON list of numbers is slow for a picture's RGBA).
FROM_BASE64 = "text => Uint8Array.from(atob(text), (c) => c.charCodeAt(0))"


def pillow_rgba(path: Path) -> tuple[str, int, int]:
    """The picture's RGBA bytes as Pillow reads them (base64), its width and height."""
    from PIL import Image

    with Image.open(path) as image:
        rgba = image.convert("RGBA")
        return base64.b64encode(rgba.tobytes()).decode("ascii"), rgba.width, rgba.height


def use_bytes(page, path: Path) -> dict:
    """The page's usePictureBytes on the file's bytes: prepare's result, with the note and the size."""
    return page.evaluate(f"([text, name]) => window.scratchcnn.usePictureBytes(({FROM_BASE64})(text), name)",
                         [base64.b64encode(path.read_bytes()).decode("ascii"), path.name])


def test_own_picture_is_prepared_as_predict_prepares_it(browser, mnist, trained: Network, tmp_path: Path) -> None:
    page, errors = open_net(browser, trained, mnist, tmp_path / "page.html")
    # clear digits (the network's top probability ≥ 0.9 on Python's preparation): the class must not depend on
    # which side prepared them
    checked = 0
    for n in range(100):
        path = picture_file(mnist.test_images[n], tmp_path / f"digit-{n}.png")
        prepared = read_digit(path, trained.input_shape)
        P = trained.predict_proba(prepared[None])[0]
        if P.max() < 0.9:
            continue
        result = use_bytes(page, path)
        assert result["ok"] and result["inverted"] and result["width"] == result["height"] == 300
        assert result["note"] == (f"your picture {path.name}, 300×300: inverted (dark ink on light paper), cropped, "
                                  "scaled to 20 px, centred by mass (after: Input X)")
        X = np.array(page.evaluate("window.scratchcnn.input()"))
        rgba, width, height = pillow_rgba(path)
        expected = page.evaluate(f"([b, w, h]) => Array.from(window.scratchcnn.preparePicture(({FROM_BASE64})(b), "
                                 "w, h).pixels)", [rgba, width, height])
        np.testing.assert_array_equal(X, expected)  # the browser decoded the PNG to Pillow's pixels
        shown = np.array(page.evaluate("window.scratchcnn.probabilities()"))
        assert int(shown.argmax()) == int(trained.predict(prepared[None])[0]) == int(P.argmax())
        gap = np.abs(X - prepared.ravel() / 255).max()  # picture.js makes predict's bytes, not a lookalike
        assert gap <= 1 / 255 + 1e-12, f"digit {n}: the page's input is {gap * 255:.1f}/255 off read_digit's"
        print(f"digit {n}: class {int(P.argmax())}, |page input − read_digit/255| max {gap:.2g}")
        checked += 1
        if checked == 3:
            break
    assert checked == 3
    note = page.locator("#picture-note")
    assert note.is_visible() and note.locator("canvas.thumb").count() == 1
    assert page.locator("#input-note").inner_text().startswith("your picture")

    # a JPEG goes through the browser's JPEG decoder: the same class as predict
    from PIL import Image

    jpeg = tmp_path / "photo.jpg"
    Image.open(path).save(jpeg, quality=90)
    assert use_bytes(page, jpeg)["ok"]
    prepared = read_digit(jpeg, trained.input_shape)
    want = int(trained.predict(prepared[None])[0])
    assert int(np.argmax(page.evaluate("window.scratchcnn.probabilities()"))) == want
    gap = np.abs(np.array(page.evaluate("window.scratchcnn.input()")) - prepared.ravel() / 255).max()
    print(f"JPEG: class {want}, |page input − read_digit/255| max {gap:.2g} (two JPEG decoders)")
    assert errors == []


def test_unusable_pictures_get_one_line_and_change_nothing(browser, mnist, trained: Network, tmp_path: Path) -> None:
    from PIL import Image

    page, errors = open_net(browser, trained, mnist, tmp_path / "page.html")
    page.evaluate("window.scratchcnn.selectImage(1)")
    before = page.evaluate("[window.scratchcnn.input(), window.scratchcnn.probabilities()]")
    blank = tmp_path / "blank.png"
    Image.new("L", (300, 300), 255).save(blank)
    junk = tmp_path / "notes.png"
    junk.write_bytes(b"this is not a picture\n")
    for path, says in ((blank, "blank.png, 300×300, cannot be used: "), (junk, "could not read notes.png")):
        result = use_bytes(page, path)
        assert not result["ok"] and says in result["note"]
        note = page.locator("#picture-note")
        assert note.is_visible() and note.inner_text() == result["note"] and "\n" not in result["note"]
        assert note.locator("canvas").count() == 0
        assert page.evaluate("[window.scratchcnn.input(), window.scratchcnn.probabilities()]") == before
    assert errors == []


def test_picking_and_dropping_a_file(browser, mnist, trained: Network, tmp_path: Path) -> None:
    page, errors = open_net(browser, trained, mnist, tmp_path / "page.html")
    picked = picture_file(mnist.test_images[0], tmp_path / "picked.png")
    page.set_input_files("#picture-file", str(picked))
    page.wait_for_function("document.getElementById('picture-note').textContent.includes('picked.png, 300×300')")
    picked_input = page.evaluate("window.scratchcnn.input()")
    page.evaluate("window.scratchcnn.selectImage(3)")
    assert use_bytes(page, picked)["ok"]  # the same file through the bytes path: the same input
    assert page.evaluate("window.scratchcnn.input()") == picked_input

    dropped = picture_file(mnist.test_images[1], tmp_path / "dropped.png", size=200)
    page.evaluate(f"""text => {{
        const file = new File([({FROM_BASE64})(text)], "dropped.png", {{type: "image/png"}});
        const data = new DataTransfer();
        data.items.add(file);
        const target = document.getElementById("draw");
        const over = new DragEvent("dragover", {{dataTransfer: data, bubbles: true, cancelable: true}});
        target.dispatchEvent(over);
        window.dropAccepted = over.defaultPrevented;
        target.dispatchEvent(new DragEvent("drop", {{dataTransfer: data, bubbles: true, cancelable: true}}));
    }}""", base64.b64encode(dropped.read_bytes()).decode("ascii"))
    page.wait_for_function("document.getElementById('picture-note').textContent.includes('dropped.png, 200×200')")
    assert page.evaluate("window.dropAccepted")
    assert page.evaluate("window.scratchcnn.input()") != picked_input

    # drawing on it makes the note stale: it goes
    box = page.locator("#draw").bounding_box()
    page.mouse.click(box["x"] + 0.1 * box["width"], box["y"] + 0.1 * box["height"])
    # the page redraws (and checks the note) on its next animation frame: wait for it, up to 5 s
    page.wait_for_function("document.getElementById('picture-note').hidden", timeout=5000)
    assert page.locator("#picture-note").is_hidden()
    assert errors == []
