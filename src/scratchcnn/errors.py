"""The package's own exceptions: each carries one line a user can act on.

The command line turns any of these into that line on stderr and exit status 2.
"""


class ScratchCNNError(Exception):
    """Base class: bad input from the user, not a bug in scratchcnn."""


class DataError(ScratchCNNError, ValueError):
    """A dataset or IDX file is missing, corrupt or inconsistent."""


class ModelFileError(ScratchCNNError, ValueError):
    """A saved model file is unreadable or disagrees with its own header."""


class ConfigError(ScratchCNNError, ValueError):
    """An option has a value the network or the trainer cannot use."""
