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
    except (ValueError, TypeError) as error:
        print(f"vecjac spy: error: {error}", file=sys.stderr)
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


def _network_settings(args: argparse.Namespace) -> dict:
    """``CNN`` keyword arguments; a setting given twice is (layer 1, layer 2)."""
    n_layers = len(args.channels)
    settings = {"input_shape": _input_shape(args.input), "channels": tuple(args.channels),
                "activation": args.activation, "n_out": args.n_out, "seed": args.seed,
                "output": args.output, "loss": args.loss}
    for key, values in (("kernel_size", args.kernel), ("stride", args.stride),
                        ("padding", args.padding), ("pool_size", args.pool_size),
                        ("pool", [None if p == "none" else p for p in args.pool])):
        if len(values) > 1 and len(values) != n_layers:
            _fail(f"--{key.replace('_size', '').replace('_', '-')} takes one value for every "
                  f"conv layer or one per layer ({n_layers}), got {len(values)}")
        settings[key] = values[0] if len(values) == 1 else list(values)
    return settings


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


def _fail(message: str):
    """A bad argument: ``spy`` reports it on stderr and exits with code 2."""
    raise ValueError(message)


def _wrap(text: str) -> str:
    return textwrap.fill(text, width=88)


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
    sub = parser.add_subparsers(dest="command", required=True)
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
        help="draw the sparsity pattern of any Jacobian of a configurable CNN to a PNG",
        description=_wrap("Build the note's CNN as configured below, feed it a batch, and draw the "
        "sparsity pattern of one Jacobian d vec(OF) / d vec(WRT): rows index vec(OF), "
        "columns vec(WRT); grey lines separate channels, red lines samples (or kernels).  "
        "Names are the note's symbols: X, Z1, I1, A1, Z2, I2, A2, B2, Z3, A3, J and the "
        "parameters K1, b1, K2, b2, W3, b3.  Neighbours on the chain (dZ2/dA1, dA1/dI1, "
        "dZ1/dK1) are single Jacobians; any other pair below OF (dA3/dX, dA3/dK1) is the "
        "sparse product along the chain.  Settings given twice apply to (layer 1, layer 2).  "
        "Exit code 2 with the valid names when a name is not on the chain."),
        epilog="examples:\n"
        "  vecjac spy --of Z2 --wrt A1 --out dz2_da1.png\n"
        "  vecjac spy dZ1/dK1 --batch 3 --values            # colour entries by value\n"
        "  vecjac spy dA3/dX --input 16 --stride 2 --padding 0\n"
        "  vecjac spy dA1/dI1 --pool max --digits            # max-pool switches on digits\n"
        "  vecjac spy --layer Z1 --wrt X --channels 2 --kernel 5 --padding 2 --pool none\n"
        "  vecjac spy dZ2/dA1 --channels 3 6 --kernel 3 5 --padding 1 2",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("name", nargs="?", metavar="NAME",
                   help="the Jacobian as dOF/dWRT, e.g. dZ2/dA1 (instead of --of/--wrt)")
    p.add_argument("--of", "--layer", dest="of", metavar="OF",
                   help="the differentiated variable, e.g. Z2 (default Z2)")
    p.add_argument("--wrt", metavar="WRT", help="the variable, e.g. A1 or K1 (default A1)")
    p.add_argument("--input", type=int, nargs="+", default=[1, 8, 8], metavar="N",
                   help="input shape: S (1 x S x S), H W, or C H W (default 1 8 8)")
    p.add_argument("--channels", type=int, nargs="+", default=[4, 8], metavar="C",
                   help="output channels of each conv layer: one or two numbers (default 4 8)")
    p.add_argument("--kernel", type=int, nargs="+", default=[3], metavar="K",
                   help="kernel size (default 3)")
    p.add_argument("--stride", type=int, nargs="+", default=[1], metavar="S",
                   help="conv stride (default 1)")
    p.add_argument("--padding", type=int, nargs="+", default=[1], metavar="P",
                   help="conv zero padding (default 1)")
    p.add_argument("--pool", nargs="+", default=["avg"], choices=["avg", "max", "l2", "none"],
                   help="pooling (default avg)")
    p.add_argument("--pool-size", type=int, nargs="+", default=[2], metavar="L",
                   help="pooling window, also its stride (default 2)")
    p.add_argument("--activation", default="sigmoid",
                   choices=["sigmoid", "tanh", "relu", "identity"],
                   help="conv activation f (default sigmoid)")
    p.add_argument("--n-out", type=int, default=10, help="outputs of the FC layer (default 10)")
    p.add_argument("--output", default="softmax", choices=["softmax", "sigmoid", "identity"],
                   help="output activation g (default softmax)")
    p.add_argument("--loss", default="cross_entropy",
                   choices=["cross_entropy", "binary_cross_entropy", "squared_error"],
                   help="loss J (default cross_entropy)")
    p.add_argument("--batch", type=int, default=2,
                   help="samples in the batch; 2 or more shows sample blocks (default 2)")
    p.add_argument("--digits", action="store_true",
                   help="feed shipped digits (resized to the input) instead of uniform noise")
    p.add_argument("--seed", type=int, default=0, help="seed of weights and noise (default 0)")
    p.add_argument("--values", action="store_true",
                   help="colour stored entries by value instead of one colour")
    p.add_argument("--out", metavar="FILE",
                   help="PNG to write (default dOF_dWRT.png in the current folder)")
    p.add_argument("--size", type=float, default=6.0, help="figure side in inches (default 6)")
    p.add_argument("--dpi", type=int, default=100, help="resolution (default 100)")
    p.set_defaults(func=spy)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
