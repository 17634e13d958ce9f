"""The lab: what the explorer page needs to train in the browser — a sample of the dataset, the run's options.

The page (explorer.py) gets a Train panel when it is given ``lab_data``: the first ``records`` training
images of the dataset to train on and the next LAB_VALIDATION to validate on (uint8, base64: 4/3 bytes a
pixel, ~1 kB an MNIST image), the training options the run would use (scratchcnn.options), two presets
(the write-up's SGD, and its overtraining experiment) and the model file's header, so that the page can
save what it trained as a model file. Training itself is JavaScript: backprop.js (the backward pass of every
layer, the equations of nn/stack_layers.py) and trainer.js (batches, optimisers and schedules, as
train/optimisers.py) in a Web Worker (worker.js), driven by lab.js.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from scratchcnn.data.datasets import Dataset
from scratchcnn.errors import ConfigError
from scratchcnn.nn.network import Network, as_stack
from scratchcnn.options import (
    LAB_RECORDS,
    LAB_VALIDATION,
    OVERTRAIN_RECORDS,
    NetworkOptions,
    RunOptions,
    overtrain_learning_rate,
    run_defaults,
)

OVERTRAIN_EPOCHS = 300  # the overtraining preset's length: training accuracy reaches 100 % long before
TRAINING_OPTIONS = ("learning_rate", "batch_size", "optimiser", "momentum", "weight_decay", "schedule", "epochs",
                    "seed")


def _images(images: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """uint8 images (N, H, W) as base64 (row-major), labels as a list."""
    return {"base64": base64.b64encode(np.ascontiguousarray(images, np.uint8).tobytes()).decode("ascii"),
            "labels": [int(v) for v in labels], "count": len(images)}


def lab_data(net: Network, data: Dataset, run: RunOptions, records: int = LAB_RECORDS) -> dict[str, Any]:
    """The Train panel's data for ``net`` on ``data``: the sample, the run's options, the presets, the header.

    records: training records to embed (≥ 1); the LAB_VALIDATION records after them validate (fewer if the
    training set is short). ConfigError when the images do not fit the network or records is out of range.
    """
    if data.train_images.shape[1:] != tuple(net.input_shape):
        raise ConfigError(f"{data.name} images are {data.train_images.shape[1:]}, the network takes "
                          f"{tuple(net.input_shape)}")
    available = len(data.train_images)
    if not 1 <= records < available:
        raise ConfigError(f"--lab-records must lie in 1..{available - 1} ({data.name} has {available} training "
                          f"records and the lab validates on the ones after them), got {records}")
    validation = min(LAB_VALIDATION, available - records)
    train, held_out = slice(0, records), slice(records, records + validation)
    options = {name: getattr(run, name) for name in TRAINING_OPTIONS}
    write_up = run_defaults(data.name, NetworkOptions.arch)
    return {
        "dataset": data.name,
        "train": _images(data.train_images[train], data.train_labels[train]),
        "validation": _images(data.train_images[held_out], data.train_labels[held_out]),
        "options": options,
        "presets": {
            "write-up": {"label": "the write-up: SGD, one record a step", "optimiser": "sgd", "batch_size": 1,
                         "learning_rate": write_up.learning_rate, "weight_decay": 0.0, "schedule": "constant",
                         "train_records": records, "epoch_records": records},
            "overtraining": {"label": f"overtraining: {OVERTRAIN_RECORDS} records, {OVERTRAIN_EPOCHS} epochs",
                             "optimiser": "sgd", "batch_size": 1, "weight_decay": 0.0, "schedule": "constant",
                             "learning_rate": overtrain_learning_rate(run.network),
                             "train_records": min(OVERTRAIN_RECORDS, records),
                             "epoch_records": min(OVERTRAIN_RECORDS, records), "epochs": OVERTRAIN_EPOCHS,
                             "reset": True},
        },
        "header": as_stack(net).header(),
    }

