"""Data: the IDX file format, datasets on disk, verified downloads, and the user's own images.

    from scratchcnn.data import load_dataset, read_digit
    data = load_dataset("mnist")          # data.train_images: (N, 28, 28) uint8, data.train_labels: (N,)
    image = read_digit("my-seven.png")    # your own picture as the network sees it: (28, 28) uint8
"""

from typing import TYPE_CHECKING

from scratchcnn._lazy import exports

if TYPE_CHECKING:  # what type checkers see; at run time each name is imported on its first use (_lazy.py)
    from scratchcnn.data.datasets import (
        CLASS_NAMES,
        DATASETS,
        FILES,
        Dataset,
        find_files,
        load_dataset,
        search_dirs,
    )
    from scratchcnn.data.idx import read_idx, write_idx
    from scratchcnn.data.images import load_image, preprocess, read_digit
    from scratchcnn.options import DOWNLOADABLE

_HOMES = {
    **dict.fromkeys(("CLASS_NAMES", "DATASETS", "FILES", "Dataset", "find_files", "load_dataset", "search_dirs"),
                    "scratchcnn.data.datasets"),
    "DOWNLOADABLE": "scratchcnn.options",
    "read_idx": "scratchcnn.data.idx", "write_idx": "scratchcnn.data.idx",
    **dict.fromkeys(("load_image", "preprocess", "read_digit"), "scratchcnn.data.images"),
}
__getattr__, __dir__ = exports(__name__, _HOMES)
__all__ = ["CLASS_NAMES", "DATASETS", "DOWNLOADABLE", "FILES", "Dataset", "find_files", "load_dataset", "load_image",
           "preprocess", "read_digit", "read_idx", "search_dirs", "write_idx"]
