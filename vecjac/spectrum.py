r"""Exact singular values of a convolution layer, from its explicit Jacobian.

A convolution layer ``Z = A * K`` (all channels, one sample) is the linear map
``vecA -> vecZ`` whose matrix is ``d vecZ / d vecA`` (:func:`vecjac.jacobians.conv_wrt_input`).
Its singular values are therefore exact to rounding, for any stride, padding and padding mode:

* :func:`conv_singular_values` takes a dense SVD (``numpy.linalg.svd(..., compute_uv=False)``)
  while the Jacobian is small (both sides at most ``dense_limit = 4096``, a dense matrix of at
  most 128 MiB), and ``scipy.sparse.linalg.svds`` on the sparse matrix for the top ``k``
  otherwise;
* :func:`conv_spectral_norm` is the largest one, the layer's Lipschitz constant in the
  Euclidean norm.

Two common shortcuts, for comparison:

* :func:`fft_singular_values`, Sedghi, Gupta and Long, "The singular values of convolutional
  layers" (ICLR 2019): for stride 1 and *circular* padding that keeps the size (``h_k = 2 h_p +
  1``, likewise ``w``), the layer is diagonalised by the 2-D DFT of each channel, and its
  singular values are those of the ``C_out x C_in`` matrices ``P[:, :, u, v]``,
  ``P = fft2(K zero-padded to h_a x w_a)``, over every frequency ``(u, v)``.  The paper writes
  a convolution; this package (and PyTorch) computes a cross-correlation with a shift by the
  padding.  The correlation's matrix at frequency ``(u, v)`` is ``conj(P[:, :, u, v])`` (for a
  real kernel, ``P`` at frequency ``(-u, -v)``) times the phase ``exp(2 pi i (u h_p / h_a +
  v w_p / w_a))``: neither conjugation, the flip of frequencies nor a phase of modulus one
  changes singular values, so the formula is the same.  For zero padding it is only an
  estimate.
* :func:`reshaped_kernel_norm`: the spectral norm of ``K`` reshaped to
  ``(C_out, C_in h_k w_k)``, another common estimate (exact for a 1x1 kernel).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse.linalg as spla
from numpy.typing import ArrayLike, NDArray

from .budget import check_budget
from .jacobians import conv_wrt_input
from .vec import as_float_array, as_pair, as_shape, check_padding_mode, conv_output_shape

__all__ = [
    "conv_singular_values",
    "conv_spectral_norm",
    "fft_singular_values",
    "reshaped_kernel_norm",
    "DENSE_LIMIT",
]

DENSE_LIMIT = 4096  # dense SVD while both sides of the Jacobian are at most this


def conv_singular_values(
    K: ArrayLike,
    input_shape,
    stride=1,
    padding=0,
    padding_mode: str = "zeros",
    k: int | None = None,
    *,
    dense_limit: int = DENSE_LIMIT,
    max_bytes: int | None = None,
) -> NDArray:
    """Exact singular values of the layer ``vecA -> vec(A * K)``, in descending order.

    Parameters
    ----------
    K : array_like, shape (C_out, C_in, h_k, w_k)
    input_shape : (C_in, h_a, w_a), or (h_a, w_a) (``C_in`` read from ``K``)
        One sample: the spectrum of a batch is each sample's, repeated.
    stride, padding : int or pair
    padding_mode : {"zeros", "circular"}
    k : int, optional
        How many of the largest singular values.  ``None``: all ``min(m, n)`` of the
        ``m x n`` Jacobian, which needs the dense path.
    dense_limit : int
        Dense SVD when both sides of the Jacobian are at most this (default 4096: at most a
        128 MiB matrix), else ``scipy.sparse.linalg.svds`` (ARPACK, ``k < min(m, n)``).
    max_bytes : int, optional
        Memory budget for this call (the dense matrix and its SVD workspace; the sparse
        Jacobian).

    Returns
    -------
    s : ndarray, shape (k,) or (min(m, n),), descending
    """
    K = as_float_array(K, "K", ndims=(4,))
    shape = as_shape(input_shape, "input_shape")
    if len(shape) == 2:
        shape = (K.shape[1],) + shape
    if len(shape) != 3:
        raise ValueError(
            f"input_shape must be (C_in, h_a, w_a) or (h_a, w_a) of one sample, got {shape}")
    check_padding_mode(padding_mode, as_pair(padding, "padding", 0), shape[1:])
    if not isinstance(dense_limit, (int, np.integer)) or isinstance(dense_limit, bool) \
            or dense_limit < 0:
        raise ValueError(f"dense_limit must be an int >= 0, got {dense_limit!r}")
    hz, wz = conv_output_shape(shape[1:], K.shape[2:], stride, padding)
    m, n = K.shape[0] * hz * wz, int(np.prod(shape))
    if k is not None:
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool):
            raise TypeError(f"k must be an int or None, got {k!r}")
        if not 1 <= k <= min(m, n):
            raise ValueError(f"k must be between 1 and min(m, n) = {min(m, n)} for the "
                             f"{m} x {n} Jacobian, got {k}")
    dense = max(m, n) <= dense_limit
    if not dense and (k is None or k >= min(m, n)):
        raise ValueError(
            f"the {m} x {n} Jacobian is larger than dense_limit = {dense_limit}: pass k < "
            f"{min(m, n)} for the top k by scipy.sparse.linalg.svds, or raise dense_limit")
    if dense:  # the dense matrix, LAPACK's copy and workspace of about min(m, n)^2
        check_budget(8 * (2 * m * n + 4 * min(m, n) ** 2 + 2 * max(m, n)),
                     f"dense SVD of the {m} x {n} convolution Jacobian", max_bytes)
    J = conv_wrt_input(K, shape, stride, padding, padding_mode=padding_mode,
                       max_bytes=max_bytes, structured=False)
    if dense:
        s = np.linalg.svd(J.toarray(), compute_uv=False)
        return s if k is None else s[:k]
    v0 = np.random.default_rng(0).standard_normal(min(m, n))  # reproducible start
    s = spla.svds(J.matrix, k=k, which="LM", return_singular_vectors=False, tol=0, v0=v0,
                  solver="arpack")
    return np.sort(s)[::-1]


def conv_spectral_norm(K: ArrayLike, input_shape, stride=1, padding=0,
                       padding_mode: str = "zeros", **kwargs) -> float:
    """The largest singular value of the layer (its Euclidean Lipschitz constant), exact.

    Arguments as :func:`conv_singular_values` (without ``k``).
    """
    if "k" in kwargs:
        raise TypeError("conv_spectral_norm takes no k: it is the top singular value")
    return float(conv_singular_values(K, input_shape, stride, padding, padding_mode, k=1,
                                      **kwargs)[0])


def fft_singular_values(K: ArrayLike, input_hw) -> NDArray:
    """Sedghi, Gupta and Long's singular values of a stride-1 circular convolution.

    The singular values of ``P[:, :, u, v]`` for every frequency ``(u, v)`` of the
    ``h_a x w_a`` input, ``P = fft2(K zero-padded to h_a x w_a)``.  They are the exact
    singular values of :func:`conv_singular_values` with ``stride=1``,
    ``padding_mode="circular"`` and a padding that keeps the size (``h_k = 2 h_p + 1``,
    ``w_k = 2 w_p + 1``); see the module docstring for correlation vs convolution.

    Parameters
    ----------
    K : array_like, shape (C_out, C_in, h_k, w_k), with ``h_k <= h_a`` and ``w_k <= w_a``
    input_hw : int or (h_a, w_a)

    Returns
    -------
    s : ndarray, shape (h_a w_a min(C_out, C_in),), descending
    """
    K = as_float_array(K, "K", ndims=(4,))
    ha, wa = as_pair(input_hw, "input_hw", 1)
    if K.shape[2] > ha or K.shape[3] > wa:
        raise ValueError(f"kernel size {K.shape[2:]} is larger than input_hw {(ha, wa)}: "
                         f"the formula zero-pads K to the input size")
    P = np.fft.fft2(K, s=(ha, wa), axes=(2, 3))  # (C_out, C_in, h_a, w_a)
    s = np.linalg.svd(P.transpose(2, 3, 0, 1), compute_uv=False)  # one SVD per frequency
    return np.sort(s.ravel())[::-1]


def reshaped_kernel_norm(K: ArrayLike) -> float:
    """Spectral norm of ``K`` reshaped to ``(C_out, C_in h_k w_k)``: a common estimate of a
    layer's spectral norm, which ignores how the windows overlap."""
    K = as_float_array(K, "K", ndims=(4,))
    return float(np.linalg.norm(K.reshape(K.shape[0], -1), 2))
