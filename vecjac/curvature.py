r"""Beyond gradients: the exact generalized Gauss-Newton matrix and the empirical NTK.

Both are products of the chain's Jacobians with respect to the parameters, stacked side by
side in ``params`` order (each parameter in vec order) into one matrix per output,

    J_theta = d vec(out) / d theta = [d out/d K1  d out/d b1  ...  d out/d W3  d out/d b3],

with ``m N`` rows, sample-outermost (``m`` entries of ``vec(out)`` per sample), built in one
reverse sweep down the chain (the products of section 3.2 with a block of rows in place of
the loss's single row).

* **GGN.**  Split the loss at the last layer's output ``Z_L``: ``J = l(Z_L)`` where ``l``
  is everything above ``Z_L`` (the output activation and the loss).  Then
  ``G = J_theta^T H J_theta`` with ``H = d^2 l / d vecZ_L^2``, block diagonal over samples:
  for softmax with cross-entropy ``diag(p) - p p^T`` per sample, for sigmoid with binary
  cross-entropy ``diag(p (1 - p))``, for squared error on ``Z_L`` the identity.  ``H`` is
  carried down the layers above ``Z_L`` by the second-order chain rule
  ``H_a = F^T H_b F + sum_i g_i d^2 b_i / da^2`` (``F = db/da``, ``g = dl/db``).
* **NTK.**  ``Theta(x1, x2) = J_theta(x1) J_theta(x2)^T``, one ``m x m`` block per pair of
  samples, laid out ``(N1, N2, m, m)`` as in the torch.func NTK tutorial.
"""

from __future__ import annotations

from itertools import pairwise
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray
from scipy import special
from scipy.sparse.linalg import LinearOperator

from . import direct
from .budget import MemoryBudgetError, check_budget, get_memory_budget
from .layers import Activation, Pool2d
from .structure import per_sample_rmatmat
from .vec import unvec, vec

if TYPE_CHECKING:
    from .sequential import Sequential

__all__ = ["ggn", "ggn_operator", "ntk"]

_FLOOR = 1e-12  # the loss derivatives' denominator floor (as direct.loss_backward)


# --- public -------------------------------------------------------------------------------
def ggn(net: Sequential, X: ArrayLike, y: ArrayLike, diagonal: bool = False):
    """The exact generalized Gauss-Newton matrix ``G = J_theta^T H J_theta`` (module doc).

    Returns a dense ``(P, P)`` array over all parameters (``P = sum of params sizes``), in
    ``params`` order, each parameter in vec order; or with ``diagonal=True`` its diagonal
    as a dict like ``params``.  ``G`` sums over the batch (divided by ``N`` for
    ``reduction="mean"``, as the loss).  It is symmetric, and positive semi-definite when
    the loss is convex in ``Z_L`` (the cross-entropies with their output activation, squared
    error on ``Z_L``); with a non-convex top (e.g. squared error after a sigmoid) ``H`` is
    the exact Hessian and may be indefinite.

    Raises
    ------
    MemoryBudgetError
        Before any work, when the dense ``P x P`` exceeds the memory budget (the message
        says that ``diagonal=True`` and :func:`ggn_operator` need no ``P x P`` matrix).
    """
    if not isinstance(diagonal, bool | np.bool_):
        raise TypeError(f"diagonal must be True or False, got {diagonal!r}")
    P = sum(p.size for p in net.params.values())
    if not diagonal:
        nbytes = P * P * net.dtype.itemsize
        if nbytes > get_memory_budget():
            raise MemoryBudgetError(
                f"the dense GGN of {P} parameters needs {nbytes} bytes, over the memory "
                f"budget of {get_memory_budget()}: pass diagonal=True for its diagonal, or "
                "use ggn_operator for products with it (neither forms a P x P matrix), or "
                "raise the budget with vecjac.set_memory_budget"
            )
    J_theta, H = _gauss_newton_factors(net, X, y)
    HJ = H @ J_theta
    if diagonal:
        return _split(net, np.einsum("ij,ij->j", J_theta, HJ))
    G = J_theta.T @ HJ
    return (G + G.T) / 2  # exact up to rounding; symmetric to the last bit


def ggn_operator(net: Sequential, X: ArrayLike, y: ArrayLike) -> LinearOperator:
    """:func:`ggn` as a ``scipy.sparse.linalg.LinearOperator`` ``(P, P)``: ``G v`` is
    ``J_theta^T (H (J_theta v))``, with ``J_theta`` the dense ``(m N, P)`` output Jacobian
    and ``H`` sparse block diagonal; no ``P x P`` matrix is formed.
    The operator is symmetric (``rmatvec`` is ``matvec``)."""
    J_theta, H = _gauss_newton_factors(net, X, y)
    P = J_theta.shape[1]

    def matmat(V):
        return J_theta.T @ (H @ (J_theta @ V))

    return LinearOperator((P, P), matvec=matmat, rmatvec=matmat, matmat=matmat,
                          rmatmat=matmat, dtype=J_theta.dtype)


def ntk(net: Sequential, X1: ArrayLike, X2: ArrayLike | None = None,
        of: str | None = None) -> NDArray:
    """The empirical neural tangent kernel of ``of`` (default ``Z_L``, the logits).

    ``Theta[n1, n2] = J_theta(x_n1) J_theta(x_n2)^T`` summed over all parameters (those
    above ``of`` contribute nothing), shape ``(N1, N2, m, m)`` with ``m`` the size of
    ``of`` per sample, in the note's vec order of one sample (for a vector output simply
    its entries).  ``X2=None`` uses ``X1`` (and the result is symmetric:
    ``Theta[a, b] = Theta[b, a]^T``).

    Raises
    ------
    ValueError
        ``of`` not an output name of the network (``net.names``).
    MemoryBudgetError
        The ``(N1, N2, m, m)`` result exceeds the memory budget (checked first).
    """
    of = f"Z{net.L}" if of is None else of
    if of not in net.names:
        raise ValueError(f"of must be one of the network's outputs {net.names}, got {of!r}")
    m = int(np.prod(net.shapes[of]))
    X1 = net._check_X(X1)
    X2 = X1 if X2 is None else net._check_X(X2)
    N1, N2 = X1.shape[0], X2.shape[0]
    check_budget(N1 * N2 * m * m * net.dtype.itemsize, f"the NTK of {of} ({N1}x{N2}x{m}x{m})")
    J1, dense1 = _sweep(net, net._forward(X1, context=True), of, factor_dense=True)
    J2, dense2 = (J1, dense1) if X2 is X1 else _sweep(net, net._forward(X2, context=True), of,
                                                      factor_dense=True)
    K = (J1 @ J2.T).reshape(N1, m, N2, m)
    for theta, (R1, B1) in dense1.items():  # J_W J_W^T = (R R^T) * (B^T B), entry by entry
        R2, B2 = dense2[theta]
        K += np.einsum("nio,pjo->nipj", R1, R2) * (B1 @ B2.T)[:, None, :, None]
    return K.transpose(0, 2, 1, 3)


def parameter_jacobian(net: Sequential, cache: dict, of: str) -> NDArray:
    """``J_theta = d vec(of) / d theta``, dense ``(m N, P)``: every parameter in ``params``
    order (zero columns for those above ``of``), rows sample-outermost.

    One reverse sweep down the chain with ``m`` rows in place of the loss's one: row ``i``
    is ``d (sum_n of_in) / d lower``.  Every Jacobian with respect to an activation is block
    diagonal over samples, so the samples' parts of a row never mix and the sum loses
    nothing; at a parameter, each sample's part of each row times its block of rows gives
    that sample's row of ``J_theta`` (:func:`vecjac.structure.per_sample_rmatmat`).
    """
    return _sweep(net, cache, of)[0]


def _sweep(net: Sequential, cache: dict, of: str, factor_dense: bool = False):
    """:func:`parameter_jacobian`; with ``factor_dense``, a dense layer's weight ``W`` is
    left out of the matrix and returned as its two factors instead: sample ``n``'s rows of
    ``d of / d W`` are ``R_n (x) B_n^T`` (``R_n``: its ``m`` rows of ``d of / d Z``, ``B_n``:
    the layer's input), ``{theta: (R (N, m, n_out), B (N, n_in))}``; the NTK needs only
    ``R R^T`` and ``B^T B`` of them, not the ``m N x n_in n_out`` matrix."""
    N, m = cache["X"].shape[0], int(np.prod(net.shapes[of]))
    owner = {theta: (i, symbol) for i, names in enumerate(net.param_names)
             for symbol, theta in names.items()}
    factored = {theta for theta, (i, symbol) in owner.items()
                if factor_dense and symbol == "W"}
    P = sum(value.size for theta, value in net.params.items() if theta not in factored)
    check_budget(N * m * P * net.dtype.itemsize, f"d{of}/dtheta, dense ({N * m}x{P})")
    J = net._cached_jacobians(cache, wrt_X=False)
    blocks: dict[str, NDArray] = {}
    dense: dict[str, tuple[NDArray, NDArray]] = {}

    def rows_of(name: str, R: NDArray) -> None:
        for theta in net._params_of(name):
            if theta in factored:
                B = cache[net.inputs[owner[theta][0]]]  # (n_in, N), the FC layout
                dense[theta] = (R.reshape(m, N, -1).transpose(1, 0, 2), B.T)
            else:
                rows = per_sample_rmatmat(J[f"d{name}/d{theta}"]._structure, R, N)
                blocks[theta] = rows.reshape(N * m, -1)  # (N, m, size): sample-outermost

    R = np.tile(np.eye(m, dtype=net.dtype), N)  # d (sum_n of_in) / d of
    rows_of(of, R)
    for upper, lower in pairwise(net.chain[net.chain.index(of):]):
        R = R @ J[f"d{upper}/d{lower}"]
        rows_of(lower, R)
    matrix = np.concatenate([blocks[theta] if theta in blocks else
                             np.zeros((N * m, value.size), dtype=net.dtype)
                             for theta, value in net.params.items() if theta not in factored],
                            axis=1)
    return matrix, dense


# --- the loss's Hessian with respect to Z_L -----------------------------------------------
def _gauss_newton_factors(net: Sequential, X, y) -> tuple[NDArray, sp.csr_array]:
    """``J_theta`` of ``Z_L`` and ``H = d^2 J / d vecZ_L^2`` (block diagonal, sparse)."""
    cache = net._forward(X, context=True)  # the im2col the kernel rows reuse
    N = cache["X"].shape[0]
    y = net._targets(y, N)
    split = f"Z{net.L}"
    return parameter_jacobian(net, cache, split), _loss_hessian(net, cache, y, split)


def _loss_hessian(net: Sequential, cache: dict, y, split: str) -> sp.csr_array:
    """``H`` at ``split`` from the loss's gradient and Hessian at the top, carried down the
    layers above ``split`` by the second-order chain rule."""
    top = cache[net.top]
    g, H = _top_derivatives(net, top, y)
    first = net.names.index(split) + 1
    for i in range(len(net.layers) - 1, first - 1, -1):
        layer, A = net.layers[i], cache[net.inputs[i]]
        if isinstance(layer, Pool2d) and layer.kind == "l2":
            raise ValueError(f"ggn: L2 pooling above {split} (layer {i + 1}, {layer!r}) is "
                             "not supported: its second derivative is not implemented")
        F = layer.jacobian(A, net._local(i), "b", "a", structured=False).matrix
        H = F.T @ H @ F  # Flatten and pooling are linear (max pooling almost everywhere)
        if isinstance(layer, Activation):
            curvature = _second_order_term(layer, A, g)
            H = H if curvature is None else H + curvature
        g = F.T @ g
    return sp.csr_array(H)


def _top_derivatives(net: Sequential, top: NDArray, y) -> tuple[NDArray, sp.csr_array]:
    """The loss's gradient (vec) and Hessian with respect to the network's output ``top``
    (``(n_out, N)``, the note's layout), reduction included."""
    N = top.shape[1]
    scale = 1.0 / N if net.reduction == "mean" else 1.0
    Y = direct.as_targets(y, top.shape).astype(top.dtype, copy=False)
    kind = net.loss_kind
    if net.from_logits:
        g = direct.loss_from_logits(top, y, kind, net.reduction)[1]
        if kind == "cross_entropy":  # (1^T y) (diag(p) - p p^T) per sample
            p = special.softmax(top, axis=0)
            blocks = np.einsum("in,ij->nij", p, np.eye(len(p))) - np.einsum("in,jn->nij", p, p)
            return vec(g), _block_diagonal(scale * Y.sum(axis=0)[:, None, None] * blocks)
        p = special.expit(top)
        return vec(g), sp.diags_array(vec(scale * p * (1 - p))).tocsr()
    g = direct.loss_backward(top, y, kind, net.reduction)
    if kind == "squared_error":
        h = np.full(top.shape, scale, dtype=top.dtype)
    elif kind == "cross_entropy":
        h = scale * Y / np.maximum(top, _FLOOR) ** 2
    else:
        h = scale * (Y / np.maximum(top, _FLOOR) ** 2 + (1 - Y) / np.maximum(1 - top, _FLOOR) ** 2)
    return vec(g), sp.diags_array(vec(h)).tocsr()


def _second_order_term(layer: Activation, Z: NDArray, g: NDArray) -> sp.csr_array | None:
    """``sum_i g_i d^2 f_i / dz^2`` of an activation at ``Z`` (``g`` = dl/d vec f(Z))."""
    if layer.kind in ("relu", "leaky_relu", "identity"):
        return None  # piecewise linear: no curvature (almost everywhere)
    if layer.kind == "softmax":  # per sample, with u = g * s and c = sum(u):
        s = special.softmax(Z, axis=0)  # M = diag(u - c s) - u s^T - s u^T + 2 c s s^T
        u = unvec(g, Z.shape) * s
        c = u.sum(axis=0)
        M = (np.einsum("in,ij->nij", u - c * s, np.eye(len(s)))
             - np.einsum("in,jn->nij", u, s) - np.einsum("in,jn->nij", s, u)
             + 2 * c[:, None, None] * np.einsum("in,jn->nij", s, s))
        return _block_diagonal(M)
    if layer.kind == "sigmoid":
        s = special.expit(Z)
        second = s * (1 - s) * (1 - 2 * s)
    elif layer.kind == "tanh":
        t = np.tanh(Z)
        second = -2 * t * (1 - t * t)
    else:  # softplus: f' = sigmoid, f'' = s (1 - s)
        s = special.expit(Z)
        second = s * (1 - s)
    return sp.diags_array(g * vec(second)).tocsr()


# --- helpers ------------------------------------------------------------------------------
def _block_diagonal(blocks: NDArray) -> sp.csr_array:
    """The ``(N m, N m)`` block-diagonal CSR array of ``N`` dense ``m x m`` blocks, built in
    CSR order: row ``n m + i`` holds block ``n``'s row ``i`` in columns ``n m .. n m + m``."""
    N, m, _ = blocks.shape
    indices = np.broadcast_to(np.arange(N)[:, None, None] * m + np.arange(m), (N, m, m))
    indptr = np.arange(0, N * m * m + 1, m)
    return sp.csr_array((blocks.ravel(), indices.ravel(), indptr), shape=(N * m, N * m))


def _split(net: Sequential, flat: NDArray) -> dict[str, NDArray]:
    """A vector over all parameters (``params`` order, vec order) as a dict like ``params``."""
    out, start = {}, 0
    for theta, value in net.params.items():
        out[theta] = unvec(flat[start : start + value.size], value.shape)
        start += value.size
    return out

