"""Jacobian builders, one module per layer kind, each in block and stacked form."""

from ._csr import shared_patterns
from .activation import activation
from .conv import (
    ConvPattern,
    clear_pattern_cache,
    conv_block_wrt_input,
    conv_block_wrt_kernel,
    conv_nnz,
    conv_pattern,
    conv_wrt_bias,
    conv_wrt_input,
    conv_wrt_kernel,
)
from .dense import dense_wrt_bias, dense_wrt_input, dense_wrt_weight, flatten
from .loss import loss, loss_from_logits
from .pool import pool, pool_block

__all__ = [
    "shared_patterns",
    "ConvPattern",
    "clear_pattern_cache",
    "conv_block_wrt_input",
    "conv_block_wrt_kernel",
    "conv_nnz",
    "conv_pattern",
    "conv_wrt_bias",
    "conv_wrt_input",
    "conv_wrt_kernel",
    "activation",
    "dense_wrt_bias",
    "dense_wrt_input",
    "dense_wrt_weight",
    "flatten",
    "loss",
    "loss_from_logits",
    "pool",
    "pool_block",
]
