"""How the conv layers' Jacobians grow with input size, channels and kernel size (figure 4).

For the two conv layers of the note's CNN, one sample, the script builds the layers'
Jacobians ``dZ1/dX``, ``dZ1/dK1``, ``dZ1/db1``, ``dZ2/dA1``, ``dZ2/dK2``, ``dZ2/db2`` with
the builders of :mod:`vecjac.jacobians` (shapes, stride and padding taken from the network)
and records:

* ``nnz`` (stored entries) and megabytes of the CSR arrays (``Jacobian.nbytes``, 10^6 bytes);
* the build time from scratch (pattern cache cleared before the build) and with the pattern
  cached (a refill of the values, what every training step pays), medians over repeats;
* the density, and the megabytes the same Jacobian would need stored dense (float64).

Three sweeps, each around the default network (channels (4, 8), kernel 3, padding 1,
2x2 average pooling):

* input size ``S x S``, S = 8 ... 128: ``nnz`` grows like the pixels, ``S^2`` (slope 2), the
  dense size like ``S^4`` (slope 4), so the density falls like ``S^-2``;
* channels ``(c, c)``, c = 1 ... 32, input 16x16: ``dZ2/dA1`` and ``dZ2/dK2`` grow like
  ``c^2`` (every output channel meets every input channel), layer 1 (one input channel) like
  ``c``, and the density of ``dZ2/dK2`` falls like ``1/c`` (block diagonal over kernels);
* kernel size ``k``, padding ``k // 2``, input 32x32: ``nnz`` grows like ``k^2``.

Fitted log-log slopes (least squares over the sweep; build time over its upper half, where
fixed overheads no longer dominate) are printed.  Writes ``scaling.png``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _common

from _common import figure_args  # noqa: E402

import vecjac as vj  # noqa: E402
from vecjac import plot

NAMES = ("dZ1/dX", "dZ1/dK1", "dZ1/db1", "dZ2/dA1", "dZ2/dK2", "dZ2/db2")
METRICS = ("nnz", "mb", "ms", "ms_cached", "density", "dense_mb")


def conv_layers(net: vj.CNN):
    """``(n, input shape, K, stride, padding, Z shape)`` of each conv layer ``n``."""
    convs = [layer for layer in net.layers if isinstance(layer, vj.layers.Conv2d)]
    for n, layer in enumerate(convs, start=1):
        yield n, layer.input_shape, net.params[f"K{n}"], layer.stride, layer.padding, \
            layer.output_shape


def timed(build, repeat: int) -> tuple[object, float, float]:
    """The built Jacobian, median ms from scratch (pattern cache cleared), median ms cached."""
    cold, warm = [], []
    for _ in range(repeat):
        vj.jacobians.clear_pattern_cache()
        start = time.perf_counter()
        build()
        cold.append(time.perf_counter() - start)
        start = time.perf_counter()
        J = build()
        warm.append(time.perf_counter() - start)
    return J, 1e3 * float(np.median(cold)), 1e3 * float(np.median(warm))


def measure(net: vj.CNN, repeat: int, seed: int = 0) -> dict[str, dict[str, float]]:
    """Size and build times of each conv Jacobian of ``net`` (one random sample)."""
    rng = np.random.default_rng(seed)
    builders = {}
    for n, in_shape, K, stride, padding, z_shape in conv_layers(net):
        A = rng.random((1, *in_shape))
        below = "X" if n == 1 else f"A{n - 1}"
        conv = dict(stride=stride, padding=padding, of=f"Z{n}")
        builders[f"dZ{n}/d{below}"] = (
            lambda K=K, A=A, conv=conv, below=below:
            vj.jacobians.conv_wrt_input(K, A.shape, wrt=below, **conv))
        builders[f"dZ{n}/dK{n}"] = (
            lambda K=K, A=A, conv=conv, n=n:
            vj.jacobians.conv_wrt_kernel(A, K.shape, wrt=f"K{n}", **conv))
        builders[f"dZ{n}/db{n}"] = (
            lambda z_shape=z_shape, n=n:
            vj.jacobians.conv_wrt_bias((1, *z_shape), of=f"Z{n}", wrt=f"b{n}"))
    out = {}
    for name, build in builders.items():
        J, cold, warm = timed(build, repeat)
        rows, cols = J.shape
        out[name] = {"nnz": J.nnz, "mb": J.nbytes / 1e6, "ms": cold, "ms_cached": warm,
                     "density": J.density, "dense_mb": rows * cols * 8 / 1e6}
    return out


def sweep(xs, make_net, repeat: int) -> dict[str, dict[str, list[float]]]:
    """``{name: {metric: [value per x]}}`` over the networks ``make_net(x)``."""
    series = {name: {m: [] for m in METRICS} for name in NAMES}
    for x in xs:
        for name, metrics in measure(make_net(x), repeat).items():
            for m, value in metrics.items():
                series[name][m].append(value)
    return series


def slope(xs, ys) -> float:
    """Least-squares slope of ``log y`` against ``log x``."""
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


def print_slopes(label: str, xs, series) -> None:
    upper = len(xs) // 2
    print(f"\n{label}: fitted log-log slopes over {', '.join(map(str, xs))}")
    print(f"  {'Jacobian':16} {'nnz':>6} {'MB':>6} {'time':>6} {'cached':>6} {'density':>8} "
          f"{'dense MB':>9}   at the largest: nnz, MB sparse / dense, ms scratch / cached")
    for name, m in series.items():
        fits = [slope(xs, m["nnz"]), slope(xs, m["mb"]), slope(xs[upper:], m["ms"][upper:]),
                slope(xs[upper:], m["ms_cached"][upper:]), slope(xs, m["density"]),
                slope(xs, m["dense_mb"])]
        print(f"  {plot.symbol(name):16} " + " ".join(f"{f:>6.2f}" for f in fits[:4])
              + f" {fits[4]:>8.2f} {fits[5]:>9.2f}   {m['nnz'][-1]:>9,}, "
              f"{m['mb'][-1]:.3g} / {m['dense_mb'][-1]:.3g}, "
              f"{m['ms'][-1]:.3g} / {m['ms_cached'][-1]:.3g}")


def main(argv: list[str] | None = None) -> int:
    def extra(p):
        p.add_argument("--repeat", type=int, default=None, help="timing repeats (default 5)")

    args = figure_args(__doc__, "three small points per sweep", argv, extra)
    repeat = args.repeat or (1 if args.quick else 5)
    sizes = (8, 16, 32) if args.quick else (8, 16, 32, 64, 128)
    channels = (1, 2, 4) if args.quick else (1, 2, 4, 8, 16, 32)
    kernels = (1, 3, 5) if args.quick else (1, 3, 5, 7, 9)

    start = time.perf_counter()
    sweeps = {
        "input size S (input 1 x S x S, channels (4, 8), kernel 3)": {
            "x": sizes, "xlabel": "input side S",
            "series": sweep(sizes, lambda s: vj.CNN(input_shape=(1, s, s)), repeat)},
        "channels (c, c) (input 1 x 16 x 16, kernel 3)": {
            "x": channels, "xlabel": "channels c",
            "series": sweep(channels, lambda c: vj.CNN(input_shape=(1, 16, 16), channels=(c, c)),
                            repeat)},
        "kernel size k (input 1 x 32 x 32, padding k // 2, channels (4, 8))": {
            "x": kernels, "xlabel": "kernel side k",
            "series": sweep(kernels, lambda k: vj.CNN(input_shape=(1, 32, 32), kernel_size=k,
                                                      padding=k // 2), repeat)},
    }
    for label, s in sweeps.items():
        print_slopes(label, s["x"], s["series"])
    plot.scaling_figure(sweeps, args.out / "scaling.png", dpi=100,
                        title="Conv-layer Jacobians of the note's CNN, one sample: size, build "
                        "time and density (log-log)")
    print(f"\n{time.perf_counter() - start:.1f} s; wrote scaling.png to {args.out}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
