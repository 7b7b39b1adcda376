"""How far the usual estimates of a conv layer's spectral norm are from the exact one.

For 3x3 kernels (random normal, 8 or 16 channels in and out) on square inputs of side 8 to
32, stride 1, padding 1, the exact spectral norm of the layer ``vecA -> vec(A * K)`` is the
largest singular value of its explicit Jacobian (``vecjac.spectrum.conv_spectral_norm``).
It is compared with

* Sedghi, Gupta and Long's FFT formula (ICLR 2019) on the input size, exact for circular
  padding only (``spectrum.fft_singular_values(K, n)[0]``);
* the same formula on the padded size ``n + 2`` (an upper bound for zero padding: the
  zero-padded layer is a part of that circular one); printed only, since for these kernels
  it equals the value on ``n`` to the digits shown;
* the spectral norm of ``K`` reshaped to ``(C_out, C_in 9)``
  (``spectrum.reshaped_kernel_norm``).

With zero padding the FFT value is an over-estimate that shrinks as the input grows; the
reshaped kernel is off by a factor that does not.  With circular padding the FFT formula and
the exact value agree to rounding (the script checks it).  Writes ``conv_spectrum.png``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _common

from _common import figure_args  # noqa: E402

from vecjac import spectrum  # noqa: E402


def measure(channels, sides, seed=0):
    """Rows ``(C, n, exact zeros, exact circular, fft(n), fft(n + 2), reshaped)``."""
    rows = []
    for c in channels:
        K = np.random.default_rng(seed + c).standard_normal((c, c, 3, 3)) / np.sqrt(9 * c)
        for n in sides:
            exact = spectrum.conv_spectral_norm(K, (c, n, n), 1, 1)
            circular = spectrum.conv_spectral_norm(K, (c, n, n), 1, 1, "circular")
            fft = spectrum.fft_singular_values(K, n)[0]
            fft_pad = spectrum.fft_singular_values(K, n + 2)[0]
            rows.append((c, n, exact, circular, fft, fft_pad, spectrum.reshaped_kernel_norm(K)))
    return rows


def main(argv: list[str] | None = None) -> int:
    args = figure_args(__doc__, "8 channels, sides 8 and 12 only", argv)
    channels, sides = ((8,), (8, 12)) if args.quick else ((8, 16), (8, 12, 16, 24, 32))
    rows = measure(channels, sides)

    print("stride 1, padding 1, 3x3 kernels; relative error = estimate / exact - 1 "
          "(exact with zero padding)")
    print(f"{'C':>3} {'n':>3} {'exact':>8} {'circular':>9} {'FFT(n)':>8} {'err':>7} "
          f"{'FFT(n+2)':>9} {'err':>7} {'reshaped':>9} {'err':>7}")
    worst = 0.0
    for c, n, exact, circ, fft, fft_pad, resh in rows:
        worst = max(worst, abs(circ - fft) / circ)
        print(f"{c:>3} {n:>3} {exact:8.5f} {circ:9.5f} {fft:8.5f} {fft / exact - 1:+7.2%} "
              f"{fft_pad:9.5f} {fft_pad / exact - 1:+7.2%} {resh:9.5f} {resh / exact - 1:+7.2%}")
    print(f"circular padding: FFT formula vs exact, largest relative difference {worst:.1e}")
    if worst > 1e-10:
        raise SystemExit("the FFT formula and the exact circular spectral norm disagree")

    fig = Figure(figsize=(9.5, 4.0), layout="constrained")
    ax_zero, ax_circ = fig.subplots(1, 2)
    markers = {8: "o", 16: "s"}
    for c in channels:
        sel = [r for r in rows if r[0] == c]
        n = [r[1] for r in sel]
        exact = np.array([r[2] for r in sel])
        m = markers.get(c, "o")
        ax_zero.plot(n, 100 * (np.array([r[4] for r in sel]) / exact - 1), "-" + m,
                     color="C0", label=rf"FFT, $n\times n$, $C={c}$")
        ax_zero.plot(n, 100 * (np.array([r[6] for r in sel]) / exact - 1), ":" + m,
                     color="C3", label=rf"$\|K_{{\mathrm{{reshaped}}}}\|_2$, $C={c}$")
        circ = np.array([r[3] for r in sel])
        diff = np.abs(np.array([r[4] for r in sel]) - circ) / circ
        ax_circ.semilogy(n, np.maximum(diff, 1e-17), "-" + m, color="C0",
                         label=rf"$C={c}$")
    ax_zero.axhline(0, color="k", lw=0.8)
    ax_zero.set_xlabel(r"input side $n$", fontsize=11)
    ax_zero.set_ylabel(r"$\hat\sigma_{\max}/\sigma_{\max} - 1$  (%)", fontsize=11)
    ax_zero.set_title("zero padding: estimate vs exact", fontsize=11)
    ax_zero.legend(fontsize=9, loc="center right")
    ax_circ.axhline(1e-10, color="k", lw=0.8, ls="--")
    ax_circ.text(sides[0], 1.6e-10, "test tolerance", fontsize=9)
    ax_circ.set_ylim(1e-17, 1e-8)
    ax_circ.set_xlabel(r"input side $n$", fontsize=11)
    ax_circ.set_ylabel(r"$|\sigma^{\mathrm{FFT}}_{\max}-\sigma_{\max}|/\sigma_{\max}$",
                       fontsize=11)
    ax_circ.set_title("circular padding: FFT formula is exact", fontsize=11)
    ax_circ.legend(fontsize=9)
    for ax in (ax_zero, ax_circ):
        ax.tick_params(labelsize=9)
        ax.grid(alpha=0.3)
    fig.suptitle(r"Spectral norm of a $3\times3$ conv layer ($C\to C$ channels, stride 1, "
                 r"padding 1): exact $\sigma_{\max}$ from $\partial\,\mathrm{vec}Z/"
                 r"\partial\,\mathrm{vec}A$", fontsize=11)
    fig.savefig(args.out / "conv_spectrum.png", dpi=110)
    print(f"\nwrote conv_spectrum.png to {args.out}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
