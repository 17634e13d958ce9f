"""``scratchcnn predict``: classify the user's own pictures of digits with a trained model."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scratchcnn.cli.options import EXIT_BAD_INPUT
from scratchcnn.errors import ScratchCNNError

if TYPE_CHECKING:  # imported in the functions that use them: `--help` stays quick (see cli/__init__)
    import numpy as np

    from scratchcnn.nn.network import Network

TOP = 3  # probabilities printed per file
UNLIKE = "(unlike the training images)"  # printed beside the guess for a picture that looks like no MNIST digit

DESCRIPTION = """\
Predict the digit in each picture: PNG, JPEG, BMP (anything Pillow reads), any size, drawn or
photographed, dark ink on light paper or light on dark, any colours. Each picture is first made
to look like MNIST: grayscale, inverted when the paper is light, cropped to the ink, scaled so
its longer side is 20 px (20/28 of the model's input size), and pasted into 28x28 with the ink's
centre of mass at the centre. One digit per picture, on plain, evenly lit paper, works best.

The network always answers with one of its classes, however unlike a digit the picture is (a
letter, a shirt, a cat): with a model trained on MNIST, a prepared picture whose ink looks like
that of none of MNIST's training digits (farther from them than 99.9% of those digits are) is
marked "(unlike the training images)" beside the guess; take that guess with a grain of salt.

Prints, per file, the predicted class and the three most probable classes. A file that cannot be
used (not an image, empty, no ink) gets one line on stderr; the others are still predicted, and
the exit status is 2 if any file failed, else 0.

--json: the last line of stdout is one JSON list with an entry per file, in the order given:
{"file", "prediction" (class index), "label" (class name), "probabilities" (one per class)};
a file that failed is listed as {"file", "error"} instead. With --show-preprocessed each entry
also names its "preprocessed" picture. A file marked unlike the training images also has
"unlike_training": true and "oddness" (its distance from them; the mark is above the threshold).

examples:
  scratchcnn predict runs/demo/model.npz my-seven.png photo.jpg
  scratchcnn predict runs/demo/model.npz digits/*.png --json
  scratchcnn predict runs/demo/model.npz photo.jpg --show-preprocessed seen/   # writes seen/photo.png

Needs Pillow: pip install 'scratchcnn[image]'.
"""


def add_commands(commands: Any) -> None:
    parser = commands.add_parser(
        "predict", help="predict the digit in your own pictures (PNG, JPEG, BMP, ...)",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", type=Path, metavar="MODEL", help="a model.npz written by scratchcnn train")
    parser.add_argument("images", type=Path, nargs="+", metavar="IMAGE", help="picture files, one digit each")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON list, an entry per file, as the last line of stdout")
    parser.add_argument("--show-preprocessed", type=Path, metavar="DIR",
                        help="write the image the network actually saw as DIR/<stem>.png (grayscale, "
                        "the model's input size); a repeated stem gets -2, -3, ...")
    parser.set_defaults(run=run_predict)


def run_predict(args: argparse.Namespace) -> int:
    import numpy as np

    from scratchcnn.data.images import ImageError, read_digit, require_pillow, save_png
    from scratchcnn.nn.network import load_model

    require_pillow()  # before anything else: without Pillow, say only how to get it
    net = load_model(args.model)  # either kind of network: both give predict_proba (N, H, W) → (N, C)
    if args.show_preprocessed is not None:
        args.show_preprocessed.mkdir(parents=True, exist_ok=True)  # fail now, not after the first file
    results: list[dict[str, Any]] = []
    seen: list[np.ndarray] = []
    stems: set[str] = set()
    for path in args.images:
        try:
            image = read_digit(path, net.input_shape)
        except ScratchCNNError as error:  # this file only: say why in one line and go on with the others
            reason = error.reason if isinstance(error, ImageError) else str(error)
            print(f"scratchcnn: error: {path}: {reason}", file=sys.stderr)
            results.append({"file": str(path), "error": reason})
            continue
        result: dict[str, Any] = {"file": str(path)}
        if args.show_preprocessed is not None:
            result["preprocessed"] = str(save_png(image, _unique(args.show_preprocessed, path.stem, stems)))
        results.append(result)
        seen.append(image)
    names: list[str] = []
    if seen:
        # One batch for all the good files: predict_proba takes (N, H, W) uint8 and returns (N, C).
        probabilities = net.predict_proba(np.stack(seen))
        names = _class_names(net, probabilities.shape[1])
        good = (result for result in results if "error" not in result)
        for result, P in zip(good, probabilities, strict=True):
            k = int(P.argmax())
            result.update(prediction=k, label=names[k], probabilities=[float(p) for p in P])
        _mark_unlike(net, results, seen)
    if args.json:
        print(json.dumps([_json_entry(result) for result in results]))
    else:
        for result in results:
            if "error" not in result:
                print(_describe(result, names))
    return EXIT_BAD_INPUT if any("error" in result for result in results) else 0


def _class_names(net: Network, classes: int) -> list[str]:
    """The dataset's class names when the model says which dataset it was trained on; else "0", "1", ..."""
    from scratchcnn.data.datasets import CLASS_NAMES

    names = CLASS_NAMES.get(net.dataset or "")
    if names is None or len(names) != classes:
        return [str(k) for k in range(classes)]
    return list(names)


def _mark_unlike(net: Network, results: list[dict[str, Any]], seen: list[np.ndarray]) -> None:
    """Mark the good results whose prepared image (28, 28) is unlike MNIST's training digits (see oddness).

    Only for a model trained on MNIST at its size: the reference describes MNIST's digits, nothing else.
    """
    import numpy as np

    from scratchcnn.data.images import MNIST_SHAPE, oddness, typical_mnist

    if net.dataset != "mnist" or tuple(net.input_shape) != MNIST_SHAPE:
        return
    threshold = typical_mnist()["threshold"]
    good = (result for result in results if "error" not in result)
    for result, distance in zip(good, np.atleast_1d(oddness(np.stack(seen))), strict=True):
        result.update(unlike_training=bool(distance > threshold), oddness=round(float(distance), 2))


def _describe(result: dict[str, Any], names: list[str]) -> str:
    """One line: FILE: LABEL   (LABEL 97.1%, LABEL 1.6%, LABEL 0.4%)   (saw DIR/STEM.png)."""
    P = result["probabilities"]
    top = sorted(range(len(P)), key=lambda k: -P[k])[:TOP]  # the most probable first (stable on ties)
    ranked = ", ".join(f"{names[k]} {100 * P[k]:.1f}%" for k in top)
    unlike = f" {UNLIKE}" if result.get("unlike_training") else ""
    line = f"{result['file']}: {result['label']}{unlike}   ({ranked})"
    if "preprocessed" in result:
        line += f"   (saw {result['preprocessed']})"
    return line


def _json_entry(result: dict[str, Any]) -> dict[str, Any]:
    order = ("file", "prediction", "label", "probabilities", "unlike_training", "oddness", "preprocessed", "error")
    return {key: result[key] for key in order if key in result}


def _unique(directory: Path, stem: str, taken: set[str]) -> Path:
    """DIR/<stem>.png, or DIR/<stem>-2.png, -3, ... when an earlier file of this call had the same stem."""
    name, n = stem, 1
    while name in taken:
        n += 1
        name = f"{stem}-{n}"
    taken.add(name)
    return directory / f"{name}.png"
