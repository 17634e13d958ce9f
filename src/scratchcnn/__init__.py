"""scratchcnn: a small convolutional network for handwritten digits, with gradients derived by hand.

    from scratchcnn import ConvNet, fit, load_dataset
    data = load_dataset("mnist")
    net = ConvNet()
    fit(net, data.train_images, data.train_labels)
    net.predict(data.test_images)
"""

from scratchcnn._version import __version__
from scratchcnn.data import load_dataset
from scratchcnn.errors import ConfigError, DataError, ModelFileError, ScratchCNNError
from scratchcnn.nn.model import ConvNet
from scratchcnn.options import NetworkOptions, RunOptions, TrainOptions
from scratchcnn.train import evaluate, fit

__all__ = ["ConfigError", "ConvNet", "DataError", "ModelFileError", "NetworkOptions", "RunOptions", "ScratchCNNError",
           "TrainOptions", "__version__", "evaluate", "fit", "load_dataset"]
