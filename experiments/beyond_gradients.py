"""What explicit Jacobians make cheap, on the note's CNN trained on the shipped digits.

One figure per capability (README section "Beyond gradients"):

* ``beyond_per_sample.png``: each test digit's gradient norm ``||nabla_theta J_n||`` from
  ``net.per_sample_gradients`` (the rows of the batch product, without the sum over
  samples), misclassified digits marked, and the digits the network learns most from;
* ``beyond_ggn.png``: the exact generalized Gauss-Newton matrix ``J_theta^T H J_theta`` of a
  batch (``net.ggn``), parameter blocks marked, and its eigenvalues;
* ``beyond_ntk.png``: the empirical NTK ``J_theta J_theta^T`` of 30 test digits
  (``net.ntk``), its trace over the 10 logits, sorted by class;
* ``beyond_spectrum.png``: every singular value of the trained second conv layer, exact
  (SVD of its explicit Jacobian, ``vecjac.spectrum``) against the FFT formula of Sedghi,
  Gupta and Long (exact only for circular padding) and the reshaped-kernel estimate;
* ``beyond_chain.png``: the predicted cost (multiply-adds) of ``dA3/dX``, ``dA3/dK1`` and
  ``dZ2/dX`` accumulated in reverse, forward and optimal order (``net.jacobian(...,
  order="optimal", report=True)``).

Every number drawn is checked first: the per-sample gradients sum to the batch gradient,
the GGN is symmetric positive semi-definite, the NTK symmetric, the three orders equal.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.patches import Patch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _common

from _common import figure_args  # noqa: E402

import vecjac as vj  # noqa: E402
from vecjac import plot, spectrum  # noqa: E402

FONT = 11


def trained_network(epochs: int) -> tuple[vj.CNN, vj.data.Digits]:
    """The demo's CNN (the note's shape on 8x8 digits, tanh) after ``epochs`` of training."""
    data = vj.data.load_digits()
    net = vj.CNN(input_shape=(1, 8, 8), channels=(4, 8), activation="tanh", n_out=10, seed=0)
    vj.train(net, data.X_train, data.y_train, epochs=epochs, progress=False)
    return net, data


def per_sample_figure(net, data, path: Path, n: int = 64) -> None:
    X, y = data.X_test[:n], data.y_test[:n]
    per_sample = net.per_sample_gradients(X, y)
    batch = net.gradients(X, y)
    error = max(np.abs(per_sample[k].sum(axis=0) - batch[k]).max() / np.abs(batch[k]).max()
                for k in batch)
    print(f"per-sample gradients of {n} digits: their sum equals the batch gradient to "
          f"{error:.1e} (relative)")
    assert error < 1e-10, error
    norms = np.sqrt(sum((g.reshape(n, -1) ** 2).sum(axis=1) for g in per_sample.values()))
    wrong = net.forward(X).argmax(axis=1) != y
    order = np.argsort(norms)[::-1]

    fig = Figure(figsize=(11, 4.2), layout="constrained")
    bars, digits = fig.subfigures(1, 2, width_ratios=[1.6, 1])
    ax = bars.subplots()
    colours = np.where(wrong[order], "C3", "C0")
    ax.bar(np.arange(n), norms[order], color=colours, width=0.85)
    ax.set_xlabel(f"test digit, sorted by gradient norm ({n} in the batch)", fontsize=FONT)
    ax.set_ylabel(r"$\|\nabla_\theta J_n\|_2$", fontsize=FONT)
    ax.legend(handles=[Patch(color="C0", label="classified correctly"),
                       Patch(color="C3", label=f"misclassified ({wrong.sum()})")], fontsize=10)
    ax.tick_params(labelsize=10)
    ax.set_title("one gradient per sample: the rows of the batch product", fontsize=FONT)
    top = order[:6]
    axes = digits.subplots(2, 3)
    for a, k in zip(axes.ravel(), top, strict=True):
        a.imshow(X[k, 0], cmap="gray_r")
        a.set_title(f"label {y[k]}, says {net.forward(X[k:k + 1])[0].argmax()}\n"
                    f"norm {norms[k]:.2g}", fontsize=10)
        a.set_xticks([])
        a.set_yticks([])
    digits.suptitle("largest gradients", fontsize=FONT)
    fig.savefig(path, dpi=110)


def ggn_figure(net, data, path: Path, n: int = 32) -> None:
    X, y = data.X_test[:n], data.y_test[:n]
    G = net.ggn(X, y)
    eigenvalues = np.linalg.eigvalsh(G)[::-1]
    assert np.array_equal(G, G.T) and eigenvalues[-1] >= -1e-10 * eigenvalues[0]
    rank = int((eigenvalues > 1e-10 * eigenvalues[0]).sum())
    print(f"GGN of {n} digits: {G.shape[0]} x {G.shape[0]}, rank {rank} (at most "
          f"{n} x 9 = {9 * n}: softmax's H has rank 9 per sample), largest eigenvalue "
          f"{eigenvalues[0]:.3g}")

    fig = Figure(figsize=(11, 4.8), layout="constrained")
    ax, ax_eig = fig.subplots(1, 2, width_ratios=[1.15, 1])
    magnitude = np.abs(G)
    floor = magnitude.max() * 1e-8
    image = ax.imshow(np.maximum(magnitude, floor), norm=LogNorm(floor, magnitude.max()),
                      cmap="viridis", interpolation="nearest")
    fig.colorbar(image, ax=ax, shrink=0.85).set_label(r"$|G_{ij}|$", fontsize=FONT)
    edges = np.cumsum([0] + [p.size for p in net.params.values()])
    for e in edges[1:-1]:
        ax.axhline(e - 0.5, color="w", lw=0.7)
        ax.axvline(e - 0.5, color="w", lw=0.7)
    centres = (edges[:-1] + edges[1:]) / 2
    labels = [f"${plot.math_name(name)}$" for name in net.params]
    ax.set_xticks(centres, labels, fontsize=9)
    ax.set_yticks(centres, labels, fontsize=9)
    ax.set_title(rf"$G = J_\theta^T H\, J_\theta$, {G.shape[0]} parameters, {n} digits",
                 fontsize=FONT)
    ax_eig.semilogy(np.arange(1, rank + 1), eigenvalues[:rank], color="C0", lw=2)
    ax_eig.axvline(rank, color="k", lw=0.8, ls="--")
    ax_eig.text(rank, eigenvalues[0], f"rank {rank} (at most {n} x 9) ", fontsize=10, va="top",
                ha="right")
    ax_eig.set_xlabel("index", fontsize=FONT)
    ax_eig.set_ylabel("eigenvalue", fontsize=FONT)
    ax_eig.set_title(f"eigenvalues ({G.shape[0] - rank} more are zero)", fontsize=FONT)
    ax_eig.grid(alpha=0.3)
    for a in (ax, ax_eig):
        a.tick_params(labelsize=9)
    fig.savefig(path, dpi=110)


def ntk_figure(net, data, path: Path, per_class: int = 3) -> None:
    keep = np.concatenate([np.flatnonzero(data.y_test == c)[:per_class] for c in range(10)])
    X, y = data.X_test[keep], data.y_test[keep]
    K = net.ntk(X)
    assert np.allclose(K, K.transpose(1, 0, 3, 2), rtol=1e-12, atol=1e-12 * np.abs(K).max())
    trace = np.einsum("abii->ab", K)
    same = (y[:, None] == y[None, :]) & ~np.eye(len(y), dtype=bool)
    inside, outside = trace[same].mean(), trace[y[:, None] != y[None, :]].mean()
    print(f"NTK of {len(y)} digits ({K.shape}): mean trace within a class {inside:.3g}, "
          f"between classes {outside:.3g}")

    size = np.sqrt(np.diag(trace))
    fig = Figure(figsize=(6.6, 5.4), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(trace / np.outer(size, size), cmap="viridis", interpolation="nearest")
    fig.colorbar(image, ax=ax, shrink=0.85).set_label(
        r"$\mathrm{tr}\,\Theta(x_a, x_b)\,/\,\sqrt{\mathrm{tr}\,\Theta(x_a, x_a)\,"
        r"\mathrm{tr}\,\Theta(x_b, x_b)}$", fontsize=10)
    ticks = np.arange(10) * per_class + (per_class - 1) / 2
    ax.set_xticks(ticks, range(10), fontsize=10)
    ax.set_yticks(ticks, range(10), fontsize=10)
    for e in np.arange(1, 10) * per_class:
        ax.axhline(e - 0.5, color="w", lw=0.6)
        ax.axvline(e - 0.5, color="w", lw=0.6)
    ax.set_xlabel("test digit (by class)", fontsize=FONT)
    ax.set_ylabel("test digit (by class)", fontsize=FONT)
    ax.set_title(rf"empirical NTK of the logits $Z_3$, {len(y)} test digits, normalised",
                 fontsize=FONT)
    fig.savefig(path, dpi=110)


def spectrum_figure(net, path: Path) -> None:
    K, layer = net.params["K2"], net.layers[3]
    shape = net.shapes["A1"]
    exact = spectrum.conv_singular_values(K, shape, layer.stride, layer.padding)
    fft = np.sort(spectrum.fft_singular_values(K, shape[1]).ravel())[::-1]
    reshaped = spectrum.reshaped_kernel_norm(K)
    print(f"conv layer 2 ({K.shape}, input {shape}): exact sigma_max {exact[0]:.4g}, FFT "
          f"formula {fft[0]:.4g} ({fft[0] / exact[0] - 1:+.1%}), reshaped kernel "
          f"{reshaped:.4g} ({reshaped / exact[0] - 1:+.1%})")

    fig = Figure(figsize=(8, 4.4), layout="constrained")
    ax = fig.subplots()
    ax.plot(np.arange(1, len(exact) + 1), exact, "o-", ms=3, color="C0",
            label=r"exact: SVD of $\partial\,\mathrm{vec}Z_2/\partial\,\mathrm{vec}A_1$")
    ax.plot(np.arange(1, len(fft) + 1), fft, "s--", ms=3, color="C1",
            label="FFT formula (circular padding)")
    ax.axhline(reshaped, color="C3", ls=":", lw=2, label=r"$\|K_2$ reshaped$\|_2$")
    ax.set_xlabel("index", fontsize=FONT)
    ax.set_ylabel("singular value", fontsize=FONT)
    ax.set_title(rf"trained conv layer 2: $K_2$ {K.shape[0]}x{K.shape[1]}x3x3 on "
                 rf"{shape[1]}x{shape[2]}, zero padding 1", fontsize=FONT)
    ax.legend(fontsize=10)
    ax.grid(alpha=0.3)
    ax.tick_params(labelsize=10)
    fig.savefig(path, dpi=110)


def chain_figure(net, data, path: Path, n: int = 16) -> None:
    X, y = data.X_test[:n], data.y_test[:n]
    targets = [("A3", "X"), ("A3", "K1"), ("Z2", "X")]
    orders = ("reverse", "forward", "optimal")
    performed = {}
    for of, wrt in targets:
        results = {o: net.jacobian(X, of, wrt, y, order=o, report=True) for o in orders}
        reference = results["reverse"][0].toarray()
        for o, (J, report) in results.items():
            assert np.allclose(J.toarray(), reference, rtol=1e-12, atol=1e-14), (of, wrt, o)
            performed[of, wrt, o] = report.performed_cost
        print(f"d{of}/d{wrt}: optimal bracketing {results['optimal'][1].bracketing}")
    print("multiply-adds performed: " + "; ".join(
        f"d{of}/d{wrt} " + ", ".join(f"{o} {performed[of, wrt, o]:.3g}" for o in orders)
        for of, wrt in targets))

    fig = Figure(figsize=(8, 4.4), layout="constrained")
    ax = fig.subplots()
    width = 0.26
    for k, o in enumerate(orders):
        heights = [performed[of, wrt, o] / 1e6 for of, wrt in targets]
        ax.bar(np.arange(len(targets)) + (k - 1) * width, heights, width, label=o,
               color=f"C{k}")
    ax.set_xticks(range(len(targets)),
                  [plot.math_symbol(f"d{of}/d{wrt}") for of, wrt in targets], fontsize=FONT)
    ax.set_ylabel("multiply-adds performed (millions)", fontsize=FONT)
    ax.set_title(f"one end-to-end Jacobian, three bracketings of the chain ({n} digits)",
                 fontsize=FONT)
    ax.legend(fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    ax.tick_params(labelsize=10)
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    args = figure_args(__doc__, "train 1 epoch instead of 8", argv)
    net, data = trained_network(1 if args.quick else 8)
    per_sample_figure(net, data, args.out / "beyond_per_sample.png")
    ggn_figure(net, data, args.out / "beyond_ggn.png")
    ntk_figure(net, data, args.out / "beyond_ntk.png")
    spectrum_figure(net, args.out / "beyond_spectrum.png")
    chain_figure(net, data, args.out / "beyond_chain.png")
    print(f"\nwrote beyond_per_sample.png, beyond_ggn.png, beyond_ntk.png, "
          f"beyond_spectrum.png, beyond_chain.png to {args.out}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
