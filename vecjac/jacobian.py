"""`Jacobian`: a sparse matrix that knows what it differentiates.

Numerator layout over the note's column-major vec (section 3.2): ``J[r, c]`` is
``d vec(of)[r] / d vec(wrt)[c]``, so ``J`` has shape ``(of.size, wrt.size)``; the chain rule
is a matrix product, ``dZ2/dA1 @ dA1/dI1``, and a gradient is a transpose.

The class is deliberately thin: the builders in :mod:`vecjac.jacobians` make the matrices,
this class names them and refuses products whose names or shapes do not meet.
:func:`convert_order` permutes a Jacobian's rows and columns between the note's order and
NumPy's C order (``torch.func.jacrev``, ``jax.jacrev``).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray
from scipy.sparse.linalg import LinearOperator

from .budget import check_csr_budget
from .structure import Flat, Structure, product
from .vec import Order, _check_order, order_permutation, unvec, vec

__all__ = ["Jacobian", "convert_order"]


class Jacobian:
    """``d vec(of) / d vec(wrt)``, a ``scipy.sparse.csr_array`` kept in structured form.

    Parameters
    ----------
    matrix : sparse array or matrix, ndarray, or :class:`vecjac.structure.Structure`
        Shape ``(prod(of_shape), prod(wrt_shape))``.  A matrix is converted to CSR (without
        copying when it already is CSR); a structure (``I_N (x) M``, block diagonal, ...) is
        kept as its factors, and the flat matrix is built on first access to ``matrix``.
    of, wrt : str
        The note's symbols, e.g. ``"Z2"`` and ``"A1"``.
    of_shape, wrt_shape : tuple of int
        Array shapes of the differentiated quantity and of the variable (``()`` for a
        scalar such as the loss ``J``).

    Attributes
    ----------
    matrix : scipy.sparse.csr_array
        The flat matrix, entry for entry the same whether it was stored flat or structured;
        materialised (after a memory-budget check) on first access and then kept.
    structure : str
        What is stored, e.g. ``"kron(I_64, 3136x1568 nnz 204800)"``.
    factors : tuple
        The stored pieces (sparse arrays, or a vector for a diagonal).
    shape, nnz, density, nbytes
        ``nnz`` and ``density`` are those of the flat matrix, computed without building it;
        ``nbytes`` is what the object holds now.

    Products go through the factors: ``row @ J`` for a batch of rows times ``I_N (x) M`` is
    ``R @ M`` on the rows reshaped to ``N x m``, and ``(I (x) A) @ (I (x) B) = I (x) (AB)``
    (see :mod:`vecjac.structure`).

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> J = Jacobian(sp.eye_array(3), "I1", "Z1", (3,), (3,))
    >>> J
    Jacobian dI1/dZ1: 3 x 3, nnz 3, density 33.3%
    """

    __array_priority__ = 1000  # so ndarray @ Jacobian defers to __rmatmul__

    def __init__(self, matrix, of: str, wrt: str, of_shape, wrt_shape):
        self.of, self.wrt = str(of), str(wrt)
        self.of_shape = tuple(int(s) for s in of_shape)
        self.wrt_shape = tuple(int(s) for s in wrt_shape)
        if isinstance(matrix, Structure):
            self._structure, self._matrix = matrix, None
        else:
            if not isinstance(matrix, sp.csr_array):
                matrix = sp.csr_array(matrix)
            self._structure, self._matrix = Flat(matrix), matrix
        expected = (int(np.prod(self.of_shape)), int(np.prod(self.wrt_shape)))
        if self._structure.shape != expected:
            raise ValueError(
                f"Jacobian d{self.of}/d{self.wrt}: matrix shape {self._structure.shape} does "
                f"not match of_shape {self.of_shape} x wrt_shape {self.wrt_shape} = {expected}"
            )

    # --- storage --------------------------------------------------------------------------
    @property
    def matrix(self) -> sp.csr_array:
        if self._matrix is None:
            what = f"the flat matrix of {self.name} ({self.structure})"
            check_csr_budget(self.nnz, self.shape, self.dtype, what)
            self._matrix = self._structure.materialise()
        return self._matrix

    @property
    def structure(self) -> str:
        return str(self._structure)

    @property
    def factors(self) -> tuple:
        return self._structure.factors

    @property
    def dtype(self):
        return self._structure.dtype

    @property
    def nbytes(self) -> int:
        """Bytes held now: the factors, and the flat matrix if it was materialised apart."""
        held = self._structure.nbytes
        if self._matrix is not None and all(self._matrix is not f for f in self.factors):
            m = self._matrix
            held += int(m.data.nbytes + m.indices.nbytes + m.indptr.nbytes)
        return held

    def renamed(self, of: str, wrt: str, of_shape=None, wrt_shape=None) -> Jacobian:
        """The same storage (shared, not copied) under other names and, optionally, shapes
        of the same sizes."""
        storage = self._structure if self._matrix is None else self._matrix
        return Jacobian(storage, of, wrt, self.of_shape if of_shape is None else of_shape,
                        self.wrt_shape if wrt_shape is None else wrt_shape)

    # --- size -----------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return f"d{self.of}/d{self.wrt}"

    @property
    def shape(self) -> tuple[int, int]:
        return self._structure.shape

    @property
    def nnz(self) -> int:
        return int(self._structure.nnz)

    @property
    def density(self) -> float:
        n_rows, n_cols = self.shape
        return self.nnz / (n_rows * n_cols) if n_rows * n_cols else 0.0

    def __repr__(self) -> str:
        n_rows, n_cols = self.shape
        return (
            f"Jacobian {self.name}: {n_rows} x {n_cols}, nnz {self.nnz}, "
            f"density {100 * self.density:.1f}%"
        )

    # --- the chain rule -------------------------------------------------------------------
    def __matmul__(self, other):
        """``J1 @ J2``: the chain rule, checked, through the factors; ``J @ x``: times an
        array (a vector or a matrix of columns), also through the factors."""
        if isinstance(other, Jacobian):
            if self.wrt != other.of or self.wrt_shape != other.of_shape:
                raise ValueError(
                    f"chain rule mismatch: {self.name} (wrt {self.wrt} of shape "
                    f"{self.wrt_shape}) cannot multiply {other.name} (of {other.of} of shape "
                    f"{other.of_shape}); the inner names and shapes must be equal"
                )
            return Jacobian(product(self._structure, other._structure), self.of, other.wrt,
                            self.of_shape, other.wrt_shape)
        if isinstance(other, np.ndarray) and other.ndim in (1, 2):
            _check_side(other.shape[0], self.shape[1], "J @ x", "columns")
            V = other[:, None] if other.ndim == 1 else other
            out = self._structure.matmat(V)
            return out[:, 0] if other.ndim == 1 else out
        return self.matrix @ other

    def __rmatmul__(self, other):
        """``v @ J``: a row vector (e.g. ``dJ/dZ``), or rows stacked in a matrix, times the
        Jacobian, through the factors."""
        if isinstance(other, np.ndarray) and other.ndim in (1, 2):
            _check_side(other.shape[-1], self.shape[0], "v @ J", "rows")
            R = other[None, :] if other.ndim == 1 else other
            out = self._structure.rmatmat(R)
            return out[0] if other.ndim == 1 else out
        return other @ self.matrix

    def linear_operator(self) -> LinearOperator:
        """A ``scipy.sparse.linalg.LinearOperator`` whose products use the factors (nothing
        is materialised)."""
        s = self._structure
        return LinearOperator(
            self.shape, dtype=self.dtype,
            matvec=lambda v: s.matmat(np.asarray(v).reshape(-1, 1))[:, 0],
            rmatvec=lambda v: s.rmatmat(np.asarray(v).reshape(1, -1).conj())[0].conj(),
            matmat=lambda V: s.matmat(np.asarray(V)),
            rmatmat=lambda V: s.rmatmat(np.asarray(V).T.conj()).T.conj(),
        )

    # --- views ----------------------------------------------------------------------------
    @property
    def T(self) -> sp.csr_array:
        """The transpose ``J^T``, shape ``(wrt.size, of.size)``: the gradient operator."""
        return self.matrix.T.tocsr()

    def gradient(self, cotangent: ArrayLike | None = None) -> NDArray:
        """The gradient ``J^T v``, reshaped by ``unvec`` to ``wrt_shape`` (section 3.2).

        Parameters
        ----------
        cotangent : array_like, optional
            ``v``, of ``of_shape`` (or already vec-ed).  It may be omitted only when ``of`` is
            a scalar (one row), which is the note's case ``nabla J = (dJ/dX)^T``.

        Returns
        -------
        ndarray, shape wrt_shape
        """
        if cotangent is None:
            if self.shape[0] != 1:
                raise ValueError(
                    f"{self.name} has {self.shape[0]} rows: gradient() without a cotangent "
                    "needs the Jacobian of a scalar; pass the cotangent dJ/d" + self.of
                )
            column = self.matrix.T @ np.ones(1)
        else:
            v = np.asarray(cotangent)
            if v.size != self.shape[0]:
                raise ValueError(
                    f"cotangent has {v.size} elements, {self.name} has {self.shape[0]} rows"
                )
            column = self.matrix.T @ (vec(v) if v.ndim > 1 else v)
        return unvec(column, self.wrt_shape)

    def toarray(self) -> NDArray:
        return self.matrix.toarray()

    def block(self, row_block, col_block) -> sp.csr_array:
        """The note's per-channel block of the stacked Jacobian.

        Rows and columns are split into blocks of the variable's last two (spatial) axes,
        one block per channel, as the note writes ``d vecZ_j / d vecA_i``.  A block index is
        an int (the flat channel index) or a tuple over the leading axes: ``(n, c)`` for a
        batch ``(N, C, H, W)``, ``(j, i)`` for kernels ``(C_out, C_in, kh, kw)``.  A matrix
        side ``(n, N)`` (the FC layout, features x samples) is split into its columns, as the
        note's ``_vA`` is (one block per sample, or per output for ``W3``); a vector or scalar
        side is one block, index 0.

        Examples: ``dZ/dA.block(j, i)`` is ``d vecZ_j / d vecA_i``;
        ``dZ/dK.block(j, (j, i))`` is ``d vecZ_j / d vecK_{j,i}``.
        """
        rows = _block_slice(self.of_shape, row_block, "row_block")
        cols = _block_slice(self.wrt_shape, col_block, "col_block")
        return self.matrix[rows][:, cols]


def _block_slice(shape: tuple[int, ...], index, name: str) -> slice:
    if len(shape) < 2:
        lead, size = (), int(np.prod(shape))
    elif len(shape) == 2:  # a matrix: its columns (samples of the FC layout (n, N))
        lead, size = (shape[1],), shape[0]
    else:
        lead, size = shape[:-2], shape[-1] * shape[-2]
    if isinstance(index, tuple):
        if len(index) != len(lead) or any(
            not 0 <= k < n for k, n in zip(index, lead, strict=True)
        ):
            raise IndexError(f"{name} {index} is not an index over the channel axes {lead}")
        flat = int(np.ravel_multi_index(index, lead))
    else:
        flat, n_blocks = int(index), int(np.prod(lead))
        if not 0 <= flat < n_blocks:
            raise IndexError(f"{name} {index} out of range for {n_blocks} blocks")
    return slice(flat * size, (flat + 1) * size)


def _check_side(got: int, expected: int, what: str, side: str) -> None:
    if got != expected:
        raise ValueError(f"{what}: the operand has {got} entries along the product, the "
                         f"Jacobian has {expected} {side}")


def convert_order(jacobian, of_shape=None, wrt_shape=None, to: Order = "C"):
    """Permute the rows and columns of a Jacobian between the note's order and C order.

    vecjac's Jacobians index rows by ``vec(out)`` and columns by ``vec(in)`` in the note's
    column-major order.  ``torch.func.jacrev`` and ``jax.jacrev`` flatten in C order.  This
    function reorders rows and columns so the two can be compared entry by entry.

    Parameters
    ----------
    jacobian : Jacobian, scipy sparse array or ndarray, shape (prod(of_shape), prod(wrt_shape))
        A :class:`vecjac.Jacobian` carries its own shapes; for a bare matrix pass them.
    of_shape, wrt_shape : tuple of int, optional
        Shapes of the differentiated output and of the variable.
    to : {"C", "F"}
        ``"C"`` (default) converts a note-order matrix to C order; ``"F"`` does the inverse.

    Returns
    -------
    Same kind as the input: a Jacobian (same names and shapes), a CSR array, or an ndarray.
    """
    _check_order(to)
    is_jacobian = isinstance(jacobian, Jacobian)
    if is_jacobian:
        of_shape, wrt_shape, matrix = jacobian.of_shape, jacobian.wrt_shape, jacobian.matrix
    else:
        if of_shape is None or wrt_shape is None:
            raise TypeError("convert_order: pass of_shape and wrt_shape with a bare matrix")
        matrix = jacobian
    rows, cols = order_permutation(tuple(of_shape)), order_permutation(tuple(wrt_shape))
    if matrix.shape != (rows.size, cols.size):
        raise ValueError(
            f"convert_order: matrix shape {matrix.shape} does not match "
            f"of_shape {tuple(of_shape)} x wrt_shape {tuple(wrt_shape)}"
        )
    if to == "C":  # J_F = J_C[p_of][:, p_wrt]  =>  J_C = J_F[inv p_of][:, inv p_wrt]
        rows, cols = np.argsort(rows), np.argsort(cols)
    converted = matrix[rows][:, cols]
    if is_jacobian:
        return Jacobian(converted, jacobian.of, jacobian.wrt, of_shape, wrt_shape)
    return converted
