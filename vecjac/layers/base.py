"""The layer protocol: settings validated once, one shape rule, forward, backward, Jacobians.

A layer is the unit of :class:`vecjac.Sequential`, as a primitive and its VJP are the unit
of an autodiff system; each class here keeps its forward pass, its derivative and its
explicit Jacobians side by side, and calls :mod:`vecjac.direct` and :mod:`vecjac.jacobians`
for the work.

Layouts, per sample and for a batch of ``N``:

* feature maps (conv part): ``(C, H, W)``, batched ``(N, C, H, W)``;
* vectors (fully-connected part): ``(n,)``, batched as the note's features x samples
  ``(n, N)`` (the slides' ``H1 = [400 x 100]``), so that ``vec`` is sample-outermost
  everywhere and the chain of Jacobians needs no reordering.

Parameters are not stored on the layer: :class:`vecjac.Sequential` keeps them in
``net.params`` under the note's names (``K1``, ``b1``, ``W3``) and hands each layer its own
under the local symbols (``K``, ``b`` or ``W``, ``b``).
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod

import numpy as np
from numpy.typing import NDArray

from ..jacobian import Jacobian

__all__ = ["Layer"]


class Layer(ABC):
    """Base class: subclasses set ``params`` and implement the methods below.

    Attributes
    ----------
    starts_block : bool
        ``True`` for the layers that open a block of the note (``Conv2d``, ``Dense``): their
        output is ``Z{l}``.
    params : tuple of str
        Local symbols of the layer's parameters, e.g. ``("K", "b")``.
    input_shape, output_shape : tuple of int
        Per-sample shapes, set by :meth:`bind` (``None`` before).
    """

    starts_block = False
    params: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.input_shape: tuple[int, ...] | None = None
        self.output_shape: tuple[int, ...] | None = None

    # --- shape ----------------------------------------------------------------------------
    def bind(self, input_shape: tuple[int, ...]) -> Layer:
        """A copy of this layer fixed to ``input_shape`` (per sample); validates the fit.

        Raises ``ValueError`` when the input does not fit (wrong rank, kernel larger than
        the padded input, ...).
        """
        bound = copy.copy(self)
        bound.input_shape = tuple(int(s) for s in input_shape)
        bound.output_shape = tuple(int(s) for s in self.output_shape_for(bound.input_shape))
        return bound

    @abstractmethod
    def output_shape_for(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The per-sample output shape for ``input_shape``; ``ValueError`` if it does not fit."""

    def _require_rank(self, input_shape: tuple[int, ...], rank: int, hint: str) -> None:
        if len(input_shape) != rank:
            raise ValueError(f"{type(self).__name__} needs {hint}, got shape {input_shape}")

    # --- parameters -----------------------------------------------------------------------
    def init_params(self, rng: np.random.Generator, dtype) -> dict[str, NDArray]:
        """Initial parameters under the local symbols (none for a parameter-free layer)."""
        return {}

    # --- passes ---------------------------------------------------------------------------
    @abstractmethod
    def forward(self, A: NDArray, p: dict[str, NDArray]) -> NDArray:
        """The layer's output for a batch ``A`` (layouts in the module docstring)."""

    def forward_with_context(self, A: NDArray, p: dict[str, NDArray]) -> tuple[NDArray, object]:
        """The output and whatever :meth:`backward` can reuse from the forward pass."""
        return self.forward(A, p), None

    @abstractmethod
    def backward(
        self, dOut: NDArray, A: NDArray, p: dict[str, NDArray], input_grad: bool = True,
        context=None,
    ) -> tuple[NDArray | None, dict[str, NDArray]]:
        """Ordinary back-propagation: ``(dL/dA or None, {symbol: dL/dparam})``; ``context``
        is what :meth:`forward_with_context` returned for ``A`` (or ``None``)."""

    # --- Jacobians ------------------------------------------------------------------------
    @abstractmethod
    def jacobian(self, A: NDArray, p: dict[str, NDArray], of: str, wrt: str,
                 structured: bool = True) -> Jacobian:
        """``d vec(out) / d vec(A)`` for the batch ``A``, named ``d{of}/d{wrt}``; kept in
        structured form (the builders' ``structured=True``) or flat."""

    def jacobian_with_context(self, A: NDArray, p: dict[str, NDArray], of: str, wrt: str,
                              structured: bool = True, context=None) -> Jacobian:
        """:meth:`jacobian`, given what :meth:`forward_with_context` returned for ``A`` (or
        ``None``), as :meth:`backward` is.  Default: the context is not needed."""
        return self.jacobian(A, p, of, wrt, structured)

    def param_jacobian(
        self, symbol: str, A: NDArray, p: dict[str, NDArray], of: str, wrt: str,
        structured: bool = True, context=None,
    ) -> Jacobian:
        """``d vec(out) / d vec(param)`` of the parameter ``symbol`` (one of ``params``);
        ``context`` is what :meth:`forward_with_context` returned for ``A`` (or ``None``)."""
        raise ValueError(f"{self!r} has no parameter {symbol!r}; its parameters are "
                         f"{self.params or 'none'}")

    def shape_only_jacobians(self) -> frozenset[str]:
        """Which of this layer's Jacobians depend on nothing but the batch's shape:
        ``"input"`` (:meth:`jacobian`) and/or parameter symbols (:meth:`param_jacobian`).
        :class:`vecjac.Sequential` builds those once per batch shape for its gradients
        (average pooling, flatten, biases).  Default: none."""
        return frozenset()

    # --- display --------------------------------------------------------------------------
    def _settings(self) -> str:
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._settings()})"
