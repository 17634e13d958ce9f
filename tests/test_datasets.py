"""scratchcnn.data.datasets: where datasets are searched for, load_dataset and its checks and messages,
and the real MNIST and Fashion-MNIST files when ../shared/data (or $SCRATCHCNN_DATA) has them."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from conftest import skip_or_fail
from helpers import raises_naming, same_array

from scratchcnn.data import FILES, Dataset, find_files, load_dataset, read_idx, search_dirs, write_idx
from scratchcnn.data import datasets as data
from scratchcnn.errors import DataError

# ---- helpers --------------------------------------------------------------------------------------


def fake_arrays(n_train: int = 20, n_test: int = 10, shape: tuple[int, int] = (28, 28), seed: int = 0):
    """The four arrays of a small random dataset, by role."""
    rng = np.random.default_rng(seed)
    return {
        "train_images": rng.integers(0, 256, (n_train, *shape), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, n_train, dtype=np.uint8),
        "test_images": rng.integers(0, 256, (n_test, *shape), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def write_dataset(base: Path, name: str = "mnist", gz: bool | dict[str, bool] = True, skip: tuple[str, ...] = (),
                  seed: int = 0, **overrides: np.ndarray) -> dict[str, np.ndarray]:
    """Write base/name/<the four files> (minus the roles in skip) with write_idx; returns what was written.

    gz may be one flag for all files or a flag per role; overrides replace arrays by role.
    """
    arrays = {**fake_arrays(seed=seed), **overrides}
    for role, stem in FILES.items():
        if role in skip:
            continue
        compressed = gz[role] if isinstance(gz, dict) else gz
        write_idx(base / name / (stem + (".gz" if compressed else "")), arrays[role])
    return arrays


def assert_dataset_is(dataset: Dataset, arrays: dict[str, np.ndarray]) -> None:
    for role in FILES:
        assert same_array(getattr(dataset, role), arrays[role]), role


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """Point the cache and system directories at empty tmp paths and clear $SCRATCHCNN_DATA and $HOME,
    so that nothing on the real machine is found. Returns the tmp root. (Here it replaces conftest's
    isolated, which leaves the cache under $HOME and changes the working directory.)"""
    monkeypatch.delenv("SCRATCHCNN_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(data, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.setattr(data, "SYSTEM_DIR", tmp_path / "system")
    return tmp_path


# ---- finding datasets --------------------------------------------------------------------------


def test_search_dirs_order(isolated, monkeypatch):
    assert search_dirs() == [isolated / "cache", isolated / "system"]
    monkeypatch.setenv("SCRATCHCNN_DATA", str(isolated / "env"))
    assert search_dirs() == [isolated / "env", isolated / "cache", isolated / "system"]
    assert search_dirs(isolated / "arg") == [isolated / "arg"]  # an explicit data_dir is the only place
    monkeypatch.setenv("SCRATCHCNN_DATA", "")
    assert search_dirs() == [isolated / "cache", isolated / "system"]


def test_find_files_prefers_gz_and_falls_back_to_plain(tmp_path):
    directory = tmp_path / "mnist"
    write_dataset(tmp_path, gz={"train_images": True, "train_labels": False, "test_images": True, "test_labels": False})
    write_idx(directory / "train-images-idx3-ubyte", np.zeros((1, 1, 1), np.uint8))  # plain beside the .gz
    (directory / "t10k-labels-idx1-ubyte.gz").mkdir()  # a directory is not a file
    assert find_files(directory) == {
        "train_images": directory / "train-images-idx3-ubyte.gz",
        "train_labels": directory / "train-labels-idx1-ubyte",
        "test_images": directory / "t10k-images-idx3-ubyte.gz",
        "test_labels": directory / "t10k-labels-idx1-ubyte",
    }
    assert find_files(tmp_path / "absent") == {}


# ---- load_dataset ------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "plain"])
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_load_dataset_from_data_dir(isolated, gz, name):
    arrays = write_dataset(isolated / "d", name=name, gz=gz)
    dataset = load_dataset(name, data_dir=isolated / "d")
    assert dataset.name == name
    assert dataset.directory == isolated / "d" / name
    assert dataset.train_images.shape == (20, 28, 28)
    assert dataset.test_images.shape == (10, 28, 28)
    assert dataset.train_labels.shape == (20,)
    assert_dataset_is(dataset, arrays)
    assert load_dataset(name, data_dir=str(isolated / "d")).directory == isolated / "d" / name


def test_load_dataset_mixed_gz_and_plain(isolated):
    gz = {"train_images": True, "train_labels": False, "test_images": False, "test_labels": True}
    arrays = write_dataset(isolated, gz=gz)
    assert_dataset_is(load_dataset("mnist", isolated), arrays)


def test_load_dataset_prefers_gz_over_plain(isolated):
    gz_arrays = write_dataset(isolated, gz=True, seed=1)
    write_dataset(isolated, gz=False, seed=2)
    assert_dataset_is(load_dataset("mnist", isolated), gz_arrays)


def test_load_dataset_from_env_var(isolated, monkeypatch):
    arrays = write_dataset(isolated / "env")
    monkeypatch.setenv("SCRATCHCNN_DATA", str(isolated / "env"))
    dataset = load_dataset("mnist")
    assert dataset.directory == isolated / "env" / "mnist"
    assert_dataset_is(dataset, arrays)


def test_data_dir_wins_over_env_var(isolated, monkeypatch):
    from_arg = write_dataset(isolated / "arg", seed=1)
    write_dataset(isolated / "env", seed=2)
    monkeypatch.setenv("SCRATCHCNN_DATA", str(isolated / "env"))
    dataset = load_dataset("mnist", data_dir=isolated / "arg")
    assert dataset.directory == isolated / "arg" / "mnist"
    assert_dataset_is(dataset, from_arg)


def test_env_var_wins_over_cache_and_cache_over_system(isolated, monkeypatch):
    write_dataset(isolated / "system", seed=3)
    assert load_dataset("mnist").directory == isolated / "system" / "mnist"
    write_dataset(isolated / "cache", seed=2)
    assert load_dataset("mnist").directory == isolated / "cache" / "mnist"
    write_dataset(isolated / "env", seed=1)
    monkeypatch.setenv("SCRATCHCNN_DATA", str(isolated / "env"))
    assert load_dataset("mnist").directory == isolated / "env" / "mnist"


def test_cache_dir_is_under_home(isolated, monkeypatch):
    monkeypatch.setattr(data, "CACHE_DIR", Path("~/.cache/scratchcnn"))
    arrays = write_dataset(isolated / "home" / ".cache" / "scratchcnn")
    dataset = load_dataset("mnist")
    assert dataset.directory == isolated / "home" / ".cache" / "scratchcnn" / "mnist"
    assert_dataset_is(dataset, arrays)


def test_incomplete_directory_is_skipped_for_a_later_complete_one(isolated, monkeypatch):
    write_dataset(isolated / "env", skip=("test_labels",))
    arrays = write_dataset(isolated / "cache")
    monkeypatch.setenv("SCRATCHCNN_DATA", str(isolated / "env"))
    dataset = load_dataset("mnist")
    assert dataset.directory == isolated / "cache" / "mnist"
    assert_dataset_is(dataset, arrays)


def test_other_dataset_is_not_taken(isolated):
    write_dataset(isolated, name="fashion-mnist")
    with pytest.raises(DataError, match="dataset mnist not found"):
        load_dataset("mnist", isolated)


@pytest.mark.parametrize("name", ["MNIST", "emnist", "", "mnist/", "../mnist"])
def test_unknown_dataset_name(isolated, name):
    write_dataset(isolated)
    with pytest.raises(DataError, match=r"unknown dataset(?=.*mnist)(?=.*fashion-mnist)"):
        load_dataset(name, isolated)


def test_nothing_found_lists_files_and_every_directory(isolated, monkeypatch):
    monkeypatch.setenv("SCRATCHCNN_DATA", str(isolated / "env"))
    with pytest.raises(DataError) as caught:
        load_dataset("mnist")
    message = str(caught.value)
    for stem in FILES.values():
        assert stem in message
    for base in ("env", "cache", "system"):
        assert str(isolated / base / "mnist") in message
    assert "missing" not in message  # no directory holds any file
    assert "--data-dir" in message and "SCRATCHCNN_DATA" in message
    with pytest.raises(DataError) as caught:  # an explicit data_dir is the only place looked in
        load_dataset("mnist", data_dir=isolated / "arg")
    message = str(caught.value)
    assert str(isolated / "arg" / "mnist") in message and str(isolated / "env") not in message


def test_partial_directory_names_its_missing_files(isolated):
    write_dataset(isolated / "arg", skip=("train_labels", "test_images"))
    with pytest.raises(DataError) as caught:
        load_dataset("mnist", data_dir=isolated / "arg")
    message = str(caught.value)
    partial = re.search(re.escape(str(isolated / "arg" / "mnist")) + r" \(missing ([^)]*)\)", message)
    assert partial, message
    assert sorted(partial.group(1).split(", ")) == ["t10k-images-idx3-ubyte", "train-labels-idx1-ubyte"]
    assert str(isolated / "cache") not in message  # an explicit data_dir is the only place looked in


def test_count_mismatch_names_both_files(isolated):
    write_dataset(isolated, test_labels=np.zeros(9, np.uint8))
    directory = isolated / "mnist"
    with pytest.raises(DataError) as caught:
        load_dataset("mnist", isolated)
    message = str(caught.value)
    assert str(directory / "t10k-images-idx3-ubyte.gz") in message
    assert str(directory / "t10k-labels-idx1-ubyte.gz") in message
    assert "10" in message and "9" in message


def test_train_count_mismatch(isolated):
    write_dataset(isolated, train_images=np.zeros((21, 28, 28), np.uint8))
    with raises_naming(isolated / "mnist" / "train-labels-idx1-ubyte.gz"):
        load_dataset("mnist", isolated)


@pytest.mark.parametrize("split", ["train", "test"])
@pytest.mark.parametrize("bad", [10, 255])
def test_labels_outside_0_to_9(isolated, split, bad):
    labels = fake_arrays()[f"{split}_labels"].copy()
    labels[3] = bad
    write_dataset(isolated, **{f"{split}_labels": labels})
    path = isolated / "mnist" / FILES[f"{split}_labels"]
    with raises_naming(Path(f"{path}.gz"), f"\\b{bad}\\b", "0..9"):
        load_dataset("mnist", isolated)


def test_labels_0_and_9_are_accepted(isolated):
    arrays = write_dataset(isolated, train_labels=np.array([0, 9] * 10, np.uint8))
    assert_dataset_is(load_dataset("mnist", isolated), arrays)


BAD_IMAGES = {
    "2-D": np.zeros((20, 784), np.uint8),
    "4-D": np.zeros((20, 28, 28, 1), np.uint8),
    "1-D": np.zeros(20, np.uint8),
    "int8": np.zeros((20, 28, 28), np.int8),
    "float32": np.zeros((20, 28, 28), np.float32),
    "int32": np.zeros((20, 28, 28), np.int32),
}


@pytest.mark.parametrize("split", ["train", "test"])
@pytest.mark.parametrize("images", BAD_IMAGES.values(), ids=BAD_IMAGES.keys())
def test_images_must_be_3d_uint8(isolated, split, images):
    if split == "test":
        images = images[:10]
    write_dataset(isolated, **{f"{split}_images": images})
    with raises_naming(Path(f"{isolated / 'mnist' / FILES[f'{split}_images']}.gz"), "uint8"):
        load_dataset("mnist", isolated)


BAD_LABELS = {
    "2-D": np.zeros((20, 1), np.uint8),
    "int8": np.zeros(20, np.int8),
    "int32": np.zeros(20, np.int32),
    "float64": np.zeros(20, np.float64),
}


@pytest.mark.parametrize("labels", BAD_LABELS.values(), ids=BAD_LABELS.keys())
def test_labels_must_be_1d_uint8(isolated, labels):
    write_dataset(isolated, train_labels=labels)
    with raises_naming(Path(f"{isolated / 'mnist' / FILES['train_labels']}.gz"), "labels"):
        load_dataset("mnist", isolated)


def test_train_and_test_image_shapes_must_agree(isolated):
    write_dataset(isolated, test_images=np.zeros((10, 14, 14), np.uint8))
    with raises_naming(isolated / "mnist", r"28, 28", r"14, 14"):
        load_dataset("mnist", isolated)


def test_other_image_sizes_are_allowed_if_consistent(isolated):
    small = {"train_images": np.ones((20, 8, 9), np.uint8), "test_images": np.ones((10, 8, 9), np.uint8)}
    arrays = write_dataset(isolated, **small)
    assert_dataset_is(load_dataset("mnist", isolated), arrays)


def test_corrupt_file_in_dataset_raises_data_error_naming_it(isolated):
    write_dataset(isolated)
    path = isolated / "mnist" / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-20])
    with raises_naming(path):
        load_dataset("mnist", isolated)


# ---- the real data -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_data_dir(data_dir: Path) -> Path:
    return data_dir


@pytest.fixture(scope="module")
def mnist(real_data_dir) -> Dataset:
    return load_dataset("mnist", data_dir=real_data_dir)


def test_real_mnist(mnist, real_data_dir):
    assert mnist.directory == real_data_dir / "mnist"
    assert mnist.train_images.shape == (10_000, 28, 28)
    assert mnist.test_images.shape == (10_000, 28, 28)
    assert mnist.train_labels.shape == mnist.test_labels.shape == (10_000,)
    for array in (mnist.train_images, mnist.train_labels, mnist.test_images, mnist.test_labels):
        assert array.dtype == np.uint8
    assert mnist.train_labels.max() <= 9 and mnist.test_labels.max() <= 9
    assert mnist.train_labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert mnist.test_labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    published_test_counts = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert np.bincount(mnist.test_labels, minlength=10).tolist() == published_test_counts
    assert set(np.bincount(mnist.train_labels, minlength=10)) <= set(range(800, 1200))  # roughly balanced
    assert mnist.train_images.max() == 255 and mnist.train_images.min() == 0
    assert not mnist.train_images[:, 0, :].any()  # MNIST digits leave the top row blank


def test_real_mnist_via_env_var(real_data_dir, isolated, monkeypatch, mnist):
    monkeypatch.setenv("SCRATCHCNN_DATA", str(real_data_dir))
    dataset = load_dataset("mnist")
    assert dataset.directory == real_data_dir / "mnist"
    assert np.array_equal(dataset.train_labels, mnist.train_labels)


def test_real_published_labels_file(real_data_dir, mnist):
    path = real_data_dir / "published" / "mnist-train-labels-idx1-ubyte.gz"
    if not path.exists():
        skip_or_fail(f"{path} is absent")
    labels = read_idx(path)
    assert labels.shape == (60_000,) and labels.dtype == np.uint8
    assert np.array_equal(labels[:10_000], mnist.train_labels)


def test_real_fashion_mnist(real_data_dir):
    dataset = load_dataset("fashion-mnist", data_dir=real_data_dir)
    assert dataset.train_images.shape == (60_000, 28, 28)
    assert dataset.test_images.shape == (10_000, 28, 28)
    assert dataset.train_images.dtype == dataset.test_images.dtype == np.uint8
    assert np.bincount(dataset.train_labels, minlength=10).tolist() == [6000] * 10
    assert np.bincount(dataset.test_labels, minlength=10).tolist() == [1000] * 10
    assert dataset.train_labels[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert dataset.test_labels[:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]
    assert abs(dataset.train_images.mean() - 72.94) < 0.01
