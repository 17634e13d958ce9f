"""scratchcnn: a small convolutional network for handwritten digits, with gradients derived by hand.

    from scratchcnn import ConvNet, fit, load_dataset
    data = load_dataset("mnist")
    net = ConvNet()
    fit(net, data.train_images, data.train_labels)
    net.predict(data.test_images)

    deeper = from_spec("lenet")          # or any stack: from_spec("conv:8x3:same,relu,pool:max,flatten,dense")
"""

from typing import TYPE_CHECKING

from scratchcnn._lazy import exports
from scratchcnn._version import __version__

if TYPE_CHECKING:  # what type checkers see; at run time each name is imported on its first use (_lazy.py)
    from scratchcnn.data import load_dataset
    from scratchcnn.errors import ConfigError, DataError, ModelFileError, ScratchCNNError
    from scratchcnn.nn.gradcheck import gradcheck
    from scratchcnn.nn.model import ConvNet
    from scratchcnn.nn.network import from_spec, load_model
    from scratchcnn.nn.stack import Stack
    from scratchcnn.options import NetworkOptions, RunOptions, TrainOptions
    from scratchcnn.train import evaluate, fit

_HOMES = {
    "load_dataset": "scratchcnn.data.datasets",
    **dict.fromkeys(("ConfigError", "DataError", "ModelFileError", "ScratchCNNError"), "scratchcnn.errors"),
    "ConvNet": "scratchcnn.nn.model", "from_spec": "scratchcnn.nn.network", "load_model": "scratchcnn.nn.network",
    "Stack": "scratchcnn.nn.stack",
    **dict.fromkeys(("NetworkOptions", "RunOptions", "TrainOptions"), "scratchcnn.options"),
    "evaluate": "scratchcnn.nn.metrics", "fit": "scratchcnn.train.sgd", "gradcheck": "scratchcnn.nn.gradcheck",
}
__getattr__, __dir__ = exports(__name__, _HOMES)
__all__ = ["ConfigError", "ConvNet", "DataError", "ModelFileError", "NetworkOptions", "RunOptions", "ScratchCNNError",
           "Stack", "TrainOptions", "__version__", "evaluate", "fit", "from_spec", "gradcheck", "load_dataset",
           "load_model"]
