r"""The note's per-channel recursion (sections 3.1.1-3.1.6), written as the note writes it.

Rows are the note's row vectors ``dJ/d...``; a batch stacks one row per sample (the note's
formulas are per sample, and the loss sums over samples, so every parameter's Jacobian is the
sum over samples of the per-sample products).  Going down the layers:

* 3.1.1  a dense block: ``dJ/dZ = dJ/dA dA/dZ`` (one output-activation block per sample);
  ``dJ/dW = (dJ/dZ)^T B^T``; ``dJ/db = dJ/dZ``; ``dJ/dB = dJ/dZ W^T``.
* 3.1.2  ``dJ/dB`` reshaped to ``dJ/d_vA``, one row per channel.
* 3.1.3  ``dJ/d_vI_j = dJ/d_vA_j  d_vA_j/d_vI_j``, channel by channel (pooling).
* 3.1.4  ``dJ/d_vZ_j = dJ/d_vI_j  d_vI_j/d_vZ_j``, channel by channel (activation).
* 3.1.5  ``dJ/d_vK_{:,i} = dJ/d_vZ  d_vZ_j/d_vK_{j,i}`` (the block is the same for every
  ``j``: one product per input channel ``i`` gives row ``j`` for every kernel);
  ``dJ/db = (dJ/d_vZ 1)^T``; ``dJ/d_vA_i = sum_j dJ/d_vZ_j  d_vZ_j/d_vA_i``.
* 3.1.6  the same for every conv block below.

Every :class:`vecjac.Sequential` with a loss has the note's shape (conv blocks, ``Flatten``,
dense blocks: the layers' shape rules allow nothing else), so this recursion serves them all;
a block may hold any number of channel-wise layers (3.1.3 and 3.1.4 in any order).

This is the literal form, with loops over layers, channels and channel pairs and one small
block Jacobian per step; it exists to show the note's recursion running and to be held equal
to the stacked chain and to direct back-propagation.  It is not the fast path:
``method="jacobian"`` and ``method="direct"`` are.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from . import jacobians as jac
from .layers import Conv2d, Dense, Flatten
from .vec import unvec

__all__ = ["paper_gradients"]


def paper_gradients(net, cache: dict, y) -> dict[str, NDArray]:
    """Gradients of every parameter of the :class:`vecjac.Sequential` ``net``."""
    if net.loss_kind is None:
        raise ValueError("the paper's recursion starts at the loss J: this network has none")
    N, grads = cache["X"].shape[0], {}
    row = jac.loss_from_logits if net.from_logits else jac.loss
    D = row(cache[net.top], y, net.loss_kind, net.reduction)[1].toarray().reshape(N, -1)
    for i in range(len(net.layers) - 1, -1, -1):
        layer, A, p = net.layers[i], cache[net.inputs[i]], net._local(i)
        names = net.param_names[i]
        if isinstance(layer, Dense):  # 3.1.1; D holds the samples' dJ/dZ, (N, n_out)
            grads[names["W"]] = A @ D  # gradient = (dJ/dW)^T, summed over samples
            grads[names["b"]] = D.sum(axis=0)
            D = D @ p["W"].T  # each row dJ/dB of one sample
        elif isinstance(layer, Flatten):  # 3.1.2: one row per channel, (N, c, h w)
            D = D.reshape(N, A.shape[1], -1)
        elif isinstance(layer, Conv2d):  # 3.1.5, 3.1.6
            grads[names["K"]], grads[names["b"]] = _kernel_and_bias(D, A, p["K"], layer)
            if i > 0:
                D = _input(D, A.shape, p["K"], layer)
        elif D.ndim == 3:  # 3.1.3 / 3.1.4, channel by channel
            D = _channel_wise(D, A, layer)
        else:  # an activation of the dense part: one block per sample
            D = (D.ravel() @ layer.jacobian(A, p, "A", "Z", structured=False).matrix).reshape(
                N, -1)
    return grads


def _channel_wise(dJ_dvA, I, layer) -> NDArray:
    """``dJ/d_vI_j = dJ/d_vA_j dvA_j/dvI_j`` for every channel ``j`` (pooling or activation)."""
    N, c = I.shape[:2]
    dJ_dvI = np.empty((N, c, I.shape[2] * I.shape[3]), dtype=I.dtype)
    for j in range(c):
        block = layer.jacobian(I[:, j : j + 1], {}, "A_j", "I_j", structured=False)
        dJ_dvI[:, j] = (dJ_dvA[:, j].ravel() @ block.matrix).reshape(N, -1)
    return dJ_dvI


def _kernel_and_bias(dJ_dvZ, A_prev, K, layer) -> tuple[NDArray, NDArray]:
    """3.1.5: ``dJ/d_vK_{:,i} = dJ/d_vZ  d_vZ_j/d_vK_{j,i}`` for each input channel ``i``."""
    N, c_out, hw_z = dJ_dvZ.shape
    rows = dJ_dvZ.transpose(1, 0, 2).reshape(c_out, N * hw_z)  # row j: dJ/d_vZ_j, all samples
    grad_K = np.empty_like(K)
    for i in range(K.shape[1]):
        # the samples' blocks d_vZ_j/d_vK_{j,i}, stacked: built from A_i alone
        block = jac.conv_wrt_kernel(A_prev[:, i : i + 1], (1, 1) + K.shape[2:],
                                    layer.stride, layer.padding, structured=False,
                                    padding_mode=layer.padding_mode)
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
            block = jac.conv_block_wrt_input(K[j, i], (h, w), layer.stride, layer.padding,
                                             padding_mode=layer.padding_mode)
            dJ_dvA[:, i] += (block.matrix.T @ dJ_dvZ[:, j].T).T
    return dJ_dvA
