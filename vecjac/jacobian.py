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

import math

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray
from scipy.sparse.linalg import LinearOperator

from .budget import check_budget, check_csr_budget
from .structure import Flat, Structure, product
from .vec import Order, _check_order, order_permutation, unvec, vec

__all__ = ["Jacobian", "convert_order", "load_jacobian"]


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

    def __init__(self, matrix, of: str, wrt: str, of_shape, wrt_shape, *,
                 order: Order = "F", transposed: bool = False):
        self.of, self.wrt = str(of), str(wrt)
        self.of_shape = tuple(int(s) for s in of_shape)
        self.wrt_shape = tuple(int(s) for s in wrt_shape)
        _check_order(order)
        self.order, self.transposed = order, bool(transposed)
        if isinstance(matrix, Structure):
            self._structure, self._matrix = matrix, None
        else:
            if not isinstance(matrix, sp.csr_array):
                matrix = sp.csr_array(matrix)
            self._structure, self._matrix = Flat(matrix), matrix
        expected = (math.prod(self.of_shape), math.prod(self.wrt_shape))
        if self.transposed:
            expected = expected[::-1]
        if self._structure.shape != expected:
            raise ValueError(
                f"Jacobian {self.name}: matrix shape {self._structure.shape} does not match "
                f"of_shape {self.of_shape} x wrt_shape {self.wrt_shape} = {expected}"
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
        return self._like(self._storage, of=of, wrt=wrt,
                          of_shape=self.of_shape if of_shape is None else of_shape,
                          wrt_shape=self.wrt_shape if wrt_shape is None else wrt_shape)

    @property
    def _storage(self):
        """The structure, or the flat matrix when the structure is flat."""
        return self._matrix if isinstance(self._structure, Flat) else self._structure

    def _like(self, storage, **changes) -> Jacobian:
        """A Jacobian like this one (names, shapes, order, layout) with other storage."""
        kw = dict(of=self.of, wrt=self.wrt, of_shape=self.of_shape, wrt_shape=self.wrt_shape,
                  order=self.order, transposed=self.transposed)
        kw.update(changes)
        return Jacobian(storage, kw.pop("of"), kw.pop("wrt"), kw.pop("of_shape"),
                        kw.pop("wrt_shape"), **kw)

    # --- size -----------------------------------------------------------------------------
    @property
    def name(self) -> str:
        name = f"d{self.of}/d{self.wrt}"
        return f"({name})^T" if self.transposed else name

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
        order = "" if self.order == "F" else ", C order"
        return (
            f"Jacobian {self.name}: {n_rows} x {n_cols}, nnz {self.nnz}, "
            f"density {100 * self.density:.1f}%{order}"
        )

    # --- the chain rule -------------------------------------------------------------------
    def __matmul__(self, other):
        """``J1 @ J2``: the chain rule, checked, through the factors; ``J @ x``: times an
        array (a vector or a matrix of columns), also through the factors."""
        if isinstance(other, Jacobian):
            _check_same_frame(self, other, "multiply")
            if self.transposed:  # (J2 J1)^T = J1^T J2^T: the chain read from the other end
                upper, lower = other, self
            else:
                upper, lower = self, other
            if upper.wrt != lower.of or upper.wrt_shape != lower.of_shape:
                raise ValueError(
                    f"chain rule mismatch: {self.name} (wrt {self.wrt} of shape "
                    f"{self.wrt_shape}) cannot multiply {other.name} (of {other.of} of shape "
                    f"{other.of_shape}); the inner names and shapes must be equal"
                )
            return self._like(product(self._structure, other._structure), of=upper.of,
                              wrt=lower.wrt, of_shape=upper.of_shape,
                              wrt_shape=lower.wrt_shape)
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
    def T(self) -> Jacobian:
        """The transpose ``J^T``, shape ``(wrt.size, of.size)``: the gradient operator (the
        same derivative in denominator layout), named ``(dZ2/dA1)^T``; ``J.T.T`` is ``J``.
        Transposes multiply in the other order: ``J1.T @ J2.T`` is ``(J2 @ J1).T``."""
        return self._like(self._structure.transpose(), transposed=not self.transposed)

    def gradient(self, cotangent: ArrayLike | None = None) -> NDArray:
        """The gradient ``J^T v``, reshaped by ``unvec`` to ``wrt_shape`` (section 3.2).

        Parameters
        ----------
        cotangent : array_like, optional
            ``v``, of ``of_shape`` (or already vec-ed in this Jacobian's order).  It may be
            omitted only when ``of`` is a scalar (one row), which is the note's case
            ``nabla J = (dJ/dX)^T``.

        Returns
        -------
        ndarray, shape wrt_shape
            Read back in this Jacobian's order (``J.order``).
        """
        if self.transposed:
            raise ValueError(f"{self.name} is already transposed: call gradient() on {self.T.name}")
        if cotangent is None:
            if self.shape[0] != 1:
                raise ValueError(
                    f"{self.name} has {self.shape[0]} rows: gradient() without a cotangent "
                    "needs the Jacobian of a scalar; pass the cotangent dJ/d" + self.of
                )
            v = np.ones(1, dtype=self.dtype)
        else:
            v = np.asarray(cotangent)
            if v.size != self.shape[0]:
                raise ValueError(
                    f"cotangent has {v.size} elements, {self.name} has {self.shape[0]} rows"
                )
            v = vec(v, self.order) if v.ndim > 1 else v
        return unvec(v @ self, self.wrt_shape, self.order)

    def toarray(self) -> NDArray:
        return self.matrix.toarray()

    def block(self, row_block, col_block) -> Jacobian:
        """The note's per-channel block of the stacked Jacobian, as a ``Jacobian``.

        Rows and columns are split into blocks of the variable's last two (spatial) axes,
        one block per channel, as the note writes ``d vecZ_j / d vecA_i``.  A block index is
        an int (the flat channel index) or a tuple over the leading axes: ``(n, c)`` for a
        batch ``(N, C, H, W)``, ``(j, i)`` for kernels ``(C_out, C_in, kh, kw)``.  A matrix
        side ``(n, N)`` (the FC layout, features x samples) is split into its columns, as the
        note's ``_vA`` is (one block per sample, or per output for ``W3``); a vector or scalar
        side is one block, index 0.  The block is named by its 0-based indices,
        ``dZ2[1]/dA1[0]``, with the block's own shapes (``(h, w)`` or ``(n,)``).

        Examples: ``dZ/dA.block(j, i)`` is ``d vecZ_j / d vecA_i``;
        ``dZ/dK.block(j, (j, i))`` is ``d vecZ_j / d vecK_{j,i}``.
        """
        if self.order != "F" or self.transposed:
            raise ValueError(f"block() splits the note's vec order; {self.name} is "
                             f"{'transposed' if self.transposed else 'in C order'}")
        rows, of_shape = _block_slice(self.of_shape, row_block, "row_block")
        cols, wrt_shape = _block_slice(self.wrt_shape, col_block, "col_block")
        return Jacobian(self.matrix[rows][:, cols], f"{self.of}{_index(row_block)}",
                        f"{self.wrt}{_index(col_block)}", of_shape, wrt_shape)

    # --- the sparse-array interface -------------------------------------------------------
    ndim = 2

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key):
        """``J[r, c]``, slices and fancy indices of the flat matrix, as scipy returns them."""
        return self.matrix[key]

    def __getattr__(self, name: str):
        """Read-only methods of the flat ``csr_array`` (``count_nonzero``, ``sum``, ``max``,
        ``tocoo``, ...) work on a Jacobian as on the matrix."""
        if name.startswith("_") or name not in _SPARSE_METHODS:
            raise AttributeError(f"'Jacobian' object has no attribute {name!r}")
        return getattr(self.matrix, name)

    def copy(self) -> Jacobian:
        return self._like(self._structure.map(lambda f: f.copy()))

    def astype(self, dtype) -> Jacobian:
        dtype = np.dtype(dtype)
        return self._like(self._structure.map(lambda f: f.astype(dtype)))

    def __array__(self, dtype=None, copy=None):
        """``np.asarray(J)``: the dense matrix (after a budget check of its size)."""
        if copy is False:
            raise ValueError("np.asarray(J, copy=False): a Jacobian has no dense buffer to share")
        check_budget(self.shape[0] * self.shape[1] * self.dtype.itemsize,
                     f"the dense array of {self.name}")
        dense = self.toarray()
        return dense if dtype is None else dense.astype(dtype)

    def __mul__(self, scalar) -> Jacobian:
        if not np.isscalar(scalar) or isinstance(scalar, (str, bytes)):
            return NotImplemented
        return self._like(self._structure.map(lambda f: f * scalar))

    __rmul__ = __mul__

    def __truediv__(self, scalar) -> Jacobian:
        if not np.isscalar(scalar) or isinstance(scalar, (str, bytes)):
            return NotImplemented
        return self * (1 / scalar)

    def __neg__(self) -> Jacobian:
        return self * -1

    def __add__(self, other) -> Jacobian:
        if not isinstance(other, Jacobian):
            return NotImplemented
        _check_same_frame(self, other, "add", same_names=True)
        return self._like(self.matrix + other.matrix)

    def __sub__(self, other) -> Jacobian:
        if not isinstance(other, Jacobian):
            return NotImplemented
        return self + (-other)

    # --- layouts and files ----------------------------------------------------------------
    def to_dense_tensor(self) -> NDArray:
        """The dense array of shape ``of_shape + wrt_shape`` in C order: entry
        ``[*i, *k] = d of[i] / d wrt[k]``, exactly what ``torch.func.jacrev`` and
        ``jax.jacrev`` return, for side-by-side checks."""
        if self.transposed:
            raise ValueError(f"{self.name} is transposed: call to_dense_tensor() on {self.T.name}")
        dense = np.asarray(convert_order(self, to="C"))
        return dense.reshape(self.of_shape + self.wrt_shape)

    def save(self, path) -> None:
        """Write the flat matrix with its names, shapes, order and layout to an ``.npz``.

        The file is a ``scipy.sparse.save_npz`` file (``scipy.sparse.load_npz`` reads the
        matrix) with one more entry; :func:`load_jacobian` reads all of it back.
        """
        import io
        import json

        buffer = io.BytesIO()
        sp.save_npz(buffer, self.matrix, compressed=True)
        buffer.seek(0)
        with np.load(buffer) as stored:
            arrays = dict(stored)
        meta = dict(of=self.of, wrt=self.wrt, of_shape=self.of_shape, wrt_shape=self.wrt_shape,
                    order=self.order, transposed=self.transposed)
        arrays["vecjac"] = np.array(json.dumps(meta))
        np.savez_compressed(path, **arrays)

    # --- pictures -------------------------------------------------------------------------
    def spy(self, ax=None, **kwargs):
        """Draw the sparsity pattern on ``ax`` (a new pyplot figure if ``None``) with the
        note's title, block grid and labels, as :func:`vecjac.plot.spy` does (``grid``,
        ``values``, ``cmap``, ...); returns the axes."""
        from . import plot

        if ax is None:
            import matplotlib.pyplot as plt

            ax = plt.figure(figsize=(6, 6), layout="constrained").add_subplot()
        plot.spy(self, ax, **kwargs)
        return ax

    def _repr_html_(self) -> str:
        """Notebooks: the summary and, for a matrix small enough, an inline spy picture."""
        import base64
        import html
        import io

        text = html.escape(repr(self)) + f"<br>stored as {html.escape(self.structure)}"
        if self.nnz > 2_000_000:
            return f"<p>{text}</p>"
        import matplotlib

        matplotlib.use("Agg", force=False)
        from matplotlib.figure import Figure

        fig = Figure(figsize=(3, 3), dpi=80)
        ax = fig.add_subplot()
        ax.spy(self.matrix, markersize=max(0.5, 3 - np.log10(self.nnz + 1)), color="black")
        ax.set_xticks([])
        ax.set_yticks([])
        fig.tight_layout()
        png = io.BytesIO()
        fig.savefig(png, format="png")
        data = base64.b64encode(png.getvalue()).decode("ascii")
        alt = html.escape(self.name)
        return f'<p>{text}</p><img alt="{alt}" src="data:image/png;base64,{data}">'


_SPARSE_METHODS = frozenset({
    "count_nonzero", "sum", "max", "min", "mean", "diagonal", "nonzero", "tocoo", "tocsc",
    "tocsr", "todense", "getnnz", "has_sorted_indices", "format", "multiply", "power",
    "argmax", "argmin", "trace", "maximum", "minimum",
})


def load_jacobian(path) -> Jacobian:
    """Read a Jacobian written by :meth:`Jacobian.save` (names, shapes, order, layout)."""
    import json

    with np.load(path) as stored:
        if "vecjac" not in stored:
            raise ValueError(f"{path} holds no vecjac Jacobian (no 'vecjac' entry): read a "
                             "plain sparse matrix with scipy.sparse.load_npz")
        meta = json.loads(str(stored["vecjac"]))
    matrix = sp.csr_array(sp.load_npz(path))
    return Jacobian(matrix, meta["of"], meta["wrt"], meta["of_shape"], meta["wrt_shape"],
                    order=meta["order"], transposed=meta["transposed"])


def _check_same_frame(a: Jacobian, b: Jacobian, what: str, same_names: bool = False) -> None:
    """Orders and layouts must agree (and, to add, names and shapes too)."""
    if a.order != b.order:
        raise ValueError(f"cannot {what} {a.name} in {a.order} order and {b.name} in "
                         f"{b.order} order: convert_order one of them first")
    if a.transposed != b.transposed:
        raise ValueError(f"cannot {what} {a.name} and {b.name}: one is transposed")
    if same_names and (a.of, a.wrt, a.of_shape, a.wrt_shape) != (
            b.of, b.wrt, b.of_shape, b.wrt_shape):
        raise ValueError(f"cannot {what} {a.name} {a.of_shape}->{a.wrt_shape} and {b.name} "
                         f"{b.of_shape}->{b.wrt_shape}: names and shapes must be equal")


def _index(index) -> str:
    return f"[{', '.join(map(str, index))}]" if isinstance(index, tuple) else f"[{index}]"


def _block_slice(shape: tuple[int, ...], index, name: str) -> tuple[slice, tuple]:
    """The rows (or columns) of block ``index`` of a side of ``shape``, and its shape."""
    if len(shape) < 2:
        lead, size, block = (), int(np.prod(shape)), shape
    elif len(shape) == 2:  # a matrix: its columns (samples of the FC layout (n, N))
        lead, size, block = (shape[1],), shape[0], shape[:1]
    else:
        lead, size, block = shape[:-2], shape[-1] * shape[-2], shape[-2:]
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
    return slice(flat * size, (flat + 1) * size), tuple(block)


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
        Shapes of the differentiated output and of the variable.  For a Jacobian the order
        may come second instead: ``convert_order(J, "C")``.
    to : {"C", "F"}
        ``"C"`` (default) converts a note-order matrix to C order; ``"F"`` does the inverse.

    Returns
    -------
    Same kind as the input: a Jacobian (same names and shapes, ``J.order == to``), a CSR
    array, or an ndarray.  A Jacobian already in order ``to`` is returned as it is (a bare
    matrix carries no order: ``to="C"`` always permutes it).
    """
    if isinstance(of_shape, str):  # convert_order(J, "C"): a Jacobian carries its shapes
        of_shape, to = None, of_shape
    _check_order(to)
    is_jacobian = isinstance(jacobian, Jacobian)
    if is_jacobian:
        if jacobian.order == to:  # already there: converting again would permute twice
            return jacobian
        if jacobian.transposed:
            return convert_order(jacobian.T, to=to).T
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
        return Jacobian(converted, jacobian.of, jacobian.wrt, of_shape, wrt_shape, order=to)
    return converted
