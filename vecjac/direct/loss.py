"""Losses, the note's section 3.1.1: ``J``, ``dJ/dA3`` and the fused ``dJ/dZ3`` from logits.

The prediction uses the FC layout of the note, features x samples: ``(n_out,)`` or
``(n_out, N)``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

from ..vec import as_float_array, check_choice

__all__ = [
    "LOSSES",
    "REDUCTIONS",
    "as_targets",
    "loss",
    "loss_and_backward",
    "loss_backward",
    "loss_from_logits",
]

LOSSES = ("squared_error", "binary_cross_entropy", "cross_entropy")
LOGIT_LOSSES = ("cross_entropy", "binary_cross_entropy")
REDUCTIONS = ("sum", "mean")

_LOG_FLOOR = np.exp(-100.0)  # log is clamped at -100, as torch.nn.BCELoss does
_DENOMINATOR_FLOOR = 1e-12  # and so are the derivative's denominators


def as_targets(y: ArrayLike, shape: tuple[int, ...]) -> NDArray:
    """Targets of the prediction's ``shape`` ``(n_out,)`` or ``(n_out, N)`` from labels.

    * integer class indices of shape ``(N,)`` (or a scalar for one sample): one-hot columns
      when ``n_out > 1``; when ``n_out == 1`` they are the 0/1 targets themselves;
    * any array of ``shape`` (float targets, one-hot, 0/1): used as it is.

    Raises
    ------
    ValueError
        Shape mismatch, or class indices outside ``[0, n_out)`` (``[0, 1]`` for one output).
    TypeError
        Non-numeric labels.
    """
    shape = tuple(int(s) for s in shape)
    y_raw = np.asarray(y)
    if y_raw.shape == shape:
        return as_float_array(y_raw, "y")
    if y_raw.dtype.kind not in "biu":
        raise ValueError(
            f"y has shape {y_raw.shape} but A3 has shape {shape}: targets must have A3's "
            f"shape, or be integer class indices of shape {shape[1:]}"
        )
    if y_raw.shape != shape[1:]:
        raise ValueError(
            f"y has shape {y_raw.shape}: class indices for A3 of shape {shape} must have "
            f"shape {shape[1:]} (one per sample)"
        )
    n_out = shape[0]
    high = max(n_out - 1, 1)
    if y_raw.size and (y_raw.min() < 0 or y_raw.max() > high):
        raise ValueError(f"y holds labels outside [0, {high}] (n_out = {n_out})")
    if n_out == 1:
        return y_raw.astype(np.float64).reshape(shape)
    return (np.arange(n_out).reshape((n_out,) + (1,) * y_raw.ndim) == y_raw).astype(np.float64)


def loss(A3: ArrayLike, y: ArrayLike, kind: str = "squared_error", reduction: str = "sum") -> float:
    """The scalar loss ``J`` of the prediction ``A3`` against the labels ``y``.

    Parameters
    ----------
    A3 : array_like, shape (n_out,) or (n_out, N)
        Predictions, features x samples; probabilities for the cross-entropies.
    y : array_like
        See :func:`as_targets`.
    kind : {"squared_error", "binary_cross_entropy", "cross_entropy"}
        ``E = sum (y - O)^2 / 2`` (the slides, seed 001);
        ``-sum [y log O + (1 - y) log(1 - O)]``; ``-sum y log O`` (after a softmax).
        Logs are clamped at -100, as ``torch.nn.BCELoss`` does, so ``J`` is finite.
    reduction : {"sum", "mean"}
        ``"sum"`` over everything (default, as the slides); ``"mean"`` divides by ``N``.

    Returns
    -------
    J : float
    """
    return _value(*_loss_args(A3, y, kind, reduction))


def loss_backward(
    A3: ArrayLike, y: ArrayLike, kind: str = "squared_error", reduction: str = "sum"
) -> NDArray:
    """``dJ/dA3`` of :func:`loss`, in ``A3``'s shape (the transpose of the note's row).

    ``O - y``; ``(O - y) / (O (1 - O))``; ``-y / O`` (denominators floored at 1e-12, as
    ``torch.nn.BCELoss``), times ``1/N`` for ``reduction="mean"``.
    """
    return _gradient(*_loss_args(A3, y, kind, reduction))


def loss_and_backward(
    A3: ArrayLike, y: ArrayLike, kind: str = "squared_error", reduction: str = "sum"
) -> tuple[float, NDArray]:
    """:func:`loss` and :func:`loss_backward` from one check of the arguments and one set of
    targets: ``(J, dJ/dA3)``, equal to the two calls."""
    args = _loss_args(A3, y, kind, reduction)
    return _value(*args), _gradient(*args)


def loss_from_logits(
    Z3: ArrayLike, y: ArrayLike, kind: str = "cross_entropy", reduction: str = "sum"
) -> tuple[float, NDArray]:
    """Output activation and loss fused, from the logits ``Z3``: returns ``(J, dJ/dZ3)``.

    ``"cross_entropy"``: ``A3 = softmax(Z3)`` then cross-entropy, ``J = -sum y log_softmax(Z3)``
    and ``dJ/dZ3 = s (1^T y) - y`` per sample (``s - y`` for one-hot ``y``).
    ``"binary_cross_entropy"``: ``A3 = sigmoid(Z3)`` then BCE,
    ``J = sum [log(1 + e^z) - y z]`` and ``dJ/dZ3 = sigmoid(z) - y``.
    Both are exact for any finite ``Z3`` (no clamping) and equal the unfused chain
    ``dJ/dA3 dA3/dZ3`` wherever the unfused logs are not clamped.

    Returns
    -------
    J : float
    dJ_dZ3 : ndarray, shape of Z3
    """
    check_choice(kind, "kind", LOGIT_LOSSES)
    Z3, Y, kind, scale = _loss_args(Z3, y, kind, reduction, name="Z3")
    if kind == "cross_entropy":
        J = -np.sum(Y * special.log_softmax(Z3, axis=0))
        dZ = special.softmax(Z3, axis=0) * Y.sum(axis=0) - Y
    else:
        J = np.sum(np.logaddexp(0, Z3) - Y * Z3)
        dZ = special.expit(Z3) - Y
    return float(scale * J), scale * dZ


# --- helpers ------------------------------------------------------------------------------
def _value(A3, Y, kind, scale) -> float:
    if kind == "squared_error":
        return float(scale * 0.5 * np.sum((Y - A3) ** 2))
    log_p = np.log(np.maximum(A3, _LOG_FLOOR))
    if kind == "cross_entropy":
        return float(-scale * np.sum(Y * log_p))
    log_q = np.log(np.maximum(1 - A3, _LOG_FLOOR))
    return float(-scale * np.sum(Y * log_p + (1 - Y) * log_q))


def _gradient(A3, Y, kind, scale) -> NDArray:
    if kind == "squared_error":
        return scale * (A3 - Y)
    if kind == "cross_entropy":
        return -scale * Y / np.maximum(A3, _DENOMINATOR_FLOOR)
    return scale * (A3 - Y) / np.maximum(A3 * (1 - A3), _DENOMINATOR_FLOOR)


def _loss_args(A3, y, kind, reduction, name: str = "A3"):
    check_choice(kind, "kind", LOSSES)
    check_choice(reduction, "reduction", REDUCTIONS)
    A3 = as_float_array(A3, name, ndims=(1, 2))
    Y = as_targets(y, A3.shape)
    if name == "A3" and kind != "squared_error" and (A3.min() < 0 or A3.max() > 1):
        raise ValueError(
            f"A3 must hold probabilities in [0, 1] for kind {kind!r} (apply the output "
            "activation first, or use loss_from_logits)"
        )
    n_samples = A3.shape[1] if A3.ndim == 2 else 1
    scale = 1.0 / n_samples if reduction == "mean" else 1.0
    return A3, Y.astype(A3.dtype, copy=False), kind, scale
