"""How stride, padding and kernel size shape the convolution Jacobian (README figure 3).

One channel, a 6x6 input ``A``, a 3x3 kernel ``K``.  The kernel is ``K = 1, 2, ..., 9`` in
``vec`` order and the input ``A = 1, 2, ..., 36`` in ``vec`` order, so in ``dvecZ/dvecA``
the colour of an entry says which kernel entry it copies (``vec`` index + 1), and in
``dvecZ/dvecK`` which input pixel.

With stride 1, ``dvecZ/dvecA`` is doubly block Toeplitz: an ``w_z x w_a`` grid of
``h_z x h_a`` blocks, every block Toeplitz (constant along its diagonals) and the blocks
constant along the block diagonals.  A stride ``s`` keeps that shift invariance only for a
shift of ``s`` columns per row (each output row skips ``s`` input positions), so the
diagonals break up into a staircase.  Padding adds output rows whose windows fall partly
outside the input: those rows are shorter.  The script prints, for every configuration,
whether the matrix is doubly block Toeplitz (shift 1) and whether it is shift invariant
with shift = stride.

Writes ``conv_stride_padding_dZ_dA.png`` and ``conv_stride_padding_dZ_dK.png`` (stride 1, 2,
3 down, padding 0, 1, 2 across) and ``conv_kernel_sizes.png`` (kernel 1 to 6, stride 1,
padding 0; ``dZ/dA`` above, ``dZ/dK`` below).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _common

from _common import figure_args  # noqa: E402

import vecjac as vj  # noqa: E402
from vecjac import plot

SIDE = 6


def numbered(shape: tuple[int, ...]) -> np.ndarray:
    """An array whose ``vec`` is ``1, 2, ..., size``: each entry's value is its vec index + 1."""
    return vj.unvec(np.arange(1.0, np.prod(shape) + 1), shape)


def entry_names(letter: str, h: int, w: int, every_column: bool = False) -> list[str]:
    """Math-text names of the entries of an ``h x w`` matrix in ``vec`` order (``$k_{21}$``);
    with ``every_column``, only the first entry of each column is named (for a colour bar)."""
    return [f"${letter}_{{{p % h + 1}{p // h + 1}}}$" if not every_column or p % h == 0 else ""
            for p in range(h * w)]


def shift_invariant(D: np.ndarray, out_hw, in_hw, shift) -> bool:
    """``D[(x, y), (r, s)] == D[(x + 1, y + 1'), (r + shift_h, s + shift_w)]`` wherever both exist.

    Rows of ``dvecZ/dvecA`` are ``vec`` positions ``x + y h_z`` of ``Z``, columns
    ``r + s h_a`` of ``A``; with ``shift = (1, 1)`` this is "doubly block Toeplitz".
    """
    (hz, wz), (ha, wa), (sh, sw) = out_hw, in_hw, shift
    B = D.reshape(wz, hz, wa, ha)  # B[y, x, s, r]
    inner = np.array_equal(B[:, 1:, :, sh:], B[:, :-1, :, : ha - sh]) if sh < ha else True
    outer = np.array_equal(B[1:, :, sw:, :], B[:-1, :, : wa - sw, :]) if sw < wa else True
    return inner and outer


def structure_grid(strides, paddings, kernel=3):
    """``dZ/dA`` and ``dZ/dK`` for every (stride, padding), and a printed table."""
    A, K = numbered((1, SIDE, SIDE)), numbered((1, 1, kernel, kernel))
    grid_a, grid_k = [], []
    print(f"input {SIDE}x{SIDE}, kernel {kernel}x{kernel}, one channel")
    print(f"{'stride':>6} {'padding':>7} {'Z':>5} {'dZ/dA':>7} {'nnz':>5} {'density':>8} "
          f"{'Toeplitz (shift 1)':>19} {'shift = stride':>15}")
    for s in strides:
        row_a, row_k = [], []
        for p in paddings:
            JA = vj.jacobians.conv_wrt_input(K, A.shape, s, p)
            JK = vj.jacobians.conv_wrt_kernel(A, K.shape, s, p)
            hz, wz = JA.of_shape[-2:]
            D = JA.toarray()
            toeplitz = shift_invariant(D, (hz, wz), (SIDE, SIDE), (1, 1))
            strided = shift_invariant(D, (hz, wz), (SIDE, SIDE), (s, s))
            print(f"{s:>6} {p:>7} {f'{hz}x{wz}':>5} {f'{D.shape[0]}x{D.shape[1]}':>7} "
                  f"{JA.nnz:>5} {100 * JA.density:>7.1f}% {'yes' if toeplitz else 'no':>19} "
                  f"{'yes' if strided else 'no':>15}")
            row_a.append(JA)
            row_k.append(JK)
        grid_a.append(row_a)
        grid_k.append(row_k)
    return grid_a, grid_k


def kernel_row(kernels):
    """``dZ/dA`` and ``dZ/dK`` for each kernel size (stride 1, padding 0)."""
    A = numbered((1, SIDE, SIDE))
    row_a, row_k = [], []
    print(f"\nkernel sizes, input {SIDE}x{SIDE}, stride 1, padding 0")
    print(f"{'kernel':>6} {'dZ/dA':>7} {'nnz':>5} {'density':>8} {'dZ/dK':>7} {'density':>8}")
    for k in kernels:
        K = numbered((1, 1, k, k))
        JA = vj.jacobians.conv_wrt_input(K, A.shape)
        JK = vj.jacobians.conv_wrt_kernel(A, K.shape)
        print(f"{k:>6} {f'{JA.shape[0]}x{JA.shape[1]}':>7} {JA.nnz:>5} "
              f"{100 * JA.density:>7.1f}% {f'{JK.shape[0]}x{JK.shape[1]}':>7} "
              f"{100 * JK.density:>7.1f}%")
        row_a.append(JA)
        row_k.append(JK)
    return row_a, row_k


def main(argv: list[str] | None = None) -> int:
    args = figure_args(__doc__, "strides and paddings 1-2 only", argv)
    strides, paddings = ((1, 2), (0, 1)) if args.quick else ((1, 2, 3), (0, 1, 2))
    kernels = (1, 3, 5) if args.quick else (1, 2, 3, 4, 5, 6)

    grid_a, grid_k = structure_grid(strides, paddings)
    rows = [f"stride {s}" for s in strides]
    cols = [f"padding {p}" for p in paddings]
    footer = "rows index vec Z, columns vec A or vec K (numerator layout)"
    dZ_dA, dZ_dK = plot.math_symbol("dZ/dA"), plot.math_symbol("dZ/dK")
    plot.spy_grid(grid_a, args.out / "conv_stride_padding_dZ_dA.png", row_labels=rows,
                  col_labels=cols, values=True, levels=entry_names("k", 3, 3), footer=footer,
                  colorbar_label="kernel entry copied",
                  title=f"{dZ_dA},  6×6 input, 3×3 kernel: colour = which kernel entry")
    plot.spy_grid(grid_k, args.out / "conv_stride_padding_dZ_dK.png", row_labels=rows,
                  col_labels=cols, values=True, footer=footer,
                  levels=entry_names("a", SIDE, SIDE, every_column=True),
                  colorbar_label="input pixel copied (vec order)",
                  title=f"{dZ_dK},  6×6 input, 3×3 kernel: colour = which input pixel")

    row_a, row_k = kernel_row(kernels)
    plot.spy_grid([row_a, row_k], args.out / "conv_kernel_sizes.png",
                  row_labels=[dZ_dA, dZ_dK],
                  col_labels=[f"kernel {k}×{k}" for k in kernels], values=True,
                  colorbar_label=None, footer=footer + "; colour: which kernel entry (top) or "
                  "input pixel (bottom) is copied, in vec order from dark to yellow",
                  title="Kernel size,  6×6 input, stride 1, padding 0")
    print(f"\nwrote conv_stride_padding_dZ_dA.png, conv_stride_padding_dZ_dK.png, "
          f"conv_kernel_sizes.png to {args.out}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
