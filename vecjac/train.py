"""Gradient descent, exactly as section 3 of the note, with either gradient path.

    K := K - alpha grad_K J,    b := b - alpha grad_b J     (and likewise W, b of the FC layer)

on mini-batches.  ``method="jacobian"`` (default) takes the gradients from the product of the
explicit sparse Jacobians; ``method="direct"`` from ordinary back-propagation.  Convolution
sparsity patterns are cached across steps (same shapes every step), so each step only
refills the Jacobians' values.
"""

from __future__ import annotations

import math
import numbers
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
    progress: bool | str = True,
    max_steps: int | None = None,
) -> dict[str, list[float]]:
    """Train ``net`` by mini-batch gradient descent (section 3 of the note).

    Parameters
    ----------
    X_train : array_like, shape (N, C, H, W);  y_train : int labels, shape (N,)
    X_test, y_test : optional held-out set, evaluated after each epoch
    epochs, batch_size : int
        Positive ints (numpy integers too; ``bool`` is refused).
    lr : float
        The learning rate ``alpha``, a positive finite number, used as given.  With the
        network's default ``reduction="sum"`` the loss of a batch is a sum over its samples,
        so the step grows with ``batch_size``: choose ``lr`` for the batch size, or build the
        network with ``reduction="mean"``.
    method : {"jacobian", "direct", "paper"}
    seed : int
        Shuffles the training set each epoch with ``np.random.default_rng(seed)``; a
        non-negative int.
    progress : True, "epochs" or False
        ``True``: report on stderr, with a live tqdm bar (step, batch loss) while stderr is a
        terminal (no bar, hence no carriage returns, when it is a file or a pipe), and one
        line per epoch (loss, training and test accuracy).  ``"epochs"``: the lines only, no
        bar.  ``False``: nothing.
    max_steps : int, optional
        Stop after this many steps in all (for tests); a positive int.

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
    epochs = _check_int(epochs, "epochs", 1)
    batch_size = _check_int(batch_size, "batch_size", 1)
    seed = _check_int(seed, "seed", 0)
    if max_steps is not None:
        max_steps = _check_int(max_steps, "max_steps", 1)
    if progress not in (True, False, "epochs"):
        raise ValueError(f'progress must be True, "epochs" or False, got {progress!r}')
    from tqdm import tqdm  # a dependency, imported where the bar is drawn: not by import vecjac

    rng = np.random.default_rng(seed)
    history = {"loss": [], "train_accuracy": [], "test_accuracy": [], "seconds": []}
    n_batches = math.ceil(len(X_train) / batch_size)
    steps, start = 0, time.perf_counter()
    for epoch in range(epochs):
        order = rng.permutation(len(X_train))
        losses = []
        # disable=None: tqdm draws the bar only while stderr is a terminal
        with tqdm(total=n_batches, desc=f"epoch {epoch + 1}/{epochs}", unit="batch",
                  file=sys.stderr, leave=False, dynamic_ncols=True,
                  disable=None if progress is True else True) as bar:
            for b in range(n_batches):
                idx = order[b * batch_size : (b + 1) * batch_size]
                X, y = X_train[idx], y_train[idx]
                losses.append(sgd_step(net, X, y, lr, method) / len(idx))
                steps += 1
                bar.set_postfix(loss=f"{losses[-1]:.4f}", refresh=False)
                bar.update()
                if max_steps is not None and steps >= max_steps:
                    break
        history["loss"].append(float(np.mean(losses)))
        history["train_accuracy"].append(accuracy(net, X_train, y_train))
        if X_test is not None:
            history["test_accuracy"].append(accuracy(net, X_test, y_test))
        history["seconds"].append(time.perf_counter() - start)
        if progress:
            test = f", test acc {history['test_accuracy'][-1]:.3f}" if X_test is not None else ""
            print(f"epoch {epoch + 1}/{epochs}: loss {history['loss'][-1]:.4f}, train acc "
                  f"{history['train_accuracy'][-1]:.3f}{test}", file=sys.stderr)
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


def _check_int(value, name: str, minimum: int) -> int:
    """``value`` as an int: any integer (numpy's too), not ``bool``, at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        kind = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    return int(value)
