"""Training: the SGD loop, checkpoints, run folders, and the write-up's experiments.

    from scratchcnn.train import fit, evaluate
    history = fit(net, images, labels, learning_rate=0.0005, epochs=20)
"""

from scratchcnn.nn.metrics import confusion_matrix, evaluate
from scratchcnn.train.sgd import EpochRecord, History, TrainState, fit

__all__ = ["EpochRecord", "History", "TrainState", "confusion_matrix", "evaluate", "fit"]
