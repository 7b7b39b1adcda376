"""The fully-connected layer, the note's section 3.1.1: ``Z3 = W3^T B2 + b3`` and its backward.

The FC part uses the note's layout, features x samples: one sample is a vector (n,), a
batch a matrix (n, N) whose columns are samples, so Z3 = W3^T B2 + b3 holds as written.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..vec import as_float_array

__all__ = ["dense", "dense_backward"]


def dense(B: ArrayLike, W: ArrayLike, b: ArrayLike | None = None) -> NDArray:
    """``Z3 = W3^T B2 + b3``, features x samples.

    Parameters
    ----------
    B : array_like, shape (n_in,) or (n_in, N)
        One sample, or a batch whose columns are samples.
    W : array_like, shape (n_in, n_out)
    b : array_like, shape (n_out,), optional
        Added to every column.

    Returns
    -------
    Z : ndarray, shape (n_out,) or (n_out, N)
    """
    B, W = _check_dense_args(B, W)
    Z = W.T @ B
    if b is not None:
        b = as_float_array(b, "b", ndims=(1,))
        if b.shape != (W.shape[1],):
            raise ValueError(f"b has shape {b.shape}, expected (n_out,) = ({W.shape[1]},)")
        Z += b if B.ndim == 1 else b[:, None]
    return Z


def dense_backward(
    dZ: ArrayLike, B: ArrayLike, W: ArrayLike
) -> tuple[NDArray, NDArray, NDArray]:
    """Back-propagate ``dZ = dL/dZ3`` through :func:`dense`.

    The note's section 3.1.1, as gradients: ``dB = W dZ``, ``dW = B dZ^T``, ``db = dZ 1``
    (sums over the batch's columns).

    Returns
    -------
    dB : ndarray, shape of B
    dW : ndarray, shape (n_in, n_out)
    db : ndarray, shape (n_out,)
    """
    B, W = _check_dense_args(B, W)
    dZ = as_float_array(dZ, "dZ", ndims=(B.ndim,))
    expected = (W.shape[1],) + B.shape[1:]
    if dZ.shape != expected:
        raise ValueError(f"dZ has shape {dZ.shape}, expected (n_out[, N]) = {expected}")
    dW = np.outer(B, dZ) if B.ndim == 1 else B @ dZ.T
    db = dZ.copy() if B.ndim == 1 else dZ.sum(axis=1)
    return W @ dZ, dW, db


# --- helpers ------------------------------------------------------------------------------
def _check_dense_args(B, W) -> tuple[NDArray, NDArray]:
    B = as_float_array(B, "B", ndims=(1, 2))
    W = as_float_array(W, "W", ndims=(2,))
    if B.shape[0] != W.shape[0]:
        raise ValueError(
            f"B has {B.shape[0]} features (rows) but W has shape {W.shape} = (n_in, n_out); "
            "B must be (n_in,) or (n_in, N)"
        )
    return B, W
