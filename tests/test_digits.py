"""The bundled 8×8 digits dataset (scikit-learn's): loading, and training on it from the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from scratchcnn.cli import main
from scratchcnn.data import load_dataset
from scratchcnn.data.datasets import DIGITS_TEST

pytest.importorskip("sklearn")


def test_digits_load_offline_as_uint8_images() -> None:
    data = load_dataset("digits", download=False)
    assert data.train_images.shape == (1797 - DIGITS_TEST, 8, 8) and data.test_images.shape == (DIGITS_TEST, 8, 8)
    assert data.train_images.dtype == np.uint8 and data.train_images.max() == 255 and data.train_images.min() == 0
    assert set(np.unique(data.train_labels)) == set(range(10))
    from sklearn.datasets import load_digits

    original = load_digits()
    np.testing.assert_array_equal(data.test_labels, original.target[-DIGITS_TEST:])
    np.testing.assert_array_equal(data.train_images[0], np.rint(original.images[0] * 255 / 16))


def test_train_on_digits_with_default_flags_beats_085(tmp_path, capsys) -> None:
    status = main(["train", "--dataset", "digits", "--out", str(tmp_path / "run"), "--json"])
    out, err = capsys.readouterr()
    assert status == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["options"]["learning_rate"] == 0.005  # the digits default, not MNIST's
    assert summary["test_accuracy"] > 0.85
    assert np.array(summary["confusion_matrix"]).sum() == DIGITS_TEST


def test_digits_cannot_be_downloaded(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["download", "--dataset", "digits"])
    assert exit_info.value.code == 2
