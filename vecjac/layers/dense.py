r"""``Dense`` and ``Flatten``: the note's fully-connected layer and ``B = vec(A)`` (3.1.1-2).

``Z = W^T B + b`` with ``W`` of shape ``(n_in, n_out)`` (the note's layout, not PyTorch's
``(out, in)``) and a batch as features x samples ``B`` of shape ``(n_in, N)``:

    dZ / dB = I_N (x) W^T,    dZ / d vecW = I_{n_out} (x) B^T per sample,    dZ / db = I

Flatten is ``B = [vec A_1; ...; vec A_c] = vec(A)``, the identity in vec space: column ``n``
of ``B`` is ``vec(A[n])``, the column-major order within each channel.
"""

from __future__ import annotations

import numbers

import numpy as np

from .. import direct
from .. import jacobians as jac
from ..jacobian import Jacobian
from ..vec import unvec, vec
from .base import Layer

__all__ = ["Dense", "Flatten"]


class Dense(Layer):
    """Fully connected, ``Z = W^T B + b``, on vectors ``(n_in,)`` per sample.

    Parameters
    ----------
    out_features : int
        ``n_out``.

    Parameters of the layer: ``W`` of shape ``(n_in, n_out)`` (column ``k`` feeds output
    ``k``; transpose of ``torch.nn.Linear.weight``) and ``b`` of shape ``(n_out,)``;
    initialised Glorot-uniform, ``a = sqrt(6 / (n_in + n_out))``, and zero bias.
    """

    starts_block = True
    params = ("W", "b")

    def __init__(self, out_features: int) -> None:
        super().__init__()
        if isinstance(out_features, bool) or not isinstance(out_features, numbers.Integral) \
                or out_features < 1:
            raise ValueError(f"out_features must be a positive int, got {out_features!r}")
        self.out_features = int(out_features)

    def output_shape_for(self, input_shape):
        self._require_rank(input_shape, 1, "vector input (n_in,): put Flatten() before it")
        return (self.out_features,)

    def init_params(self, rng, dtype):
        n_in, n_out = self.input_shape[0], self.out_features
        limit = np.sqrt(6.0 / (n_in + n_out))
        W = rng.uniform(-limit, limit, (n_in, n_out)).astype(dtype)
        return {"W": W, "b": np.zeros(n_out, dtype=dtype)}

    def forward(self, A, p):
        return direct.dense(A, p["W"], p["b"])

    def backward(self, dOut, A, p, input_grad=True, context=None):
        dB, dW, db = direct.dense_backward(dOut, A, p["W"])
        return (dB if input_grad else None), {"W": dW, "b": db}

    def jacobian(self, A, p, of, wrt, structured=True) -> Jacobian:
        return jac.dense_wrt_input(p["W"], A.shape[1], of=of, wrt=wrt, structured=structured)

    def param_jacobian(self, symbol, A, p, of, wrt, structured=True, context=None) -> Jacobian:
        if symbol == "W":
            return jac.dense_wrt_weight(A, self.out_features, of=of, wrt=wrt,
                                        structured=structured)
        return jac.dense_wrt_bias(self.out_features, A.shape[1], of=of, wrt=wrt, dtype=A.dtype,
                                  structured=structured)

    def shape_only_jacobians(self) -> frozenset[str]:
        return frozenset({"b"})

    def _settings(self) -> str:
        return str(self.out_features)


class Flatten(Layer):
    """``B = vec(A)`` per sample: feature maps ``(C, H, W)`` to vectors ``(C H W,)``.

    The note's order (column-major within each channel, channels stacked), not
    ``A.ravel()``'s: :func:`vecjac.from_torch` permutes the next ``Linear``'s weight to match.
    """

    def output_shape_for(self, input_shape):
        self._require_rank(input_shape, 3, "feature maps (C, H, W)")
        return (int(np.prod(input_shape)),)

    def forward(self, A, p):
        return vec(A).reshape(A.shape[0], -1).T  # column n is vec(A[n]): the note's B

    def backward(self, dOut, A, p, input_grad=True, context=None):
        # column n of dB is vec(dA[n]): unvec is a view in the vec layout, A's in a network
        return unvec(dOut.T.ravel(), A.shape), {}

    def shape_only_jacobians(self) -> frozenset[str]:
        return frozenset({"input"})

    def jacobian(self, A, p, of, wrt, structured=True) -> Jacobian:
        return jac.flatten(A.shape, of=of, wrt=wrt, dtype=A.dtype, structured=structured)
