r"""``Pool2d``: average, max and L2-norm pooling, channel by channel (sections 2, 3.1.3).

``d vecA / d vecI`` is block diagonal over channels and samples; average pooling is the
convolution with the constant kernel ``P = 1/(h_l w_l)``, max pooling routes through the
switches, L2-norm pooling (left open in the note) has ``dA_xy/dI_pq = I_pq / A_xy``.  The
builders are :func:`vecjac.jacobians.pool`; the direct pass :func:`vecjac.direct.pool2d`.
"""

from __future__ import annotations

from .. import direct
from .. import jacobians as jac
from ..jacobian import Jacobian
from ..vec import as_pair, check_choice
from .base import Layer

__all__ = ["Pool2d"]


class Pool2d(Layer):
    """Pooling over ``size`` windows of every channel.

    Parameters
    ----------
    kind : {"avg", "max", "l2"}
    size : int or (h_l, w_l)
    stride : int or pair, optional
        ``None`` (default): the window size, non-overlapping windows.
    padding : int or pair
        Zero padding (average: the zeros count in the mean; max: acts as -inf and may be at
        most half the window; L2: adds nothing to the sum of squares).
    ties : {"first", "split"}
        Max pooling's tie rule: the first maximum in row-major window order (as PyTorch), or
        the derivative shared equally among tied maxima.  Ignored by the other kinds.
    """

    def __init__(self, kind: str = "avg", size=2, stride=None, padding=0,
                 ties: str = "first") -> None:
        super().__init__()
        check_choice(kind, "pool", direct.POOL_KINDS)
        check_choice(ties, "ties", direct.TIE_RULES)
        self.kind, self.ties = kind, ties
        self.size = as_pair(size, "pool size", 1)
        self.stride = self.size if stride is None else as_pair(stride, "pool stride", 1)
        self.padding = as_pair(padding, "pool padding", 0)
        # the one pooling rule (max pooling's padding) checked now, on a large enough input
        direct.check_pool_args((1, *(s + 2 * p for s, p in zip(self.size, self.padding,
                                                                    strict=True))),
                               kind, self.size, self.stride, self.padding, ties)

    @property
    def geometry(self):
        return self.size, self.stride, self.padding

    def output_shape_for(self, input_shape):
        self._require_rank(input_shape, 3, "feature maps (C, H, W)")
        return direct.check_pool_args(input_shape, self.kind, *self.geometry,
                                      self.ties).output_shape

    def forward(self, A, p):
        return direct.pool2d(A, self.kind, *self.geometry)

    def backward(self, dOut, A, p, input_grad=True, context=None):
        return direct.pool2d_backward(dOut, A, self.kind, *self.geometry, self.ties), {}

    def jacobian(self, A, p, of, wrt, structured=True) -> Jacobian:
        return jac.pool(A, self.kind, *self.geometry, self.ties, of=of, wrt=wrt,
                        structured=structured)

    def shape_only_jacobians(self) -> frozenset[str]:
        return frozenset({"input"} if self.kind == "avg" else ())  # the note's constant P

    def _settings(self) -> str:
        extra = "" if self.ties == "first" or self.kind != "max" else f", ties={self.ties!r}"
        return (f"{self.kind!r}, size={self.size}, stride={self.stride}, "
                f"padding={self.padding}{extra}")
