r"""The loss as the first Jacobian of the chain: the note's section 3.1.1, ``dJ/dA3``.

``J`` is a scalar, so (numerator layout) its derivative is a ``1 x n`` row,

    dJ/dA3 = [dJ/da_1  dJ/da_2  ...  dJ/da_n]    (1 x n_out, or 1 x n_out N for a batch)

with ``dJ/da = a - y`` for the slides' ``E = (y - O)^2 / 2``,
``(a - y) / (a (1 - a))`` for binary cross-entropy and ``-y / a`` for cross-entropy on
probabilities.  Fused with the output activation the row is ``dJ/dZ3 = dJ/dA3 dA3/dZ3``:
``sigmoid(z) - y`` (BCE) and ``softmax(z) - y`` (CE, one-hot ``y``).

References: the note, sections 3.1.1 and 3.2; the slides of seed 001.
"""

from __future__ import annotations

from numpy.typing import ArrayLike, NDArray

from .. import direct
from ..budget import check_budget, check_csr_budget
from ..jacobian import Jacobian
from ..structure import Dense
from ..vec import vec

__all__ = ["loss", "loss_from_logits"]


def loss(
    A3: ArrayLike,
    y: ArrayLike,
    kind: str = "squared_error",
    reduction: str = "sum",
    *,
    of: str = "J",
    wrt: str = "A3",
    structured: bool = True,
) -> tuple[float, Jacobian]:
    """The scalar ``J`` and its ``1 x n`` row ``dJ/dA3``, from one evaluation.

    Parameters
    ----------
    A3 : array_like, shape (n_out,) or (n_out, N)
    y : array_like
        Class indices ``(N,)`` (a scalar for one sample) or targets of A3's shape; see
        :func:`vecjac.direct.as_targets`.
    kind : {"squared_error", "binary_cross_entropy", "cross_entropy"}
    reduction : {"sum", "mean"}
    structured : bool
        ``True`` (default): the row is kept as a dense array (structure ``"dense 1xn"``),
        multiplied by NumPy; ``False``: flat CSR.  ``matrix`` is the same either way: all
        ``n`` entries stored, zeros included.

    Returns
    -------
    J : float
    dJ_dA3 : Jacobian, shape (1, A3.size), ``of_shape == ()``
        ``dJ_dA3.gradient()`` is ``direct.loss_backward`` in A3's shape.
    """
    J, gradient = direct.loss_and_backward(A3, y, kind, reduction)
    return J, _row(gradient, of, wrt, structured)


def loss_from_logits(
    Z3: ArrayLike,
    y: ArrayLike,
    kind: str = "cross_entropy",
    reduction: str = "sum",
    *,
    of: str = "J",
    wrt: str = "Z3",
    structured: bool = True,
) -> tuple[float, Jacobian]:
    """Softmax + cross-entropy (or sigmoid + BCE) fused: ``J`` and the row ``dJ/dZ3``.

    Parameters
    ----------
    Z3 : array_like, shape (n_out,) or (n_out, N)
    y, reduction, structured : as :func:`loss`
    kind : {"cross_entropy", "binary_cross_entropy"}

    Returns
    -------
    J : float
    dJ_dZ3 : Jacobian, shape (1, Z3.size)
        Equal to ``loss(A3, y)[1] @ activation(Z3, "softmax" | "sigmoid")`` (tested).
    """
    J, dZ = direct.loss_from_logits(Z3, y, kind, reduction)
    return J, _row(dZ, of, wrt, structured)


def _row(gradient: NDArray, of: str, wrt: str, structured: bool) -> Jacobian:
    n, what = gradient.size, f"d{of}/d{wrt} row"
    row = Dense(vec(gradient)[None, :])  # the row's n values
    if structured:
        check_budget(n * gradient.itemsize, what)
        return Jacobian(row, of, wrt, (), gradient.shape)
    check_csr_budget(n, (1, n), gradient.dtype, what)
    return Jacobian(row.materialise(), of, wrt, (), gradient.shape)
