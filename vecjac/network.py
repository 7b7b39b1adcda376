r"""The note's CNN as one configuration of :class:`vecjac.Sequential`.

The network of section 1 (``L = 3``), the slides' one-conv network (``L = 2``), or any number
of conv blocks:

    Z1 = X * K1 + b1,  I1 = f(Z1),  A1 = pool(I1)            conv block 1
    Z2 = A1 * K2 + b2, I2 = f(Z2),  A2 = pool(I2)            conv block 2 (and so on)
    B2 = vec(A2)                                              flatten (section 3.1.2)
    Z3 = W3^T B2 + b3, A3 = g(Z3),  J = loss(A3, y)           fully connected (section 3.1.1)

Without pooling (``pool=None``) the block keeps the note's names with ``A = I``: the identity
activation stands in for the pooling, so ``dA1/dI1`` is the identity on the chain.
"""

from __future__ import annotations

import numbers

import numpy as np

from . import direct
from .layers import Activation, Conv2d, Dense, Flatten, Pool2d
from .sequential import Sequential

__all__ = ["CNN"]

_OUTPUTS = ("softmax", "sigmoid", "identity")
_HIDDEN = tuple(a for a in direct.ACTIVATIONS if a != "softmax")  # element-wise
_PAIRS = ("kernel_size", "stride", "padding", "pool_size", "pool_stride", "pool_padding")


class CNN(Sequential):
    """The note's CNN: conv blocks (conv, activation, pooling), flatten, one dense layer.

    Parameters
    ----------
    input_shape : (C, H, W)
    channels : int or tuple of int
        Output channels of each conv layer, one entry per layer: ``(4, 8)`` is the note's
        network, ``(1,)`` the slides', ``(4, 8, 16)`` three conv blocks.
    kernel_size, stride, padding, pool_size, pool_stride, pool_padding
        Per conv layer.  An int, or a ``(height, width)`` tuple, applies to every layer; a
        **list** gives one value per layer (``stride=[1, 2]``: stride 1 in layer 1, 2 in
        layer 2; ``stride=[(1, 2), 1]``); so does a tuple that cannot be a pair
        (``((1, 2), 1)``).  With exactly two conv layers a tuple of two ints is refused as
        ambiguous (it used to mean one value per layer): write a list.
        ``pool_stride=None`` means the pool size.
    activation : str or list of str
        ``f`` of the conv layers, any element-wise kind (a tuple is read as a list).
    pool : {"avg", "max", "l2", None} or list of them
        ``None``: no pooling, ``A = I``.
    n_out : int
        Outputs of the fully-connected layer.
    output : {"softmax", "sigmoid", "identity"}
        ``g``.  With ``output="identity"`` the cross-entropies read ``Z3`` as logits (see
        :class:`vecjac.Sequential`).
    loss : {"cross_entropy", "binary_cross_entropy", "squared_error"}
    reduction : {"sum", "mean"}
        The loss sums over the batch by default (as the slides).
    seed : int
        Initialisation: Glorot-uniform kernels and weights,
        ``U(-a, a)`` with ``a = sqrt(6 / (fan_in + fan_out))``
        (conv: ``fan_in = C_in h_k w_k``, ``fan_out = C_out h_k w_k``), zero biases.
    dtype : float64 (default) or float32
    """

    def __init__(self, input_shape=(1, 8, 8), channels=(4, 8), kernel_size=3, stride=1,
                 padding=1, activation="sigmoid", pool="avg", pool_size=2, pool_stride=None,
                 pool_padding=0, n_out=10, output="softmax", loss="cross_entropy",
                 reduction="sum", seed=0, dtype=np.float64):
        channels = (channels,) if isinstance(channels, numbers.Integral) else tuple(channels)
        if not channels or not all(isinstance(c, numbers.Integral) and c >= 1
                                   for c in channels):
            raise ValueError(f"channels must hold one positive int per conv layer, got "
                             f"{channels}")
        if output not in _OUTPUTS:
            raise ValueError(f"output must be one of {_OUTPUTS}, got {output!r}")
        if loss not in direct.LOSSES:
            raise ValueError(f"loss must be one of {direct.LOSSES}, got {loss!r}")
        if not isinstance(n_out, numbers.Integral) or n_out < 1:
            raise ValueError(f"n_out must be a positive int, got {n_out!r}")
        given = dict(kernel_size=kernel_size, stride=stride, padding=padding,
                     activation=activation, pool=pool, pool_size=pool_size,
                     pool_stride=pool_stride, pool_padding=pool_padding)
        per_layer = [{} for _ in channels]
        for key, value in given.items():
            for settings, v in zip(per_layer, _per_layer(value, key, len(channels)),
                                   strict=True):
                settings[key] = v
        layers = []
        for l, (c_out, s) in enumerate(zip(channels, per_layer, strict=True), start=1):
            if s["activation"] not in _HIDDEN:
                raise ValueError(f"unknown activation {s['activation']!r} for a conv layer; "
                                 f"valid activations are {', '.join(map(repr, _HIDDEN))}")
            layers += [_layer(len(layers) + 1, f"Z{l}", Conv2d, c_out, kernel_size=s[
                "kernel_size"], stride=s["stride"], padding=s["padding"]),
                Activation(s["activation"])]
            layers.append(Activation("identity") if s["pool"] is None else _layer(
                len(layers) + 1, f"A{l}", Pool2d, s["pool"], size=s["pool_size"],
                stride=s["pool_stride"], padding=s["pool_padding"]))
        layers += [Flatten(), Dense(n_out), Activation(output)]
        super().__init__(input_shape, layers, loss, reduction, seed, dtype)
        self.channels, self.output = channels, output
        self.n_conv = len(channels)


def _per_layer(value, name: str, n: int) -> list:
    """One value per conv layer, by the rule in :class:`CNN`'s docstring."""
    nested = isinstance(value, tuple) and not all(isinstance(v, numbers.Integral) for v in value)
    if isinstance(value, list) or (isinstance(value, tuple) and (name not in _PAIRS or nested)):
        if len(value) != n:
            raise ValueError(f"{name} as a list gives one value per conv layer: {n} expected, "
                             f"got {len(value)} ({value!r})")
        return list(value)
    if name in _PAIRS and n == 2 and isinstance(value, tuple) and len(value) == 2 and all(
            isinstance(v, numbers.Integral) for v in value):
        raise ValueError(
            f"{name}={value!r} is ambiguous with two conv layers: write "
            f"{name}={list(value)!r} for one value per layer, or {name}={[value, value]!r} for "
            "the (height, width) pair in both")
    return [value] * n


def _layer(position: int, name: str, kind, first, **settings):
    """``kind(first, **settings)``; a setting it refuses is reported with the layer, numbered
    and named as :class:`Sequential` reports a layer whose input does not fit."""
    try:
        return kind(first, **settings)
    except ValueError as error:
        shown = ", ".join([repr(first)] + [f"{k}={v!r}" for k, v in settings.items()])
        raise ValueError(f"layer {position}, {kind.__name__}({shown}) (giving {name}): "
                         f"{error}") from None
