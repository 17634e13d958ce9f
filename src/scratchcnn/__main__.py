"""``python -m scratchcnn``: the same as the ``scratchcnn`` command."""

from scratchcnn.cli import run

run()
