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


class DivergedError(ScratchCNNError):
    """Training diverged (the loss became NaN or infinite) before any epoch was good: nothing to keep.

    Not bad input: the command line exits with its own status (3) for it.
    """


class WriteError(ScratchCNNError, OSError):
    """A file could not be written (full disk, no permission); the message names the file."""


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none): for one-line errors."""
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
