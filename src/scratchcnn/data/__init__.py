"""Data: the IDX file format, datasets on disk, verified downloads, and the user's own images.

    from scratchcnn.data import load_dataset
    data = load_dataset("mnist")          # data.train_images: (N, 28, 28) uint8, data.train_labels: (N,)
"""

from scratchcnn.data.datasets import (
    CLASS_NAMES,
    DATASETS,
    DOWNLOADABLE,
    FILES,
    Dataset,
    find_files,
    load_dataset,
    search_dirs,
)
from scratchcnn.data.idx import read_idx, write_idx
from scratchcnn.data.images import load_image, preprocess

__all__ = ["CLASS_NAMES", "DATASETS", "DOWNLOADABLE", "FILES", "Dataset", "find_files", "load_dataset", "load_image",
           "preprocess", "read_idx", "search_dirs", "write_idx"]
