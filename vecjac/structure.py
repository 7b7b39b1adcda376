r"""The structure of a Jacobian whose blocks repeat, kept as its factors.

The note says it three times: ``d vecZ_j / d vecK_{j,i}`` is the same for every kernel ``j``
(section 3.1.5), the pooling Jacobian is the same for every channel (3.1.3), and a layer's
Jacobian with respect to its input does not depend on the sample.  A batch of ``N`` samples
makes every Jacobian block diagonal over samples (with respect to an activation) or stacks
the samples' rows (with respect to a shared parameter).  These classes store the pieces once
and multiply through them; the flat ``csr_array`` is built only when asked for.

=============  ===============================================  ================================
structure      flat matrix                                      who
=============  ===============================================  ================================
``Flat``       the matrix itself                                any product without structure
``Dense``      a dense array, every entry stored                the loss's row ``dJ/dA``
``Kron``       ``I_n (x) M``                                    conv wrt input, average pooling,
                                                                dense wrt input, flatten (C)
``Diagonal``   ``diag(d)``                                      element-wise activations
``Identity``   ``I_n`` (a ``Diagonal`` of ones, one stored)     flatten in the note's order
``BlockDiag``  ``diag(M_1, ..., M_n)``, distinct blocks          max / L2 pooling, softmax
``KronRows``   rows of sample ``s``: ``I_c (x) P_s``            conv wrt kernel, dense wrt weight
``Tile``       ``[G; G; ...; G]`` (``n`` times)                 biases
=============  ===============================================  ================================

Every class gives its flat ``materialise()``, ``rmatmat(R) = R @ J`` (rows of ``R`` are row
vectors such as ``dJ/dZ``) and ``matmat(V) = J @ V`` through its factors, its stored ``nbytes``
and the ``nnz`` of its flat form; :func:`product` is the chain rule through the factors, e.g.
``(I (x) A)(I (x) B) = I (x) (AB)``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from .budget import index_dtype
from .paths import shared_product

__all__ = ["Structure", "Flat", "Dense", "Lazy", "Kron", "Diagonal", "Identity", "BlockDiag",
           "Shared", "KronRows", "Tile", "product", "through_identity", "keeps_dtype",
           "per_sample_rmat", "per_sample_rmatmat"]


def _csr_bytes(m) -> int:
    return int(m.data.nbytes + m.indices.nbytes + m.indptr.nbytes)


def _size(m) -> str:
    return f"{m.shape[0]}x{m.shape[1]} nnz {m.nnz}"


def _csr(data, indices, indptr, shape) -> sp.csr_array:
    itype = index_dtype(int(len(data)), shape)
    return sp.csr_array((data, indices.astype(itype, copy=False),
                         indptr.astype(itype, copy=False)), shape=shape, copy=False)


class Structure(ABC):
    """Base class; ``shape`` is the flat matrix's shape."""

    shape: tuple[int, int]

    @property
    @abstractmethod
    def factors(self) -> tuple:
        """The stored pieces: sparse arrays, or a vector for a diagonal."""

    @property
    @abstractmethod
    def nnz(self) -> int:
        """Stored entries of the flat form, computed from the factors."""

    @property
    def nbytes(self) -> int:
        return sum(_csr_bytes(f) if sp.issparse(f) else int(f.nbytes) for f in self.factors)

    @property
    def dtype(self):
        return self.factors[0].dtype

    @abstractmethod
    def materialise(self) -> sp.csr_array:
        """The flat CSR matrix, entry for entry the builders' flat form."""

    def rmatmat(self, R: NDArray) -> NDArray:
        """``R @ J`` for ``R`` of shape ``(k, rows)``."""
        return np.asarray(R @ self.materialise())

    def matmat(self, V: NDArray) -> NDArray:
        """``J @ V`` for ``V`` of shape ``(cols, k)``."""
        return np.asarray(self.materialise() @ V)

    def transpose(self) -> Structure:
        return Flat(self.materialise().T.tocsr())

    @abstractmethod
    def map(self, fn) -> Structure:
        """The same structure with ``fn`` applied to every factor (scaling, ``astype``)."""


class Flat(Structure):
    """No structure: the flat matrix."""

    def __init__(self, matrix: sp.csr_array):
        self.matrix, self.shape = matrix, matrix.shape

    @property
    def factors(self):
        return (self.matrix,)

    @property
    def nnz(self) -> int:
        return int(self.matrix.nnz)

    def materialise(self):
        return self.matrix

    def rmatmat(self, R):
        if self.shape[0] == 1:  # a row such as dJ/dA: R @ J is an outer product
            return R * self.matrix.toarray()
        return np.asarray(R @ self.matrix)

    def map(self, fn):
        return Flat(sp.csr_array(fn(self.matrix)))

    def __str__(self) -> str:
        return f"flat {_size(self.matrix)}"


class Dense(Structure):
    """Every entry stored, as a dense ``(m, n)`` array ``G``: the loss's row ``dJ/dA``, whose
    flat form stores all ``n`` entries (zeros included).  Products are NumPy's, so a row
    costs no sparse-matrix machinery on the gradient path."""

    def __init__(self, G: NDArray):
        self.G = np.asarray(G)
        if self.G.ndim != 2:
            raise ValueError(f"a dense factor is a 2-D array, got shape {self.G.shape}")
        self.shape = self.G.shape

    @property
    def factors(self):
        return (self.G,)

    @property
    def nnz(self) -> int:
        return int(self.G.size)

    def __str__(self) -> str:
        return f"dense {self.shape[0]}x{self.shape[1]}"

    def map(self, fn):
        return Dense(fn(self.G))

    def materialise(self):
        m, n = self.shape
        indices = np.broadcast_to(np.arange(n), (m, n)).ravel()
        return _csr(self.G.ravel().copy(), indices, np.arange(0, m * n + 1, n), self.shape)

    def rmatmat(self, R):
        if self.shape[0] == 1:  # R @ J for a row J is an outer product
            return R * self.G
        return R @ self.G

    def matmat(self, V):
        return self.G @ V

    def transpose(self):
        return Dense(self.G.T)


class Lazy:
    """A factor built on first use: its ``shape`` and ``nnz`` known from the shapes alone, its
    CSR matrix from ``build()`` (a zero-argument function), then kept.  A builder hands one to
    :class:`Kron` or :class:`KronRows` when the gradient path may never need the matrix."""

    def __init__(self, build, shape, nnz: int):
        self.build, self.shape, self.nnz = build, (int(shape[0]), int(shape[1])), int(nnz)
        self._matrix: sp.csr_array | None = None

    @classmethod
    def of(cls, M) -> Lazy:
        """``M`` itself when it is a :class:`Lazy`, else ``M`` (a matrix) as one, built."""
        if isinstance(M, Lazy):
            return M
        M = sp.csr_array(M)
        factor = cls(None, M.shape, M.nnz)
        factor._matrix = M
        return factor

    @property
    def matrix(self) -> sp.csr_array:
        if self._matrix is None:
            self._matrix = sp.csr_array(self.build())
        return self._matrix


class Kron(Structure):
    """``I_n (x) M``: the same block ``M`` for each of ``n`` samples (or channels).

    ``M`` may be a :class:`Lazy` factor, built on first access to ``M``; ``rows`` (optional)
    is a function ``R -> R @ J`` that a builder gives when a direct kernel computes the
    product faster than the sparse factor (a convolution's transpose: one matrix product and
    col2im), and :meth:`rmatmat` then uses it: the matrix is the same either way.
    """

    def __init__(self, n: int, M, rows=None):
        self.n, self.block, self.rows = int(n), Lazy.of(M), rows
        m_o, m_i = self.block.shape
        self.shape = (self.n * m_o, self.n * m_i)

    @property
    def M(self) -> sp.csr_array:
        return self.block.matrix

    def with_rows(self, rows) -> Kron:
        """The same ``I_n (x) M`` (the block shared, built or not) with another ``rows``."""
        return Kron(self.n, self.block, rows=rows)

    @property
    def factors(self):
        return (self.M,)

    @property
    def nnz(self) -> int:
        return self.n * self.block.nnz

    def __str__(self) -> str:
        m_o, m_i = self.block.shape
        return f"kron(I_{self.n}, {m_o}x{m_i} nnz {self.block.nnz})"

    def map(self, fn):
        return Kron(self.n, fn(self.M))

    def materialise(self):
        return _repeated(self.M, self.n, self.shape, shift_columns=True)

    def rmatmat(self, R):
        if self.rows is not None:
            return self.rows(R)
        k = R.shape[0]
        out = R.reshape(k * self.n, self.M.shape[0]) @ self.M
        return np.asarray(out).reshape(k, self.shape[1])

    def matmat(self, V):
        m_i, k = self.M.shape[1], V.shape[1]
        blocks = V.reshape(self.n, m_i, k).transpose(1, 0, 2).reshape(m_i, self.n * k)
        out = np.asarray(self.M @ blocks).reshape(-1, self.n, k)
        return out.transpose(1, 0, 2).reshape(self.shape[0], k)

    def transpose(self):
        return Kron(self.n, self.M.T.tocsr())

    def coarsen(self, n: int) -> Kron:
        """The same matrix as ``I_n (x) (I_{self.n / n} (x) M)``."""
        if n == self.n:
            return self
        return Kron(n, Kron(self.n // n, self.M).materialise())


class Diagonal(Structure):
    """``diag(d)``: an element-wise map."""

    def __init__(self, d: NDArray):
        self.d = np.asarray(d)
        self.shape = (self.d.size, self.d.size)

    @property
    def factors(self):
        return (self.d,)

    @property
    def nnz(self) -> int:
        return int(self.d.size)

    def __str__(self) -> str:
        return f"diag({self.d.size})"

    def map(self, fn):
        return Diagonal(fn(self.d))

    def materialise(self):
        index = np.arange(self.d.size + 1)
        return _csr(self.d.copy(), index[:-1], index, self.shape)

    def rmatmat(self, R):
        return R * self.d

    def matmat(self, V):
        return self.d[:, None] * V

    def transpose(self):
        return self


class Identity(Diagonal):
    """``I_n``: the note's flatten ``B2 = vec(A2)``.  A :class:`Diagonal` whose ``d`` is a
    read-only view of a single 1 (every product rule of diagonals applies; one entry is
    stored); ``R @ I`` is a copy of ``R``, and a chain that owns its row skips the step."""

    def __init__(self, n: int, dtype=np.float64):
        super().__init__(np.broadcast_to(np.ones(1, dtype=dtype), (int(n),)))

    @property
    def nbytes(self) -> int:
        return int(self.d.itemsize)

    def __str__(self) -> str:
        return f"identity({self.d.size})"

    def rmatmat(self, R):
        return R.astype(np.result_type(R, self.d), copy=True)

    def matmat(self, V):
        return V.astype(np.result_type(V, self.d), copy=True)


class BlockDiag(Structure):
    """``diag(M_1, ..., M_n)`` with distinct blocks, stored as the flat matrix (it holds the
    blocks' entries once; a :class:`Lazy` one is built on first use); ``stacked()`` gives
    them one under the other.  ``rows`` (optional) is ``R -> R @ J`` without the matrix, as
    for :class:`Kron`."""

    def __init__(self, n: int, matrix, rows=None):
        self.n, self._flat, self.rows = int(n), Lazy.of(matrix), rows
        self.shape = self._flat.shape
        self.block = (self.shape[0] // self.n, self.shape[1] // self.n)

    @property
    def matrix(self) -> sp.csr_array:
        """The flat matrix (a :class:`Lazy` one is built here, on first use)."""
        return self._flat.matrix

    @property
    def factors(self):
        return (self.matrix,)

    @property
    def nnz(self) -> int:
        return self._flat.nnz

    def rmatmat(self, R):
        return self.rows(R) if self.rows is not None else super().rmatmat(R)

    def __str__(self) -> str:
        return f"blockdiag({self.n} x {self.block[0]}x{self.block[1]}, nnz {self.nnz})"

    def materialise(self):
        return self.matrix

    def map(self, fn):
        return BlockDiag(self.n, fn(self.matrix))

    def stacked(self) -> sp.csr_array:
        """``[M_1; ...; M_n]``, shape ``(rows, cols / n)``: columns shifted into block 0."""
        m = self.matrix
        sample = np.repeat(np.arange(self.n), self.block[0])
        shift = np.repeat(sample * self.block[1], np.diff(m.indptr))
        return _csr(m.data, m.indices - shift, m.indptr, (self.shape[0], self.block[1]))

    @classmethod
    def from_stacked(cls, n: int, S: sp.csr_array) -> BlockDiag:
        """The block diagonal of the ``n`` blocks stacked in ``S``."""
        S = sp.csr_array(S)
        rows = S.shape[0] // n
        shift = np.repeat(np.repeat(np.arange(n), rows) * S.shape[1], np.diff(S.indptr))
        return cls(n, _csr(S.data, S.indices + shift, S.indptr, (S.shape[0], n * S.shape[1])))

    def transpose(self):
        return BlockDiag(self.n, self.matrix.T.tocsr())


class Shared(BlockDiag):
    """``diag(M_1, ..., M_n)`` whose blocks share one sparsity pattern: the pattern kept once
    (``pattern``, entries 1.0) and the values as ``values[e, s]``, entry ``e`` of block ``s``.

    A per-sample diagonal makes one of a shared block, ``diag(d) (I_n (x) M)``, and products
    with ``I_n (x) A`` keep it (:func:`vecjac.paths.shared_product`: one sparse-times-dense
    product for all blocks), so an end-to-end Jacobian such as ``dZ2/dX`` through ``f'(Z1)``
    is one pattern and a value per sample.  The flat matrix (``matrix``, ``materialise``) is
    built when asked for.
    """

    def __init__(self, n: int, pattern: sp.csr_array, values: NDArray):
        self.n, self.pattern, self.values = int(n), sp.csr_array(pattern), np.asarray(values)
        if self.values.shape != (self.pattern.nnz, self.n):
            raise ValueError(f"values must have shape (pattern.nnz, n) = "
                             f"{(self.pattern.nnz, self.n)}, got {self.values.shape}")
        self.block = self.pattern.shape
        self.shape = (self.n * self.block[0], self.n * self.block[1])

    @classmethod
    def scaled(cls, M: sp.csr_array, d: NDArray, n: int, side: str) -> Shared:
        """``diag(d) (I_n (x) M)`` (``side="rows"``) or ``(I_n (x) M) diag(d)`` (``"cols"``)."""
        M = sp.csr_array(M)
        if not M.has_canonical_format:  # a copy: M may be a factor that others hold
            M = M.copy()
            M.sum_duplicates()
        same = np.broadcast_to(M.data[:, None], (M.nnz, n))  # I_n (x) M, not copied
        return cls(n, pattern_of(M), same).scale(d, side)

    @property
    def matrix(self) -> sp.csr_array:
        return self.materialise()

    @property
    def factors(self):
        return (self.pattern, self.values)

    @property
    def nbytes(self) -> int:
        return _csr_bytes(self.pattern) + int(self.values.nbytes)

    @property
    def dtype(self):
        return self.values.dtype

    @property
    def nnz(self) -> int:
        return self.n * int(self.pattern.nnz)

    def __str__(self) -> str:
        (h, w), nnz = self.block, self.pattern.nnz
        return f"shared({self.n} x {h}x{w}, nnz {nnz} each)"

    def materialise(self):
        return _repeated(self.pattern, self.n, self.shape, shift_columns=True,
                         data=self.values.T)

    def map(self, fn):
        return Shared(self.n, self.pattern, fn(self.values))

    def scale(self, d: NDArray, side: str) -> Shared:
        """``diag(d) @ self`` (``side="rows"``) or ``self @ diag(d)`` (``"cols"``)."""
        p = self.pattern
        at = _entry_rows(p) if side == "rows" else p.indices
        return Shared(self.n, p, self.values * np.asarray(d).reshape(self.n, -1)[:, at].T)

    def rmatmat(self, R):
        k, (h, w), p = R.shape[0], self.block, self.pattern
        weighted = R.reshape(k, self.n, h)[:, :, _entry_rows(p)] * self.values.T  # (k, n, nnz)
        columns = _csr(np.ones(p.nnz, dtype=self.values.dtype), p.indices,
                       np.arange(p.nnz + 1), (p.nnz, w))
        return np.asarray(weighted.reshape(k * self.n, p.nnz) @ columns).reshape(k, -1)

    def matmat(self, V):
        k, (h, w), p = V.shape[1], self.block, self.pattern
        weighted = V.reshape(self.n, w, k)[:, p.indices, :] * self.values.T[:, :, None]
        rows = _csr(np.ones(p.nnz, dtype=self.values.dtype), np.arange(p.nnz), p.indptr,
                    (h, p.nnz))
        out = np.asarray(rows @ weighted.transpose(1, 0, 2).reshape(p.nnz, self.n * k))
        return out.reshape(h, self.n, k).transpose(1, 0, 2).reshape(self.shape[0], k)

    def coarsen(self, n: int) -> Shared:
        """The same matrix as ``n`` blocks (``n`` divides ``self.n``): each coarse block is
        the block diagonal of ``self.n / n`` consecutive blocks, so the pattern is still shared."""
        if n == self.n:
            return self
        t = self.n // n
        values = self.values.reshape(-1, n, t).transpose(2, 0, 1).reshape(-1, n)
        return Shared(n, Kron(t, self.pattern).materialise(), values)

    def transpose(self):
        p = self.pattern
        order = sp.csr_array((np.arange(p.nnz), p.indices, p.indptr), shape=p.shape).T.tocsr()
        return Shared(self.n, pattern_of(order), self.values[order.data])


def _entry_rows(M: sp.csr_array) -> NDArray:
    """The row of every stored entry of a CSR matrix, in storage order."""
    return np.repeat(np.arange(M.shape[0]), np.diff(M.indptr))


def pattern_of(M) -> sp.csr_array:
    """The pattern of ``M``'s stored entries, every entry 1.0 (CSR)."""
    M = sp.csr_array(M)
    return _csr(np.ones(M.indices.size), M.indices, M.indptr, M.shape)


class KronRows(Structure):
    """Rows stacked over ``n`` samples, sample ``s``'s rows ``I_c (x) P_s``; ``P`` holds the
    blocks ``P_s`` one under the other, shape ``(n h, q)``."""

    def __init__(self, n: int, c: int, P, rows=None, per_sample=None):
        self.n, self.c, self.blocks, self.rows = int(n), int(c), Lazy.of(P), rows
        self.per_sample = per_sample  # R -> (n, k, c q): sample s's part of each row @ its rows
        n_rows, self.q = self.blocks.shape
        self.h = n_rows // self.n
        self.shape = (self.n * self.c * self.h, self.c * self.q)

    @property
    def P(self) -> sp.csr_array:
        """The samples' blocks ``P_s`` one under the other (built on first access if lazy)."""
        return self.blocks.matrix

    @property
    def factors(self):
        return (self.P,)

    @property
    def nnz(self) -> int:
        return self.c * self.blocks.nnz

    def __str__(self) -> str:
        return f"rows {self.n} x kron(I_{self.c}, {self.h}x{self.q}), P nnz {self.blocks.nnz}"

    def map(self, fn):
        return KronRows(self.n, self.c, fn(self.P))

    def materialise(self):
        n, c, h, q = self.n, self.c, self.h, self.q
        rows = (np.arange(n)[:, None, None] * h + np.arange(h)[None, None, :]).repeat(c, 1)
        G = self.P[rows.ravel()]  # the samples' rows, in the order (s, j, r)
        kernel = np.broadcast_to(np.arange(c)[None, :, None], (n, c, h)).ravel()
        shift = np.repeat(kernel * q, np.diff(G.indptr))
        return _csr(G.data, G.indices + shift, G.indptr, self.shape)

    def rmatmat(self, R):
        if self.rows is not None:
            return self.rows(R)
        k, (n, c, h) = R.shape[0], (self.n, self.c, self.h)
        rows = R.reshape(k, n, c, h).transpose(0, 2, 1, 3).reshape(k * c, n * h)
        return np.asarray(rows @ self.P).reshape(k, c * self.q)

    def matmat(self, V):
        k, (n, c, h, q) = V.shape[1], (self.n, self.c, self.h, self.q)
        out = np.asarray(self.P @ V.reshape(c, q, k).transpose(1, 0, 2).reshape(q, c * k))
        return out.reshape(n, h, c, k).transpose(0, 2, 1, 3).reshape(self.shape[0], k)


class Tile(Structure):
    """``[G; ...; G]``: the same rows for each of ``n`` samples (a shared bias)."""

    def __init__(self, n: int, G: sp.csr_array, rows=None):
        self.n, self.G = int(n), sp.csr_array(G)
        self.shape = (self.n * G.shape[0], G.shape[1])
        self.rows = rows  # optional R -> R @ J without G (the conv bias: sums per channel)

    @property
    def factors(self):
        return (self.G,)

    @property
    def nnz(self) -> int:
        return self.n * int(self.G.nnz)

    def __str__(self) -> str:
        return f"tile({self.n} x {_size(self.G)})"

    def map(self, fn):
        return Tile(self.n, fn(self.G))

    def materialise(self):
        return _repeated(self.G, self.n, self.shape, shift_columns=False)

    def rmatmat(self, R):
        if self.rows is not None:
            return self.rows(R)
        summed = np.einsum("kng->kg", R.reshape(R.shape[0], self.n, self.G.shape[0]))
        return np.asarray(summed @ self.G)

    def matmat(self, V):
        return np.tile(np.asarray(self.G @ V), (self.n, 1))


def _repeated(M: sp.csr_array, n: int, shape, shift_columns: bool, data=None
              ) -> sp.csr_array:
    """``n`` copies of ``M`` one under the other, each shifted right by its own width
    (``I_n (x) M``) or not (``[M; ...; M]``); every array made once, in its index dtype.
    ``data`` (shape ``(n, M.nnz)``, optional) gives each copy its own values."""
    (m_o, m_i), nnz = M.shape, M.nnz
    itype = index_dtype(n * nnz, shape)
    indptr = np.empty(n * m_o + 1, dtype=itype)
    indptr[0] = 0
    blocks = np.arange(n, dtype=itype)[:, None]
    indptr[1:].reshape(n, m_o)[...] = M.indptr[1:].astype(itype) + nnz * blocks
    indices = np.empty((n, nnz), dtype=itype)  # fresh arrays: the matrix owns them
    indices[...] = M.indices.astype(itype)[None, :] + (m_i * blocks if shift_columns else 0)
    values = M.data if data is None else data
    data = np.empty((n, nnz), dtype=np.asarray(values).dtype)
    data[...] = values
    return _csr(data.ravel(), indices.ravel(), indptr, shape)


# --- the chain rule through the factors --------------------------------------------------------
def product(a: Structure, b: Structure) -> Structure:
    """``a @ b`` as a structure, through the factors where a rule applies.

    Block-diagonal operands (``Kron``, ``BlockDiag``, ``Diagonal``) are first seen with the
    same number of diagonal blocks (the greatest common divisor: average pooling's
    ``I_{N C} (x) P`` meets a conv layer's ``I_N (x) M`` as ``I_N (x) (I_C (x) P)``).
    """
    kept = through_identity(a, b)
    if kept is not None:  # the note's flatten: the other factor as it is, no work
        return kept
    if isinstance(a, Diagonal) and isinstance(b, Diagonal):
        return Diagonal(a.d * b.d)
    if isinstance(a, Kron | BlockDiag | Diagonal) and isinstance(b, Kron | BlockDiag | Diagonal):
        n = int(np.gcd(_count(a), _count(b)))
        a, b = _coarsen(a, n), _coarsen(b, n)
        if isinstance(a, Kron) and isinstance(b, Kron):
            return Kron(n, sp.csr_array(a.M @ b.M))
        shared = _shared_product(a, b, n)
        if shared is not None:
            return shared
        if isinstance(b, Diagonal):
            return _scale_columns(a, b.d)
        if isinstance(a, Diagonal):
            return _scale_rows(b, a.d)
        if isinstance(b, Kron):
            return BlockDiag.from_stacked(n, sp.csr_array(a.stacked() @ b.M))
        if isinstance(a, Kron):
            return product(b.transpose(), a.transpose()).transpose()
        return BlockDiag(n, sp.csr_array(a.matrix @ b.matrix))
    return Flat(sp.csr_array(a.materialise() @ b.materialise()))


def through_identity(a: Structure, b: Structure) -> Structure | None:
    """``a @ b`` when one of them is an :class:`Identity` that leaves the other's dtype as it
    is (:func:`keeps_dtype`): the other one itself (shared, not copied); else ``None``."""
    for identity, other in ((b, a), (a, b)):
        if keeps_dtype(identity, other.dtype):
            return other
    return None


def keeps_dtype(s: Structure, dtype) -> bool:
    """Whether ``s`` is an :class:`Identity` whose product with a factor of ``dtype`` is that
    factor, unpromoted (the rule of :func:`through_identity`, which the chain-order cost
    model applies to sub-chains it has not multiplied)."""
    return isinstance(s, Identity) and np.result_type(dtype, s.dtype) == dtype


def _shared_product(a, b, n: int) -> Shared | None:
    """``a @ b`` as :class:`Shared` when one side is a shared block and the other a per-sample
    diagonal or a block of that pattern; ``None`` where no such rule applies."""
    if isinstance(a, Diagonal) and isinstance(b, Kron):
        return Shared.scaled(b.M, a.d, n, "rows")
    if isinstance(a, Kron) and isinstance(b, Diagonal):
        return Shared.scaled(a.M, b.d, n, "cols")
    if isinstance(a, Diagonal) and isinstance(b, Shared):
        return b.scale(a.d, "rows")
    if isinstance(a, Shared) and isinstance(b, Diagonal):
        return a.scale(b.d, "cols")
    if isinstance(a, Kron) and isinstance(b, Shared):
        return Shared(n, *shared_product(a.M, b.pattern, b.values))
    if isinstance(a, Shared) and isinstance(b, Kron):  # (A_s B)^T = B^T A_s^T
        return _shared_product(b.transpose(), a.transpose(), n).transpose()
    return None


def _count(s) -> int:
    return s.d.size if isinstance(s, Diagonal) else s.n


def _coarsen(s, n: int):
    """``s`` seen as ``n`` diagonal blocks (``n`` divides its count)."""
    if isinstance(s, Kron | Shared):
        return s.coarsen(n)
    if isinstance(s, BlockDiag) and s.n != n:
        return BlockDiag(n, s.matrix)
    return s


def _scale_rows(s: BlockDiag, d: NDArray) -> BlockDiag:
    """``diag(d) @ s``: every stored entry times ``d`` of its (global) row."""
    flat = s.materialise()
    data = flat.data * np.repeat(d, np.diff(flat.indptr))
    return BlockDiag(s.n, _csr(data, flat.indices, flat.indptr, flat.shape))


def _scale_columns(s: BlockDiag, d: NDArray) -> BlockDiag:
    """``s @ diag(d)``: every stored entry times ``d`` of its (global) column."""
    flat = s.materialise()
    return BlockDiag(s.n, _csr(flat.data * d[flat.indices], flat.indices, flat.indptr,
                               flat.shape))


# --- per-sample rows ---------------------------------------------------------------------------
def per_sample_rmat(s: Structure, row: NDArray, n: int) -> NDArray:
    """``row @ J`` split by sample, without the sum over samples: ``(n, cols)``.

    ``J``'s rows are sample-outermost (``n`` blocks of ``rows / n``), as every Jacobian with
    respect to a shared parameter is; output row ``k`` is ``row_k @ J_k``, the product of
    sample ``k``'s part of the row and sample ``k``'s rows of ``J``.  Summing the output over
    its first axis gives ``row @ J``.
    """
    return per_sample_rmatmat(s, np.asarray(row).reshape(1, -1), n)[:, 0]


def per_sample_rmatmat(s: Structure, R: NDArray, n: int) -> NDArray:
    """:func:`per_sample_rmat` for each of the ``k`` rows of ``R``: ``(n, k, cols)``.

    A conv kernel's :class:`KronRows` with a ``per_sample`` kernel runs it (one batched
    matrix product with the unfolded input); a shared bias's :class:`Tile` is one product
    with ``G``; otherwise each sample's part of each row becomes a row of a sparse matrix
    laid out over the samples' blocks of columns, times ``P`` (or the flat ``J``).
    """
    k, m = R.shape[0], s.shape[0] // n
    if isinstance(s, Tile):
        parts = R.reshape(k, n, m).transpose(1, 0, 2).reshape(n * k, m)
        return np.asarray(parts @ s.G).reshape(n, k, -1)
    if isinstance(s, KronRows) and s.n == n:  # sample t: sum_j e_j (x) (r_tj @ P_t)
        if s.per_sample is not None:
            return s.per_sample(R)
        rows = _sample_rows(R.ravel(), k * n * s.c, s.h, s.n * s.h, s.c)
        out = np.asarray((rows @ s.P).toarray()).reshape(k, n, s.c * s.q)
        return out.transpose(1, 0, 2)
    out = np.asarray((_sample_rows(R.ravel(), k * n, m, s.shape[0], 1) @ s.materialise())
                     .toarray())
    return out.reshape(k, n, -1).transpose(1, 0, 2)


def _sample_rows(row: NDArray, n_rows: int, length: int, n_cols: int, per_block: int):
    """A sparse ``(n_rows, n_cols)`` matrix whose row ``t`` holds ``row[t*length:(t+1)*length]``
    in the columns of block ``t // per_block`` (each block ``length`` columns wide; the
    blocks start again from the first after the last, for the next row of a matrix)."""
    t = np.arange(n_rows)
    first = (t // per_block) % (n_cols // length) * length
    indices = (first[:, None] + np.arange(length)[None, :]).ravel()
    indptr = np.arange(0, n_rows * length + 1, length)
    return _csr(row, indices, indptr, (n_rows, n_cols))
