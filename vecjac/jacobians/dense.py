r"""Jacobians of the fully-connected layer and of flatten: the note's sections 3.1.1, 3.1.2.

Section 3.1.1, ``Z3 = W3^T B2 + b3`` with ``W3`` of shape ``(n_in, n_out)``:
``dZ3 = dW3^T B2 + W3^T dB2 + db3``, so in numerator layout over the column-major vec

    dZ3 / dB2     = W3^T                      (n_out x n_in)
    dZ3 / d vecW3 = I_{n_out} (x) B2^T        (n_out x n_in n_out)
    dZ3 / db3     = I_{n_out}                 (n_out x n_out)

(row ``k`` of ``I (x) B2^T`` holds ``B2^T`` in the columns of ``W3[:, k]``, which is column
``k`` of ``W3`` in vec order).  For a batch, features x samples ``(n_in, N)``, the samples are
independent: ``dZ3/dB2 = I_N (x) W3^T`` (block diagonal), and the parameters are shared, so
``dZ3/dW3`` and ``dZ3/db3`` stack one such block of rows per sample.

Section 3.1.2, flatten ``B2 = [vec A_1; ...; vec A_c] = vec(A2)``: in the note's order it is
the identity in vec space; flattening in C order (``A.ravel()``, NumPy / PyTorch) is a
permutation of it.

References: the note, sections 3.1.1 and 3.1.2.
"""

from __future__ import annotations

import numbers

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray

from ..budget import check_csr_budget
from ..jacobian import Jacobian
from ..structure import Identity, Kron, KronRows, Lazy, Tile
from ..vec import as_float_array, order_permutation
from ._csr import assemble_csr

__all__ = ["dense_wrt_input", "dense_wrt_weight", "dense_wrt_bias", "flatten"]


def dense_wrt_input(
    W: ArrayLike,
    n_samples: int | None = None,
    *,
    of: str = "Z3",
    wrt: str = "B2",
    max_bytes: int | None = None,
    structured: bool = True,
) -> Jacobian:
    """``dZ3 / d vecB2 = W3^T``, or ``I_N (x) W3^T`` for a batch.

    Parameters
    ----------
    W : array_like, shape (n_in, n_out)
    n_samples : int, optional
        ``N`` for a batch ``B2`` of shape ``(n_in, N)``; ``None`` for one sample ``(n_in,)``.

    Returns
    -------
    J : Jacobian, shape (n_out, n_in), or (N n_out, N n_in) block diagonal
        Every entry of ``W3`` stored (a dense block per sample).  For a batch,
        ``structured=True`` (default) stores ``W3^T`` once (``I_N (x) W3^T``).
    """
    W = as_float_array(W, "W", ndims=(2,))
    N = _samples(n_samples)
    if structured and n_samples is not None:  # W copied: J stays the Jacobian at this W
        W, (n_in, n_out) = W.copy(), W.shape
        M = Lazy(lambda: dense_wrt_input(W, None, max_bytes=max_bytes, structured=False).matrix,
                 (n_out, n_in), n_out * n_in)  # W3^T, built when asked for

        def rows(R):  # each sample's part of each row times W3^T: one dense product
            return (R.reshape(-1, n_out) @ W.T).reshape(R.shape[0], N * n_in)

        return Jacobian(Kron(N, M, rows=rows), of, wrt, _fc_shape(W.shape[1], N),
                        _fc_shape(W.shape[0], N))
    n_in, n_out = W.shape
    shape = (N * n_out, N * n_in)
    itype = check_csr_budget(N * n_out * n_in, shape, W.dtype, "dZ3/dB2", max_bytes)
    first = np.arange(N, dtype=itype)[:, None, None] * n_in
    indices = np.broadcast_to(first + np.arange(n_in, dtype=itype), (N, n_out, n_in))
    data = np.broadcast_to(W.T, (N, n_out, n_in))
    matrix = _rows_of(data, indices, n_in, shape)
    return Jacobian(matrix, of, wrt, _fc_shape(n_out, n_samples), _fc_shape(n_in, n_samples))


def dense_wrt_weight(
    B: ArrayLike,
    n_out: int,
    *,
    of: str = "Z3",
    wrt: str = "W3",
    max_bytes: int | None = None,
    structured: bool = True,
) -> Jacobian:
    """``dZ3 / d vecW3 = I_{n_out} (x) B2^T``, one such block of rows per sample.

    Parameters
    ----------
    B : array_like, shape (n_in,) or (n_in, N)
    n_out : int

    Returns
    -------
    J : Jacobian, shape (n_out, n_in n_out), or (N n_out, n_in n_out)
        Built directly in CSR; equal to ``scipy.sparse.kron(eye(n_out), B2[None, :])`` for one
        sample, with every entry of ``B2`` stored (zeros included), so the pattern depends on
        shapes only.  ``structured=True`` (default) stores ``B2^T`` once, not once per
        output (:class:`~vecjac.structure.KronRows`).
    """
    B = as_float_array(B, "B", ndims=(1, 2))
    n_out = _positive(n_out, "n_out")
    n_in, N = B.shape[0], (B.shape[1] if B.ndim == 2 else 1)
    if structured:
        P = Lazy(lambda: dense_wrt_weight(B, 1, max_bytes=max_bytes, structured=False).matrix,
                 (N, n_in), N * n_in)  # B^T, built when asked for
        B2 = B.reshape(n_in, N)

        def rows(R):  # sum_s r_s B2[:, s]^T per output: (k, n_out, N) @ (N, n_in), vec(W)
            return (R.reshape(-1, N, n_out).transpose(0, 2, 1) @ B2.T).reshape(R.shape[0], -1)

        def per_sample(R):  # sample s: r_s (x) B2[:, s], (N, k, n_out n_in)
            outer = R.reshape(-1, N, n_out).transpose(1, 0, 2)[..., None] * B2.T[:, None, None]
            return outer.reshape(N, R.shape[0], n_out * n_in)

        return Jacobian(KronRows(N, n_out, P, rows=rows, per_sample=per_sample), of, wrt,
                        (n_out,) + B.shape[1:], (n_in, n_out))
    shape = (N * n_out, n_in * n_out)
    itype = check_csr_budget(N * n_out * n_in, shape, B.dtype, "dZ3/dW3", max_bytes)
    columns = np.arange(n_out, dtype=itype)[:, None] * n_in + np.arange(n_in, dtype=itype)
    indices = np.broadcast_to(columns, (N, n_out, n_in))
    data = np.broadcast_to(B.reshape(n_in, N).T[:, None, :], (N, n_out, n_in))
    matrix = _rows_of(data, indices, n_in, shape)
    return Jacobian(matrix, of, wrt, (n_out,) + B.shape[1:], (n_in, n_out))


def dense_wrt_bias(
    n_out: int,
    n_samples: int | None = None,
    *,
    of: str = "Z3",
    wrt: str = "b3",
    dtype=np.float64,
    max_bytes: int | None = None,
    structured: bool = True,
) -> Jacobian:
    """``dZ3 / db3 = I_{n_out}``, one identity per sample stacked for a batch (stored once
    with ``structured=True``, the default).

    Returns
    -------
    J : Jacobian, shape (n_out, n_out), or (N n_out, n_out)
    """
    n_out, N = _positive(n_out, "n_out"), _samples(n_samples)
    if structured and n_samples is not None:
        G = dense_wrt_bias(n_out, dtype=dtype, max_bytes=max_bytes, structured=False)
        rows = lambda R: R.reshape(R.shape[0], N, n_out).sum(axis=1)  # noqa: E731  R @ [I; ..; I]
        return Jacobian(Tile(N, G.matrix, rows), of, wrt, _fc_shape(n_out, N), (n_out,))
    shape = (N * n_out, n_out)
    itype = check_csr_budget(N * n_out, shape, dtype, "dZ3/db3", max_bytes)
    indptr = np.arange(N * n_out + 1, dtype=itype)
    indices = np.tile(np.arange(n_out, dtype=itype), N)
    data = np.ones(N * n_out, dtype=dtype)
    matrix = assemble_csr(data, indices, indptr, shape)
    return Jacobian(matrix, of, wrt, _fc_shape(n_out, n_samples), (n_out,))


def flatten(
    A_shape,
    order: str = "F",
    *,
    of: str = "B2",
    wrt: str = "A2",
    dtype=np.float64,
    max_bytes: int | None = None,
    structured: bool = True,
) -> Jacobian:
    """``d vecB2 / d vecA2`` of flatten ``B2 = [vec A_1; ...; vec A_c]`` (section 3.1.2).

    Parameters
    ----------
    A_shape : (C, h_a, w_a) or (N, C, h_a, w_a)
    order : {"F", "C"}
        ``"F"`` (default): the note's ``B2 = vec(A2)``, the identity.  ``"C"``: each sample
        flattened as ``A.ravel()``; the permutation ``argsort(order_permutation)``.

    Returns
    -------
    J : Jacobian, shape (C h_a w_a, C h_a w_a), or ``N`` times each
        ``of_shape`` is ``(C h_a w_a,)``, or ``(C h_a w_a, N)`` for a batch (features x
        samples, the FC layout).  ``structured=True`` (default) keeps the identity as
        :class:`~vecjac.structure.Identity` (nothing stored but one 1) and C order's
        permutation as ``I_N (x) perm``.
    """
    A_shape = _feature_shape(A_shape)
    if order not in ("F", "C"):
        raise ValueError(f"order must be 'F' (the note's vec) or 'C' (A.ravel()), got {order!r}")
    m = int(np.prod(A_shape[-3:]))
    N = A_shape[0] if len(A_shape) == 4 else 1
    of_shape = (m,) if len(A_shape) == 3 else (m, N)
    if structured and order == "F":
        return Jacobian(Identity(N * m, dtype), of, wrt, of_shape, A_shape)
    if structured and N > 1:
        block = flatten(A_shape[1:], order, dtype=dtype, max_bytes=max_bytes, structured=False)
        return Jacobian(Kron(N, block.matrix), of, wrt, of_shape, A_shape)
    itype = check_csr_budget(N * m, (N * m, N * m), dtype, "dB2/dA2", max_bytes)
    if order == "F":
        columns = np.arange(N * m, dtype=itype)
    else:  # C position f of a sample sits at vec position argsort(p)[f]
        within = np.argsort(order_permutation(A_shape[-3:])).astype(itype)
        columns = (np.arange(N, dtype=itype)[:, None] * m + within).ravel()
    indptr = np.arange(N * m + 1, dtype=itype)
    matrix = assemble_csr(np.ones(N * m, dtype=dtype), columns, indptr, (N * m, N * m))
    return Jacobian(matrix, of, wrt, of_shape, A_shape)


# --- helpers ------------------------------------------------------------------------------
def _rows_of(data: NDArray, indices: NDArray, row_length: int, shape) -> sp.csr_array:
    """CSR whose every row holds ``row_length`` entries, in the C order of ``data``."""
    nnz = data.size
    indptr = np.arange(0, nnz + 1, row_length, dtype=indices.dtype)
    return assemble_csr(data, indices, indptr, shape)


def _fc_shape(n: int, n_samples: int | None) -> tuple[int, ...]:
    return (n,) if n_samples is None else (n, n_samples)


def _positive(value, name: str) -> int:
    if not isinstance(value, (numbers.Integral, np.integer)) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value!r}")
    return int(value)


def _samples(n_samples) -> int:
    return 1 if n_samples is None else _positive(n_samples, "n_samples")


def _feature_shape(A_shape) -> tuple[int, ...]:
    try:
        A_shape = tuple(int(s) for s in A_shape)
    except TypeError:
        raise TypeError(f"A_shape must be a tuple of ints, got {A_shape!r}") from None
    if len(A_shape) not in (3, 4) or min(A_shape) < 1:
        raise ValueError(
            f"A_shape must be (C, h_a, w_a) or (N, C, h_a, w_a) with positive sizes, "
            f"got {A_shape}"
        )
    return A_shape
