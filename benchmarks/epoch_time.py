"""Seconds per 10 000-record training epoch at batch sizes 1 and 32 (a benchmark, not a test).

Usage: python benchmarks/epoch_time.py [--data-dir DIR] [--repeats 3] [--dtype float32] [--engines numba,numpy]
Uses the real MNIST when found (--data-dir / $SCRATCHCNN_DATA), random images otherwise.
"""

from __future__ import annotations

import argparse
import platform

import numpy as np

from scratchcnn import ConvNet, DataError
from scratchcnn.data import load_dataset
from scratchcnn.train import fit

RECORDS = 10_000


def training_images(data_dir: str | None) -> tuple[np.ndarray, np.ndarray, str]:
    try:
        data = load_dataset("mnist", data_dir, download=False)
        return data.train_images[:RECORDS], data.train_labels[:RECORDS], f"MNIST from {data.directory}"
    except DataError:
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (RECORDS, 28, 28), dtype=np.uint8)
        return images, rng.integers(0, 10, RECORDS), "random images (MNIST not found)"


def seconds_per_epoch(images: np.ndarray, labels: np.ndarray, batch_size: int, dtype: str, repeats: int,
                      engine: str) -> float:
    """Best of ``repeats`` one-epoch runs over all records, without validation (pure training time)."""
    best = float("inf")
    for seed in range(repeats):
        net = ConvNet(seed=seed, dtype=dtype)
        history = fit(net, images, labels, epochs=1, batch_size=batch_size, validation_size=0, seed=seed,
                      learning_rate=0.01 if batch_size == 1 else 0.1, engine=engine)
        best = min(best, history.epochs[0].seconds)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--engines", default="numba,numpy", help="comma-separated: numba, numpy")
    args = parser.parse_args()
    images, labels, source = training_images(args.data_dir)
    print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, "
          f"NumPy {np.__version__}; {source}; {args.dtype}; best of {args.repeats}")
    for engine in args.engines.split(","):
        for batch_size in (1, 32):
            seconds = seconds_per_epoch(images, labels, batch_size, args.dtype, args.repeats, engine)
            print(f"{engine:>5} engine, batch size {batch_size:>2}: {seconds:.3f} s per {RECORDS}-record epoch "
                  f"({seconds / RECORDS * 1e6:.1f} µs per record)")


if __name__ == "__main__":
    main()
