"""Training: the SGD loop, checkpoints, run folders, and the write-up's experiments.

    from scratchcnn.train import fit, evaluate
    history = fit(net, images, labels, learning_rate=0.0005, epochs=20)
"""

from typing import TYPE_CHECKING

from scratchcnn._lazy import exports

if TYPE_CHECKING:  # what type checkers see; at run time each name is imported on its first use (_lazy.py)
    from scratchcnn.nn.metrics import confusion_matrix, evaluate
    from scratchcnn.train.sgd import EpochRecord, History, TrainState, fit

_HOMES = {
    "confusion_matrix": "scratchcnn.nn.metrics", "evaluate": "scratchcnn.nn.metrics",
    **dict.fromkeys(("EpochRecord", "History", "TrainState", "fit"), "scratchcnn.train.sgd"),
}
__getattr__, __dir__ = exports(__name__, _HOMES)
__all__ = ["EpochRecord", "History", "TrainState", "confusion_matrix", "evaluate", "fit"]
