r"""The note's CNN, end to end: forward, every named Jacobian, and the gradient three ways.

The network of section 1 (with ``L = 3``), or the one-conv network of the slides (``L = 2``):

    Z1 = X * K1 + b1,  I1 = f(Z1),  A1 = pool(I1)            conv layer 1
    Z2 = A1 * K2 + b2, I2 = f(Z2),  A2 = pool(I2)            conv layer 2 (when L = 3)
    B2 = vec(A2)                                              flatten (section 3.1.2)
    Z3 = W3^T B2 + b3, A3 = g(Z3),  J = loss(A3, y)           fully connected (section 3.1.1)

Batches: ``X`` has shape ``(N, C, H, W)``; the fully-connected part uses the note's layout,
features x samples (``B2`` is ``(n_in, N)``, the slides' ``H1 = [400 x 100]``), so that every
``vec`` is sample-outermost and the chain of Jacobians needs no reordering.  ``forward``
returns ``A3`` transposed, ``(N, n_out)``, as users expect.

The gradient three ways (``gradients(method=...)``):

* ``"jacobian"``: a row vector times the stacked sparse Jacobians, in order, then transposed
  and ``unvec``-ed (section 3.2);
* ``"paper"``: the note's per-channel recursion with block Jacobians (sections 3.1.3-3.1.6);
* ``"direct"``: ordinary back-propagation with :mod:`vecjac.direct`.
"""

from __future__ import annotations

import numbers
import time
from itertools import pairwise

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import direct
from . import jacobians as jac
from .jacobian import Jacobian
from .vec import as_float_array, as_pair, check_choice, conv_output_shape, unvec, vec

__all__ = ["CNN"]

_OUTPUTS = ("softmax", "sigmoid", "identity")
_LOSSES = ("cross_entropy", "binary_cross_entropy", "squared_error")
_HIDDEN_ACTIVATIONS = tuple(a for a in direct.ACTIVATIONS if a != "softmax")  # elementwise


class CNN:
    """The note's 3-layer CNN (two conv layers), or the slides' one-conv network.

    Parameters
    ----------
    input_shape : (C, H, W)
    channels : tuple of int
        Output channels of each conv layer: two entries for the note's network, one for the
        slides' network (``(1,)`` or ``(5,)``).
    kernel_size, stride, padding, activation, pool, pool_size, pool_stride, pool_padding
        Per conv layer.  A single value applies to every conv layer; a list or tuple with one
        entry per layer gives each its own (so ``stride=(1, 2)`` means stride 1 in layer 1 and
        2 in layer 2; write ``stride=((1, 2), (1, 2))`` for a non-square stride).  ``pool`` is
        ``"avg"``, ``"max"``, ``"l2"`` or ``None`` (no pooling: ``A = I``); ``pool_stride=None``
        means the pool size.
    n_out : int
        Outputs of the fully-connected layer.
    output : {"softmax", "sigmoid", "identity"}
    loss : {"cross_entropy", "binary_cross_entropy", "squared_error"}
    reduction : {"sum", "mean"}
        The loss sums over the batch by default (as the slides).
    seed : int
        Initialisation: Glorot-uniform kernels and weights,
        ``U(-a, a)`` with ``a = sqrt(6 / (fan_in + fan_out))``
        (conv: ``fan_in = C_in h_k w_k``, ``fan_out = C_out h_k w_k``), zero biases.
    dtype : float64 (default) or float32
    """

    def __init__(
        self,
        input_shape=(1, 8, 8),
        channels=(4, 8),
        kernel_size=3,
        stride=1,
        padding=1,
        activation="sigmoid",
        pool="avg",
        pool_size=2,
        pool_stride=None,
        pool_padding=0,
        n_out=10,
        output="softmax",
        loss="cross_entropy",
        reduction="sum",
        seed=0,
        dtype=np.float64,
    ):
        self.input_shape = tuple(int(s) for s in input_shape)
        if len(self.input_shape) != 3 or min(self.input_shape) < 1:
            raise ValueError(f"input_shape must be (C, H, W) of positive sizes, got {input_shape}")
        channels = (channels,) if isinstance(channels, numbers.Integral) else tuple(channels)
        if len(channels) not in (1, 2) or min(channels) < 1:
            raise ValueError(f"channels must hold 1 or 2 positive ints, got {channels}")
        if output not in _OUTPUTS:
            raise ValueError(f"output must be one of {_OUTPUTS}, got {output!r}")
        if loss not in _LOSSES:
            raise ValueError(f"loss must be one of {_LOSSES}, got {loss!r}")
        if reduction not in ("sum", "mean"):
            raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
        if not isinstance(n_out, numbers.Integral) or n_out < 1:
            raise ValueError(f"n_out must be a positive int, got {n_out!r}")
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {self.dtype}")
        n = len(channels)
        self.n_conv, self.L = n, n + 1
        self.layers = [
            {
                "c_out": int(channels[l]),
                "kernel_size": as_pair(_layer(kernel_size, n, l), "kernel_size", 1),
                "stride": as_pair(_layer(stride, n, l), "stride", 1),
                "padding": as_pair(_layer(padding, n, l), "padding", 0),
                "activation": _layer(activation, n, l),
                "pool": _layer(pool, n, l),
                "pool_size": _layer(pool_size, n, l),
                "pool_stride": _layer(pool_stride, n, l),
                "pool_padding": _layer(pool_padding, n, l),
            }
            for l in range(n)
        ]
        self.n_out, self.output = int(n_out), output
        self.loss_kind, self.reduction = loss, reduction
        self.shapes = self._infer_shapes()
        self.params = self._init_params(np.random.default_rng(seed))

    # --- structure ------------------------------------------------------------------------
    @property
    def chain(self) -> list[str]:
        """The variables from the loss down to ``Z1``, e.g. ``J, A3, Z3, B2, A2, I2, Z2, ...``."""
        L = self.L
        names = ["J", f"A{L}", f"Z{L}", f"B{L - 1}"]
        for l in range(L - 1, 0, -1):
            names += [f"A{l}", f"I{l}", f"Z{l}"]
        return names

    def _params_of(self, name: str) -> tuple[str, ...]:
        l = name[1:]
        if name[0] != "Z":
            return ()
        return (f"W{l}", f"b{l}") if int(l) == self.L else (f"K{l}", f"b{l}")

    def _infer_shapes(self) -> dict:
        c, h, w = self.input_shape
        shapes = {}
        for l, layer in enumerate(self.layers, start=1):
            hz, wz = conv_output_shape((h, w), layer["kernel_size"], layer["stride"],
                                       layer["padding"])
            shapes[f"Z{l}"] = (layer["c_out"], hz, wz)
            check_choice(layer["activation"], "activation", _HIDDEN_ACTIVATIONS)
            if layer["pool"] is not None:  # the pooling layer's own rule validates the rest
                check_choice(layer["pool"], "pool", direct.POOL_KINDS)
                hz, wz = direct.check_pool_args(
                    shapes[f"Z{l}"], layer["pool"], layer["pool_size"], layer["pool_stride"],
                    layer["pool_padding"]).output_shape[1:]
            shapes[f"A{l}"] = (layer["c_out"], hz, wz)
            c, h, w = layer["c_out"], hz, wz
        shapes["n_in"] = c * h * w
        return shapes

    def _init_params(self, rng: np.random.Generator) -> dict[str, NDArray]:
        params, c_in = {}, self.input_shape[0]
        for l, layer in enumerate(self.layers, start=1):
            hk, wk = layer["kernel_size"]
            shape = (layer["c_out"], c_in, hk, wk)
            limit = np.sqrt(6.0 / ((c_in + layer["c_out"]) * hk * wk))
            params[f"K{l}"] = rng.uniform(-limit, limit, shape).astype(self.dtype)
            params[f"b{l}"] = np.zeros(layer["c_out"], dtype=self.dtype)
            c_in = layer["c_out"]
        n_in, L = self.shapes["n_in"], self.L
        limit = np.sqrt(6.0 / (n_in + self.n_out))
        params[f"W{L}"] = rng.uniform(-limit, limit, (n_in, self.n_out)).astype(self.dtype)
        params[f"b{L}"] = np.zeros(self.n_out, dtype=self.dtype)
        return params

    def __repr__(self) -> str:
        convs = ", ".join(
            f"conv{l} {self.params[f'K{l}'].shape} -> {self.shapes[f'A{l}']}"
            for l in range(1, self.L)
        )
        return (f"CNN(input {self.input_shape}: {convs}, fc {self.shapes['n_in']} -> "
                f"{self.n_out}, {self.output}, {self.loss_kind})")

    # --- forward --------------------------------------------------------------------------
    def _check_X(self, X: ArrayLike) -> NDArray:
        X = as_float_array(X, "X", ndims=(4,))
        if X.shape[1:] != self.input_shape:
            raise ValueError(
                f"X must have shape (N, {', '.join(map(str, self.input_shape))}) for this "
                f"network, got {X.shape}"
            )
        return X.astype(self.dtype, copy=False)

    def _forward(self, X: ArrayLike) -> dict[str, NDArray]:
        """Every intermediate of the forward pass, by the note's names (``A0`` is ``X``)."""
        X = self._check_X(X)
        cache, A = {"X": X, "A0": X}, X
        for l, layer in enumerate(self.layers, start=1):
            Z = direct.conv2d(A, self.params[f"K{l}"], self.params[f"b{l}"], layer["stride"],
                              layer["padding"])
            I = direct.activate(Z, layer["activation"])
            A = I if layer["pool"] is None else direct.pool2d(
                I, layer["pool"], layer["pool_size"], layer["pool_stride"], layer["pool_padding"])
            cache.update({f"Z{l}": Z, f"I{l}": I, f"A{l}": A})
        L = self.L
        B = vec(A).reshape(X.shape[0], -1).T  # column n is vec(A[n]): the note's B
        Z = direct.dense(B, self.params[f"W{L}"], self.params[f"b{L}"])
        cache.update({f"B{L - 1}": B, f"Z{L}": Z, f"A{L}": direct.activate(Z, self.output)})
        return cache

    def forward(self, X: ArrayLike) -> NDArray:
        """The network's output ``A_L``, shape ``(N, n_out)``."""
        return self._forward(X)[f"A{self.L}"].T

    def _targets(self, y: ArrayLike, N: int):
        y = np.asarray(y)
        if y.dtype.kind in "iu":
            if y.shape != (N,):
                raise ValueError(f"y must hold one label per sample, shape ({N},), got {y.shape}")
            hi = self.n_out if self.n_out > 1 else 2
            if y.size and (y.min() < 0 or y.max() >= hi):
                raise ValueError(f"labels y must lie in [0, {hi - 1}], got [{y.min()}, {y.max()}]")
            return y
        y = as_float_array(y, "y", ndims=(1, 2))
        if self.n_out == 1 and y.shape == (N,):
            return y[None, :]
        if y.shape != (N, self.n_out):
            raise ValueError(f"y as targets must have shape ({N}, {self.n_out}), got {y.shape}")
        return y.T  # the note's layout, (n_out, N)

    def loss(self, X: ArrayLike, y: ArrayLike) -> float:
        """The scalar ``J`` for inputs ``X`` of shape ``(N, C, H, W)``.

        ``y`` (here and in ``jacobians``, ``gradients``, ``jacobian``): integer labels of
        shape ``(N,)``, class indices in ``[0, n_out)`` (0/1 targets when ``n_out == 1``),
        or float targets of shape ``(N, n_out)`` (``(N,)`` when ``n_out == 1``).
        """
        cache = self._forward(X)
        y = self._targets(y, cache["X"].shape[0])
        return float(direct.loss(cache[f"A{self.L}"], y, self.loss_kind, self.reduction))

    # --- Jacobians ------------------------------------------------------------------------
    def _cached_jacobians(self, cache: dict, y=None, wrt_X: bool = True) -> dict[str, Jacobian]:
        """Build every Jacobian of the chain from the forward cache; record build times.

        ``wrt_X=False`` skips ``dZ1/dX``, which no parameter's gradient needs."""
        L, p, out = self.L, self.params, {}
        N = cache["X"].shape[0]
        self.build_ms = {}

        def add(name, builder, *args, **kwargs):
            start = time.perf_counter()
            out[name] = builder(*args, **kwargs)
            self.build_ms[name] = 1e3 * (time.perf_counter() - start)

        if y is not None:
            add(f"dJ/dA{L}", lambda: jac.loss(cache[f"A{L}"], y, self.loss_kind,
                                              self.reduction)[1])
        add(f"dA{L}/dZ{L}", jac.activation, cache[f"Z{L}"], self.output, of=f"A{L}",
            wrt=f"Z{L}")
        add(f"dZ{L}/dW{L}", jac.dense_wrt_weight, cache[f"B{L - 1}"], self.n_out, of=f"Z{L}",
            wrt=f"W{L}")
        add(f"dZ{L}/db{L}", jac.dense_wrt_bias, self.n_out, N, of=f"Z{L}", wrt=f"b{L}")
        add(f"dZ{L}/dB{L - 1}", jac.dense_wrt_input, p[f"W{L}"], N, of=f"Z{L}",
            wrt=f"B{L - 1}")
        add(f"dB{L - 1}/dA{L - 1}", jac.flatten, cache[f"A{L - 1}"].shape, of=f"B{L - 1}",
            wrt=f"A{L - 1}")
        for l in range(L - 1, 0, -1):
            layer, below = self.layers[l - 1], ("X" if l == 1 else f"A{l - 1}")
            conv = dict(stride=layer["stride"], padding=layer["padding"], of=f"Z{l}")
            A_prev, K, Z = cache[f"A{l - 1}"], p[f"K{l}"], cache[f"Z{l}"]
            add(f"dA{l}/dI{l}", self._pool_jacobian, cache[f"I{l}"], layer, l)
            add(f"dI{l}/dZ{l}", jac.activation, Z, layer["activation"], of=f"I{l}",
                wrt=f"Z{l}")
            add(f"dZ{l}/dK{l}", jac.conv_wrt_kernel, A_prev, K.shape, wrt=f"K{l}", **conv)
            add(f"dZ{l}/db{l}", jac.conv_wrt_bias, Z.shape, of=f"Z{l}", wrt=f"b{l}",
                dtype=self.dtype)
            if l > 1 or wrt_X:
                add(f"dZ{l}/d{below}", jac.conv_wrt_input, K, A_prev.shape, wrt=below, **conv)
        return out

    def _pool_jacobian(self, I: NDArray, layer: dict, l: int) -> Jacobian:
        if layer["pool"] is None:  # A = I: the identity keeps the chain uniform
            return jac.activation(I, "identity", of=f"A{l}", wrt=f"I{l}")
        return jac.pool(I, layer["pool"], layer["pool_size"], layer["pool_stride"],
                        layer["pool_padding"], of=f"A{l}", wrt=f"I{l}")

    def jacobians(self, X: ArrayLike, y: ArrayLike | None = None) -> dict[str, Jacobian]:
        """Every named Jacobian of the chain, ``{"dJ/dA3": ..., "dZ1/dX": ...}``.

        ``dJ/dA_L`` is included when the labels ``y`` are given.
        """
        cache = self._forward(X)
        y = None if y is None else self._targets(y, cache["X"].shape[0])
        return self._cached_jacobians(cache, y)

    # --- gradients ------------------------------------------------------------------------
    def gradients(self, X: ArrayLike, y: ArrayLike, method: str = "jacobian") -> dict[str, NDArray]:
        """``nabla_theta J`` for every parameter, arrays shaped like ``params``.

        Parameters
        ----------
        method : {"jacobian", "paper", "direct"}
            See the module docstring; all three agree to rounding (tests hold them to 1e-10).
        """
        return self.loss_and_gradients(X, y, method)[1]

    def loss_and_gradients(
        self, X: ArrayLike, y: ArrayLike, method: str = "jacobian"
    ) -> tuple[float, dict[str, NDArray]]:
        """``J`` and the gradients of :meth:`gradients`, from one forward pass."""
        if method not in ("jacobian", "paper", "direct"):
            raise ValueError(f"method must be 'jacobian', 'paper' or 'direct', got {method!r}")
        cache = self._forward(X)
        y = self._targets(y, cache["X"].shape[0])
        J = float(direct.loss(cache[f"A{self.L}"], y, self.loss_kind, self.reduction))
        if method == "jacobian":
            with jac.shared_patterns():  # transient Jacobians: no copies of cached patterns
                return J, self._chain_gradients(self._cached_jacobians(cache, y, wrt_X=False))
        if method == "paper":
            from .paper import paper_gradients

            return J, paper_gradients(self, cache, y)
        return J, self._direct_gradients(cache, y)

    def _chain_gradients(self, J: dict[str, Jacobian]) -> dict[str, NDArray]:
        """Section 3.2: ``dJ/dtheta`` is a row times the Jacobians in order; its transpose,
        ``unvec``-ed, is the gradient."""
        grads, row = {}, np.ones(1, dtype=self.dtype)  # dJ/dJ
        for upper, lower in pairwise(self.chain):
            row = row @ J[f"d{upper}/d{lower}"]  # dJ/d lower
            for theta in self._params_of(lower):
                grads[theta] = unvec(row @ J[f"d{lower}/d{theta}"], self.params[theta].shape)
        return grads

    def _direct_gradients(self, cache: dict, y) -> dict[str, NDArray]:
        L, p, grads = self.L, self.params, {}
        dA = direct.loss_backward(cache[f"A{L}"], y, self.loss_kind, self.reduction)
        dZ = direct.activate_backward(dA, cache[f"Z{L}"], self.output)
        dB, grads[f"W{L}"], grads[f"b{L}"] = direct.dense_backward(dZ, cache[f"B{L - 1}"],
                                                                   p[f"W{L}"])
        dA = unvec(dB.T.ravel(), cache[f"A{L - 1}"].shape)  # column n of dB is vec(dA[n])
        for l in range(L - 1, 0, -1):
            layer = self.layers[l - 1]
            dI = dA if layer["pool"] is None else direct.pool2d_backward(
                dA, cache[f"I{l}"], layer["pool"], layer["pool_size"], layer["pool_stride"],
                layer["pool_padding"])
            dZ = direct.activate_backward(dI, cache[f"Z{l}"], layer["activation"])
            dA, grads[f"K{l}"], grads[f"b{l}"] = direct.conv2d_backward(
                dZ, cache[f"A{l - 1}"], p[f"K{l}"], layer["stride"], layer["padding"],
                input_grad=l > 1)
        return grads

    # --- end-to-end Jacobians -------------------------------------------------------------
    def jacobian(self, X: ArrayLike, of: str, wrt: str, y: ArrayLike | None = None,
                 order: str = "reverse", report: bool = False):
        """Any end-to-end Jacobian along the chain, as a product of sparse Jacobians.

        Parameters
        ----------
        of, wrt : str
            Names on the chain (``"A3"``, ``"Z2"``, ``"J"`` with ``y``) and a variable below
            ``of`` (an activation ``"X"``, ``"A1"``, ... or a parameter ``"K1"``, ``"W3"``).
        order : {"reverse", "forward"}
            ``"reverse"`` multiplies left to right (from ``of`` down, as back-propagation),
            ``"forward"`` right to left (from ``wrt`` up).  The results are equal.
        report : bool
            Also return a list with each intermediate product's name, shape and nnz.

        Returns
        -------
        Jacobian ``d of / d wrt`` (and the report).
        """
        factors = self._path(of, wrt)
        if order not in ("reverse", "forward"):
            raise ValueError(f"order must be 'reverse' or 'forward', got {order!r}")
        cache = self._forward(X)
        if of == "J" and y is None:
            raise ValueError("of='J' needs the labels y")
        y = None if y is None else self._targets(y, cache["X"].shape[0])
        J = self._cached_jacobians(cache, y)
        mats = [J[name] for name in factors]
        steps = []
        product = mats[0] if order == "reverse" else mats[-1]
        rest = mats[1:] if order == "reverse" else mats[-2::-1]
        for factor in rest:
            product = product @ factor if order == "reverse" else factor @ product
            steps.append({"product": product.name, "shape": product.shape, "nnz": product.nnz})
        return (product, steps) if report else product

    def _path(self, of: str, wrt: str) -> list[str]:
        chain = self.chain + ["X"]
        params = list(self.params)
        if of not in chain[:-1]:
            raise ValueError(f"of must be one of {chain[:-1]}, got {of!r}")
        top = chain.index(of)
        if wrt in chain and chain.index(wrt) > top:
            names = chain[top : chain.index(wrt) + 1]
            return [f"d{a}/d{b}" for a, b in pairwise(names)]
        owner = next((z for z in chain if wrt in self._params_of(z)), None)
        if owner is not None and chain.index(owner) >= top:
            names = chain[top : chain.index(owner) + 1]
            return [f"d{a}/d{b}" for a, b in pairwise(names)] + [f"d{owner}/d{wrt}"]
        owners = {q: z for z in chain for q in self._params_of(z)}
        valid = chain[top + 1 :] + [q for q in params if chain.index(owners[q]) >= top]
        raise ValueError(f"wrt must be on the chain below {of!r}: one of {valid}, got {wrt!r}")


def _layer(value, n_layers: int, l: int):
    """Per-layer setting: a list/tuple with one entry per layer, else the same for all."""
    if n_layers > 1 and isinstance(value, (list, tuple)) and len(value) == n_layers:
        return value[l]
    return value
