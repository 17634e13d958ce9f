"""The networks: the write-up's equations (layers) and its ConvNet, stacks of layers of any depth
(stack_layers, stack, spec, network), the compiled SGD engines, the model file format and the metrics."""

from scratchcnn.nn.model import ConvNet
from scratchcnn.nn.network import from_spec, load_model
from scratchcnn.nn.stack import Stack

__all__ = ["ConvNet", "Stack", "from_spec", "load_model"]
