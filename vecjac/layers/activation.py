r"""``Activation``: ``I = f(Z)`` entry by entry, or softmax per sample (section 3.1.4).

``d vecI / d vecZ = diag(f'(vecZ))`` for the element-wise kinds, the note's "channel-wise"
Jacobian; softmax's is block diagonal over samples with ``diag(s) - s s^T`` blocks.  The
builder is :func:`vecjac.jacobians.activation`; the direct pass :func:`vecjac.direct.activate`.
"""

from __future__ import annotations

import math
import numbers

from .. import direct
from .. import jacobians as jac
from ..jacobian import Jacobian
from ..vec import check_choice
from .base import Layer

__all__ = ["Activation"]


class Activation(Layer):
    """An activation function as a layer.

    Parameters
    ----------
    kind : {"sigmoid", "tanh", "relu", "leaky_relu", "softplus", "identity", "softmax"}
        ``softmax`` acts over the features of one sample, so it needs vector input (after
        ``Flatten`` or ``Dense``); the other kinds act on any shape.
    negative_slope : float
        Slope of ``leaky_relu`` for ``z <= 0`` (default 0.01, as PyTorch).
    """

    def __init__(self, kind: str, negative_slope: float = 0.01) -> None:
        super().__init__()
        check_choice(kind, "activation", direct.ACTIVATIONS)
        if isinstance(negative_slope, bool) or not isinstance(negative_slope, numbers.Real) \
                or not math.isfinite(negative_slope):
            raise ValueError(f"negative_slope must be a finite number, got {negative_slope!r}")
        self.kind, self.negative_slope = kind, float(negative_slope)

    @property
    def _kw(self) -> dict:
        return {"negative_slope": self.negative_slope} if self.kind == "leaky_relu" else {}

    def output_shape_for(self, input_shape):
        if self.kind == "softmax" and len(input_shape) != 1:
            raise ValueError(
                f"softmax acts on the features of one sample and needs vector input (after "
                f"Flatten or Dense), got feature maps of shape {input_shape}"
            )
        return input_shape

    def forward(self, A, p):
        return direct.activate(A, self.kind, **self._kw)

    def forward_with_context(self, A, p):
        """``I`` and, for sigmoid, tanh and softmax, ``I`` again as the context: their
        derivatives are taken from the output, ``s (1 - s)``, ``1 - t^2`` and
        ``diag(s) - s s^T``, as back-propagation does (no ``cosh`` pass, no second softmax;
        see :func:`vecjac.direct.activation_derivative`)."""
        I = self.forward(A, p)
        return I, (I if self.kind in direct.activation.FROM_OUTPUT else None)

    def backward(self, dOut, A, p, input_grad=True, context=None):
        return direct.activate_backward(dOut, A, self.kind, output=context, **self._kw), {}

    def jacobian(self, A, p, of, wrt, structured=True) -> Jacobian:
        return jac.activation(A, self.kind, of=of, wrt=wrt, structured=structured,
                              **self._kw)

    def jacobian_with_context(self, A, p, of, wrt, structured=True, context=None) -> Jacobian:
        return jac.activation(A, self.kind, of=of, wrt=wrt, structured=structured,
                              output=context, **self._kw)

    def _settings(self) -> str:
        slope = f", negative_slope={self.negative_slope:g}" if self.kind == "leaky_relu" else ""
        return f"{self.kind!r}{slope}"
