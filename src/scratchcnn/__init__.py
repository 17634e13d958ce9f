"""scratchcnn: a small convolutional network for handwritten digits, with gradients derived by hand."""

from scratchcnn._version import __version__
from scratchcnn.errors import ConfigError, DataError, ModelFileError, ScratchCNNError
from scratchcnn.model import ConvNet

__all__ = ["ConfigError", "ConvNet", "DataError", "ModelFileError", "ScratchCNNError", "__version__"]
