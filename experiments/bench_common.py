"""What the benchmark modules share: the benchmark CNN, the same network in PyTorch, the
optional import of PyTorch, and timing in turns (``benchmark.py``, ``bench_beyond.py``,
``bench_chain.py``)."""

from __future__ import annotations

import os
import time

import numpy as np

import vecjac as vj

SETTLE = 0.3  # seconds before each block (interleaved_ms)


def interleaved_ms(fns: dict, repeat: int, block: int = 5, settle: float | None = None) -> dict:
    """Median wall time in ms of each function over ``repeat`` runs, the functions taking
    turns in blocks of ``block`` runs, so that a slow spell of the machine hits all alike.

    Each block starts with a pause of ``settle`` seconds (default ``SETTLE``) and one untimed
    warm-up run: the worker threads of one library (OpenBLAS under NumPy, OpenMP under
    PyTorch) keep spinning for a while after its last call and would otherwise take the
    cores from the next.  Functions of one library alone may take turns run by run
    (``block=1, settle=0``).
    """
    settle = SETTLE if settle is None else settle
    times = {name: [] for name in fns}
    for _ in range(max(1, -(-repeat // block))):
        for name, fn in fns.items():
            time.sleep(settle)
            fn()
            for _ in range(block):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    return {name: 1e3 * float(np.median(t)) for name, t in times.items()}


def cnn(input_shape=(1, 28, 28), channels=(8, 16)) -> vj.CNN:
    """The benchmark's CNN: 3x3 convs with padding 1, sigmoid, 2x2 average pooling, 10
    softmax outputs with cross-entropy.  The defaults are network N."""
    return vj.CNN(input_shape=input_shape, channels=channels, kernel_size=3, padding=1,
                  activation="sigmoid", pool="avg", pool_size=2, n_out=10, output="softmax",
                  loss="cross_entropy", seed=0)


def optional_torch():
    """``torch`` with as many threads as cores, or ``None`` when it is not installed."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(os.cpu_count() or 1)
    return torch


def torch_logits(torch, net, p, x):
    """``Z_L`` of a ``vj.CNN`` with avg pooling and element-wise activations, in PyTorch on
    vecjac's parameters ``p`` (torch tensors).  The note's flatten is column-major within
    each channel, so H and W are swapped before flattening."""
    F = torch.nn.functional
    h = x
    for layer, names in zip(net.layers, net.param_names, strict=True):
        if isinstance(layer, vj.layers.Conv2d):
            h = F.conv2d(h, p[names["K"]], p[names["b"]], layer.stride, layer.padding)
        elif isinstance(layer, vj.layers.Pool2d):
            h = F.avg_pool2d(h, layer.size, layer.stride, layer.padding)
        elif isinstance(layer, vj.layers.Flatten):
            h = h.transpose(-1, -2).reshape(h.shape[0], -1)
        elif isinstance(layer, vj.layers.Dense):
            h = h @ p[names["W"]] + p[names["b"]]
            if names["W"] == f"W{net.L}":
                return h
        else:
            h = getattr(torch, layer.kind)(h)
    raise ValueError("the network has no last Dense layer")
