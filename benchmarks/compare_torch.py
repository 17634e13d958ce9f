"""scratchcnn against the same network in PyTorch: training time, accuracy, inference speed, memory.

Usage: python benchmarks/compare_torch.py [--data-dir DIR] [--epochs 3] [--repeats 3] [--skip-memory]
       python benchmarks/compare_torch.py --stack [--archs lenet,wide] [--batches 1,32,64] [--records 10000]

A benchmark, not a test. Both implementations start from the same parameters (ConvNet(seed=0)) and
train on the same batches in the same order, so their test accuracies should agree to float32 noise.
Training is timed per epoch of 10 000 MNIST records (training only, no evaluation), alternating the
implementations run by run so that machine noise hits all of them. Peak memory is measured in a fresh
subprocess per implementation. The last thing printed is a Markdown table for the README.

--stack compares the compiled Stack engine (nn/stack_engine.py) with the same stack in torch instead:
for each preset of --archs (nn/spec.py) and batch size, one epoch of plain SGD in float32 over the same
records in the same batches, both from the Stack's initial parameters, alternating ours and torch
--repeats times; it prints the median seconds per epoch and torch's time ÷ ours. MNIST when found
(else random images), torch on its default number of threads unless --torch-threads.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from scratchcnn import ConvNet, DataError
from scratchcnn.data import load_dataset
from scratchcnn.nn import engine as seed_engine
from scratchcnn.nn import stack_engine
from scratchcnn.nn.network import as_stack, from_spec
from scratchcnn.nn.spec import build
from scratchcnn.nn.stack import Stack
from scratchcnn.nn.stack_layers import Conv, Flatten, Pool, ReLU
from scratchcnn.train import fit, sgd

RECORDS = 10_000  # MNIST training records per epoch
SEED = 0
LEARNING_RATES = {1: 0.0005, 32: 0.02}  # by batch size
ENGINES = ("numpy", "numba")  # fit(engine=...), when the trainer has one
MEMORY_BATCH = 32
TORCH = "PyTorch"


Row = tuple[str, dict[str, str]]  # a table row: its label, and a cell per implementation


@dataclass
class Run:
    seconds: list[float]  # per epoch, training only
    accuracy: float  # on the test set, after the last epoch
    params: dict[str, np.ndarray]  # f and W after training


def load_torch(threads: int | None = 2) -> ModuleType | None:
    """Imported only when needed, so that our memory subprocess never loads it. threads None: torch's default."""
    try:
        import torch
    except ImportError:
        return None
    if threads is not None:
        torch.set_num_threads(threads)
    return torch


def fit_orders(n: int, epochs: int, seed: int = SEED) -> list[np.ndarray]:
    """The records fit(..., validation_size=0, seed=seed) trains on in each epoch, in order.

    fit draws a permutation of the records (the validation split, empty here), then one permutation
    of those per pass over them; an epoch is one pass. Checked against fit by check_same_batches.
    """
    rng = np.random.default_rng(seed)
    split = rng.permutation(n)
    return [split[rng.permutation(n)] for _ in range(epochs)]


def train_ours(engine: str | None, images: np.ndarray, labels: np.ndarray, batch_size: int, epochs: int,
               test: tuple[np.ndarray, np.ndarray]) -> Run:
    net = ConvNet(seed=SEED)
    options = {} if engine is None else {"engine": engine}
    history = fit(net, images, labels, learning_rate=LEARNING_RATES[batch_size], epochs=epochs,
                  batch_size=batch_size, validation_size=0, seed=SEED, **options)
    accuracy = float((net.predict(test[0]) == test[1]).mean())
    return Run([e.seconds for e in history.epochs], accuracy, {k: v.copy() for k, v in net.parameters().items()})


def torch_scores(torch: ModuleType, X: Any, f: Any, W: Any) -> Any:
    """A = W Z for images X (N, H, W): pad bottom/right by k − 1, convolve, keep even (i, j)."""
    F = torch.nn.functional
    k, rows, cols = f.shape[-1], W.shape[2], W.shape[3]
    Y = F.conv2d(F.pad(X[:, None], (0, k - 1, 0, k - 1)), f[:, None])
    Z = Y[:, :, ::2, ::2][:, :, :rows, :cols]
    return torch.einsum("nkpq,ckpq->nc", Z, W)


def torch_pixels(torch: ModuleType, images: np.ndarray) -> Any:
    return torch.from_numpy(images).float() / 255  # as ConvNet.prepare: float32, divided by 255


def train_torch(torch: ModuleType, images: np.ndarray, labels: np.ndarray, batch_size: int, epochs: int,
                test: tuple[np.ndarray, np.ndarray]) -> Run:
    start = ConvNet(seed=SEED)
    f = torch.tensor(start.f, requires_grad=True)
    W = torch.tensor(start.W, requires_grad=True)
    optimizer = torch.optim.SGD([f, W], lr=LEARNING_RATES[batch_size])
    X, y = torch_pixels(torch, images), torch.from_numpy(labels.astype(np.int64))
    seconds = []
    for order in fit_orders(len(images), epochs):
        began = time.perf_counter()
        order_t = torch.from_numpy(order)
        for first in range(0, len(order_t), batch_size):
            batch = order_t[first : first + batch_size]
            loss = torch.nn.functional.cross_entropy(torch_scores(torch, X[batch], f, W), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        seconds.append(time.perf_counter() - began)
    with torch.no_grad():
        predicted = torch_scores(torch, torch_pixels(torch, test[0]), f, W).argmax(1).numpy()
    return Run(seconds, float((predicted == test[1]).mean()), {"f": f.detach().numpy(), "W": W.detach().numpy()})


def check_same_batches(trainers: dict[str, Callable[..., Run]], images: np.ndarray, labels: np.ndarray) -> None:
    """Warm up (JIT, caches) and check on 64 records that all train alike (same batches, same maths).

    Drops an engine that cannot run here, saying why.
    """
    small = (images[:64], labels[:64])
    for batch_size in LEARNING_RATES:
        runs = {}
        for name in list(trainers):
            try:
                runs[name] = trainers[name](*small, batch_size, 2, small)
            except Exception as error:
                print(f"{name}: not available ({type(error).__name__}: {error})")
                del trainers[name]
        for name, run in runs.items():
            if TORCH in runs and name != TORCH:
                same = all(np.allclose(run.params[p], runs[TORCH].params[p], rtol=1e-4, atol=1e-6) for p in "fW")
                verdict = "the same parameters" if same else "DIFFERENT parameters: not a like-for-like comparison"
                print(f"check, batch {batch_size}, 2 epochs of 64 records: {name} and {TORCH} end with {verdict}")


def best_rate(predict: Callable[[], Any], images: int, repeats: int) -> float:
    """Images per second of the fastest of ``repeats`` calls."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        predict()
        best = min(best, time.perf_counter() - start)
    return images / best


def inference(torch: ModuleType | None, what: str, images: np.ndarray, ours: list[str]) -> list[Row]:
    """Images per second of predict_proba and of the same forward pass + softmax in PyTorch.

    predict_proba has no engine, so ours is measured once and shown under every engine.
    """
    net = ConvNet(seed=SEED)
    rate = dict.fromkeys(ours, best_rate(lambda: net.predict_proba(images), len(images), 5))
    label = f"inference, {len(images):_} {what} images".replace("_", " ")
    rows: list[Row] = [(f"{label}: images/s (best of 5)", {})]
    if torch is not None:
        f, W = torch.from_numpy(net.f), torch.from_numpy(net.W)

        def torch_proba() -> Any:
            with torch.no_grad():
                return torch.softmax(torch_scores(torch, torch_pixels(torch, images), f, W), dim=1)

        rate[TORCH] = best_rate(torch_proba, len(images), 5)
        gap = np.abs(torch_proba().numpy() - net.predict_proba(images)).max()
        print(f"{label}: max |ΔP| ours vs {TORCH} {gap:.1e}")
        rows.append((f"{label}: {TORCH} time ÷ ours", {n: f"{rate[n] / rate[TORCH]:.2f}" for n in ours}))
    print(f"{label}: " + ", ".join(f"{n} {r:,.0f} images/s" for n, r in rate.items()))
    rows[0][1].update({n: f"{r:,.0f}".replace(",", " ") for n, r in rate.items()})
    return rows


def memory_child(impl: str, data_dir: str | None) -> None:
    """Run in a fresh interpreter: one epoch on Fashion-MNIST; print max RSS (MB) before and after."""
    torch = load_torch() if impl == TORCH else None
    data = load_dataset("fashion-mnist", data_dir, download=False)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    test = (data.test_images[:1], data.test_labels[:1])
    if torch is not None:
        train_torch(torch, data.train_images, data.train_labels, MEMORY_BATCH, 1, test)
    else:
        train_ours(None if impl == "default" else impl, data.train_images, data.train_labels, MEMORY_BATCH, 1, test)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"before_training_mb": before, "peak_mb": peak}))


def peak_memory(impl: str, data_dir: str | None) -> str:
    # Linux carries a parent's peak RSS into ru_maxrss across exec, so a child started from this (large)
    # process would report at least its peak; a shell that forks the child, not execs it, gives it a fresh count.
    command = [sys.executable, __file__, "--memory-child", impl] + (["--data-dir", data_dir] if data_dir else [])
    command = ["sh", "-c", '"$@"; exit $?', "sh", *command]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return f"failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}"
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return f"{result['peak_mb']:.0f} ({result['before_training_mb']:.0f})"


def machine(torch: ModuleType | None) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), cpu)
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    versions = [f"Python {platform.python_version()}", f"NumPy {np.__version__}"]
    versions.append(f"torch {torch.__version__}" if torch else "torch not installed")
    load = "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())  # other work skews timings
    return f"{cpu}, {os.cpu_count()} cores ({usable} usable), {load}; " + ", ".join(versions)


# ---- --stack: the compiled Stack engine against the same layers in torch -----------------------------

STACK_RATES = {1: 0.01}  # η by batch size; 0.05 for any other


def torch_stack_scores(torch: ModuleType, net: Stack, tensors: dict[str, Any], x: Any) -> Any:
    """The class scores of net's layers written with torch.nn.functional, x: (N, 1, H, W)."""
    F = torch.nn.functional
    for i, layer in enumerate(net.layers):
        params = {name: tensors[f"{i}.{name}"] for name in layer.params}
        if isinstance(layer, Conv):
            before, after = layer.pads()
            x = F.conv2d(F.pad(x, (before, after, before, after)), params["f"], params.get("b"))
        elif isinstance(layer, ReLU):
            x = F.relu(x)
        elif isinstance(layer, Pool) and layer.how == "decimate":
            x = x[:, :, : x.shape[2] // 2 * 2 : 2, : x.shape[3] // 2 * 2 : 2]
        elif isinstance(layer, Pool):
            x = F.max_pool2d(x, 2) if layer.how == "max" else F.avg_pool2d(x, 2)
        elif isinstance(layer, Flatten):
            x = x.flatten(1)
        else:
            x = F.linear(x, params["W"], params.get("b"))
    return x


def stack_epoch(torch: ModuleType | None, arch: str, data: tuple[np.ndarray, np.ndarray, Any, Any],
                order: np.ndarray, batch_size: int, as_trained: bool = False) -> tuple[float, dict[str, np.ndarray]]:
    """(seconds, parameters after) of one epoch from build(arch, seed=0): ours if torch is None, else torch's.

    as_trained: ours runs as ``scratchcnn train --arch`` does: a preset of the write-up's shape (wide) is a
    ConvNet, trained on the engine fit picks for it (train/sgd.py: the stack engine for ReLU + max pooling).
    """
    images, labels, X, y = data
    net = build(arch, seed=SEED, dtype="float32")
    lr = STACK_RATES.get(batch_size, 0.05)
    if torch is None and as_trained and isinstance(from_spec(arch), ConvNet):
        convnet = from_spec(arch, seed=SEED, dtype="float32")
        stack = as_stack(convnet)  # the ConvNet's own arrays, reshaped like the Stack's
        shared = stack.parameters()
        for name, value in net.parameters().items():
            shared[name][...] = value
        began = time.perf_counter()
        if sgd._kernel(convnet, numba=True, plain=True) == "seed":
            seed_engine.sgd_epoch(convnet, images, labels, order, lr, batch_size)
        else:
            stack_engine.epoch(stack, images, labels, order, lr, batch_size)
        return time.perf_counter() - began, {name: value.copy() for name, value in shared.items()}
    if torch is None:
        began = time.perf_counter()
        stack_engine.epoch(net, images, labels, order, lr, batch_size)
        return time.perf_counter() - began, net.parameters()
    tensors = {name: torch.tensor(p, requires_grad=True) for name, p in net.parameters().items()}
    optimizer = torch.optim.SGD(list(tensors.values()), lr=lr)
    order_t = torch.from_numpy(order)
    began = time.perf_counter()
    for first in range(0, len(order_t), batch_size):
        batch = order_t[first : first + batch_size]
        loss = torch.nn.functional.cross_entropy(torch_stack_scores(torch, net, tensors, X[batch]), y[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return time.perf_counter() - began, {name: t.detach().numpy() for name, t in tensors.items()}


def compare_stacks(args: argparse.Namespace) -> None:
    torch = load_torch(threads=args.torch_threads)
    print(machine(torch) + (f"; torch threads {torch.get_num_threads()}" if torch else "; torch not installed"))
    try:
        mnist = load_dataset("mnist", args.data_dir, download=False)
        images, labels = mnist.train_images[: args.records], mnist.train_labels[: args.records]
    except DataError as error:
        print(f"MNIST not found, random images instead: {error}")
        rng = np.random.default_rng(SEED)
        images, labels = rng.integers(0, 256, (args.records, 28, 28), np.uint8), rng.integers(0, 10, args.records)
    X = torch_pixels(torch, images)[:, None] if torch else None
    data = (images, labels, X, torch.from_numpy(labels.astype(np.int64)) if torch else None)
    print(f"compile or load the kernels: {stack_engine.warm_up('float32'):.1f} s; {len(images)} records, "
          f"{args.repeats} epochs each, alternating")
    impls = {"ours": None, TORCH: torch} if torch else {"ours": None}
    table = []
    for arch in args.archs.split(","):
        for batch_size in map(int, args.batches.split(",")):
            small = np.arange(min(64, len(images)))  # a check that both train alike: same batches, same maths
            after = {name: stack_epoch(impl, arch, data, small, batch_size, args.as_trained)[1]
                     for name, impl in impls.items()}
            if torch:
                gap = max(np.abs(after["ours"][p] - after[TORCH][p]).max() for p in after["ours"])
                print(f"{arch}, batch {batch_size}: after {len(small)} records, max |Δparam| vs {TORCH} {gap:.1e}")
            seconds: dict[str, list[float]] = {name: [] for name in impls}
            for repeat in range(args.repeats):
                order = np.random.default_rng(repeat).permutation(len(images))
                for name, impl in impls.items():  # alternate: ours, torch, ours, torch, ...
                    seconds[name].append(stack_epoch(impl, arch, data, order, batch_size, args.as_trained)[0])
            median = {name: statistics.median(values) for name, values in seconds.items()}
            table.append((arch, batch_size, median["ours"], median.get(TORCH, math.nan)))
            print(f"{arch}, batch {batch_size}: " + ", ".join(f"{n} {' '.join(f'{s:.2f}' for s in v)} s"
                                                             for n, v in seconds.items()))
    threads = f"torch threads {torch.get_num_threads()}; " if torch else ""
    print(f"\n{machine(torch)}; {threads}median of {args.repeats} epochs of {len(images)} records, float32, "
          "plain SGD\n")
    print("| arch | batch | ours s/epoch | torch s/epoch | torch ÷ ours |\n| --- | ---: | ---: | ---: | ---: |")
    for arch, batch_size, ours, theirs in table:
        print(f"| {arch} | {batch_size} | {ours:.3f} | {theirs:.3f} | {theirs / ours:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    parser.add_argument("--stack", action="store_true", help="compare the Stack engine instead (see above)")
    parser.add_argument("--archs", default="lenet,wide", help="presets for --stack (default: lenet,wide)")
    parser.add_argument("--as-trained", action="store_true", help="with --stack: run each preset as `scratchcnn "
                        "train --arch` does (wide, of the write-up's shape, a ConvNet: on the engine fit picks for it)")
    parser.add_argument("--batches", default="1,32,64", help="batch sizes for --stack (default: 1,32,64)")
    parser.add_argument("--records", type=int, default=RECORDS, help=f"records per epoch for --stack "
                        f"(default: {RECORDS})")
    parser.add_argument("--torch-threads", type=int, help="torch's threads for --stack (default: torch's own "
                        "choice; on a busy machine 1 can be much faster: its threads spin while they wait)")
    args = parser.parse_args()
    if args.memory_child:
        return memory_child(args.memory_child, args.data_dir)
    if args.stack:
        return compare_stacks(args)

    torch = load_torch()
    print(machine(torch))
    if torch is None:
        print("torch is missing: reporting scratchcnn only")
    mnist = load_dataset("mnist", args.data_dir, download=False)
    images, labels = mnist.train_images[:RECORDS], mnist.train_labels[:RECORDS]
    test = (mnist.test_images, mnist.test_labels)
    print(f"MNIST from {mnist.directory}: {len(images)} training records, {len(test[0])} test images; "
          f"{args.epochs} epochs × {args.repeats} runs per implementation and batch size")

    engines: list[str | None] = list(ENGINES) if "engine" in inspect.signature(fit).parameters else [None]
    engine_of = {("ours" if engine is None else f"ours ({engine})"): engine for engine in engines}
    trainers: dict[str, Callable[..., Run]] = {
        name: (lambda *a, engine=engine: train_ours(engine, *a)) for name, engine in engine_of.items()
    }
    if torch is not None:
        trainers[TORCH] = lambda *a: train_torch(torch, *a)
    check_same_batches(trainers, images, labels)
    names = list(trainers)
    ours = [name for name in names if name != TORCH]
    rows: list[Row] = []

    for batch_size in LEARNING_RATES:
        seconds: dict[str, list[float]] = {name: [] for name in names}
        last: dict[str, Run] = {}
        for _ in range(args.repeats):
            for name in names:  # alternate: ours, torch, ours, torch, ...
                last[name] = trainers[name](images, labels, batch_size, args.epochs, test)
                seconds[name] += last[name].seconds
        median = {name: statistics.median(seconds[name]) for name in names}
        label = f"batch {batch_size}, η {LEARNING_RATES[batch_size]}"
        for name in names:
            drift = ""
            if TORCH in last and name != TORCH:
                gap = max(np.abs(last[name].params[p] - last[TORCH].params[p]).max() for p in ("f", "W"))
                drift = f"; max |Δparam| vs {TORCH} {gap:.1e}"
            print(f"{label}: {name:>13}: {median[name]:.3f} s/epoch median, {min(seconds[name]):.3f} best; "
                  f"test accuracy {last[name].accuracy:.4f}{drift}")
        rows.append((f"{label}: s per epoch, median (best)",
                     {n: f"{median[n]:.3f} ({min(seconds[n]):.3f})" for n in names}))
        if TORCH in names:
            rows.append((f"{label}: {TORCH} time ÷ ours", {n: f"{median[TORCH] / median[n]:.2f}" for n in ours}))
        rows.append((f"{label}: test accuracy after {args.epochs} epoch{'s' * (args.epochs != 1)}",
                     {n: f"{last[n].accuracy:.4f}" for n in names}))

    batches = [("MNIST test", test[0])]
    try:
        fashion = load_dataset("fashion-mnist", args.data_dir, download=False)
        batches.append(("Fashion-MNIST training", fashion.train_images))
    except DataError as error:
        print(f"Fashion-MNIST not found, skipping the 60 000-image inference: {error}")
    for what, batch in batches:
        rows += inference(torch, what, batch, ours)

    if not args.skip_memory:
        memory = {}
        for name in names:
            memory[name] = peak_memory(engine_of.get(name) or ("default" if name in ours else TORCH), args.data_dir)
            print(f"peak memory, {name}: {memory[name]} MB")
        rows.append((f"peak RSS in MB, 1 epoch of Fashion-MNIST (60 000), batch {MEMORY_BATCH} "
                     "(of which imports + data)", memory))

    header = [f"{TORCH} {torch.__version__.split('+')[0]}" if n == TORCH else f"scratchcnn{n[4:]}" for n in names]
    print("\n" + machine(torch) + f"; torch threads 2; {args.epochs} epochs × {args.repeats} runs\n")
    print("| | " + " | ".join(header) + " |")
    print("| --- |" + " ---: |" * len(names))
    for label, cells in rows:
        print(f"| {label} | " + " | ".join(cells.get(n, "—") for n in names) + " |")


if __name__ == "__main__":
    main()
