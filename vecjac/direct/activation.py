"""Activations, the note's section 3.1.4: ``I = f(Z)``, its derivative and its backward pass.

The element-wise kinds act entry by entry, on any shape; softmax acts on each sample's
features, the columns of the FC layout ``(n, N)`` (section 3.1.1's output activation).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special

from ..vec import as_float_array, check_choice

__all__ = [
    "ACTIVATIONS",
    "activate",
    "activate_backward",
    "activation_derivative",
]

ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "softplus", "identity", "softmax")
FROM_OUTPUT = ("sigmoid", "tanh", "softmax")  # derivatives that read the forward's f(Z)


def activate(Z: ArrayLike, kind: str, *, negative_slope: float = 0.01) -> NDArray:
    """``I = f_activation(Z)``, element-wise, or softmax over the features axis.

    Parameters
    ----------
    Z : array_like, any shape for the element-wise kinds; (n,) or (n, N) for softmax
    kind : {"sigmoid", "tanh", "relu", "leaky_relu", "softplus", "identity", "softmax"}
        ``softplus(z) = log(1 + e^z)`` via ``logaddexp``; ``sigmoid`` as
        ``scipy.special.expit``, ``1 / (1 + e^{-z})``; ``softmax`` stable
        (``scipy.special.softmax``), over axis 0 (the features of the FC layout ``(n, N)``).
    negative_slope : float
        Slope of ``leaky_relu`` for ``z <= 0`` (default 0.01).

    Returns
    -------
    I : ndarray, shape of Z
        Finite for every finite ``Z`` (inputs of magnitude 1000 included), with no warning.
    """
    Z = _activation_input(Z, kind)
    if kind == "softmax":
        return special.softmax(Z, axis=0)
    if kind == "sigmoid":
        return _sigmoid(Z)
    if kind == "tanh":
        return np.tanh(Z)
    if kind == "relu":
        return np.maximum(Z, 0)
    if kind == "leaky_relu":
        return np.where(Z > 0, Z, Z * Z.dtype.type(negative_slope))
    if kind == "softplus":
        return np.logaddexp(Z.dtype.type(0), Z)
    return Z.copy()


def activation_derivative(
    Z: ArrayLike, kind: str, *, negative_slope: float = 0.01, out: NDArray | None = None,
    output: NDArray | None = None,
) -> NDArray:
    """``f'(Z)`` of an element-wise activation: the diagonal of ``d vecI / d vecZ``.

    ``sigmoid' = s (1 - s)`` and ``tanh' = 1 - tanh^2`` are computed as
    ``1 / (4 cosh^2(z/2))`` and ``1 / cosh^2(z)``: relatively accurate in both tails (no
    cancellation), in one buffer.  ReLU's derivative is ``[z > 0]`` (0 at 0); leaky ReLU's
    ``negative_slope`` for ``z <= 0``; ``softplus' = sigmoid`` (``expit``).
    Softmax is not element-wise and is refused (use :func:`activate_backward` or
    :func:`vecjac.jacobians.activation`).

    ``output``, the forward pass's ``f(Z)`` when the caller has it (the gradient paths of
    :class:`vecjac.Sequential`), is used by sigmoid and tanh as PyTorch's backward passes use
    it: ``s (1 - s)`` and ``1 - t^2``, two cheap passes instead of a ``cosh``.  That form is
    exact to rounding in absolute terms (so in every gradient), but its relative accuracy
    fades where ``f'`` is below about ``1e-9`` (``|z| > 20``), where ``1 - s`` cancels.

    Parameters
    ----------
    Z : array_like, any shape
    kind : str
    negative_slope : float
    out : ndarray, optional
        A float array of Z's shape to write into (``Z`` itself is allowed).

    Returns
    -------
    ndarray, shape of Z
    """
    Z = _activation_input(Z, kind)
    if kind == "softmax":
        raise ValueError("kind 'softmax' is not element-wise: it has no diagonal derivative")
    if out is None:
        out = np.empty_like(Z)
    elif out.shape != Z.shape or out.dtype.kind != "f":
        raise ValueError(f"out must be a float array of shape {Z.shape}, got {out.shape}")
    if output is not None and kind in ("sigmoid", "tanh"):
        output = checked_output(output, Z)
    return _derivative(Z, kind, negative_slope, out, output)


def checked_output(output, Z: NDArray) -> NDArray:
    """The forward pass's ``f(Z)`` handed in as ``output``: a float array of Z's shape
    (``ValueError`` otherwise)."""
    output = as_float_array(output, "output")
    if output.shape != Z.shape:
        raise ValueError(f"output must have Z's shape {Z.shape}, got {output.shape}")
    return output


def _derivative(Z: NDArray, kind: str, negative_slope: float, out: NDArray,
                output: NDArray | None) -> NDArray:
    """:func:`activation_derivative` on arguments it has checked: ``out`` of Z's shape,
    ``output`` (if any) a float array of Z's shape."""
    if output is not None and kind in ("sigmoid", "tanh"):
        if kind == "sigmoid":  # s (1 - s)
            np.subtract(1, output, out=out)
            return np.multiply(out, output, out=out)
        np.multiply(output, output, out=out)  # 1 - t^2
        return np.subtract(1, out, out=out)
    if kind == "sigmoid":
        np.multiply(Z, 0.5, out=out)
        with np.errstate(over="ignore"):  # cosh overflows to inf for |z| > 1420: f' = 0
            np.cosh(out, out=out)
            np.multiply(out, out, out=out)
        return np.divide(0.25, out, out=out)
    if kind == "tanh":
        with np.errstate(over="ignore"):  # cosh overflows to inf for |z| > 710: f' = 0
            np.cosh(Z, out=out)
            np.multiply(out, out, out=out)
        return np.divide(1, out, out=out)
    if kind in ("relu", "leaky_relu"):
        np.greater(Z, 0, out=out)
        if kind == "leaky_relu":
            out *= 1 - negative_slope
            out += negative_slope
        return out
    if kind == "softplus":
        return special.expit(Z, out=out)
    out[...] = 1
    return out


def activate_backward(
    dI: ArrayLike, Z: ArrayLike, kind: str, *, negative_slope: float = 0.01,
    output: NDArray | None = None,
) -> NDArray:
    """Back-propagate ``dI = dL/dI`` through :func:`activate`: returns ``dZ = dL/dZ``.

    Element-wise kinds: ``dZ = f'(Z) dI``.  Softmax, per sample ``s``:
    ``dZ = s (dI - s^T dI)``, i.e. ``(diag(s) - s s^T) dI``.  ``output``: the forward's
    ``f(Z)``, if at hand (see :func:`activation_derivative`); softmax then takes ``s`` from it
    instead of computing it again.
    """
    Z = _activation_input(Z, kind)
    dI = as_float_array(dI, "dI")
    if dI.shape != Z.shape:
        raise ValueError(f"dI has shape {dI.shape}, Z has shape {Z.shape}; they must be equal")
    if kind == "softmax":  # the forward's s when given: the same array, not recomputed
        s = special.softmax(Z, axis=0) if output is None else checked_output(output, Z)
        return s * (dI - (s * dI).sum(axis=0))
    dZ = activation_derivative(Z, kind, negative_slope=negative_slope, output=output)
    if dZ.dtype != np.result_type(dZ, dI):  # float32 Z, float64 dI: promote as NumPy does
        return dZ * dI
    dZ *= dI  # in the derivative's buffer: no second temporary of Z's size
    return dZ


# --- helpers ------------------------------------------------------------------------------
def _sigmoid(Z: NDArray) -> NDArray:
    """``1 / (1 + e^{-z})``, scipy's ``expit`` formula, in one buffer with NumPy's vectorised
    ``exp`` (about four times faster than ``expit``).  ``e^{-z}`` overflows to ``inf`` for
    ``z < -709``, where the result is 0 (the exact value is below the smallest normal float)."""
    out = np.negative(Z)
    with np.errstate(over="ignore"):
        np.exp(out, out=out)
    out += 1
    return np.divide(1, out, out=out)


def _activation_input(Z, kind: str) -> NDArray:
    check_choice(kind, "kind", ACTIVATIONS)
    Z = as_float_array(Z, "Z")
    if kind == "softmax" and Z.ndim not in (1, 2):
        raise ValueError(
            f"softmax needs the FC layout: Z of shape (n,) or (n, N), got shape {Z.shape}"
        )
    return Z
