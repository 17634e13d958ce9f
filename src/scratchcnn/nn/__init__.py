"""The network: its equations (layers), the ConvNet that strings them together, the compiled SGD
engine, the model file format and the metrics."""

from scratchcnn.nn.model import ConvNet

__all__ = ["ConvNet"]
