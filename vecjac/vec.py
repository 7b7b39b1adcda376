"""The vec operator of the note, its inverse, and every flat-index map built on it.

Section 3.1 of the note: for an ``m x n`` matrix ``A``, ``vec(A)`` stacks the columns of
``A`` one below the other (column-major, Fortran order); for an ``m x n x c`` tensor the
channels' vectors are stacked, channel after channel.  In code, where a feature map is an
array of shape ``(C, H, W)``, a batch ``(N, C, H, W)`` and a layer's kernels
``(C_out, C_in, kh, kw)``, one rule covers all of them:

    ``vec(X)`` reads ``X`` with its last two axes swapped, in C order.

That is the Fortran-order read over the axes ``(H, W, C[, N])`` of docs/design.md, section 1,
so

* ``A[c, r, s]``        -> ``c*H*W + s*H + r``
* ``A[n, c, r, s]``     -> ``n*C*H*W + c*H*W + s*H + r``
* ``K[j, i, u, v]``     -> ``(j*C_in + i)*kh*kw + v*kh + u``
* ``W[m, k]`` (matrix)  -> ``m + k*n_in``
* a vector or a scalar is its own vec.

``order="C"`` gives NumPy's / PyTorch's flattening (``X.ravel()``) instead;
:func:`order_permutation` maps one order to the other, and
:func:`vecjac.jacobian.convert_order` uses it to move a Jacobian between the two orders, so
vecjac's matrices can be compared with ``torch.func.jacrev`` or ``jax.jacrev`` entry by entry.

This module also owns the one shape rule of convolution, :func:`conv_output_shape`, and the
argument normalisers every other module uses.
"""

from __future__ import annotations

import numbers
import threading
from contextlib import contextmanager
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "vec",
    "unvec",
    "flat_index",
    "order_permutation",
    "conv_output_shape",
    "as_pair",
    "as_shape",
    "as_float_array",
    "check_choice",
    "check_padding_mode",
]

Order = Literal["F", "C"]


def _check_order(order: str) -> None:
    if order not in ("F", "C"):
        raise ValueError(f"order must be 'F' (the note's vec) or 'C' (NumPy ravel), got {order!r}")


def vec(x: ArrayLike, order: Order = "F") -> NDArray:
    """Return ``vec(x)``, the note's column-major vectorisation of ``x``.

    Parameters
    ----------
    x : array_like, any shape
        A feature map ``(C, H, W)``, a batch ``(N, C, H, W)``, kernels
        ``(C_out, C_in, kh, kw)``, a matrix ``(m, n)``, a vector or a scalar.
    order : {"F", "C"}
        ``"F"`` (default): the note's vec, columns of each channel stacked, then channels,
        then samples.  ``"C"``: NumPy's row-major ``ravel``.

    Returns
    -------
    v : ndarray, shape (x.size,)
        A view of ``x`` where the memory layout allows, a copy otherwise.

    Examples
    --------
    >>> import numpy as np
    >>> vec(np.array([[1, 2], [3, 4]]))
    array([1, 3, 2, 4])
    """
    _check_order(order)
    x = np.asarray(x)
    if order == "C" or x.ndim < 2:
        return x.ravel()
    return np.swapaxes(x, -1, -2).ravel()


def unvec(v: ArrayLike, shape: tuple[int, ...], order: Order = "F") -> NDArray:
    """Invert :func:`vec`: return the array of ``shape`` whose ``vec`` is ``v``.

    Parameters
    ----------
    v : array_like, shape (prod(shape),) or any shape with that many elements
        A gradient column ``J.T`` of shape ``(n, 1)`` is accepted as it is.
    shape : tuple of int
    order : {"F", "C"}

    Raises
    ------
    ValueError
        If ``v`` does not have exactly ``prod(shape)`` elements.
    """
    _check_order(order)
    shape = tuple(int(s) for s in shape)
    v = np.asarray(v)
    if v.size != _prod(shape):
        raise ValueError(
            f"unvec: v has {v.size} elements but shape {shape} needs {_prod(shape)}"
        )
    v = v.ravel()
    if order == "C" or len(shape) < 2:
        return v.reshape(shape)
    swapped = shape[:-2] + (shape[-1], shape[-2])
    return np.swapaxes(v.reshape(swapped), -1, -2)


def flat_index(shape: tuple[int, ...], order: Order = "F") -> NDArray[np.intp]:
    """Return an integer array of ``shape`` holding each element's position in ``vec``.

    ``flat_index(shape)[idx]`` is the row of ``vec(x)`` at which ``x[idx]`` sits.  The
    Jacobian builders combine these maps with broadcasting instead of writing the index
    arithmetic of section 1 again.

    Examples
    --------
    >>> flat_index((2, 3))
    array([[0, 2, 4],
           [1, 3, 5]])
    """
    return unvec(np.arange(_prod(shape)), shape, order=order)


def order_permutation(shape: tuple[int, ...]) -> NDArray[np.intp]:
    """Return ``p`` with ``vec(x, "F") == vec(x, "C")[p]`` for every ``x`` of ``shape``."""
    return vec(np.arange(_prod(shape)).reshape(shape))


def as_pair(value, name: str, minimum: int) -> tuple[int, int]:
    """Normalise an int-or-pair argument (``stride``, ``padding``, ``size``) to a pair.

    Raises ``TypeError`` for a non-integer and ``ValueError`` for a value below ``minimum``,
    naming the parameter.
    """
    if type(value) is tuple and len(value) == 2 and type(value[0]) is int \
            and type(value[1]) is int:  # the common case, checked cheaply (called per layer)
        pair = value
    elif isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, bool):
        pair = (int(value), int(value))
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(
        isinstance(v, (numbers.Integral, np.integer)) and not isinstance(v, bool) for v in value
    ):
        pair = (int(value[0]), int(value[1]))
    else:
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return pair


def as_shape(shape, name: str) -> tuple[int, ...]:
    """Return ``shape`` as a tuple of ints; a non-integer entry is a ``TypeError``."""
    if type(shape) is tuple and all(type(s) is int for s in shape):  # the common case
        return shape
    try:
        entries = tuple(shape)
    except TypeError:
        raise TypeError(f"{name} must be a tuple of ints, got {shape!r}") from None
    if not all(
        isinstance(s, (numbers.Integral, np.integer)) and not isinstance(s, bool) for s in entries
    ):
        raise TypeError(f"{name} must be a tuple of ints, got {shape!r}")
    return tuple(int(s) for s in entries)


@contextmanager
def finite_checked():
    """Inside this context :func:`as_float_array` skips its finiteness check (one pass over
    every array).  For callers that have checked the inputs every array derives from, as
    :class:`vecjac.Sequential`'s gradient paths do with ``X`` and the parameters; like
    ``check_finite=False`` in ``scipy.linalg``.  Thread-local; contexts nest."""
    depth = getattr(_FINITE_CHECKED, "depth", 0)
    _FINITE_CHECKED.depth = depth + 1
    try:
        yield
    finally:
        _FINITE_CHECKED.depth = depth


_FINITE_CHECKED = threading.local()


def as_float_array(x: ArrayLike, name: str, ndims: tuple[int, ...] | None = None) -> NDArray:
    """Return ``x`` as a float32 or float64 array, checking its number of dimensions.

    float32 and float64 are kept; booleans and integers become float64; complex, object and
    string arrays are refused with ``TypeError``.  Non-finite values are refused with
    ``ValueError`` because they would poison every entry of a Jacobian built from them
    (not checked inside :func:`finite_checked`).
    """
    arr = np.asarray(x)
    if arr.dtype.kind in "biu":
        arr = arr.astype(np.float64)
    elif arr.dtype not in (np.float32, np.float64):
        if arr.dtype.kind == "f":  # float16, longdouble
            arr = arr.astype(np.float64)
        else:
            raise TypeError(
                f"{name} must be a real numeric array (float32 or float64), got dtype {arr.dtype}"
            )
    if ndims is not None and arr.ndim not in ndims:
        allowed = " or ".join(str(n) for n in ndims)
        raise ValueError(f"{name} must have {allowed} dimensions, got shape {arr.shape}")
    if getattr(_FINITE_CHECKED, "depth", 0):
        return arr
    # NaN and infinities survive a sum, so a finite sum clears the array without a boolean
    # temporary of its size; a sum that overflows is looked at entry by entry
    with np.errstate(over="ignore", invalid="ignore"):
        total = np.sum(arr)
    if not np.isfinite(total) and not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def check_choice(value, name: str, choices: tuple[str, ...]) -> None:
    """Refuse ``value`` unless it is one of the strings ``choices``, quoting the valid ones.

    ``name`` is what the argument is called in the message (``"kind"``, ``"ties"``, ...).
    """
    if not isinstance(value, str) or value not in choices:
        valid = ", ".join(repr(c) for c in choices)
        raise ValueError(f"unknown {name} {value!r}; valid {name}s are {valid}")


def conv_output_shape(
    input_hw: tuple[int, int],
    kernel_hw: tuple[int, int],
    stride=1,
    padding=0,
    *,
    name: str = "kernel size",
) -> tuple[int, int]:
    """The note's output-size rule, validated: ``h_z = floor((h_a + 2 h_p - h_k) / h_s) + 1``.

    Used by the direct convolution, the Jacobian builders, pooling and the tests, so a shape
    that does not fit is refused in one place, with the sizes quoted.

    Parameters
    ----------
    input_hw : (h_a, w_a)
    kernel_hw : (h_k, w_k)   (a pooling window for pooling)
    stride : int or (h_s, w_s), each >= 1
    padding : int or (h_p, w_p), each >= 0
    name : str
        What the window is called in error messages ("kernel size", "pool size").

    Returns
    -------
    (h_z, w_z)

    Examples
    --------
    >>> conv_output_shape((3, 4), (2, 2), stride=(1, 2), padding=(1, 1))  # the appendix
    (4, 3)
    """
    (hs, ws) = as_pair(stride, "stride", 1)
    (hp, wp) = as_pair(padding, "padding", 0)
    (ha, wa), (hk, wk) = (int(v) for v in input_hw), (int(v) for v in kernel_hw)
    if min(ha, wa) < 1 or min(hk, wk) < 1:
        raise ValueError(
            f"input size {(ha, wa)} and {name} {(hk, wk)} must be positive"
        )
    if hk > ha + 2 * hp or wk > wa + 2 * wp:
        raise ValueError(
            f"{name} {(hk, wk)} is larger than the padded input "
            f"{(ha + 2 * hp, wa + 2 * wp)} (input {(ha, wa)}, padding {(hp, wp)})"
        )
    return (ha + 2 * hp - hk) // hs + 1, (wa + 2 * wp - wk) // ws + 1


PADDING_MODES = ("zeros", "circular")


def check_padding_mode(padding_mode, padding=0, input_hw=None) -> str:
    """Validate ``padding_mode`` (``"zeros"`` or ``"circular"``) and, for circular padding,
    the padding against the input size: wrapping may go round the input at most once
    (``h_p <= h_a`` and ``w_p <= w_a``), as PyTorch's ``padding_mode="circular"`` demands.

    Returns the mode.
    """
    check_choice(padding_mode, "padding_mode", PADDING_MODES)
    if padding_mode == "circular" and input_hw is not None:
        (hp, wp), (ha, wa) = as_pair(padding, "padding", 0), (int(v) for v in input_hw)
        if hp > ha or wp > wa:
            raise ValueError(
                f"padding {(hp, wp)} is larger than the input {(ha, wa)}: with "
                f"padding_mode='circular' the padding must be at most the input size (it "
                f"wraps around the input at most once)"
            )
    return padding_mode


def _prod(shape) -> int:
    out = 1
    for s in shape:
        out *= int(s)
    return out
