r"""``Sequential``: any CNN of the note's shape as a list of layers and a loss.

The note derives its gradients for a general layer ``l``; this class runs that derivation
for any stack of conv blocks (``Conv2d``, activations, pooling), a ``Flatten`` and dense
blocks (``Dense``, activations), then a loss ``J``.

**Names** follow the note, generalised.  A block starts at each ``Conv2d`` or ``Dense``
(block ``l``, counted from 1); its output is ``Z{l}`` and its parameters ``K{l}``, ``b{l}``
(conv) or ``W{l}``, ``b{l}`` (dense).  The last layer of the block gives ``A{l}``; one layer
between them gives ``I{l}`` (the activation before pooling), several give ``I{l}_1``,
``I{l}_2``, ...  A block of the ``Conv2d`` / ``Dense`` alone has no ``A{l}``: its output is
``Z{l}``.  ``Flatten`` gives ``B{l}`` after block ``l``.  The input is ``X``; the loss ``J``.

**Layouts.**  Feature maps are ``(N, C, H, W)``; the fully-connected part uses the note's
features x samples, ``B{l}`` of shape ``(n, N)`` (the slides' ``H1 = [400 x 100]``), so that
every ``vec`` is sample-outermost and the chain needs no reordering.  Dense weights are the
note's ``(n_in, n_out)`` with ``Z = W^T B + b``; ``forward`` returns ``(N, n_out)``.

**Gradients three ways** (``gradients(method=...)``), held equal by the tests:
``"jacobian"``, a row vector times the stacked sparse Jacobians in order (section 3.2);
``"paper"``, the note's per-channel recursion (sections 3.1.1-3.1.6, :mod:`vecjac.paper`);
``"direct"``, ordinary back-propagation with :mod:`vecjac.direct`.
"""

from __future__ import annotations

import time
from functools import cached_property
from itertools import pairwise

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import direct
from . import jacobians as jac
from .heap import raise_heap_thresholds
from .jacobian import Jacobian
from .layers import Activation, Flatten, Layer
from .structure import Diagonal, Identity, per_sample_rmat
from .vec import as_float_array, check_choice, finite_checked, unvec

__all__ = ["Sequential"]

_SQUASHING = ("softmax", "sigmoid")  # outputs the cross-entropies read as probabilities


class Sequential:
    """A list of layers and a loss, with every Jacobian of the chain and three gradients.

    Parameters
    ----------
    input_shape : (C, H, W)
        One sample's shape; inputs ``X`` are ``(N, C, H, W)``.
    layers : list of :class:`vecjac.layers.Layer`
        Conv blocks, ``Flatten``, dense blocks, in the note's order; each layer is checked
        against its input here (an error names the layer).  The objects are copied.
    loss : {"cross_entropy", "binary_cross_entropy", "squared_error"}, optional
        Needs a vector output.  The cross-entropies read the output as probabilities when the
        last layer is a softmax or sigmoid ``Activation``; otherwise as logits, with softmax
        (sigmoid) fused into the loss, as ``torch.nn.functional.cross_entropy``
        (``binary_cross_entropy_with_logits``) does.  ``None``: no loss (forward passes and
        Jacobians only).
    reduction : {"sum", "mean"}
        The loss sums over the batch (default, as the slides) or averages.
    seed : int
        Seeds the initialisation (each layer's ``init_params``, in order).
    dtype : float64 (default) or float32

    Examples
    --------
    >>> from vecjac.layers import Conv2d, Activation, Pool2d, Flatten, Dense
    >>> net = Sequential((1, 8, 8), [Conv2d(4, 3, padding=1), Activation("tanh"),
    ...                  Pool2d("avg", 2), Flatten(), Dense(10), Activation("softmax")],
    ...                  loss="cross_entropy")
    >>> net.chain
    ['J', 'A2', 'Z2', 'B1', 'A1', 'I1', 'Z1']
    """

    def __init__(self, input_shape, layers, loss: str | None = None, reduction: str = "sum",
                 seed: int = 0, dtype=np.float64):
        self.input_shape = tuple(int(s) for s in input_shape)
        if len(self.input_shape) != 3 or min(self.input_shape) < 1:
            raise ValueError(f"input_shape must be (C, H, W) of positive sizes, got {input_shape}")
        layers = list(layers)
        if not layers or not all(isinstance(layer, Layer) for layer in layers):
            raise TypeError("layers must be a non-empty list of vecjac.layers objects, got "
                            f"{[type(layer).__name__ for layer in layers]}")
        if loss is not None:
            check_choice(loss, "loss", direct.LOSSES)
        check_choice(reduction, "reduction", direct.REDUCTIONS)
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {self.dtype}")
        self.names = _output_names(layers)
        self.layers, shape = [], self.input_shape
        for i, (layer, name) in enumerate(zip(layers, self.names, strict=True)):
            try:
                self.layers.append(layer.bind(shape))
            except ValueError as error:
                raise ValueError(f"layer {i + 1}, {layer!r} (giving {name}, input of shape "
                                 f"{shape}): {error}") from None
            shape = self.layers[-1].output_shape
        self.inputs = ["X"] + self.names[:-1]
        self.shapes = dict(zip(["X"] + self.names, [self.input_shape] + [
            layer.output_shape for layer in self.layers], strict=True))
        self.output_shape, self.top = shape, self.names[-1]
        if loss is not None and len(shape) != 1:
            raise ValueError(f"loss {loss!r} needs a vector output (end with Flatten/Dense), "
                             f"but the last layer gives {self.top} of shape {shape}")
        self.loss_kind, self.reduction = loss, reduction
        last = self.layers[-1]
        self.from_logits = loss in direct.LOGIT_LOSSES and not (
            isinstance(last, Activation) and last.kind in _SQUASHING)
        self.param_names = [_param_names(layer, name) for layer, name in
                            zip(self.layers, self.names, strict=True)]
        self.L = sum(layer.starts_block for layer in self.layers)
        self._shape_only: dict = {}  # Jacobians of the batch's shape alone (_cached_jacobians)
        rng = np.random.default_rng(seed)
        self.params: dict[str, NDArray] = {}
        for layer, names in zip(self.layers, self.param_names, strict=True):
            for symbol, value in layer.init_params(rng, self.dtype).items():
                self.params[names[symbol]] = value

    # --- structure ------------------------------------------------------------------------
    @property
    def chain(self) -> list[str]:
        """The variables from the loss down to the first layer's output (``X`` excluded)."""
        return (["J"] if self.loss_kind else []) + self.names[::-1]

    @property
    def n_out(self) -> int:
        """The size of one sample's output (vector outputs)."""
        return int(np.prod(self.output_shape))

    def _params_of(self, name: str) -> tuple[str, ...]:
        i = self.names.index(name) if name in self.names else None
        return () if i is None else tuple(self.param_names[i].values())

    def _local(self, i: int) -> dict[str, NDArray]:
        return {s: self.params[g] for s, g in self.param_names[i].items()}

    def __repr__(self) -> str:
        rows = [f"  {name} = {layer!r}  -> {layer.output_shape}"
                for name, layer in zip(self.names, self.layers, strict=True)]
        loss = f"loss={self.loss_kind!r}, reduction={self.reduction!r}"
        return (f"{type(self).__name__}(input {self.input_shape}, {loss},\n" + "\n".join(rows)
                + "\n)")

    # --- forward --------------------------------------------------------------------------
    def _check_X(self, X: ArrayLike) -> NDArray:
        X = as_float_array(X, "X", ndims=(4,))
        if X.shape[1:] != self.input_shape:
            raise ValueError(
                f"X must have shape (N, {', '.join(map(str, self.input_shape))}) for this "
                f"network, got {X.shape}"
            )
        return X.astype(self.dtype, copy=False)

    def _forward(self, X: ArrayLike, context: bool = False) -> dict:
        """Every intermediate of the forward pass, by the note's names; with ``context``,
        also what each layer's backward pass reuses, under the key ``(i, "context")``."""
        raise_heap_thresholds()  # once per process: see vecjac.heap
        cache = {"X": _vec_layout(self._check_X(X))}
        A = cache["X"]
        for i, (layer, name) in enumerate(zip(self.layers, self.names, strict=True)):
            if context:
                A, cache[i, "context"] = layer.forward_with_context(A, self._local(i))
            else:
                A = layer.forward(A, self._local(i))
            cache[name] = A
        return cache

    def forward(self, X: ArrayLike) -> NDArray:
        """The network's output: ``(N, n_out)`` for a vector output, else ``(N, C, H, W)``."""
        out = self._forward(X)[self.top]
        return out.T if out.ndim == 2 else out

    def _targets(self, y: ArrayLike, N: int):
        if self.loss_kind is None:
            raise ValueError("this network has no loss: pass loss= to the constructor")
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

    def _loss(self, top: NDArray, y) -> float:
        if self.from_logits:
            return direct.loss_from_logits(top, y, self.loss_kind, self.reduction)[0]
        return float(direct.loss(top, y, self.loss_kind, self.reduction))

    def loss(self, X: ArrayLike, y: ArrayLike) -> float:
        """The scalar ``J`` for inputs ``X`` of shape ``(N, C, H, W)``.

        ``y`` (here and in ``jacobians``, ``gradients``, ``jacobian``): integer labels of
        shape ``(N,)``, class indices in ``[0, n_out)`` (0/1 targets when ``n_out == 1``),
        or float targets of shape ``(N, n_out)`` (``(N,)`` when ``n_out == 1``).
        """
        cache = self._forward(X)
        return self._loss(cache[self.top], self._targets(y, cache["X"].shape[0]))

    # --- Jacobians ------------------------------------------------------------------------
    def _loss_row(self, top: NDArray, y, structured: bool = True) -> tuple[float, Jacobian]:
        """The loss and its Jacobian row ``dJ/d<top>``, from one evaluation of the loss."""
        build = jac.loss_from_logits if self.from_logits else jac.loss
        return build(top, y, self.loss_kind, self.reduction, wrt=self.top,
                     structured=structured)

    def _loss_and_backward(self, top: NDArray, y) -> tuple[float, NDArray]:
        """The loss and back-propagation's ``dJ/d<top>``, from one evaluation of the loss
        (the direct path's counterpart of :meth:`_loss_row`)."""
        evaluate = direct.loss_from_logits if self.from_logits else direct.loss_and_backward
        return evaluate(top, y, self.loss_kind, self.reduction)

    def _cached_jacobians(self, cache: dict, y=None, wrt_X: bool = True,
                          structured: bool = True, reuse: bool = False,
                          loss_row: Jacobian | None = None) -> dict[str, Jacobian]:
        """Every Jacobian of the chain from the forward cache, from the loss down; build
        times in ``self.build_ms``.  ``wrt_X=False`` skips the first layer's ``d../dX``;
        ``loss_row`` is ``dJ/d<top>`` when the caller has it (else built from ``y``).

        ``reuse=True`` is for the gradient paths, whose Jacobians never leave the call: the
        Jacobians that depend on the batch's shape alone (``Layer.shape_only_jacobians``:
        average pooling, flatten, biases) come from ``self._shape_only``, built at the first
        call with that shape, and every other one is built when the chain first asks for it
        and forgotten by the mapping then (:class:`_OnDemand`), so each is used while its
        arrays are fresh in the cache and no more of them are held than the chain needs.
        ``jacobians()`` always builds new objects for the caller, all at once."""
        self.build_ms = {}
        specs = dict(self._jacobian_specs[wrt_X])
        if loss_row is None and y is not None:
            specs = {f"dJ/d{self.top}": None} | specs

        def build(key, spec):
            start = time.perf_counter()
            if spec is None:  # the loss row
                J = self._loss_row(cache[self.top], y, structured)[1]
            else:
                J = self._layer_jacobian(key, spec, cache, structured, reuse)
            self.build_ms[key] = 1e3 * (time.perf_counter() - start)
            return J

        ready = {} if loss_row is None else {f"dJ/d{self.top}": loss_row}
        if reuse:
            return _OnDemand(build, specs, ready)
        return ready | {key: build(key, spec) for key, spec in specs.items()}

    def _layer_jacobian(self, key: str, spec: tuple, cache: dict, structured: bool,
                        reuse: bool) -> Jacobian:
        """The Jacobian ``key`` of layer ``i``: of its parameter ``symbol``, or of its input
        (``symbol`` None); with ``reuse``, one that depends on the batch's shape alone comes
        from ``self._shape_only``."""
        i, symbol, wrt, shape_only = spec
        layer, name, A = self.layers[i], self.names[i], cache[self.inputs[i]]
        if reuse and shape_only:
            cached = (key, A.shape, A.dtype, structured)
            if cached not in self._shape_only:
                self._shape_only[cached] = self._layer_jacobian(key, spec, cache, structured,
                                                                False)
            return self._shape_only[cached]
        p, context = self._local(i), cache.get((i, "context"))  # im2col, an activation's I
        if symbol is None:
            return layer.jacobian_with_context(A, p, name, wrt, structured, context)
        return layer.param_jacobian(symbol, A, p, name, wrt, structured, context)

    @cached_property
    def _jacobian_specs(self) -> dict[bool, dict[str, tuple]]:
        """For ``wrt_X`` False and True: every layer Jacobian's key, from the top (each
        layer's parameters, then its input), and how to build it: ``(i, symbol or None, wrt
        name, shape-only?)``; fixed by the layers, made once."""
        specs: dict[str, tuple] = {}
        for i in range(len(self.layers) - 1, -1, -1):
            name, below = self.names[i], self.inputs[i]
            kinds = self.layers[i].shape_only_jacobians()
            for symbol, theta in self.param_names[i].items():
                specs[f"d{name}/d{theta}"] = (i, symbol, theta, symbol in kinds)
            specs[f"d{name}/d{below}"] = (i, None, below, "input" in kinds)
        without_X = {k: v for k, v in specs.items() if not (v[0] == 0 and v[1] is None)}
        return {False: without_X, True: specs}

    @cached_property
    def _gradient_plan(self) -> list[tuple[str, tuple[tuple[str, str], ...]]]:
        """Down the chain: each step's key ``"d<upper>/d<lower>"`` and the parameters of
        ``lower`` with their keys ``(theta, "d<lower>/d<theta>")``; made once."""
        return [(f"d{upper}/d{lower}", tuple((theta, f"d{lower}/d{theta}")
                                              for theta in self._params_of(lower)))
                for upper, lower in pairwise(self.chain)]

    def jacobians(self, X: ArrayLike, y: ArrayLike | None = None,
                  structured: bool = True) -> dict[str, Jacobian]:
        """Every named Jacobian of the chain, ``{"dJ/dA3": ..., "dZ1/dX": ...}``.

        ``dJ/d<top>`` is included when the labels ``y`` are given.  ``structured=True``
        (default) keeps each in its structured form (``I_N (x) M``, diagonals, ...: see
        ``J.structure``), ``False`` builds every one flat.  ``J.matrix`` is the same either way.
        """
        cache = self._forward(X)
        y = None if y is None else self._targets(y, cache["X"].shape[0])
        return self._cached_jacobians(cache, y, structured=structured)

    # --- gradients ------------------------------------------------------------------------
    def gradients(self, X: ArrayLike, y: ArrayLike, method: str = "jacobian") -> dict[str, NDArray]:
        """``nabla_theta J`` for every parameter, arrays shaped like ``params``.

        ``method`` is ``"jacobian"``, ``"paper"`` or ``"direct"`` (module docstring); all
        three agree to rounding (the tests hold them to 1e-10).
        """
        return self.loss_and_gradients(X, y, method)[1]

    def loss_and_gradients(
        self, X: ArrayLike, y: ArrayLike, method: str = "jacobian"
    ) -> tuple[float, dict[str, NDArray]]:
        """``J`` and the gradients of :meth:`gradients`, from one forward pass."""
        if method not in ("jacobian", "paper", "direct"):
            raise ValueError(f"method must be 'jacobian', 'paper' or 'direct', got {method!r}")
        X, y = self._checked_inputs(X, y)
        with finite_checked():  # every array below derives from the checked X and params
            cache = self._forward(X, context=method in ("direct", "jacobian"))
            if method == "jacobian":  # the loss and its row from one evaluation
                J, row = self._loss_row(cache[self.top], y)
                with jac.shared_patterns():  # transient Jacobians: no copies of patterns
                    return J, self._chain_gradients(self._cached_jacobians(
                        cache, wrt_X=False, reuse=True, loss_row=row))
            if method == "paper":
                from .paper import paper_gradients

                return self._loss(cache[self.top], y), paper_gradients(self, cache, y)
            return self._direct_gradients(cache, y)

    def _checked_inputs(self, X: ArrayLike, y: ArrayLike) -> tuple[NDArray, object]:
        """``X``, the targets and every parameter checked in full (shapes, finite values),
        so that the gradient paths can skip the per-array checks (``finite_checked``)."""
        X = self._check_X(X)
        for name, value in self.params.items():
            as_float_array(value, name)
        return X, self._targets(y, X.shape[0])

    def _chain_gradients(self, J: dict[str, Jacobian], n_samples: int | None = None
                         ) -> dict[str, NDArray]:
        """Section 3.2: ``dJ/dtheta`` is a row times the Jacobians in order; its transpose,
        ``unvec``-ed, is the gradient.  With ``n_samples``, each sample's part of the row
        times its block of the parameter's Jacobian, without the sum over samples."""
        grads, row = {}, np.ones(1, dtype=self.dtype)  # dJ/dJ
        for key, thetas in self._gradient_plan:
            row = self._times(row, J[key])  # dJ/d lower; the Jacobian is let go after use
            for theta, theta_key in thetas:
                grads[theta] = self._theta_gradient(row, J[theta_key], self.params[theta].shape,
                                                    n_samples)
        return grads

    @staticmethod
    def _times(row: NDArray, step: Jacobian) -> NDArray:
        """``row @ step`` for a row the chain owns (made by an earlier product, never the
        caller's): the note's flatten ``B2 = vec(A2)`` is skipped (the row is already
        ``dJ/d lower``) and an activation's diagonal scales the row in place."""
        s = step._structure
        if isinstance(s, Diagonal) and row.shape == s.d.shape and row.dtype == s.d.dtype:
            if not isinstance(s, Identity):
                row *= s.d
            return row
        return row @ step

    @staticmethod
    def _theta_gradient(row: NDArray, J_theta: Jacobian, shape, n_samples: int | None):
        if n_samples is None:
            return unvec(row @ J_theta, shape)
        rows = per_sample_rmat(J_theta._structure, row, n_samples)
        return (unvec(rows.ravel(), (n_samples,) + shape) if len(shape) >= 2
                else rows.reshape((n_samples,) + shape))

    def per_sample_gradients(self, X: ArrayLike, y: ArrayLike) -> dict[str, NDArray]:
        """Each sample's gradient, dict like ``params`` with arrays ``(N, *param.shape)``.

        The chain's row ``dJ/d out`` of a batch is the samples' rows side by side (every
        Jacobian with respect to an activation is block diagonal over samples), and a
        parameter's Jacobian stacks one block of rows per sample; so sample ``n``'s gradient
        is its part of the row times its block, the same products as :meth:`gradients` with
        the sum over samples left out.  The sum over the first axis equals
        ``gradients(X, y)``; with ``reduction="mean"`` each sample's gradient carries the
        ``1/N`` of the loss.
        """
        X, y = self._checked_inputs(X, y)
        with finite_checked(), jac.shared_patterns():
            cache = self._forward(X, context=True)  # the forward's im2col, reused by dZ/dK
            return self._chain_gradients(self._cached_jacobians(cache, y, wrt_X=False,
                                                                reuse=True), X.shape[0])

    # --- beyond gradients (vecjac.curvature) ---------------------------------------------
    def ggn(self, X: ArrayLike, y: ArrayLike, diagonal: bool = False):
        """The exact generalized Gauss-Newton matrix ``J_theta^T H J_theta``, split at
        ``Z_L`` (``H``: the Hessian of the loss, output activation included, with respect to
        ``Z_L``): dense ``(P, P)`` in ``params`` order, or its diagonal as a dict like
        ``params`` with ``diagonal=True``.  See :func:`vecjac.curvature.ggn`."""
        from .curvature import ggn

        return ggn(self, X, y, diagonal)

    def ggn_operator(self, X: ArrayLike, y: ArrayLike):
        """:meth:`ggn` as a ``scipy.sparse.linalg.LinearOperator`` (no ``P x P`` matrix)."""
        from .curvature import ggn_operator

        return ggn_operator(self, X, y)

    def ntk(self, X1: ArrayLike, X2: ArrayLike | None = None, of: str | None = None) -> NDArray:
        """The empirical NTK ``J_theta(X1) J_theta(X2)^T`` of ``of`` (default ``Z_L``), shape
        ``(N1, N2, m, m)``.  See :func:`vecjac.curvature.ntk`."""
        from .curvature import ntk

        return ntk(self, X1, X2, of)

    def _direct_gradients(self, cache: dict, y) -> tuple[float, dict[str, NDArray]]:
        """The loss and back-propagation's gradients, from one evaluation of the loss."""
        grads = {}
        J, dA = self._loss_and_backward(cache[self.top], y)
        for i in range(len(self.layers) - 1, -1, -1):
            dA, g = self.layers[i].backward(dA, cache[self.inputs[i]], self._local(i),
                                            input_grad=i > 0, context=cache.get((i, "context")))
            grads.update({self.param_names[i][s]: value for s, value in g.items()})
        return J, grads

    # --- end-to-end Jacobians -------------------------------------------------------------
    def jacobian(self, X: ArrayLike, of: str, wrt: str, y: ArrayLike | None = None,
                 order: str = "reverse", report: bool = False, structured: bool = True):
        """Any end-to-end Jacobian along the chain, as a product of sparse Jacobians.

        Parameters
        ----------
        of, wrt : str
            Names on the chain (``"A3"``, ``"Z2"``, ``"J"`` with ``y``) and a variable below
            ``of`` (an activation ``"X"``, ``"A1"``, ... or a parameter ``"K1"``, ``"W3"``).
        order : {"reverse", "forward", "optimal"}
            ``"reverse"`` multiplies left to right (from ``of`` down, as back-propagation),
            ``"forward"`` right to left (from ``wrt`` up).  ``"optimal"`` multiplies in the
            bracketing of least predicted cost, found by dynamic programming over the
            sub-chains with a cost model from the factors' sparsity (matrix chain ordering,
            :mod:`vecjac.bracketing`); reverse and forward are two of its candidates.  The
            results are equal.
        report : bool
            Also return a :class:`vecjac.bracketing.ChainReport`: a list with each
            product's name, shape, nnz (of its flat form), structure, sub-bracketing and
            multiply-adds (``cost``, counted from its operands; ``predicted``, the model's),
            in the order performed; its attributes ``bracketing`` (the whole bracketing with
            the factors' names), ``predicted_cost``, ``performed_cost`` and ``predicted``
            (the predicted cost of every order).
        structured : bool
            Multiply through the factors (default): a per-sample product such as ``dZ2/dX``
            stays one block per sample, ``I_N (x) M``.  ``False``: flat sparse products.

        Returns
        -------
        Jacobian ``d of / d wrt`` (and the report).
        """
        from . import bracketing as br

        factors = self._path(of, wrt)
        if not isinstance(order, str) or order not in br.ORDERS:
            raise ValueError(f"order must be 'reverse', 'forward' or 'optimal', got {order!r}")
        cache = self._forward(X)
        if of == "J" and y is None:
            raise ValueError("of='J' needs the labels y")
        y = None if y is None else self._targets(y, cache["X"].shape[0])
        J = self._cached_jacobians(cache, y, structured=structured)
        mats = [J[name] for name in factors]
        costs = br.ChainCosts(mats) if report or order == "optimal" else None
        tree = br.bracketing(order, costs if costs is not None else len(mats))
        product, steps = br.multiply_chain(mats, tree, costs if report else None)
        if not report:
            return product
        predicted = {o: costs.cost(br.bracketing(o, costs)) for o in br.ORDERS}
        return product, br.ChainReport(
            steps, order=order, bracketing=br.format_bracketing(tree, factors),
            predicted_cost=costs.cost(tree), performed_cost=sum(s["cost"] for s in steps),
            predicted=predicted)

    def _path(self, of: str, wrt: str) -> list[str]:
        chain = self.chain + ["X"]
        if of not in chain[:-1]:
            raise ValueError(f"of must be one of {chain[:-1]}, got {of!r}")
        top = chain.index(of)
        owners = {theta: z for z in chain for theta in self._params_of(z)}
        if wrt in chain and chain.index(wrt) > top:
            names, last = chain[top : chain.index(wrt) + 1], []
        elif wrt in owners and chain.index(owners[wrt]) >= top:
            names, last = chain[top : chain.index(owners[wrt]) + 1], [f"d{owners[wrt]}/d{wrt}"]
        else:
            valid = chain[top + 1 :] + [q for q, z in owners.items() if chain.index(z) >= top]
            raise ValueError(f"wrt must be on the chain below {of!r}: one of {valid}, got {wrt!r}")
        return [f"d{a}/d{b}" for a, b in pairwise(names)] + last


class _OnDemand(dict):
    """Jacobians by name, each built by ``build(name, spec)`` when first looked up; the
    mapping then forgets the spec (the caller holds the Jacobian while it needs it).
    ``ready`` holds Jacobians the caller already has."""

    def __init__(self, build, later: dict, ready: dict | None = None):
        super().__init__(ready or {})
        self._build, self._later = build, later

    def __missing__(self, name: str):
        return self._build(name, self._later.pop(name))


def _vec_layout(X: NDArray) -> NDArray:
    """``X`` stored in the note's vec layout, every channel column-major (the values and
    shape unchanged): the convolutions and poolings keep that layout for their outputs
    (``direct.conv.vec_layout``), so ``vec`` of every map in the chain is a reshape and the
    Jacobian products read the rows and the maps in the same order."""
    return np.ascontiguousarray(X.swapaxes(-1, -2)).swapaxes(-1, -2)


def _output_names(layers: list[Layer]) -> list[str]:
    """The note's name of every layer's output (the rule in the module docstring)."""
    names: list[str] = []
    run: list[int] = []  # layers after the current block's Z, named when the block ends
    l, anchor = 0, "X"

    def close() -> None:
        if not run:
            return
        labels = [f"I{l}"] if len(run) == 2 else [f"I{l}_{k}" for k in range(1, len(run))]
        for i, label in zip(run, labels[: len(run) - 1] + [f"A{l}"], strict=True):
            names[i] = label
        run.clear()

    for i, layer in enumerate(layers):
        if layer.starts_block or isinstance(layer, Flatten):
            close()
            l += layer.starts_block
            anchor = "Z" if layer.starts_block else "B"
            names.append(f"{anchor}{l}")
        elif anchor != "Z":
            where = "the first layer" if anchor == "X" else "right after Flatten"
            raise ValueError(f"layer {i + 1}, {layer!r}, cannot be {where}: activations and "
                             "pooling belong to a block that starts with Conv2d or Dense")
        else:
            names.append("")
            run.append(i)
    close()
    return names


def _param_names(layer: Layer, name: str) -> dict[str, str]:
    """``{"K": "K2", "b": "b2"}`` for the layer giving ``Z2``."""
    return {symbol: f"{symbol}{name[1:]}" for symbol in layer.params}
