r"""``Conv2d``: the note's convolution layer ``Z = A * K + b`` (sections 2, 3.1.5, 3.1.6).

    d vecZ_j / d vecK_{j,i} = [ vec(A_i * dK_{j,i}/dK_{j,i,uv}) ]   depends on A_i only
    d vecZ_j / d vecA_i     = [ vec(dA_i/dA_{i,pq} * K_{j,i}) ]     depends on K_{j,i} only
    d vecZ_j / d b_j        = 1

The builders are :func:`vecjac.jacobians.conv_wrt_kernel`, ``conv_wrt_input`` and
``conv_wrt_bias``; the direct pass is :func:`vecjac.direct.conv2d` and its backward.
"""

from __future__ import annotations

import numbers

import numpy as np

from .. import direct
from .. import jacobians as jac
from ..jacobian import Jacobian
from ..vec import as_pair, check_padding_mode, conv_output_shape
from .base import Layer

__all__ = ["Conv2d"]


class Conv2d(Layer):
    """Cross-correlation with padding and stride, ``C_in`` taken from the input.

    Parameters
    ----------
    out_channels : int
        ``C_out``, the number of kernels.
    kernel_size : int or (h_k, w_k)
    stride : int or (h_s, w_s)
    padding : int or (h_p, w_p)
        Padding on both sides of each spatial axis.
    padding_mode : {"zeros", "circular"}
        Pad with zeros (the note's, default) or wrap the input around (PyTorch's
        ``padding_mode="circular"``: the padding may be at most the input size).

    Parameters of the layer: ``K`` of shape ``(C_out, C_in, h_k, w_k)`` (``K[j, i]`` is the
    note's ``K_{j,i}``) and ``b`` of shape ``(C_out,)``; initialised Glorot-uniform,
    ``U(-a, a)`` with ``a = sqrt(6 / ((C_in + C_out) h_k w_k))``, and zero bias.
    """

    starts_block = True
    params = ("K", "b")

    def __init__(self, out_channels: int, kernel_size=3, stride=1, padding=0,
                 padding_mode: str = "zeros") -> None:
        super().__init__()
        if isinstance(out_channels, bool) or not isinstance(out_channels, numbers.Integral) \
                or out_channels < 1:
            raise ValueError(f"out_channels must be a positive int, got {out_channels!r}")
        self.out_channels = int(out_channels)
        self.kernel_size = as_pair(kernel_size, "kernel_size", 1)
        self.stride = as_pair(stride, "stride", 1)
        self.padding = as_pair(padding, "padding", 0)
        self.padding_mode = check_padding_mode(padding_mode)

    def output_shape_for(self, input_shape):
        self._require_rank(input_shape, 3, "feature maps (C, H, W)")
        check_padding_mode(self.padding_mode, self.padding, input_shape[1:])
        if self.padding_mode == "circular" and any(
                k > a for k, a in zip(self.kernel_size, input_shape[1:], strict=True)):
            raise ValueError(f"kernel_size {self.kernel_size} is larger than the input "
                             f"{tuple(input_shape[1:])}: with padding_mode='circular' the kernel "
                             "must fit in the input (it would wrap onto one entry twice)")
        hz, wz = conv_output_shape(input_shape[1:], self.kernel_size, self.stride, self.padding)
        return (self.out_channels, hz, wz)

    def init_params(self, rng, dtype):
        c_in, (hk, wk), c_out = self.input_shape[0], self.kernel_size, self.out_channels
        limit = np.sqrt(6.0 / ((c_in + c_out) * hk * wk))
        K = rng.uniform(-limit, limit, (c_out, c_in, hk, wk)).astype(dtype)
        return {"K": K, "b": np.zeros(c_out, dtype=dtype)}

    def forward(self, A, p):
        return direct.conv2d(A, p["K"], p["b"], self.stride, self.padding,
                             padding_mode=self.padding_mode)

    def forward_with_context(self, A, p):
        """``Z`` and the unfolded input (im2col), which the backward pass reuses."""
        return direct.conv2d(A, p["K"], p["b"], self.stride, self.padding, return_cols=True,
                             padding_mode=self.padding_mode)

    def backward(self, dOut, A, p, input_grad=True, context=None):
        dA, dK, db = direct.conv2d_backward(dOut, A, p["K"], self.stride, self.padding,
                                            input_grad=input_grad, cols=context,
                                            padding_mode=self.padding_mode)
        return dA, {"K": dK, "b": db}

    def jacobian(self, A, p, of, wrt, structured=True) -> Jacobian:
        return jac.conv_wrt_input(p["K"], A.shape, self.stride, self.padding, of=of, wrt=wrt,
                                  structured=structured, padding_mode=self.padding_mode)

    def param_jacobian(self, symbol, A, p, of, wrt, structured=True, context=None) -> Jacobian:
        if symbol == "K":  # the forward pass's im2col (context) serves the products R @ J
            return jac.conv_wrt_kernel(A, p["K"].shape, self.stride, self.padding, of=of,
                                       wrt=wrt, structured=structured, cols=context,
                                       padding_mode=self.padding_mode)
        return jac.conv_wrt_bias((A.shape[0],) + self.output_shape, of=of, wrt=wrt,
                                 dtype=A.dtype, structured=structured)

    def shape_only_jacobians(self) -> frozenset[str]:
        return frozenset({"b"})

    def _settings(self) -> str:
        circular = ", padding_mode='circular'" if self.padding_mode == "circular" else ""
        return (f"{self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}{circular}")
