"""The ``vecjac`` command: ``vecjac demo``, ``vecjac explain``, ``vecjac spy``.

Also runnable as ``python -m vecjac``.  Figures are written with matplotlib's Agg canvas
(:mod:`vecjac.plot`), so no display is needed.  Exit codes: 0 success, 1 a failed check
(``demo``), 2 bad arguments (unknown names, impossible shapes), with the reason on stderr.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

from .direct import LOSSES, POOL_KINDS
from .network import _HIDDEN, _OUTPUTS
from .symbolic import appendix_example, format_table

__all__ = ["main"]


def demo(args: argparse.Namespace) -> int:
    """The main job: the note's CNN on real digits, Jacobians, checks, training, figures."""
    from .demo import run

    return run(args.out, epochs=args.epochs, seed=args.seed, progress=not args.no_progress)


def explain(args: argparse.Namespace) -> int:
    """Print the note's appendix example with every entry as a symbol."""
    s = appendix_example()
    print("The note's appendix (section 4): A is 3x4, beta is 2x2, padding (1, 1), stride (1, 2).")
    print("Z = A * beta is 4x3 (rep.2):\n")
    print(format_table(s.Z))
    print("\ndvecZ/dvecbeta (12 x 4): rows vec(Z), columns vec(beta), entries from A\n")
    print(format_table(s.dZ_dbeta, s.row_labels, s.beta_labels))
    print("\ndvecZ/dvecA (12 x 12): rows vec(Z), columns vec(A), entries from beta\n")
    print(format_table(s.dZ_dA, s.row_labels, s.a_labels))
    if args.png:
        from . import plot

        print(f"\nwrote {plot.appendix_figure(s, args.png)}")
    return 0


def spy(args: argparse.Namespace) -> int:
    """Draw the sparsity pattern of one Jacobian of a network configured by the arguments."""
    import numpy as np

    from . import plot
    from .network import CNN

    try:
        of, wrt = _jacobian_name(args)
        net = CNN(**_network_settings(args))
        X, y = _spy_data(net, args.batch, args.seed, args.digits)
        J = net.jacobian(X, of=of, wrt=wrt, y=y)
    except (ValueError, TypeError) as error:  # a MemoryBudgetError is a ValueError
        print(f"vecjac spy: error: {_one_line(error)}", file=sys.stderr)
        return 2
    out = Path(args.out or f"d{of}_d{wrt}.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    print(f"{net}\nbatch of {len(X)}: {J} ({J.nbytes / 2**20:.3g} MB as CSR, "
          f"{np.prod(J.shape) * 8 / 2**20:.3g} MB dense)")
    plot.save_spy(J, out, size=args.size, dpi=args.dpi, values=args.values)
    print(f"wrote {out}")
    return 0


def _jacobian_name(args: argparse.Namespace) -> tuple[str, str]:
    """``of`` and ``wrt`` from ``NAME`` (``dZ2/dA1``) or ``--of``/``--wrt``."""
    of, wrt = args.of, args.wrt
    if args.name:
        name = args.name
        if not (name.startswith("d") and "/d" in name):
            _fail(f"NAME must look like dZ2/dA1 (d<of>/d<wrt>), got {name!r}")
        of, wrt = name[1:].split("/d", 1)
    return of or "Z2", wrt or "A1"


# (CNN keyword, option dest): the per-conv-layer settings, in the order of --help
_PER_LAYER = (("kernel_size", "kernel"), ("stride", "stride"), ("padding", "padding"),
              ("activation", "activation"), ("pool", "pool"), ("pool_size", "pool_size"),
              ("pool_stride", "pool_stride"), ("pool_padding", "pool_padding"))


def _network_settings(args: argparse.Namespace) -> dict:
    """``CNN`` keyword arguments.

    A per-layer option holds one value (every conv layer) or one value per conv layer; it
    is passed to ``CNN`` as a list of one value per layer, so that a non-square ``HxW``
    pair is never read as two layers' values (``CNN``'s tuple rule).
    """
    n = len(args.channels)
    settings = {"input_shape": _input_shape(args.input), "channels": tuple(args.channels),
                "n_out": args.n_out, "seed": args.seed, "output": args.output,
                "loss": args.loss}
    for key, dest in _PER_LAYER:
        values = list(getattr(args, dest))
        if len(values) not in (1, n):
            layers = f"{n} conv layer{'s' if n > 1 else ''}"
            _fail(f"--{dest.replace('_', '-')} takes one value for every conv layer or one "
                  f"per conv layer ({layers}, --channels {' '.join(map(str, args.channels))})"
                  f", got {len(values)}: {' '.join(map(_show, values))}")
        if key == "pool":
            values = [None if v == "none" else v for v in values]
        settings[key] = values * n if len(values) == 1 else values
    return settings


def _geometry(text: str) -> int | tuple[int, int]:
    """A size, stride or padding on the command line: ``3`` (3 x 3) or ``3x5`` (h x w)."""
    h, sep, w = text.strip().lower().partition("x")
    try:
        return (int(h), int(w)) if sep else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an int N or a non-square HxW such as 3x5, got {text!r}") from None


def _pool_stride(text: str) -> int | tuple[int, int] | None:
    """``--pool-stride``: ``size`` (the pool size, the default) or as :func:`_geometry`."""
    return None if text.strip().lower() == "size" else _geometry(text)


def _show(value) -> str:
    """A per-layer value as it is written on the command line."""
    if value is None:
        return "size"
    return "x".join(map(str, value)) if isinstance(value, tuple) else str(value)


def _input_shape(values: list[int]) -> tuple[int, int, int]:
    if len(values) == 1:
        return (1, values[0], values[0])
    if len(values) == 2:
        return (1, values[0], values[1])
    if len(values) == 3:
        return tuple(values)
    _fail(f"--input takes S, H W or C H W, got {len(values)} numbers")


def _spy_data(net, batch: int, seed: int, digits: bool):
    """A batch for the network: shipped digits (resized) or uniform noise, and labels."""
    import numpy as np

    if batch < 1:
        raise ValueError(f"--batch must be a positive int, got {batch}")
    c, h, w = net.input_shape
    rng = np.random.default_rng(seed)
    labels = net.loss_kind == "cross_entropy" and net.n_out > 1
    y = rng.integers(0, net.n_out, batch) if labels else rng.random((batch, net.n_out))
    if not digits:
        return rng.random((batch, c, h, w)), y
    if c != 1 or h != w:
        raise ValueError(f"--digits needs a square one-channel input, got --input {c} {h} {w}")
    from .data import load_digits

    data = load_digits(size=None if h == 8 else h)
    X = data.X_train[:batch]
    if len(X) < batch:
        raise ValueError(f"--batch {batch} exceeds the {len(X)} training digits")
    return X, (data.y_train[:batch] if labels else y)


def _one_line(error) -> str:
    return " ".join(str(error).split("\n"))


def _fail(message: str):
    """A bad argument: ``spy`` reports it on stderr and exits with code 2."""
    raise ValueError(message)


def _wrap(text: str) -> str:
    return "\n\n".join(textwrap.fill(part, width=88) for part in text.split("\n\n"))


class _Parser(argparse.ArgumentParser):
    """``one_line_errors=True`` (``spy``): a usage error is one line on stderr,
    ``vecjac spy: error: ...``, exit code 2, as the command's own errors; the usage is in
    ``--help``."""

    def __init__(self, *args, one_line_errors: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.one_line_errors = one_line_errors

    def error(self, message: str):
        if not self.one_line_errors:
            super().error(message)
        self.exit(2, f"{self.prog}: error: {_one_line(message)} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vecjac",
        description="Explicit sparse Jacobians of CNN back-propagation (vec, numerator layout).",
        epilog="examples:\n"
        "  vecjac demo                                  # the note's CNN on digits, checked\n"
        "  vecjac explain --png appendix.png            # the appendix, printed and drawn\n"
        "  vecjac spy --of Z2 --wrt A1 --out dz2_da1.png   # one Jacobian's sparsity pattern\n"
        "  vecjac spy dA3/dK1 --batch 4                 # an end-to-end product\n\n"
        "vec is column-major within a channel, then channels, then samples; Jacobians are in\n"
        "numerator layout: rows index vec(of), columns vec(wrt).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    p = sub.add_parser(
        "demo",
        help="the note's CNN on real digits: Jacobians, gradient checks, training, figures",
        description=_wrap("Build the default CNN for the shipped 8x8 digits; print every named "
        "Jacobian of the chain (symbol, shape, nnz, density, build time); check the three "
        "gradient methods against each other and central differences; train with "
        "Jacobian-form gradients; write sparsity patterns and the loss curve as PNG files. "
        "Exit code 1 if a check fails or test accuracy is under 90%."),
        epilog="example:\n  vecjac demo --out /tmp/figures --epochs 8",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", default="vecjac-out", help="folder for the PNG files "
                   "(default ./vecjac-out)")
    p.add_argument("--epochs", type=int, default=8, help="training epochs (default 8)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=demo)
    p = sub.add_parser(
        "explain",
        help="print the note's appendix example symbolically",
        description=_wrap("Print the appendix of the note: Z = A * beta entry by entry, and the "
        "symbolic matrices dvecZ/dvecbeta (12x4) and dvecZ/dvecA (12x12), 1-based.  With "
        "--png, also draw both matrices, every non-zero cell labelled with the symbol it "
        "copies (a_32, beta_12)."),
        epilog="examples:\n  vecjac explain\n  vecjac explain --png appendix.png",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--png", metavar="PATH", help="also write the two matrices as a PNG figure")
    p.set_defaults(func=explain)
    _spy_parser(sub)
    return parser


def _spy_parser(sub) -> None:
    p = sub.add_parser(
        "spy",
        one_line_errors=True,
        help="draw the sparsity pattern of any Jacobian of a configurable CNN to a PNG",
        description=_wrap(
            "Build the note's CNN as configured below (any number of conv layers), feed it a "
            "batch, and draw the sparsity pattern of one Jacobian d vec(OF) / d vec(WRT): rows "
            "index vec(OF), columns vec(WRT); grey lines separate channels, red lines samples "
            "(or kernels)."
            "\n\n"
            "Names follow vecjac.Sequential: conv block l gives Z{l} (the convolution, "
            "parameters K{l}, b{l}), I{l} (the activation) and A{l} (the pooling; A{l} = I{l} "
            "with --pool none); the flatten after the last conv block L gives B{L}; the "
            "fully-connected layer is block L+1, Z{L+1} = W{L+1}^T B{L} + b{L+1} and A{L+1}; "
            "then the loss J.  With the default two conv layers these are the note's X, Z1, "
            "I1, A1, Z2, I2, A2, B2, Z3, A3, J and K1, b1, K2, b2, W3, b3; more conv layers "
            "give more names: with three (--channels 2 3 4) the FC layer is block 4, with B3, "
            "Z4, A4, W4, b4.  Neighbours on the chain (dZ2/dA1, dA1/dI1, dZ1/dK1) are single "
            "Jacobians; any other pair below OF (dA3/dX, dA3/dK1) is the sparse product along "
            "the chain."
            "\n\n"
            "Per-layer settings (the options under 'per conv layer') take one value, for every "
            "conv layer, or one value per conv layer in order (--channels 4 8 --stride 1 2: "
            "stride 1 in layer 1, 2 in layer 2); any other count is an error.  A size, stride "
            "or padding is an int N (N x N) or, non-square, HxW with no spaces (--kernel 3x5: "
            "3 rows, 5 columns; --stride 1x2)."
            "\n\n"
            "Exit code 2, with the reason on one line of stderr: a name that is not on the "
            "chain (the valid names are listed), a wrong number of values, or a setting that "
            "does not fit the network (the error names the layer)."),
        epilog="examples:\n"
        "  vecjac spy --of Z2 --wrt A1 --out dz2_da1.png\n"
        "  vecjac spy dZ1/dK1 --batch 3 --values            # colour entries by value\n"
        "  vecjac spy dA3/dX --input 16 --stride 2 1 --padding 0 1   # per conv layer\n"
        "  vecjac spy dA1/dI1 --pool max --digits            # max-pool switches on digits\n"
        "  vecjac spy --layer Z1 --wrt X --channels 2 --kernel 5 --padding 2 --pool none\n"
        "  vecjac spy dZ2/dA1 --channels 3 6 --kernel 3 5 --padding 1 2\n"
        "  vecjac spy dA4/dX --input 16 --channels 2 3 4     # three conv layers: FC is Z4, A4\n"
        "  vecjac spy dZ3/dA2 --channels 2 3 4 --activation relu tanh softplus\n"
        "  vecjac spy dA2/dI2 --pool none max --pool-size 3 --pool-stride 2 --pool-padding 1\n"
        "  vecjac spy dZ1/dX --kernel 3x5 --stride 1x2 --padding 1x2 --pool-size 2x1  # HxW\n"
        "  vecjac spy dA3/dZ3 --n-out 3 --output sigmoid --loss binary_cross_entropy",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("name", nargs="?", metavar="NAME",
                   help="the Jacobian as dOF/dWRT, e.g. dZ2/dA1 (instead of --of/--wrt)")
    p.add_argument("--of", "--layer", dest="of", metavar="OF",
                   help="the differentiated variable, e.g. Z2 (default Z2)")
    p.add_argument("--wrt", metavar="WRT", help="the variable, e.g. A1 or K1 (default A1)")
    net = p.add_argument_group("network")
    net.add_argument("--input", type=int, nargs="+", default=[1, 8, 8], metavar="N",
                     help="input shape: S (1 x S x S), H W, or C H W (default 1 8 8)")
    net.add_argument("--channels", type=int, nargs="+", default=[4, 8], metavar="C",
                     help="output channels of each conv layer, one number per conv layer: "
                     "4 8 is the note's network, 4 one conv layer, 2 3 4 three (default 4 8)")
    net.add_argument("--n-out", type=int, default=10, help="outputs of the FC layer (default 10)")
    net.add_argument("--output", default="softmax", choices=_OUTPUTS,
                     help="output activation g (default softmax)")
    net.add_argument("--loss", default="cross_entropy", choices=LOSSES,
                     help="loss J (default cross_entropy)")
    layer = p.add_argument_group(
        "per conv layer",
        "one value for every conv layer, or one per conv layer; N or non-square HxW (3x5)")
    layer.add_argument("--kernel", type=_geometry, nargs="+", default=[3], metavar="K",
                       help="kernel size (default 3)")
    layer.add_argument("--stride", type=_geometry, nargs="+", default=[1], metavar="S",
                       help="conv stride (default 1)")
    layer.add_argument("--padding", type=_geometry, nargs="+", default=[1], metavar="P",
                       help="conv zero padding (default 1)")
    layer.add_argument("--activation", nargs="+", default=["sigmoid"], choices=_HIDDEN,
                       metavar="F", help=f"conv activation f, one of {', '.join(_HIDDEN)} "
                       "(default sigmoid)")
    layer.add_argument("--pool", nargs="+", default=["avg"], choices=(*POOL_KINDS, "none"),
                       metavar="KIND", help=f"pooling, one of {', '.join(POOL_KINDS)}, or none "
                       "(A = I) (default avg)")
    layer.add_argument("--pool-size", type=_geometry, nargs="+", default=[2], metavar="L",
                       help="pooling window (default 2)")
    layer.add_argument("--pool-stride", type=_pool_stride, nargs="+", default=[None],
                       metavar="S", help="pooling stride, or 'size' for the window size "
                       "(default size: non-overlapping windows)")
    layer.add_argument("--pool-padding", type=_geometry, nargs="+", default=[0], metavar="P",
                       help="pooling zero padding (max pooling: at most half the window) "
                       "(default 0)")
    run = p.add_argument_group("batch and figure")
    run.add_argument("--batch", type=int, default=2,
                     help="samples in the batch; 2 or more shows sample blocks (default 2)")
    run.add_argument("--digits", action="store_true",
                     help="feed shipped digits (resized to the input) instead of uniform noise")
    run.add_argument("--seed", type=int, default=0, help="seed of weights and noise (default 0)")
    run.add_argument("--values", action="store_true",
                     help="colour stored entries by value instead of one colour")
    run.add_argument("--out", metavar="FILE",
                     help="PNG to write (default dOF_dWRT.png in the current folder)")
    run.add_argument("--size", type=float, default=6.0,
                     help="figure side in inches (default 6)")
    run.add_argument("--dpi", type=int, default=100, help="resolution (default 100)")
    p.set_defaults(func=spy)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
