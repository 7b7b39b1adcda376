"""Jacobian builders, one module per layer kind, each in block and stacked form."""

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

__all__ = [
    "ConvPattern",
    "clear_pattern_cache",
    "conv_block_wrt_input",
    "conv_block_wrt_kernel",
    "conv_nnz",
    "conv_pattern",
    "conv_wrt_bias",
    "conv_wrt_input",
    "conv_wrt_kernel",
]
