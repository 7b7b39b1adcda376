"""Training curves on the shipped digits, Jacobian form and direct overlaid (README figure 6).

The note's CNN (``vj.CNN(activation="tanh")``: conv 4x1x3x3, tanh, 2x2 average pooling,
conv 8x4x3x3, tanh, 2x2 average pooling, FC 32 -> 10, softmax, cross-entropy summed over
the batch) is trained twice from the same initialisation with the same shuffles, by plain
mini-batch gradient descent (section 3 of the note, batch 32, ``alpha = 0.05``):

* ``method="jacobian"``: every gradient is a row vector times the explicit sparse
  Jacobians of the chain, transposed and ``unvec``-ed;
* ``method="direct"``: ordinary back-propagation with direct convolution.

The two are the same mathematics, so the curves must coincide: the script prints both
histories and their largest difference and fails if it exceeds ``1e-9``.  tanh rather than
the default sigmoid: two sigmoid layers sit on a plateau for several epochs with plain
gradient descent.  Writes ``train_digits.png``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _common

from _common import figure_args  # noqa: E402

import vecjac as vj  # noqa: E402
from vecjac import plot

METHODS = {"Jacobian form": "jacobian", "direct backprop": "direct"}
TOLERANCE = 1e-9  # largest difference between the histories (loss and accuracy)


def run(data, epochs: int, seed: int = 0) -> dict[str, dict]:
    """One history per method, from identical networks and shuffles."""
    histories = {}
    for label, method in METHODS.items():
        net = vj.CNN(activation="tanh", seed=seed)
        histories[label] = vj.train(net, data.X_train, data.y_train, data.X_test, data.y_test,
                                    epochs=epochs, batch_size=32, lr=0.05, method=method,
                                    seed=seed, progress=False)
    return histories


def largest_difference(histories: dict) -> float:
    first, *rest = histories.values()
    keys = ("loss", "train_accuracy", "test_accuracy")
    return max(float(np.max(np.abs(np.subtract(h[k], first[k])))) for h in rest for k in keys)


def main(argv: list[str] | None = None) -> int:
    def extra(p):
        p.add_argument("--epochs", type=int, default=None, help="epochs (default 10)")

    args = figure_args(__doc__, "300 digits, 2 epochs", argv, extra)
    epochs = args.epochs or (2 if args.quick else 10)

    data = vj.data.load_digits()
    if args.quick:
        data = type(data)(data.X_train[:300], data.y_train[:300], data.X_test[:100],
                          data.y_test[:100])
    print(f"{len(data.X_train)} training and {len(data.X_test)} test digits, {epochs} epochs, "
          "batch 32, lr 0.05\n")
    histories = run(data, epochs)
    (jac, jac_h), (direct, dir_h) = histories.items()
    print(f"{'epoch':>5} | {'loss (' + jac + ')':>22} {'loss (' + direct + ')':>24} | "
          f"{'test acc':>8} {'test acc':>8}")
    for e in range(epochs):
        print(f"{e + 1:>5} | {jac_h['loss'][e]:>22.12f} {dir_h['loss'][e]:>24.12f} | "
              f"{jac_h['test_accuracy'][e]:>8.3f} {dir_h['test_accuracy'][e]:>8.3f}")
    difference = largest_difference(histories)
    ok = difference <= TOLERANCE
    print(f"\nlargest difference between the two histories: {difference:.1e} "
          f"({'coincide' if ok else 'DIFFER'}, tolerance {TOLERANCE:.0e})")
    print(f"training time: {jac} {jac_h['seconds'][-1]:.2f} s, {direct} "
          f"{dir_h['seconds'][-1]:.2f} s")
    plot.loss_curve(histories, args.out / "train_digits.png", dpi=100,
                    title=f"The note's CNN on {len(data.X_train)} digits: Jacobian-form "
                    "gradients (thick) and direct back-propagation (dashed) coincide")
    print(f"wrote train_digits.png to {args.out}/")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
