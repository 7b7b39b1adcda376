"""The fast reference: every layer's forward and backward pass, vectorised.

One module per layer kind, as :mod:`vecjac.jacobians`:

* :mod:`.conv`: direct convolution (section 2 of the note), unfolded into columns (im2col)
  and summed by one matrix product, and its backward pass (col2im); also the third seed
  text's formulas, generalised to stride and padding and written with ``conv2d`` itself:
  ``dL/dK = conv(X, dL/dZ)``, ``dL/dB = sum(dL/dZ)`` and ``dL/dX`` = the full convolution of
  ``dL/dZ`` with ``K`` rotated by 180 degrees;
* :mod:`.pool`: average, max and L2-norm pooling (section 3.1.3), max pooling's switches;
* :mod:`.activation`: element-wise activations and softmax (section 3.1.4);
* :mod:`.dense`: the fully-connected layer ``Z3 = W3^T B2 + b3`` (section 3.1.1);
* :mod:`.loss`: the losses, and output activation and loss fused from the logits.

No Python loop runs over pixels, samples or channels.  This package knows nothing of
Jacobians: it is what the Jacobians of :mod:`vecjac.jacobians` are checked against, and
what :class:`vecjac.CNN` runs on.
"""

from .activation import ACTIVATIONS, activate, activate_backward, activation_derivative
from .conv import bias_gradient, conv2d, conv2d_backward, dilate, input_gradient, kernel_gradient
from .dense import dense, dense_backward
from .loss import LOGIT_LOSSES as LOGIT_LOSSES  # public but, as before the split, not in __all__
from .loss import (
    LOSSES,
    REDUCTIONS,
    as_targets,
    loss,
    loss_and_backward,
    loss_backward,
    loss_from_logits,
)
from .pool import (
    POOL_KINDS,
    TIE_RULES,
    PoolArgs,
    check_pool_args,
    max_pool_shares,
    max_pool_switches,
    pool2d,
    pool2d_backward,
)

__all__ = [
    "conv2d",
    "conv2d_backward",
    "kernel_gradient",
    "bias_gradient",
    "input_gradient",
    "dilate",
    "POOL_KINDS",
    "TIE_RULES",
    "ACTIVATIONS",
    "LOSSES",
    "REDUCTIONS",
    "PoolArgs",
    "check_pool_args",
    "pool2d",
    "pool2d_backward",
    "max_pool_switches",
    "max_pool_shares",
    "activate",
    "activate_backward",
    "activation_derivative",
    "dense",
    "dense_backward",
    "as_targets",
    "loss",
    "loss_and_backward",
    "loss_backward",
    "loss_from_logits",
]
