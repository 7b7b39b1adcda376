"""Reverse, forward and optimal accumulation of end-to-end Jacobians (README figure 5).

An end-to-end Jacobian of the note's CNN is a product of the named Jacobians along the
chain, e.g. ``dA3/dX = dA3/dZ3 dZ3/dB2 dB2/dA2 dA2/dI2 dI2/dZ2 dZ2/dA1 dA1/dI1 dI1/dZ1
dZ1/dX``.  The product is the same in any association; its cost is not.

* **reverse** multiplies left to right, from the output down (as back-propagation does):
  every intermediate has the rows of ``vec(of)``;
* **forward** multiplies right to left, from the variable up (as forward-mode
  differentiation does): every intermediate has the columns of ``vec(wrt)``;
* **optimal** multiplies in the bracketing of least predicted cost, chosen by dynamic
  programming over the sub-chains (matrix chain ordering, ``vecjac.bracketing``); finding
  it is part of its time.

Costs, measured for ``dA3/dX``, ``dA3/dK1`` and ``dZ2/dX`` of ``vj.CNN()`` on a batch of
digits:

* **flops**: for one sparse product ``C = A B`` (``A`` m x k, ``B`` k x n), the number of
  scalar multiplications of the row-by-row (Gustavson) algorithm that scipy uses is
  ``sum_t nnz(A[:, t]) * nnz(B[t, :])``: every stored ``a_it`` meets every stored ``b_tj``.
  Counting one multiply and one add per such pair, ``flops(A B) = 2 sum_t nnz(A[:, t])
  nnz(B[t, :])``; the flops of an order are the sum over its products.  This is an exact
  count of the work, an upper bound on ``2 nnz(C)``, and does not depend on the machine;
* **multiply-adds as performed**: the same count as the product really goes through the
  factors (``vecjac.bracketing.product_cost``: ``I_N (x) M`` times ``I_N (x) M'`` multiplies
  one block, not ``N``); this is what ``order="optimal"`` minimises;
* **nnz of the intermediates**: the largest, and the sum over all products;
* **time**: wall time of the products alone (factors prebuilt, nothing counted), median
  over repeats.

All orders are checked equal to each other (and to ``net.jacobian``) before anything is
printed; the script fails otherwise.  Writes ``chain_order.png``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _common

from _common import figure_args  # noqa: E402

import vecjac as vj  # noqa: E402
from vecjac import bracketing as br
from vecjac import plot

TARGETS = [("A3", "X"), ("A3", "K1"), ("Z2", "X")]
ORDERS = ("reverse", "forward", "optimal")
TOLERANCE = 1e-12  # relative, between the orders (only rounding differs)


def factor_names(net: vj.CNN, of: str, wrt: str) -> list[str]:
    """The named Jacobians whose product is ``d of / d wrt``, from ``of`` down: the chain
    ``net.jacobian`` multiplies (``Sequential._path``)."""
    return net._path(of, wrt)


def product_flops(A, B) -> int:
    """``2 sum_t nnz(A[:, t]) nnz(B[t, :])``: flops (multiply and add) of the flat sparse
    product ``A B``, twice :func:`vecjac.bracketing.gustavson_count`."""
    return 2 * br.gustavson_count(A.matrix, B.matrix)


def accumulate(factors: list, order: str, count: bool = True) -> tuple[object, list[dict]]:
    """The product of ``factors`` in ``order``, and each step's nnz, flops and multiply-adds.

    ``"optimal"`` first finds its bracketing (``vecjac.bracketing``: a cost model from the
    factors' sparsity, dynamic programming over the sub-chains).  Each step records
    ``flops`` (flat, :func:`product_flops`) and ``cost``, the multiply-adds as the product
    is performed through the factors; ``count=False`` skips both (for timing).
    """
    costs = br.ChainCosts(factors) if order == "optimal" else len(factors)
    tree = br.bracketing(order, costs)
    steps = []

    def walk(node):
        if isinstance(node, int):
            return factors[node]
        left, right = walk(node[0]), walk(node[1])
        counted = {}
        if count:
            counted = {"flops": product_flops(left, right), "cost": br.product_cost(left, right)}
        product = left @ right
        steps.append({"product": product.name, "shape": product.shape, "nnz": product.nnz,
                      **counted})
        return product

    product = walk(tree)
    if steps:
        steps[-1]["bracketing"] = br.format_bracketing(tree, [f.name for f in factors])
    return product, steps


def compare_orders(net: vj.CNN, X, y, of: str, wrt: str, repeat: int = 5) -> dict:
    """Every order for ``d of / d wrt``: Jacobians, flops, nnz, time, and their difference.

    Returns ``{"reverse": {...}, "forward": {...}, "optimal": {...}, "difference": float}``,
    each order with ``J`` (the Jacobian), ``flops``, ``cost`` (multiply-adds as performed),
    ``peak_nnz``, ``sum_nnz``, ``ms``, ``steps``, ``bracketing`` and ``library`` (the same
    order computed by ``net.jacobian``).
    """
    jacobians = net.jacobians(X, y)
    factors = [jacobians[name] for name in factor_names(net, of, wrt)]
    out = {}
    for order in ORDERS:
        J, steps = accumulate(factors, order)
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            accumulate(factors, order, count=False)
            times.append(time.perf_counter() - start)
        out[order] = {
            "J": J, "steps": steps, "ms": 1e3 * float(np.median(times)),
            "flops": sum(s["flops"] for s in steps), "cost": sum(s["cost"] for s in steps),
            "bracketing": steps[-1]["bracketing"],
            "peak_nnz": max(s["nnz"] for s in steps), "sum_nnz": sum(s["nnz"] for s in steps),
            "library": net.jacobian(X, of, wrt, y=y, order=order),
        }
    scale = max(np.abs(out["reverse"]["J"].matrix).max(), 1e-300)
    matrices = [out[o][k].matrix for o in ORDERS for k in ("J", "library")]
    out["difference"] = max(float(abs(m - matrices[0]).max()) for m in matrices[1:]) / scale
    return out


METRICS = (("flops, flat operands (2 x multiply-adds)", "flops"),
           ("multiply-adds as performed (through the factors)", "cost"),
           ("largest intermediate (nnz)", "peak_nnz"),
           ("time of the products (ms)", "ms"))


def draw(results: dict, path: Path, batch: int) -> Path:
    """Four panels of horizontal bars (one per metric), a group of three bars per Jacobian.

    Horizontal bars keep every value label on its own line, however close two values are.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import EngFormatter

    fig = Figure(figsize=(13, 8.2), layout="constrained")
    axes = fig.subplots(2, 2).ravel()
    names = list(results)
    height = 0.8 / len(ORDERS)
    handles = []
    for ax, (title, key) in zip(axes, METRICS, strict=True):
        for k, order in enumerate(ORDERS):
            values = [results[name][order][key] for name in names]
            y = np.arange(len(names)) + (k - (len(ORDERS) - 1) / 2) * height
            rects = ax.barh(y, values, height, color=f"C{k}", label=order)
            ax.bar_label(rects, [_compact(v) for v in values], padding=3, fontsize=10)
            if ax is axes[0]:
                handles.append(rects)
        ax.set_yticks(np.arange(len(names)), [plot.math_symbol(n) for n in names], fontsize=12)
        ax.invert_yaxis()  # first Jacobian on top, reverse first in each group
        ax.set_title(title, fontsize=12)
        ax.xaxis.set_major_formatter(EngFormatter(sep=" "))
        ax.tick_params(axis="x", labelsize=10)
        ax.margins(x=0.16)
        ax.grid(alpha=0.3, axis="x")
    fig.legend(handles=handles, loc="outside lower center", ncols=len(ORDERS), fontsize=12,
               frameon=False)
    fig.suptitle("Reverse (output down), forward (variable up) and optimal (cheapest "
                 f"bracketing) accumulation, vj.CNN() on {batch} digits", fontsize=13)
    fig.savefig(path, dpi=100)
    return path


def _compact(value: float) -> str:
    """``4030464`` -> ``4.03 M``, ``204800`` -> ``205 k``, ``6.49`` -> ``6.49``."""
    for limit, suffix in ((1e9, " G"), (1e6, " M"), (1e3, " k")):
        if abs(value) >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.3g}"


def main(argv: list[str] | None = None) -> int:
    def extra(p):
        p.add_argument("--batch", type=int, default=None, help="digits in the batch (16)")

    args = figure_args(__doc__, "a batch of 2, one repeat", argv, extra)
    batch = args.batch or (2 if args.quick else 16)
    repeat = 1 if args.quick else 21

    data = vj.data.load_digits()
    X, y = data.X_train[:batch], data.y_train[:batch]
    net = vj.CNN()
    print(f"{net}\nbatch of {batch} digits; flops = 2 sum_t nnz(A[:, t]) nnz(B[t, :]) summed "
          "over the products\n")
    header = (f"| {'Jacobian':13} | {'shape':>9} | {'order':7} | {'products':>8} | "
              f"{'flops':>10} | {'mult-adds':>10} | {'peak nnz':>9} | {'sum nnz':>9} | "
              f"{'time ms':>7} |")
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    results, ok = {}, True
    for of, wrt in TARGETS:
        r = compare_orders(net, X, y, of, wrt, repeat)
        results[f"d{of}/d{wrt}"] = r
        for order in ORDERS:
            o = r[order]
            shape = "x".join(map(str, o["J"].shape))
            print(f"| {plot.symbol(o['J'].name):13} | {shape:>9} | {order:7} | "
                  f"{len(o['steps']):>8} | {o['flops']:>10,} | {o['cost']:>10,} | "
                  f"{o['peak_nnz']:>9,} | {o['sum_nnz']:>9,} | {o['ms']:>7.3f} |")
        ok &= r["difference"] <= TOLERANCE
    print("\nmult-adds: as performed through the factors (I_N (x) M times I_N (x) M' multiplies "
          "one block), what order='optimal' minimises")
    print("largest relative difference between the orders (and net.jacobian): "
          + ", ".join(f"{name} {r['difference']:.1e}" for name, r in results.items())
          + f" ({'equal' if ok else 'NOT EQUAL'}, tolerance {TOLERANCE:.0e})")
    for name, r in results.items():
        cheaper = min(ORDERS[:2], key=lambda o: r[o]["cost"])
        other = ORDERS[1 - ORDERS.index(cheaper)]
        print(f"{name}: {cheaper} is {r[other]['cost'] / r[cheaper]['cost']:.2f}x cheaper than "
              f"{other} in multiply-adds; optimal {r['optimal']['cost'] / r[cheaper]['cost']:.2f}x "
              f"of {cheaper}, bracketing {r['optimal']['bracketing']}")

    draw(results, args.out / "chain_order.png", batch)
    print(f"\nwrote chain_order.png to {args.out}/")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
