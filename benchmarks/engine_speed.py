"""Speed of the compiled training engine against the NumPy path and PyTorch (a benchmark, not a test).

Usage: python benchmarks/engine_speed.py [--data-dir DIR] [--repeats 5] [--dtype float32] [--no-torch]
                                         [--compile-time] [--strict-sums]

For the default network (K=3, k=3, decimate, no activation, no bias) and for K=4, k=5, max, ReLU,
bias, it prints the seconds per 10 000-record epoch and µs per SGD step at batch sizes 1 and 32 of

- engine: ``scratchcnn.nn.engine.sgd_epoch`` (best of --repeats epochs, after ``warm_up``),
- numpy: the loop fit() runs without the engine (``loss_and_gradients_prepared`` per batch, then
  ``θ ← θ − η ∂L/∂θ``; one epoch at batch size 1, it is slow),
- torch: the same network and SGD steps written in PyTorch, per batch in Python, on 2 threads.

--compile-time measures Numba's compilation in fresh processes: cold (empty cache directory) and then
loaded from that cache. --strict-sums times the engine compiled with no fastmath flag at all (the dot
products then summed strictly in order), in a fresh process with its own cache directory.
Uses the real MNIST when found (--data-dir / $SCRATCHCNN_DATA), random images otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np
from epoch_time import training_images  # the same 10 000 records as that benchmark

from scratchcnn import ConvNet
from scratchcnn.nn import engine

RECORDS = 10_000
CONFIGS = {
    "default (K=3, k=3, decimate)": dict(),
    "K=4, k=5, max, relu, bias": dict(filters=4, kernel_size=5, pool="max", activation="relu", bias=True),
}
LEARNING_RATE = {1: 0.0005, 32: 0.005}


def time_engine(config: dict, X: np.ndarray, y: np.ndarray, batch_size: int, dtype: str, repeats: int) -> float:
    """Best of ``repeats`` epochs of sgd_epoch, in seconds (wall clock)."""
    best = float("inf")
    for seed in range(repeats):
        net = ConvNet(**config, seed=seed, dtype=dtype)
        order = np.random.default_rng(seed).permutation(len(X))
        start = time.perf_counter()
        engine.sgd_epoch(net, X, y, order, LEARNING_RATE[batch_size], batch_size)
        best = min(best, time.perf_counter() - start)
    return best


def time_numpy(config: dict, X: np.ndarray, y: np.ndarray, batch_size: int, dtype: str, repeats: int) -> float:
    """One epoch (best of ``repeats``) of the NumPy path fit() takes without the engine."""
    best = float("inf")
    for seed in range(repeats):
        net = ConvNet(**config, seed=seed, dtype=dtype)
        params = net.parameters()
        order = np.random.default_rng(seed).permutation(len(X))
        start = time.perf_counter()
        for first in range(0, len(order), batch_size):
            batch = order[first : first + batch_size]
            _, grads = net.loss_and_gradients_prepared(X[batch], y[batch])
            for name, p in params.items():
                p -= LEARNING_RATE[batch_size] * grads[name]
        best = min(best, time.perf_counter() - start)
    return best


def time_torch(config: dict, X: np.ndarray, y: np.ndarray, batch_size: int, dtype: str, repeats: int) -> float:
    """The same network and SGD steps in PyTorch (2 threads), one Python iteration per batch."""
    import torch

    F = torch.nn.functional
    torch.set_num_threads(2)
    net0 = ConvNet(**config, dtype=dtype)
    k, pool, relu = net0.kernel_size, net0.pool, net0.activation == "relu"
    Hp, Wp = net0.pooled_shape
    Xt, yt = torch.from_numpy(X[:, None]), torch.from_numpy(y.astype(np.int64))
    best = float("inf")
    for seed in range(repeats):
        net = ConvNet(**config, seed=seed, dtype=dtype)
        f = torch.tensor(net.f[:, None], requires_grad=True)
        W = torch.tensor(net.W.reshape(10, -1), requires_grad=True)
        b = torch.tensor(net.b, requires_grad=True) if net.bias else None
        params = [p for p in (f, W, b) if p is not None]
        order = torch.from_numpy(np.random.default_rng(seed).permutation(len(X)))
        start = time.perf_counter()
        for first in range(0, len(order), batch_size):
            batch = order[first : first + batch_size]
            x = F.pad(Xt[batch], (0, k - 1, 0, k - 1))  # X = 0 below and right of the image
            # Decimation: only the even positions, as the engine does.
            Y = F.conv2d(x, f, stride=2)[:, :, :Hp, :Wp] if pool == "decimate" else F.conv2d(x, f)
            if relu:
                Y = F.relu(Y)
            if pool == "max":
                Y = F.max_pool2d(Y, 2)
            elif pool == "avg":
                Y = F.avg_pool2d(Y, 2)
            loss = F.cross_entropy(F.linear(Y.flatten(1), W, b), yt[batch])
            for p in params:
                p.grad = None
            loss.backward()
            with torch.no_grad():
                for p in params:
                    p -= LEARNING_RATE[batch_size] * p.grad
        best = min(best, time.perf_counter() - start)
    return best


def child_timings(mode: str, dtype: str, data_dir: str | None, repeats: int) -> dict:
    """Run in a fresh process with its own NUMBA_CACHE_DIR (set by the parent)."""
    if mode == "strict":
        engine._FASTMATH.clear()
    seconds = engine.warm_up(dtype)
    result = {"warm_up": seconds}
    if mode == "strict":
        images, labels, _ = training_images(data_dir)
        X, y = ConvNet(dtype=dtype).prepare(images), labels.astype(np.int64)
        for name, config in CONFIGS.items():
            for batch_size in (1, 32):
                result[f"{name} | {batch_size}"] = time_engine(config, X, y, batch_size, dtype, repeats)
    return result


def in_fresh_process(mode: str, cache_dir: str, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--child", mode, "--dtype", args.dtype, "--repeats", str(args.repeats)]
    if args.data_dir:
        command += ["--data-dir", args.data_dir]
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def line(name: str, seconds: float) -> str:
    return f"{name:>8}: {seconds:7.3f} s/epoch {seconds / RECORDS * 1e6:8.2f} µs/record"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--compile-time", action="store_true")
    parser.add_argument("--strict-sums", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child_timings(args.child, args.dtype, args.data_dir, args.repeats)))
        return
    if not engine.NUMBA_AVAILABLE:
        sys.exit("numba is not installed: pip install 'numba>=0.60'")

    images, labels, source = training_images(args.data_dir)
    X, y = ConvNet(dtype=args.dtype).prepare(images), labels.astype(np.int64)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"NumPy {np.__version__}; {source}; {args.dtype}; best of {args.repeats} (NumPy path: 1 at batch size 1)")
    print(f"warm_up({args.dtype}): {engine.warm_up(args.dtype):.2f} s (compiling, or loading Numba's cache)")
    torch_ok = not args.no_torch
    if torch_ok:
        try:
            import torch
            print(f"PyTorch {torch.__version__}, 2 threads")
        except ImportError:
            torch_ok = False
    for name, config in CONFIGS.items():
        for batch_size in (1, 32):
            print(f"{name}, batch size {batch_size}:")
            print(line("engine", time_engine(config, X, y, batch_size, args.dtype, args.repeats)))
            print(line("numpy", time_numpy(config, X, y, batch_size, args.dtype, 1 if batch_size == 1 else 2)))
            if torch_ok:
                print(line("torch", time_torch(config, X, y, batch_size, args.dtype, 2)))
    if args.compile_time or args.strict_sums:
        with tempfile.TemporaryDirectory() as cache_dir:
            if args.compile_time:
                cold = in_fresh_process("compile", cache_dir, args)["warm_up"]
                cached = in_fresh_process("compile", cache_dir, args)["warm_up"]
                print(f"compile time ({args.dtype}), fresh processes: cold {cold:.2f} s, from cache {cached:.2f} s")
        if args.strict_sums:
            with tempfile.TemporaryDirectory() as cache_dir:
                strict = in_fresh_process("strict", cache_dir, args)
            print("engine compiled without the reassoc flag (dot products summed strictly in order):")
            for key, seconds in strict.items():
                if key != "warm_up":
                    print(f"  {key}: {line('strict', seconds)}")


if __name__ == "__main__":
    main()
