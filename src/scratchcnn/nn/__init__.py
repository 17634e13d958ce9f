"""The networks: the write-up's equations (layers) and its ConvNet, stacks of layers of any depth
(stack_layers, stack, spec, network), the compiled SGD engines, the model file format and the metrics."""

from typing import TYPE_CHECKING

from scratchcnn._lazy import exports

if TYPE_CHECKING:  # what type checkers see; at run time each name is imported on its first use (_lazy.py)
    from scratchcnn.nn.model import ConvNet
    from scratchcnn.nn.network import from_spec, load_model
    from scratchcnn.nn.stack import Stack

_HOMES = {"ConvNet": "scratchcnn.nn.model", "from_spec": "scratchcnn.nn.network", "load_model": "scratchcnn.nn.network",
          "Stack": "scratchcnn.nn.stack"}
__getattr__, __dir__ = exports(__name__, _HOMES)
__all__ = ["ConvNet", "Stack", "from_spec", "load_model"]
