"""Where the Jacobian-form gradient spends the time that back-propagation does not.

``net.gradients(X, y, method="jacobian")`` multiplies the chain's row through each layer's
Jacobians; ``method="direct"`` calls each layer's ``backward``.  Both run the same numeric
kernels (README, Speed).  Here one layer at a time goes into the Jacobian form (its
Jacobians built as the gradient path builds them, the row multiplied through them) while
back-propagation handles every other layer.  Every mix is first checked to give the direct
gradients to rounding; then all mixes, pure back-propagation and the two library paths take
turns run by run, and each layer's row is the median over the turns of the time its
Jacobian form adds to the back-propagation step of the same turn.  The mixes use the
network's private gradient-path pieces (``_forward``, ``_loss_row``, ``_loss_and_backward``,
``_cached_jacobians``, ``_times``, ``_theta_gradient``), so that a layer's Jacobians are
built and multiplied exactly as ``method="jacobian"`` does it; ``tests/test_experiments.py``
keeps the script in step with them.

Run ``python experiments/bench_gap.py`` (``--network N3`` or ``L``, ``--batch B``,
``--repeat R`` turns, default 100; ``--quick`` for three); it prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))  # sibling benchmark modules

from bench_common import cnn  # noqa: E402

from vecjac.jacobians import shared_patterns  # noqa: E402
from vecjac.vec import finite_checked, unvec, vec  # noqa: E402

NETWORKS = {  # as experiments/benchmark.py: input shape, conv channels
    "N": ((1, 28, 28), (8, 16)),
    "N3": ((1, 28, 28), (8, 16, 32)),
    "L": ((3, 32, 32), (32, 64)),
}


def mixed_gradients(net, X, y, jacobian_layers) -> tuple[float, dict]:
    """The loss and the gradients of ``net``, the layers whose indices are in
    ``jacobian_layers`` in the Jacobian form (the loss row too when the top layer is one of
    them), every other layer back-propagated by its ``backward``."""
    X, y = net._checked_inputs(X, y)
    top = len(net.layers) - 1
    with finite_checked(), shared_patterns():
        cache = net._forward(X, context=True)
        row = dA = None
        if top in jacobian_layers:
            loss, loss_row = net._loss_row(cache[net.top], y)
            row = np.ones(1, dtype=net.dtype) @ loss_row
        else:
            loss, dA = net._loss_and_backward(cache[net.top], y)
        J = net._cached_jacobians(cache, wrt_X=False, reuse=True)  # each built when looked up
        grads = {}
        for i in range(top, -1, -1):
            layer, name, below = net.layers[i], net.names[i], net.inputs[i]
            if i in jacobian_layers:
                row = vec(dA) if row is None else row  # a view: maps are in the vec layout
                for theta in net.param_names[i].values():
                    grads[theta] = net._theta_gradient(row, J[f"d{name}/d{theta}"],
                                                       net.params[theta].shape, None)
                if i > 0:
                    row = net._times(row, J[f"d{name}/d{below}"])
                dA = None
            else:
                dA = unvec(row, cache[name].shape) if dA is None else dA
                dA, g = layer.backward(dA, cache[below], net._local(i), input_grad=i > 0,
                                       context=cache.get((i, "context")))
                grads.update({net.param_names[i][s]: value for s, value in g.items()})
                row = None
    return loss, grads


def gap_rows(network: str = "N", repeat: int = 100, batch: int = 64) -> list[dict]:
    """One row per layer, from the top: the ms its Jacobian form adds to a back-propagation
    step of ``network`` on ``batch`` samples, then the totals."""
    shape, channels = NETWORKS[network]
    net = cnn(shape, channels)
    rng = np.random.default_rng(0)
    X, y = rng.random((batch,) + shape), rng.integers(0, 10, batch)
    layers = range(len(net.layers) - 1, -1, -1)
    mixes = {"none": set(), "all": set(layers)} | {i: {i} for i in layers}
    expected = net.gradients(X, y, method="direct")
    for mix in mixes.values():  # each mix is the gradient, else its time means nothing
        got = mixed_gradients(net, X, y, mix)[1]
        for theta, value in expected.items():
            np.testing.assert_allclose(got[theta], value, rtol=1e-10, atol=1e-13)
    fns = {key: (lambda mix=mix: mixed_gradients(net, X, y, mix)) for key, mix in mixes.items()}
    fns |= {m: (lambda m=m: net.gradients(X, y, method=m)) for m in ("direct", "jacobian")}
    times = _turns(fns, repeat)
    step = float(np.median(times["none"]))

    def extra(key, base="none") -> float:  # paired: the two runs of one turn
        return 1e3 * float(np.median(times[key] - times[base]))

    rows = [{"layer": f"{type(net.layers[i]).__name__} {net.names[i]}", "extra_ms": extra(i)}
            for i in layers]
    rows += [{"layer": "sum of the layers above", "extra_ms": sum(r["extra_ms"] for r in rows)},
             {"layer": "every layer at once", "extra_ms": extra("all")},
             {"layer": "library: jacobian - direct", "extra_ms": extra("jacobian", "direct")}]
    for row in rows:
        row["extra/step"] = row["extra_ms"] / (1e3 * step)
    return rows


def _turns(fns: dict, repeat: int) -> dict[str, np.ndarray]:
    """Seconds of each of ``repeat`` runs of every function, the functions taking turns run
    by run after one warm-up turn: run ``k`` of every function falls in the same turn, so
    the difference of two functions' run ``k`` has the machine's slow drift taken out."""
    times = {key: np.empty(repeat) for key in fns}
    for k in range(-1, repeat):
        for key, fn in fns.items():
            start = time.perf_counter()
            fn()
            if k >= 0:
                times[key][k] = time.perf_counter() - start
    return times


def markdown(rows: list[dict]) -> str:
    lines = ["| layer in the Jacobian form | extra_ms | extra/step |", "|---|---|---|"]
    lines += [f"| {r['layer']} | {r['extra_ms']:.3f} | {r['extra/step']:.3f} |" for r in rows]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", choices=list(NETWORKS), default="N")
    parser.add_argument("--batch", type=int, default=64, help="samples (64)")
    parser.add_argument("--repeat", type=int, default=None, help="turns (100)")
    parser.add_argument("--quick", action="store_true", help="3 turns")
    args = parser.parse_args(argv)
    repeat = args.repeat or (3 if args.quick else 100)
    for name, value in (("--repeat", repeat), ("--batch", args.batch)):
        if value < 1:
            parser.error(f"{name} must be at least 1, got {value}")
    print(f"Network {args.network}, batch {args.batch}: the time one layer's Jacobian form "
          f"adds to a back-propagation step (median over {repeat} turns of the paired "
          "differences):\n")
    print(markdown(gap_rows(args.network, repeat, args.batch)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
