r"""The note's per-channel recursion (sections 3.1.1-3.1.6), written as the note writes it.

Rows are the note's row vectors ``dJ/d...``; a batch stacks one row per sample (the note's
formulas are per sample, and the loss sums over samples, so every parameter's Jacobian is the
sum over samples of the per-sample products).

* 3.1.1  ``dJ/dZ3 = dJ/dA3 dA3/dZ3``; ``dJ/dW3 = (dJ/dZ3)^T B2^T``; ``dJ/db3 = dJ/dZ3``;
  ``dJ/dB2 = dJ/dZ3 W3^T``.
* 3.1.2  ``dJ/dB2`` reshaped to ``dJ/d_vA2``, one row per channel.
* 3.1.3  ``dJ/d_vI2_j = dJ/d_vA2_j  d_vA2_j/d_vI2_j``, channel by channel (pooling).
* 3.1.4  ``dJ/d_vZ2_j = dJ/d_vI2_j  d_vI2_j/d_vZ2_j``, channel by channel (activation).
* 3.1.5  ``dJ/d_vK_{:,i} = dJ/d_vZ2  d_vZ2_j/d_vK_{j,i}`` (the block is the same for every
  ``j``: one product per input channel ``i`` gives row ``j`` for every kernel);
  ``dJ/db = (dJ/d_vZ2 1)^T``; ``dJ/d_vA1_i = sum_j dJ/d_vZ2_j  d_vZ2_j/d_vA1_i``.
* 3.1.6  the same for layer 1.

This is the literal form, with loops over channels and channel pairs and one small block
Jacobian per step; it exists to show the note's recursion running and to be held equal to the
stacked chain and to direct back-propagation.  It is not the fast path: ``method="jacobian"``
and ``method="direct"`` are.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from . import jacobians as jac
from .vec import unvec

__all__ = ["paper_gradients"]


def paper_gradients(net, cache: dict, y) -> dict[str, NDArray]:
    """Gradients of every parameter of ``net`` by the note's per-channel recursion."""
    L, p, grads = net.L, net.params, {}
    N = cache["X"].shape[0]
    # 3.1.1: the fully-connected layer; rows of D are the samples' dJ/dZ3.
    _, dJ_dA = jac.loss(cache[f"A{L}"], y, net.loss_kind, net.reduction)
    dA_dZ = jac.activation(cache[f"Z{L}"], net.output)
    D = (dJ_dA.matrix @ dA_dZ.matrix).toarray().reshape(N, net.n_out)
    B = cache[f"B{L - 1}"]  # (n_in, N)
    grads[f"W{L}"] = (D.T @ B.T).T  # gradient = (dJ/dW3)^T, summed over samples
    grads[f"b{L}"] = D.sum(axis=0)
    dJ_dB = D @ p[f"W{L}"].T  # (N, n_in): each row dJ/dB2 of one sample
    # 3.1.2: rows of dJ/dB2 reshaped to one row per channel: dJ/d_vA, shape (N, c, h w).
    c, h, w = cache[f"A{L - 1}"].shape[1:]
    dJ_dvA = dJ_dB.reshape(N, c, h * w)
    for l in range(L - 1, 0, -1):
        layer = net.layers[l - 1]
        dJ_dvZ = _through_pool_and_activation(dJ_dvA, cache, layer, l)  # (N, c, h_z w_z)
        A_prev = cache[f"A{l - 1}"]
        grads[f"K{l}"], grads[f"b{l}"] = _kernel_and_bias(dJ_dvZ, A_prev, p[f"K{l}"], layer)
        if l > 1:
            dJ_dvA = _input(dJ_dvZ, A_prev.shape, p[f"K{l}"], layer)
    return grads


def _through_pool_and_activation(dJ_dvA, cache, layer, l) -> NDArray:
    """3.1.3 and 3.1.4, channel by channel: ``dJ/d_vZ_j = dJ/d_vA_j dvA_j/dvI_j dvI_j/dvZ_j``."""
    I, Z = cache[f"I{l}"], cache[f"Z{l}"]
    N, c = Z.shape[:2]
    dJ_dvZ = np.empty((N, c, Z.shape[2] * Z.shape[3]), dtype=Z.dtype)
    for j in range(c):
        row = dJ_dvA[:, j].ravel()  # the samples' dJ/d_vA_j, one after another
        if layer["pool"] is not None:
            pool_j = jac.pool(I[:, j : j + 1], layer["pool"], layer["pool_size"],
                              layer["pool_stride"], layer["pool_padding"])
            row = row @ pool_j.matrix  # dJ/d_vI_j
        act_j = jac.activation(Z[:, j : j + 1], layer["activation"])
        dJ_dvZ[:, j] = (row @ act_j.matrix).reshape(N, -1)
    return dJ_dvZ


def _kernel_and_bias(dJ_dvZ, A_prev, K, layer) -> tuple[NDArray, NDArray]:
    """3.1.5: ``dJ/d_vK_{:,i} = dJ/d_vZ  d_vZ_j/d_vK_{j,i}`` for each input channel ``i``."""
    N, c_out, hw_z = dJ_dvZ.shape
    rows = dJ_dvZ.transpose(1, 0, 2).reshape(c_out, N * hw_z)  # row j: dJ/d_vZ_j, all samples
    grad_K = np.empty_like(K)
    for i in range(K.shape[1]):
        # the samples' blocks d_vZ_j/d_vK_{j,i}, stacked: built from A_i alone
        block = jac.conv_wrt_kernel(A_prev[:, i : i + 1], (1, 1) + K.shape[2:],
                                    layer["stride"], layer["padding"])
        dJ_dvK_i = (block.matrix.T @ rows.T).T  # (c_out, h_k w_k): row j is dJ/d_vK_{j,i}
        grad_K[:, i] = unvec(dJ_dvK_i, (c_out,) + K.shape[2:])  # row j -> K_{j,i}
    grad_b = rows @ np.ones(N * hw_z)  # (dJ/d_vZ 1)^T
    return grad_K, grad_b


def _input(dJ_dvZ, A_shape, K, layer) -> NDArray:
    """3.1.5: ``dJ/d_vA_i = sum_j dJ/d_vZ_j  d_vZ_j/d_vA_i``, one block per channel pair."""
    N, c_in, h, w = A_shape
    dJ_dvA = np.zeros((N, c_in, h * w), dtype=dJ_dvZ.dtype)
    for i in range(c_in):
        for j in range(K.shape[0]):
            block = jac.conv_block_wrt_input(K[j, i], (h, w), layer["stride"], layer["padding"])
            dJ_dvA[:, i] += (block.matrix.T @ dJ_dvZ[:, j].T).T
    return dJ_dvA
