r"""The cheapest bracketing of a chain of sparse Jacobians (matrix chain ordering).

An end-to-end Jacobian is a chain product ``F_0 F_1 ... F_{L-1}`` of the named Jacobians, e.g.
``dA3/dX = dA3/dZ3 dZ3/dB2 ... dZ1/dX``.  Every bracketing gives the same matrix; the work
does not.  Reverse accumulation is the left-deep bracketing ``((F_0 F_1) F_2) ...``, forward
accumulation the right-deep ``F_0 (F_1 (F_2 ...))``; any other binary tree is allowed too.
Choosing the cheapest is the *Jacobian chain bracketing problem* (U. Naumann, *The Art of
Differentiating Computer Programs*, SIAM 2012); for dense factors it is the textbook matrix
chain ordering problem, solved by dynamic programming over the sub-chains ``F_i ... F_j``
(Godbole 1973; Cormen et al., *Introduction to Algorithms*, section 15.2).  Here the factors
are sparse and structured, so the cost of a product comes from their sparsity.

**Cost of one product** ``A @ B``: its multiply-adds as :func:`vecjac.structure.product`
performs it.  For flat sparse operands that is the Gustavson (row-by-row, scipy's) count

    cost(A B) = sum_t nnz(A[:, t]) * nnz(B[t, :]),

every stored ``a_it`` meets every stored ``b_tj``.  Structured operands multiply through their
factors, and the count follows: ``(I_n (x) M_a)(I_n (x) M_b) = I_n (x) (M_a M_b)`` costs one
block's count (``1/n`` of the flat count); a diagonal scales the other operand, ``nnz`` of it;
every other product (block-diagonal, stacked rows, flat) is the flat count of the flat
operands.  Building flat forms (``materialise``) and copies are not counted.

**Estimates for the sub-chains.**  The dynamic programme needs the column counts of
``F_i ... F_k`` and the row counts of ``F_{k+1} ... F_j`` before anything is multiplied.  Each
sub-chain gets a :class:`Sketch`, computed once (``L (L + 1) / 2`` of them):

* while a sub-chain is *block diagonal* (``Kron``, ``Diagonal``, ``BlockDiag``: every
  Jacobian with respect to an activation, one block per sample or channel) its sketch is
  the exact boolean pattern of **one block**, multiplied block by block.  ``BlockDiag``
  blocks (max and L2 pooling, softmax) are assumed to share the pattern of the first block;
* a block-diagonal sub-chain times a parameter's Jacobian (``KronRows``, ``Tile``: one block
  of rows per sample) keeps **one sample's rows**, exactly, under the same assumption; the
  dense loss row ``dJ/dA`` times a block-diagonal sub-chain keeps **one sample's part** of
  the row (the samples side by side, ``"cols"``), and the whole row once a parameter's
  Jacobian sums the samples;
* anything else (a flat factor, e.g. with ``structured=False``, or a product after one) is
  kept as **counts only**: the row counts of ``F_i S`` are
  ``min(n_cols, pattern(F_i) @ rows(S))`` and the column counts of ``S F_j`` are
  ``min(n_rows, cols(S) @ pattern(F_j))``, through the exact patterns of the single factors
  ``F_i``, ``F_j``: an upper bound (rows that share a column are counted once per row),
  capped at the dimension.  It can overestimate a chain of convolutions many times over;
  the ranking of bracketings suffers less.

The pattern of a sub-chain is multiplied through its cheapest split, a diagonal changes no
pattern, so the estimate costs about one sample's products per sub-chain (``L^2 / 2`` of
them, against ``L - 1`` products of the whole batch for one order); it is exact when every
sample has the same pattern (average pooling, smooth activations) and no product cancels to
an exact zero.  Given the sketches, the dynamic programme is plain Python over the table of
sub-chains, ``O(L^3)`` split costs, each one dot product of count vectors (``L`` is ~10).

Reverse and forward are bracketings in the same space and priced by the same model, so the
predicted cost of :func:`optimal_bracketing` is never more than theirs.

A bracketing is a binary tree of factor indices: an ``int`` (one factor) or a pair
``(left, right)``; ``format_bracketing`` writes it with the factors' names,
``((dA3/dZ3 dZ3/dB2) (dB2/dA2 dA2/dI2))``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from .jacobian import Jacobian
from .structure import (
    BlockDiag,
    Diagonal,
    Flat,
    Kron,
    KronRows,
    Shared,
    Structure,
    Tile,
    keeps_dtype,
    pattern_of,
    through_identity,
)

__all__ = ["ORDERS", "Sketch", "ChainCosts", "ChainReport", "gustavson_count", "product_cost",
           "reverse_bracketing", "forward_bracketing", "optimal_bracketing", "bracketing",
           "format_bracketing", "multiply_chain"]

ORDERS = ("reverse", "forward", "optimal")
_BLOCK_KINDS = ("diagonal", "kron", "blockdiag")  # structure.product's block-by-block rules

Counts = tuple[NDArray, int]  # a vector of counts, repeated (tiled) so many times


# --- counting ----------------------------------------------------------------------------------
def gustavson_count(A, B) -> int:
    """``sum_t nnz(A[:, t]) * nnz(B[t, :])``: the multiply-adds of the sparse product ``A B``.

    Parameters
    ----------
    A, B : scipy sparse arrays or matrices, shapes ``(m, k)`` and ``(k, n)``
        Stored entries count, explicit zeros included (the row-by-row algorithm visits them).

    Returns
    -------
    int
    """
    A, B = _as_csr(A, "A"), _as_csr(B, "B")
    if A.shape[1] != B.shape[0]:
        raise ValueError(f"A has {A.shape[1]} columns but B has {B.shape[0]} rows")
    return _tiled_dot(_pattern_counts(A)[1], _pattern_counts(B)[0])


def product_cost(a, b) -> int:
    """The multiply-adds of ``a @ b`` as :func:`vecjac.structure.product` performs it.

    Computed from the operands' factors, without multiplying: the Gustavson count of the flat
    operands, divided by ``n`` for ``(I_n (x) M_a)(I_n (x) M_b)`` (one block is multiplied).

    Parameters
    ----------
    a, b : Jacobian, :class:`vecjac.structure.Structure` or scipy sparse array
    """
    a, b = _as_structure(a, "a"), _as_structure(b, "b")
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"a has {a.shape[1]} columns but b has {b.shape[0]} rows")
    if through_identity(a, b) is not None:  # the note's flatten: nothing is multiplied
        return 0
    per_block = isinstance(a, Kron) and isinstance(b, Kron)
    return _block_cost(_exact_counts(a)[1], _exact_counts(b)[0],
                       math.gcd(a.n, b.n) if per_block else 1)


def _block_cost(cols: Counts, rows: Counts, blocks: int) -> int:
    """The flat Gustavson count, or one block's (``/ blocks``) when both are ``I (x) M``."""
    return _tiled_dot(cols, rows) // blocks


def _tiled_dot(x: Counts, y: Counts) -> int:
    """``tile(x) @ tile(y)`` over one common period, times the number of periods."""
    (u, nu), (v, nv) = x, y
    total = u.size * nu
    if total != v.size * nv:
        raise ValueError(f"count vectors of lengths {total} and {v.size * nv} do not meet")
    if total == 0:
        return 0
    period = math.lcm(u.size, v.size)
    dot = np.tile(u, period // u.size).astype(np.int64) @ np.tile(v, period // v.size)
    return int(dot) * (total // period)


def _pattern_counts(m) -> tuple[Counts, Counts]:
    """Stored entries per row and per column of a CSR matrix."""
    rows = np.diff(m.indptr).astype(np.int64)
    cols = np.bincount(m.indices, minlength=m.shape[1]).astype(np.int64)
    return (rows, 1), (cols, 1)


def _exact_counts(s: Structure) -> tuple[Counts, Counts]:
    """Row and column counts of the flat form of ``s``, from its factors."""
    if isinstance(s, Kron):
        (rows, _), (cols, _) = _pattern_counts(s.M)
        return (rows, s.n), (cols, s.n)
    if isinstance(s, Diagonal):
        one = np.ones(1, dtype=np.int64)
        return (one, s.d.size), (one, s.d.size)
    if isinstance(s, KronRows):  # rows in the order (sample, kernel, row of P_s)
        (rows, _), (cols, _) = _pattern_counts(s.P)
        per_sample = np.broadcast_to(rows.reshape(s.n, 1, s.h), (s.n, s.c, s.h))
        return (per_sample.ravel(), 1), (cols, s.c)
    if isinstance(s, Tile):
        (rows, _), (cols, _) = _pattern_counts(s.G)
        return (rows, s.n), (s.n * cols, 1)
    if isinstance(s, Shared):
        (rows, _), (cols, _) = _pattern_counts(s.pattern)
        return (rows, s.n), (cols, s.n)
    if isinstance(s, Flat | BlockDiag):
        return _pattern_counts(s.matrix)
    return _pattern_counts(s.materialise())


# --- sketches of sub-chains ---------------------------------------------------------------------
@dataclass(frozen=True)
class Sketch:
    """What the cost model knows of a product before it is computed.

    Attributes
    ----------
    kind : {"diagonal", "kron", "blockdiag", "rows", "cols", "flat"}
        How :func:`vecjac.structure.product` will see the product: the three block-diagonal
        kinds multiply block by block; ``"rows"`` (``KronRows``, ``Tile``: one block of rows
        per sample), ``"cols"`` (a dense row such as ``dJ/dA``: the samples side by side) and
        ``"flat"`` go through the flat product.
    shape : (int, int)
        The flat shape.
    n : int
        Diagonal blocks (block kinds), stacked samples (``"rows"``) or samples side by side
        (``"cols"``); 1 for ``"flat"``.
    block : csr_array or None
        The pattern (entries 1.0) of one diagonal block, of one sample's rows or columns, or
        of the whole matrix for a flat factor; ``None`` for a flat product known by its
        counts only.
    rows, cols : (ndarray, int)
        Stored entries per row and per column of the flat form, as a vector and the number
        of times it repeats.
    """

    kind: str
    shape: tuple[int, int]
    n: int
    block: sp.csr_array | None
    rows: Counts
    cols: Counts

    @property
    def nnz(self) -> int:
        """Stored entries of the flat form (estimated for a counts-only sketch)."""
        return int(self.rows[0].sum()) * self.rows[1]

    @classmethod
    def of(cls, s: Structure) -> Sketch:
        """The exact sketch of a factor (up to the representative block or sample)."""
        if isinstance(s, Diagonal):
            return cls.made("diagonal", s.d.size, pattern_of(sp.eye_array(1, format="csr")))
        if isinstance(s, Kron):
            return cls.made("kron", s.n, pattern_of(s.M))
        if isinstance(s, Shared):
            return cls.made("blockdiag", s.n, pattern_of(s.pattern))
        if isinstance(s, BlockDiag):
            (h, w), m = s.block, s.matrix
            end = int(m.indptr[h])
            first = sp.csr_array((m.data[:end], m.indices[:end], m.indptr[: h + 1]), shape=(h, w))
            return cls.made("blockdiag", s.n, pattern_of(first))
        if isinstance(s, KronRows):  # sample 0's rows, I_c (x) P_0
            return cls.made("rows", s.n, Kron(s.c, pattern_of(s.P[: s.h])).materialise())
        if isinstance(s, Tile):
            return cls.made("rows", s.n, pattern_of(s.G))
        block = pattern_of(s.materialise())
        if block.shape[0] == 1 and block.nnz == block.shape[1] > 0:  # a dense row: dJ/dA
            return cls.made("cols", block.shape[1], pattern_of(sp.csr_array(np.ones((1, 1)))))
        return cls.made("flat", 1, block)

    @classmethod
    def made(cls, kind: str, n: int, block: sp.csr_array, like: Sketch | None = None
             ) -> Sketch:
        """The sketch of ``n`` copies of ``block`` laid out as ``kind`` says (the counts of
        ``like`` when the pattern is that of ``like``, seen with fewer blocks)."""
        if like is not None:  # I_k (x) B has the counts of B, repeated: keep them
            return cls(kind, like.shape, n, block, like.rows, like.cols)
        (h, w), ((rows, _), (cols, _)) = block.shape, _pattern_counts(block)
        shape, rows_, cols_ = {
            "rows": ((n * h, w), (rows, n), (n * cols, 1)),
            "cols": ((h, n * w), (n * rows, 1), (cols, n)),
            "flat": ((h, w), (rows, 1), (cols, 1)),
        }.get(kind, ((n * h, n * w), (rows, n), (cols, n)))
        return cls(kind, shape, n, block, rows_, cols_)

    def matvec(self, v: NDArray) -> NDArray:
        """``pattern @ v`` for the flat pattern (not for a counts-only sketch)."""
        B = self.block
        if self.kind in _BLOCK_KINDS:
            return np.asarray(B @ v.reshape(self.n, B.shape[1]).T).T.ravel()
        if self.kind == "rows":
            return np.tile(B @ v, self.n)
        if self.kind == "cols":
            return np.asarray(B @ v.reshape(self.n, B.shape[1]).T).sum(axis=1)
        return B @ v

    def vecmat(self, v: NDArray) -> NDArray:
        """``v @ pattern`` for the flat pattern (not for a counts-only sketch)."""
        B = self.block
        if self.kind in _BLOCK_KINDS:
            return np.asarray(B.T @ v.reshape(self.n, B.shape[0]).T).T.ravel()
        if self.kind == "rows":
            return B.T @ v.reshape(self.n, B.shape[0]).sum(axis=0)
        if self.kind == "cols":
            return np.tile(B.T @ v, self.n)
        return B.T @ v


def _coarse_block(s: Sketch, g: int) -> sp.csr_array:
    """One of ``g`` blocks of a sketch of ``n`` (``g`` divides ``n``): ``I_{n/g} (x) B`` for
    diagonal blocks, ``n/g`` copies of ``B`` one under the other for rows, side by side for
    columns."""
    k = s.n // g
    if k == 1:
        return s.block
    if s.kind == "rows":
        return sp.vstack([s.block] * k, format="csr")
    if s.kind == "cols":
        return sp.hstack([s.block] * k, format="csr")
    return Kron(k, s.block).materialise()


def _sketch_product(a: Sketch, b: Sketch) -> Sketch:
    """The sketch of ``a @ b``, one block (or one sample) multiplied as patterns.

    ``a`` is block diagonal or a row of samples side by side (``"cols"``), ``b`` block
    diagonal or samples' rows stacked (``"rows"``); a diagonal leaves the other's pattern as
    it is.  A row of samples times stacked rows sums over the samples: one flat pattern.
    """
    g = math.gcd(a.n, b.n)
    left, right = _coarse_block(a, g), _coarse_block(b, g)
    if a.kind == "cols" and b.kind == "rows":
        return Sketch.made("flat", 1, pattern_of(left @ right))
    if a.kind in ("cols", "rows") or b.kind in ("cols", "rows"):
        kind = a.kind if a.kind == "cols" else b.kind
    else:
        kind = a.kind if a.kind == b.kind else "blockdiag"
    if a.kind == "diagonal":
        return Sketch.made(kind, g, right, like=b if _layout(kind) == _layout(b.kind) else None)
    if b.kind == "diagonal":
        return Sketch.made(kind, g, left, like=a if _layout(kind) == _layout(a.kind) else None)
    return Sketch.made(kind, g, pattern_of(left @ right))


def _layout(kind: str) -> str:
    """How a kind lays its counts out: the block kinds alike, "rows", "cols", "flat"."""
    return "blocks" if kind in _BLOCK_KINDS else kind


def _expand(c: Counts) -> NDArray:
    return np.tile(c[0], c[1])


class ChainCosts:
    """The cost model of a chain: a :class:`Sketch` of every sub-chain and the split costs.

    Parameters
    ----------
    factors : sequence of Jacobian (or Structure)
        ``F_0, ..., F_{L-1}``, in the order of the product.

    Attributes
    ----------
    sketches : dict
        ``(i, j) -> Sketch`` of ``F_i ... F_j``.
    """

    def __init__(self, factors):
        factors = list(factors)
        if not factors:
            raise ValueError("factors must hold at least one Jacobian")
        structures = [_as_structure(f, f"factors[{k}]") for k, f in enumerate(factors)]
        for k, (upper, lower) in enumerate(zip(structures[:-1], structures[1:], strict=True)):
            if upper.shape[1] != lower.shape[0]:
                raise ValueError(f"factors[{k}] has {upper.shape[1]} columns but "
                                 f"factors[{k + 1}] has {lower.shape[0]} rows")
        self.L = len(structures)
        self._structures = structures
        self.sketches = {(k, k): Sketch.of(s) for k, s in enumerate(structures)}
        self._dots: dict[tuple[int, int, int], int] = {}
        for length in range(2, self.L + 1):
            for i in range(self.L - length + 1):
                j = i + length - 1
                self.sketches[i, j] = self._sketch(i, j)

    def _dot(self, i: int, k: int, j: int) -> int:
        """The flat Gustavson count of ``(F_i ... F_k) @ (F_{k+1} ... F_j)``, kept."""
        key = (i, k, j)
        if key not in self._dots:
            a, b = self.sketches[i, k], self.sketches[k + 1, j]
            self._dots[key] = _tiled_dot(a.cols, b.rows)
        return self._dots[key]

    def _pattern_work(self, i: int, k: int, j: int) -> int:
        """What :func:`_sketch_product` multiplies for this split: one block's count
        (nothing beside a diagonal, which leaves the other pattern as it is)."""
        a, b = self.sketches[i, k], self.sketches[k + 1, j]
        if "diagonal" in (a.kind, b.kind):
            return 0
        return self._dot(i, k, j) // math.gcd(a.n, b.n)

    def _sketch(self, i: int, j: int) -> Sketch:
        """The sketch of ``F_i ... F_j`` from those of its sub-chains."""
        S = self.sketches
        head, tail = S[i, j - 1], S[j, j]
        if head.kind in _BLOCK_KINDS + ("cols",) and tail.kind in _BLOCK_KINDS + ("rows",):
            # a pattern, through the split that multiplies the fewest entries
            k = min(range(i, j), key=lambda k: self._pattern_work(i, k, j))
            return _sketch_product(S[i, k], S[k + 1, j])
        # counts only, through the exact patterns of the end factors F_i and F_j
        first, rest = S[i, i], S[i + 1, j]
        shape = (first.shape[0], tail.shape[1])
        rows = np.minimum(first.matvec(_expand(rest.rows)), shape[1]).astype(np.int64)
        cols = np.minimum(tail.vecmat(_expand(head.cols)), shape[0]).astype(np.int64)
        return Sketch("flat", shape, 1, None, (rows, 1), (cols, 1))

    def __len__(self) -> int:
        return self.L

    def _through_identity(self, i: int, k: int, j: int) -> bool:
        """Whether ``(F_i ... F_k) @ (F_{k+1} ... F_j)`` has an :class:`Identity` on one side
        that keeps the other side's dtype: :func:`~vecjac.structure.product` then returns the
        other side (:func:`~vecjac.structure.through_identity`), multiplying nothing."""
        F = self._structures
        sides = ([(i, F[k + 1 : j + 1])] if i == k else []) + (
            [(j, F[i : k + 1])] if k + 1 == j else [])
        return any(keeps_dtype(F[leaf], np.result_type(*(f.dtype for f in others)))
                   for leaf, others in sides)

    def split(self, i: int, k: int, j: int) -> int:
        """Predicted multiply-adds of ``(F_i ... F_k) @ (F_{k+1} ... F_j)``."""
        if self._through_identity(i, k, j):
            return 0
        a, b = self.sketches[i, k], self.sketches[k + 1, j]
        blocks = math.gcd(a.n, b.n) if a.kind == b.kind == "kron" else 1
        return self._dot(i, k, j) // blocks

    def cost(self, tree) -> int:
        """Predicted multiply-adds of a bracketing: the sum over its products."""
        if isinstance(tree, int):
            return 0
        (i, k), (_, j) = _span(tree[0]), _span(tree[1])
        return self.cost(tree[0]) + self.cost(tree[1]) + self.split(i, k, j)


# --- bracketings ---------------------------------------------------------------------------------
def reverse_bracketing(L: int):
    """``((F_0 F_1) F_2) ...``: from the output down, as back-propagation."""
    tree = 0
    for k in range(1, L):
        tree = (tree, k)
    return tree


def forward_bracketing(L: int):
    """``F_0 (F_1 (F_2 ...))``: from the variable up, as forward-mode differentiation."""
    tree = L - 1
    for k in range(L - 2, -1, -1):
        tree = (k, tree)
    return tree


def optimal_bracketing(costs: ChainCosts):
    """The bracketing of least predicted cost, by dynamic programming over the sub-chains.

    ``best[i, j] = min_k best[i, k] + best[k + 1, j] + split(i, k, j)``, the matrix chain
    ordering recurrence, ``O(L^3)`` split costs.  Ties go to the bracketing whose
    intermediate products hold fewer entries (less memory to write), then to the smallest
    ``k``.

    Returns
    -------
    tree, int
        The bracketing and its predicted cost.
    """
    if not isinstance(costs, ChainCosts):
        raise TypeError(f"costs must be a ChainCosts, got {type(costs).__name__}")
    L = len(costs)
    best = {(i, i): (0, 0, i) for i in range(L)}  # (cost, nnz of the intermediates, tree)
    for length in range(2, L + 1):
        for i in range(L - length + 1):
            j = i + length - 1
            held = costs.sketches[i, j].nnz if length < L else 0
            options = []
            for k in range(i, j):
                (cl, nl, tl), (cr, nr, tr) = best[i, k], best[k + 1, j]
                options.append((cl + cr + costs.split(i, k, j), nl + nr + held, k, (tl, tr)))
            cost, held, _, tree = min(options, key=lambda option: option[:3])
            best[i, j] = (cost, held, tree)
    cost, _, tree = best[0, L - 1]
    return tree, cost


def bracketing(order: str, costs_or_length):
    """The bracketing of ``order`` ("reverse", "forward" or "optimal"); "optimal" needs a
    :class:`ChainCosts`, the others a ``ChainCosts`` or the number of factors."""
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    if order == "optimal":
        return optimal_bracketing(costs_or_length)[0]
    L = len(costs_or_length) if isinstance(costs_or_length, ChainCosts) else int(costs_or_length)
    return reverse_bracketing(L) if order == "reverse" else forward_bracketing(L)


def format_bracketing(tree, names) -> str:
    """The bracketing written with the factors' names: ``((dA3/dZ3 dZ3/dB2) dB2/dA2)``."""
    if isinstance(tree, int):
        return str(names[tree])
    return f"({format_bracketing(tree[0], names)} {format_bracketing(tree[1], names)})"


def _span(tree) -> tuple[int, int]:
    """The first and the last factor of a (sub-)bracketing."""
    first = last = tree
    while not isinstance(first, int):
        first = first[0]
    while not isinstance(last, int):
        last = last[1]
    return first, last


# --- performing a bracketing ---------------------------------------------------------------------
class ChainReport(list):
    """The products performed, in order (one dict each), with the totals as attributes.

    Each step holds ``product`` (its name), ``shape``, ``nnz`` (of its flat form),
    ``structure``, ``bracketing`` (of this sub-product), ``cost`` (its multiply-adds, counted
    from the operands by :func:`product_cost`) and ``predicted`` (the model's estimate).

    Attributes
    ----------
    order : str
    bracketing : str
        The whole bracketing with the factors' names.
    predicted_cost, performed_cost : int
        Multiply-adds predicted by :class:`ChainCosts` and counted on the products performed.
    predicted : dict
        Predicted cost of each of ``ORDERS``, for comparison.
    """

    def __init__(self, steps=(), **totals):
        super().__init__(steps)
        self.order = totals.get("order")
        self.bracketing = totals.get("bracketing", "")
        self.predicted_cost = totals.get("predicted_cost", 0)
        self.performed_cost = totals.get("performed_cost", 0)
        self.predicted = totals.get("predicted", {})

    def as_dict(self) -> dict:
        """The totals (not the steps) as a plain dict."""
        return dict(order=self.order, bracketing=self.bracketing,
                    predicted_cost=self.predicted_cost, performed_cost=self.performed_cost,
                    predicted=dict(self.predicted))


def multiply_chain(factors, tree, costs: ChainCosts | None = None):
    """Multiply ``factors`` (Jacobians) as ``tree`` brackets them.

    Parameters
    ----------
    factors : sequence of Jacobian
    tree : int or nested pairs
        A bracketing of ``range(len(factors))`` (:func:`bracketing`).
    costs : ChainCosts, optional
        Given, the steps carry the predicted and the counted cost of each product (counting
        reads the operands' index arrays, so it is left out when not asked for).

    Returns
    -------
    Jacobian, list of dict
        The product and one dict per product, in the order performed.
    """
    factors = list(factors)
    names = [f.name for f in factors]
    if sorted(_leaves(tree)) != list(range(len(factors))):
        raise ValueError(f"tree must bracket the factors 0..{len(factors) - 1} in order, "
                         f"got {tree!r}")
    steps: list[dict] = []

    def walk(node):
        if isinstance(node, int):
            return factors[node]
        left, right = walk(node[0]), walk(node[1])
        step = {}
        if costs is not None:
            (i, k), (_, j) = _span(node[0]), _span(node[1])
            step = {"cost": product_cost(left, right), "predicted": costs.split(i, k, j)}
        product = left @ right
        steps.append({"product": product.name, "shape": product.shape, "nnz": product.nnz,
                      "structure": product.structure,
                      "bracketing": format_bracketing(node, names), **step})
        return product

    return walk(tree), steps


def _leaves(tree) -> list[int]:
    if isinstance(tree, int):
        return [tree]
    if not (isinstance(tree, tuple) and len(tree) == 2):
        raise TypeError(f"a bracketing is an int or a pair of bracketings, got {tree!r}")
    left, right = _leaves(tree[0]), _leaves(tree[1])
    if left and right and left[-1] + 1 != right[0]:
        raise ValueError(f"a bracketing keeps the factors in order, got {tree!r}")
    return left + right


def _as_structure(x, name: str) -> Structure:
    if isinstance(x, Jacobian):
        return x._structure  # the stored form, which products go through
    if isinstance(x, Structure):
        return x
    if sp.issparse(x):
        return Flat(sp.csr_array(x))
    raise TypeError(f"{name} must be a Jacobian, a vecjac.structure.Structure or a scipy "
                    f"sparse array, got {type(x).__name__}")


def _as_csr(x, name: str) -> sp.csr_array:
    if not sp.issparse(x):
        raise TypeError(f"{name} must be a scipy sparse array or matrix, got {type(x).__name__}")
    return sp.csr_array(x)
