"""Gradient descent, exactly as section 3 of the note, with either gradient path.

    K := K - alpha grad_K J,    b := b - alpha grad_b J     (and likewise W, b of the FC layer)

on mini-batches.  ``method="jacobian"`` (default) takes the gradients from the product of the
explicit sparse Jacobians; ``method="direct"`` from ordinary back-propagation.  Convolution
sparsity patterns are cached across steps (same shapes every step), so each step only
refills the Jacobians' values.
"""

from __future__ import annotations

import math
import sys
import time

import numpy as np
from numpy.typing import ArrayLike

from .network import CNN

__all__ = ["train", "sgd_step", "accuracy"]


def sgd_step(net: CNN, X: ArrayLike, y: ArrayLike, lr: float, method: str = "jacobian") -> float:
    """One update ``theta := theta - lr * grad_theta J`` of every parameter, in place.

    Returns the loss ``J`` before the update (from the same forward pass as the gradients).
    """
    _check_lr(lr)
    J, grads = net.loss_and_gradients(X, y, method=method)
    for name, g in grads.items():
        net.params[name] -= lr * g.astype(net.params[name].dtype, copy=False)
    return J


def accuracy(net: CNN, X: ArrayLike, y: ArrayLike) -> float:
    """Fraction of samples whose largest output is the label (or, for one output, > 0.5)."""
    out = net.forward(X)
    predicted = out.argmax(axis=1) if out.shape[1] > 1 else (out[:, 0] > 0.5).astype(int)
    return float(np.mean(predicted == np.asarray(y)))


def train(
    net: CNN,
    X_train: ArrayLike,
    y_train: ArrayLike,
    X_test: ArrayLike | None = None,
    y_test: ArrayLike | None = None,
    *,
    epochs: int = 5,
    batch_size: int = 32,
    lr: float = 0.05,
    method: str = "jacobian",
    seed: int = 0,
    progress: bool = True,
    max_steps: int | None = None,
) -> dict[str, list[float]]:
    """Train ``net`` by mini-batch gradient descent (section 3 of the note).

    Parameters
    ----------
    X_train : array_like, shape (N, C, H, W);  y_train : int labels, shape (N,)
    X_test, y_test : optional held-out set, evaluated after each epoch
    epochs, batch_size : int
    lr : float
        The learning rate ``alpha``, a positive finite number, used as given.  With the
        network's default ``reduction="sum"`` the loss of a batch is a sum over its samples,
        so the step grows with ``batch_size``: choose ``lr`` for the batch size, or build the
        network with ``reduction="mean"``.
    method : {"jacobian", "direct", "paper"}
    seed : int
        Shuffles the training set each epoch with ``np.random.default_rng(seed)``.
    progress : bool
        Report on stderr: a live bar (step, batch loss) when stderr is a terminal, and one
        line per epoch (loss, training and test accuracy).
    max_steps : int, optional
        Stop after this many steps in all (for tests).

    Returns
    -------
    history : dict
        ``"loss"`` (mean loss per sample over each epoch), ``"train_accuracy"`` and
        ``"test_accuracy"`` (per epoch; the latter only with a test set), ``"seconds"``.
    """
    _check_lr(lr)
    X_train, y_train = np.asarray(X_train), np.asarray(y_train)
    if len(X_train) != len(y_train):
        raise ValueError(f"X_train has {len(X_train)} samples but y_train {len(y_train)}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    rng = np.random.default_rng(seed)
    history = {"loss": [], "train_accuracy": [], "test_accuracy": [], "seconds": []}
    n_batches = math.ceil(len(X_train) / batch_size)
    steps, start = 0, time.perf_counter()
    for epoch in range(epochs):
        order = rng.permutation(len(X_train))
        losses = []
        for b in range(n_batches):
            idx = order[b * batch_size : (b + 1) * batch_size]
            X, y = X_train[idx], y_train[idx]
            losses.append(sgd_step(net, X, y, lr, method) / len(idx))
            steps += 1
            if progress and sys.stderr.isatty():  # a live bar only on a terminal
                _bar(epoch, epochs, b + 1, n_batches, losses[-1])
            if max_steps is not None and steps >= max_steps:
                break
        history["loss"].append(float(np.mean(losses)))
        history["train_accuracy"].append(accuracy(net, X_train, y_train))
        if X_test is not None:
            history["test_accuracy"].append(accuracy(net, X_test, y_test))
        history["seconds"].append(time.perf_counter() - start)
        if progress:
            test = f", test acc {history['test_accuracy'][-1]:.3f}" if X_test is not None else ""
            print(f"\repoch {epoch + 1}/{epochs}: loss {history['loss'][-1]:.4f}, train acc "
                  f"{history['train_accuracy'][-1]:.3f}{test}" + " " * 20, file=sys.stderr)
        if max_steps is not None and steps >= max_steps:
            break
    return history


def _check_lr(lr) -> None:
    if isinstance(lr, bool) or not isinstance(lr, (int, float, np.floating)) or not (
        math.isfinite(lr) and lr > 0
    ):
        raise ValueError(
            f"lr (the learning rate alpha) must be a positive finite number, got {lr!r}"
        )


def _bar(epoch: int, epochs: int, step: int, n_steps: int, loss: float) -> None:
    width = 30
    filled = width * step // n_steps
    print(f"\repoch {epoch + 1}/{epochs} [{'#' * filled}{'.' * (width - filled)}] "
          f"{step}/{n_steps} loss {loss:.4f}", end="", file=sys.stderr, flush=True)
