"""One checker for every Jacobian: :func:`check_jacobian`, public for users who add layers.

A built Jacobian is compared with an independent reference computed from the *direct*
forward function only:

* ``method="basis"`` (exact for linear maps: convolution, average pooling, FC, flatten):
  column ``k`` of the reference is ``f(x + e_k) - f(x)`` with ``e_k`` the ``k``-th basis
  vector of ``vec(x)``; for an affine ``f`` this is exactly column ``k`` up to rounding.
* ``method="differentiate"`` (nonlinear maps): ``scipy.differentiate.jacobian``, adaptive
  central differences with an error estimate.

Either way one number comes back: the largest absolute difference divided by the largest
absolute entry of the reference (or 1 when that is smaller), so it reads as a relative error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .jacobian import Jacobian
from .vec import unvec, vec

__all__ = ["central_differences", "check_jacobian", "reference_jacobian"]


def reference_jacobian(
    f: Callable[[NDArray], ArrayLike],
    x: ArrayLike,
    method: Literal["basis", "differentiate"] = "basis",
) -> NDArray:
    """Dense Jacobian ``d vec(f(x)) / d vec(x)`` in numerator layout, from ``f`` alone.

    Parameters
    ----------
    f : callable
        Takes an array of ``x``'s shape and returns an array (any shape).
    x : array_like
        The point; its shape is the variable's shape.
    method : {"basis", "differentiate"}
        See the module docstring.

    Returns
    -------
    ndarray, shape (f(x).size, x.size)
    """
    x = np.asarray(x, dtype=np.float64)
    shape, n = x.shape, x.size
    f0 = vec(np.asarray(f(x), dtype=np.float64))
    if method == "basis":
        columns = np.empty((f0.size, n))
        v0 = vec(x)
        for k in range(n):  # the oracle is deliberately naive: one call per column
            v = v0.copy()
            v[k] += 1.0
            columns[:, k] = vec(np.asarray(f(unvec(v, shape)), dtype=np.float64)) - f0
        return columns
    if method == "differentiate":
        from scipy.differentiate import jacobian

        def f_columns(v):  # v: (n, ...) -> (m, ...), evaluated point by point
            flat = v.reshape(n, -1)
            out = np.stack(
                [vec(np.asarray(f(unvec(flat[:, p], shape)))) for p in range(flat.shape[1])],
                axis=-1,
            )
            return out.reshape((f0.size,) + v.shape[1:])

        result = jacobian(f_columns, vec(x), initial_step=1e-2, tolerances={"rtol": 1e-12})
        return np.asarray(result.df)
    raise ValueError(f"method must be 'basis' or 'differentiate', got {method!r}")


def check_jacobian(
    J: Jacobian,
    f: Callable[[NDArray], ArrayLike],
    x: ArrayLike,
    method: Literal["basis", "differentiate"] = "basis",
) -> float:
    """Relative error of a built Jacobian against the reference from the direct ``f``.

    Parameters
    ----------
    J : Jacobian
        ``d vec(f(x)) / d vec(x)``, shape ``(f(x).size, x.size)``.
    f : callable
        The direct forward function of the variable ``x`` (everything else held fixed).
    x : array_like
        The point at which ``J`` was built.
    method : {"basis", "differentiate"}
        ``"basis"`` for linear (affine) maps, ``"differentiate"`` for nonlinear ones.

    Returns
    -------
    float
        ``max |J - J_ref| / max(1, max |J_ref|)``.

    Examples
    --------
    >>> import numpy as np, vecjac as vj
    >>> K = np.ones((1, 1, 2, 2))
    >>> J = vj.jacobians.conv_wrt_input(K, (1, 3, 3))
    >>> check_jacobian(J, lambda A: vj.direct.conv2d(A, K), np.zeros((1, 3, 3))) < 1e-12
    True
    """
    reference = reference_jacobian(f, x, method)
    if reference.shape != J.shape:
        raise ValueError(f"{J.name} has shape {J.shape}, the reference {reference.shape}")
    scale = max(1.0, float(np.abs(reference).max(initial=0.0)))
    return float(np.abs(J.toarray() - reference).max(initial=0.0) / scale)


def central_differences(
    loss: Callable[[], float], params: dict[str, NDArray], h: float = 1e-6
) -> dict[str, NDArray]:
    """Gradients of a scalar ``loss()`` by central differences, entry by entry.

    The naive oracle for whole networks: every entry of every array in ``params`` is moved
    by ``+h`` and ``-h`` in place (``loss`` must read the arrays, e.g. ``net.params``), the
    two losses are differenced, and the entry is restored.  ``2 * size`` calls of ``loss``.

    Returns
    -------
    dict
        Same keys and shapes as ``params``.
    """
    numeric = {}
    for name, theta in params.items():
        g = np.empty_like(theta, dtype=np.float64)
        for k in np.ndindex(theta.shape):
            old = theta[k]
            theta[k] = old + h
            up = loss()
            theta[k] = old - h
            down = loss()
            theta[k] = old
            g[k] = (up - down) / (2 * h)
        numeric[name] = g
    return numeric
