"""The ``vecjac`` command: ``vecjac demo``, ``vecjac explain``, ``vecjac spy``, ``vecjac explore``.

Also runnable as ``python -m vecjac``.  Figures are written with matplotlib's Agg canvas
(:mod:`vecjac.plot`), so no display is needed.  ``vecjac`` with no command prints the help
and exits 0; ``vecjac --version`` prints the version.

Exit codes: 0 success, 1 a failed check (``demo``), 2 a bad argument, with the reason on one
line of stderr (``vecjac spy: error: ...``) and no traceback: an unknown name, an impossible
shape, a number out of range, an output file that is not .png / .svg / .pdf or whose folder
does not exist (``demo --out DIR`` creates ``DIR`` itself, but not its parents).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import textwrap
from pathlib import Path

from .direct import LOSSES, POOL_KINDS
from .network import _HIDDEN, _OUTPUTS
from .symbolic import format_table, symbolic_conv

__all__ = ["main"]

FORMATS = (".png", ".svg", ".pdf")  # what the figures are written as (matplotlib's own)
MAX_PIXELS = 16_000  # a side of a spy figure, --size x --dpi
EXPLAIN_MAX_ENTRIES = 64  # entries of A that explain writes out (dZ/dA has one column each)
APPENDIX = {"input": (3, 4), "kernel": (2, 2), "stride": (1, 2), "padding": (1, 1)}


def demo(args: argparse.Namespace) -> int:
    """The main job: the note's CNN on real digits, Jacobians, checks, training, figures."""
    from .demo import run

    try:
        out = _output_folder(args.out, "--out")
    except ValueError as error:
        return _error("demo", error)
    return run(out, epochs=args.epochs, seed=args.seed,
               progress="epochs" if args.no_progress else True)


def explain(args: argparse.Namespace) -> int:
    """Print a one-channel convolution ``Z = A * beta`` with every entry as a symbol: by
    default the note's appendix example."""
    try:
        g = {key: _pair(getattr(args, key), f"--{key}") for key in APPENDIX}
        h, w = g["input"]
        if h * w > EXPLAIN_MAX_ENTRIES:
            _fail(f"--input {h} {w} has {h * w} entries; explain writes every entry out, so "
                  f"it takes at most {EXPLAIN_MAX_ENTRIES} (8 8, for instance)")
        s = symbolic_conv(g["input"], g["kernel"], stride=g["stride"], padding=g["padding"])
        png = _output_file(args.png, "--png") if args.png else None
    except (ValueError, TypeError) as error:
        return _error("explain", error)
    if args.latex:
        print(s.to_latex())
        return _write_explain_png(s, png, g) if png is not None else 0
    (hk, wk), (ph, pw), (sh, sw) = g["kernel"], g["padding"], g["stride"]
    hz, wz = len(s.Z), len(s.Z[0])
    n_z, n_beta, n_a = len(s.row_labels), len(s.beta_labels), len(s.a_labels)
    setting = f"A {h}x{w}, beta {hk}x{wk}, padding ({ph}, {pw}), stride ({sh}, {sw})"
    if g == APPENDIX:
        print(f"The note's appendix (section 4): {setting}.")
    else:
        print(f"Z = A * beta with {setting} (the note's appendix is --input 3 4 --kernel 2 2 "
              "--stride 1 2 --padding 1 1).")
    print(f"Z = A * beta is {hz}x{wz} (rep.2):\n")
    print(format_table(s.Z))
    print("\nZ entry by entry, in vec(Z) order (the rows of the matrices below):\n")
    width = max(map(len, s.row_labels))
    for row, label in enumerate(s.row_labels):
        print(f"{label.rjust(width)} = {s.Z[row % hz][row // hz]}")
    print(f"\ndvecZ/dvecbeta ({n_z} x {n_beta}): rows vec(Z), columns vec(beta), entries from A\n")
    print(format_table(s.dZ_dbeta, s.row_labels, s.beta_labels))
    print(f"\ndvecZ/dvecA ({n_z} x {n_a}): rows vec(Z), columns vec(A), entries from beta\n")
    print(format_table(s.dZ_dA, s.row_labels, s.a_labels))
    return _write_explain_png(s, png, g) if png is not None else 0


def _write_explain_png(s, png: Path, g: dict) -> int:
    from . import plot

    (h, w), (hk, wk), (ph, pw), (sh, sw) = g["input"], g["kernel"], g["padding"], g["stride"]
    title = (f"$Z = A * \\beta$,  $A$ {h}×{w},  $\\beta$ {hk}×{wk},  padding ({ph}, {pw}),"
             f"  stride ({sh}, {sw})")
    if g == APPENDIX:
        title = "The note's appendix: " + title
    try:
        written = plot.appendix_figure(s, png, title=title)
    except OSError as error:
        return _error("explain", f"cannot write {png}: {error}")
    print(f"\nwrote {written}")
    return 0


def spy(args: argparse.Namespace) -> int:
    """Draw the sparsity pattern of one Jacobian of a network configured by the arguments."""
    import numpy as np

    from . import plot
    from .network import CNN

    try:
        of, wrt = _jacobian_name(args)
        out = _output_file(args.out or f"d{of}_d{wrt}.png", "--out")
        if args.size * args.dpi > MAX_PIXELS:
            _fail(f"--size {args.size:g} with --dpi {args.dpi} gives a figure "
                  f"{args.size * args.dpi:.0f} pixels a side, more than {MAX_PIXELS:,}")
        net = CNN(**_network_settings(args))
        X, y = _spy_data(net, args.batch, args.seed, args.digits)
        J = net.jacobian(X, of=of, wrt=wrt, y=y)
    except (ValueError, TypeError) as error:  # a MemoryBudgetError is a ValueError
        return _error("spy", error)
    print(f"{net}\nbatch of {len(X)}: {J} ({J.nbytes / 2**20:.3g} MB as CSR, "
          f"{np.prod(J.shape) * 8 / 2**20:.3g} MB dense)")
    try:
        plot.save_spy(J, out, size=args.size, dpi=args.dpi, values=args.values, grid=args.grid)
    except OSError as error:
        return _error("spy", f"cannot write {out}: {error}")
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
    """A bad argument: the command reports it on one line of stderr and exits with code 2."""
    raise ValueError(message)


def _error(command: str, error) -> int:
    """Report a bad argument of ``vecjac COMMAND`` on one line of stderr; exit code 2."""
    print(f"vecjac {command}: error: {_one_line(error)}", file=sys.stderr)
    return 2


def _output_file(path: str, option: str) -> Path:
    """A figure to write: a .png, .svg or .pdf file in a folder that exists and is writable.
    Nothing is created: a missing folder is an error (a typo should not make folders)."""
    out = Path(path)
    if out.is_dir():
        _fail(f"{option} {path!r} is a folder: name a file in it, such as {out / 'figure.png'}")
    if out.suffix.lower() not in FORMATS:
        _fail(f"{option} must name a {', '.join(FORMATS[:-1])} or {FORMATS[-1]} file, "
              f"got {path!r}")
    folder = out.parent
    if not folder.is_dir():
        _fail(f"{option} {path!r}: the folder {str(folder)!r} does not exist (create it first)")
    if not os.access(folder, os.W_OK):
        _fail(f"{option} {path!r}: the folder {str(folder)!r} is not writable")
    return out


def _output_folder(path: str, option: str) -> Path:
    """A folder to write figures into: it exists, or its parent does (then it is created)."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        _fail(f"{option} {path!r} is a file, not a folder")
    if not out.exists():
        if not out.parent.is_dir():
            _fail(f"{option} {path!r}: the folder {str(out.parent)!r} does not exist; "
                  f"{option} creates one folder, not its parents")
        if not os.access(out.parent, os.W_OK):
            _fail(f"{option} {path!r}: cannot create it in {str(out.parent)!r} (not writable)")
    elif not os.access(out, os.W_OK):
        _fail(f"{option} {path!r} is not writable")
    return out


def _pair(values: list[int], option: str) -> tuple[int, int]:
    """One int (both axes, or both channel counts) or two (height, width; C_in, C_out)."""
    if len(values) not in (1, 2):
        forms = "C, or C_in C_out" if option == "--channels" else "N, or H W"
        _fail(f"{option} takes one or two ints ({forms}), got {len(values)}: "
              f"{' '.join(map(str, values))}")
    return (values[0], values[-1])


def _int_at_least(minimum: int):
    """An argparse type: an int >= ``minimum``."""
    kind = "a positive int" if minimum == 1 else f"an int >= {minimum}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {kind}, got {value}")
        return value

    return parse


def _figure_side(text: str) -> float:
    """``--size``: a positive, finite number of inches."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected inches, a positive number, got {text!r}")
    return value


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
    from . import __version__

    parser = _Parser(
        prog="vecjac",
        one_line_errors=True,
        description="Explicit sparse Jacobians of CNN back-propagation (vec, numerator layout).",
        epilog="examples:\n"
        "  vecjac demo                                  # the note's CNN on digits, checked\n"
        "  vecjac explain --png appendix.png            # the appendix, printed and drawn\n"
        "  vecjac spy --of Z2 --wrt A1 --out dz2_da1.png   # one Jacobian's sparsity pattern\n"
        "  vecjac spy dA3/dK1 --batch 4                 # an end-to-end product\n\n"
        "vec is column-major within a channel, then channels, then samples; Jacobians are in\n"
        "numerator layout: rows index vec(of), columns vec(wrt).\n\n"
        "vecjac with no command prints this help (exit code 0).  Exit codes: 0 success, 1 a\n"
        "failed check (demo), 2 a bad argument, reported on one line of stderr.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"vecjac {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands",
                                parser_class=_Parser)
    p = sub.add_parser(
        "demo",
        one_line_errors=True,
        help="the note's CNN on real digits: Jacobians, gradient checks, training, figures",
        description=_wrap("Build the default CNN for the shipped 8x8 digits; print every named "
        "Jacobian of the chain (symbol, shape, nnz, density, build time); check the three "
        "gradient methods against each other and central differences; train with "
        "Jacobian-form gradients; write sparsity patterns and the loss curve as PNG files. "
        "Exit code 1 if a check fails, or if the test accuracy of a run of 8 epochs or more "
        "is under 90% (a shorter run reports its accuracy without judging it)."
        "\n\n"
        "Progress goes to stderr: one line per epoch, and a live bar while stderr is a "
        "terminal (never in a log file or a pipe)."),
        epilog="example:\n  vecjac demo --out /tmp/figures --epochs 8",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", default="vecjac-out", metavar="DIR", help="folder for the PNG "
                   "files, created if missing (its parent must exist) (default ./vecjac-out)")
    p.add_argument("--epochs", type=_int_at_least(1), default=8,
                   help="training epochs, a positive int (default 8)")
    p.add_argument("--seed", type=_int_at_least(0), default=0, help="random seed (default 0)")
    p.add_argument("--no-progress", action="store_true",
                   help="no live progress bar (the per-epoch lines stay)")
    p.set_defaults(func=demo)
    p = sub.add_parser(
        "explain",
        one_line_errors=True,
        help="print the note's appendix example (or any one-channel conv) symbolically",
        description=_wrap("Print a one-channel convolution Z = A * beta with every entry a "
        "symbol, 1-based: Z as a grid and entry by entry as the note's rep.2 writes it "
        "(z_32 = a_22 beta_11 + ...), and the symbolic matrices dvecZ/dvecbeta and "
        "dvecZ/dvecA, every entry the symbol it copies.  The default is the note's appendix "
        "(section 4): A 3x4, beta 2x2, stride (1, 2), padding (1, 1); --input, --kernel, "
        "--stride and --padding change it (one int N for N x N, or two, H W).  With --png, "
        "also draw both matrices, every non-zero cell labelled with its symbol."),
        epilog="examples:\n  vecjac explain\n  vecjac explain --png appendix.png\n"
        "  vecjac explain --input 4 4 --kernel 3 --stride 1 --padding 0",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--input", type=_int_at_least(1), nargs="+", default=[3, 4], metavar="N",
                   help=f"size of A: N or H W, at most {EXPLAIN_MAX_ENTRIES} entries "
                   "(default 3 4)")
    p.add_argument("--kernel", type=_int_at_least(1), nargs="+", default=[2, 2], metavar="N",
                   help="size of beta: N or H W (default 2 2)")
    p.add_argument("--stride", type=_int_at_least(1), nargs="+", default=[1, 2], metavar="S",
                   help="stride: S or H W (default 1 2)")
    p.add_argument("--padding", type=_int_at_least(0), nargs="+", default=[1, 1], metavar="P",
                   help="zero padding: P or H W (default 1 1)")
    p.add_argument("--png", metavar="PATH", help="also draw the two matrices into PATH, a "
                   ".png (or .svg / .pdf) file in an existing folder")
    p.add_argument("--latex", action="store_true",
                   help="print Z and both matrices as LaTeX bmatrix environments instead of "
                   "text tables (amsmath)")
    p.set_defaults(func=explain)
    _spy_parser(sub)
    _explore_parser(sub)
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
    run.add_argument("--seed", type=_int_at_least(0), default=0,
                     help="seed of weights and noise (default 0)")
    run.add_argument("--values", action="store_true",
                     help="colour stored entries by value, with a colour bar (signed values: "
                     "red positive, blue negative, white zero) instead of one colour")
    run.add_argument("--grid", choices=("auto", "on", "off"), default="auto",
                     help="grid lines between channel (grey) and sample (red) blocks: auto "
                     "draws a level only while its blocks are large enough to read (default "
                     "auto)")
    run.add_argument("--out", metavar="FILE",
                     help="figure to write: .png, .svg or .pdf, in an existing folder "
                     "(default dOF_dWRT.png in the current folder)")
    run.add_argument("--size", type=_figure_side, default=6.0,
                     help="the figure's longer side in inches; the other side follows the "
                     "matrix's shape, and the labels keep the room they need (default 6)")
    run.add_argument("--dpi", type=_int_at_least(1), default=100,
                     help=f"resolution, dots per inch; --size x --dpi at most {MAX_PIXELS:,} "
                     "(default 100)")
    p.set_defaults(func=spy, grid_choice=None)


# --- vecjac explore -------------------------------------------------------------------------
# explore_html's parameter -> the option that sets it, for the messages of its errors
_EXPLORE_OPTIONS = {"input_size": "--input", "kernel_size": "--kernel", "channels": "--channels",
                    "stride": "--stride", "padding": "--padding", "layer": "--layer",
                    "path": "--out"}


def explore(args: argparse.Namespace) -> int:
    """Write the interactive page of a convolution's (or pooling's) Jacobians."""
    import re

    from .explore import explore_html

    try:
        settings = {key: _pair(getattr(args, dest), f"--{dest}") for key, dest in
                    (("input_size", "input"), ("kernel_size", "kernel"),
                     ("channels", "channels"), ("stride", "stride"), ("padding", "padding"))}
        out = Path(args.out)
        if out.suffix.lower() not in (".html", ".htm"):
            raise ValueError(f"--out must name a .html file, got {args.out!r}")
        page = explore_html(**settings, layer=args.layer, path=out)
    except (ValueError, TypeError) as error:
        message = re.sub(r"^(\w+)\b", lambda m: _EXPLORE_OPTIONS.get(m[1], m[1]),
                         _one_line(error))
        message = message.replace("input_size", "--input").replace("kernel_size", "--kernel")
        print(f"vecjac explore: error: {message}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"vecjac explore: error: cannot write {args.out}: {_one_line(error)}",
              file=sys.stderr)
        return 2
    print(f"wrote {out} ({len(page.encode()) / 1024:.0f} KB): open it in any browser, "
          "from disk (no server, no network)")
    return 0


def _explore_parser(sub) -> None:
    p = sub.add_parser(
        "explore",
        one_line_errors=True,
        help="write a self-contained HTML page to explore a conv's Jacobians entry by entry",
        description=_wrap(
            "Write one self-contained HTML file (no server, no network: open it from disk in "
            "any browser) showing the padded input, the kernel, the output and the Jacobians "
            "dvecZ/dvecA and dvecZ/dvecK as grids in the note's notation (1-based symbols, vec "
            "order, the channel-block grid).  Point at (hover or tap) any entry: the page "
            "highlights in every panel the output of its row, the input and kernel entries it "
            "involves and the output's window, and writes the partial derivative as the note "
            "does (dz_32/da_23 = beta_12).  Stride and padding (and the pooling window) can be "
            "changed on the page over three values per axis around the given ones; every "
            "variant is computed by vecjac's builders and embedded."
            "\n\n"
            "The default is the note's appendix: A 3x4, beta 2x2, padding (1, 1), stride "
            "(1, 2), one channel.  Pooling layers have no kernel Jacobian: the page shows "
            "dvecA/dvecI (avgpool: entries 1/(h_l w_l); maxpool: the switches for a concrete "
            "input with distinct values, shown).  Sizes are capped so the page stays small "
            "(input 8x8, kernel 5x5, 3 channels, and 200,000 stored entries over all "
            "variants)."
            "\n\n"
            "Exit code 2, with the reason on one line of stderr, for a bad argument or an "
            "output folder that does not exist (it is not created)."),
        epilog="examples:\n"
        "  vecjac explore --out appendix.html             # the note's appendix\n"
        "  vecjac explore --channels 2 3 --out conv.html\n"
        "  vecjac explore --input 4 4 --kernel 2 --stride 2 --padding 0 --layer maxpool "
        "--out max.html",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--input", type=int, nargs="+", default=[3, 4], metavar="N",
                   help="size of the input: N or H W, at most 8 (default 3 4)")
    p.add_argument("--kernel", type=int, nargs="+", default=[2, 2], metavar="N",
                   help="kernel (pooling: window) size: N or H W, at most 5 (default 2 2)")
    p.add_argument("--channels", type=int, nargs="+", default=[1, 1], metavar="C",
                   help="C_in C_out, or C for both (pooling keeps C), at most 3 (default 1 1)")
    p.add_argument("--stride", type=int, nargs="+", default=[1, 2], metavar="S",
                   help="stride: S or H W (default 1 2)")
    p.add_argument("--padding", type=int, nargs="+", default=[1, 1], metavar="P",
                   help="zero padding: P or H W (default 1 1)")
    p.add_argument("--layer", choices=("conv", "avgpool", "maxpool"), default="conv",
                   help="the layer (default conv)")
    p.add_argument("--out", default="vecjac-explore.html", metavar="FILE",
                   help="the page to write, a .html file in an existing folder "
                   "(default ./vecjac-explore.html)")
    p.set_defaults(func=explore)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:  # plain `vecjac`: the help, and success
        parser.print_help()
        return 0
    if args.command == "spy":
        args.grid = {"auto": "auto", "on": True, "off": False}[args.grid]
    try:
        return args.func(args)
    except BrokenPipeError:  # `vecjac explain | head`: the reader left; no traceback
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush is silent
        return 1
    except KeyboardInterrupt:
        print(f"vecjac {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
