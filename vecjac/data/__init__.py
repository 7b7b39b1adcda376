"""The small real data set vecjac ships: the UCI optical handwritten digits, 8x8.

The file ``digits.csv.gz`` beside this module is the copy of the UCI "Optical Recognition of
Handwritten Digits" test set (1,797 images of 8x8 pixels, 10 classes) that scikit-learn
bundles, unchanged.  Each of its rows holds the 64 pixels of one image, row by row, as
integers in ``0..16`` (the count of "on" pixels in a 4x4 block of a 32x32 bitmap), then the
label ``0..9``.  ``SOURCE.txt`` gives the source, the citation, the licence (CC BY 4.0) and the
file's SHA-256.

:func:`load_digits` reads it, scales it to ``[0, 1]``, optionally resizes it with
``scipy.ndimage.zoom``, and splits it into train and test sets deterministically.
"""

from __future__ import annotations

import functools
import gzip
import numbers
from importlib import resources
from typing import NamedTuple

import numpy as np
import scipy.ndimage
from numpy.typing import DTypeLike, NDArray

__all__ = ["Digits", "load_digits"]

_FILE = "digits.csv.gz"
_SIDE = 8  # the images are _SIDE x _SIDE
_MAX_PIXEL = 16  # pixels are counts of "on" pixels in a 4x4 block: 0..16


class Digits(NamedTuple):
    """A train/test split of the digits; ``s`` is the image side (8 unless resized).

    Attributes
    ----------
    X_train : ndarray of shape (n_train, 1, s, s)
        Training images, one channel, values in ``[0, 1]``.
    y_train : ndarray of shape (n_train,), int64
        Their labels, ``0..9``.
    X_test : ndarray of shape (n_test, 1, s, s)
        Test images, one channel, values in ``[0, 1]``.
    y_test : ndarray of shape (n_test,), int64
        Their labels, ``0..9``.
    """

    X_train: NDArray[np.floating]
    y_train: NDArray[np.int64]
    X_test: NDArray[np.floating]
    y_test: NDArray[np.int64]


def load_digits(
    size: int | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
    dtype: DTypeLike = np.float64,
) -> Digits:
    """Load the shipped handwritten digits, scaled to ``[0, 1]`` and split train/test.

    Parameters
    ----------
    size : int >= 2 or None, default None
        Side ``s`` of the returned images.  ``None`` keeps the original 8x8; an int resizes
        every image to exactly ``size x size`` by linear interpolation
        (``scipy.ndimage.zoom``, ``order=1``, corners aligned), then clips to ``[0, 1]``.
        Upsizing keeps the mean intensity within about 10%; downsizing below 8 samples
        without averaging, so it aliases.
    test_fraction : float in (0, 1), default 0.2
        Share of each class that goes to the test set, rounded to the nearest image per class.
    seed : int, default 0
        Seed of ``np.random.default_rng`` for the split; the same seed gives the same split
        on every call.
    dtype : floating dtype, default float64
        Dtype of ``X_train`` and ``X_test``.

    Returns
    -------
    Digits
        ``(X_train, y_train, X_test, y_test)``: ``X`` of shape ``(n, 1, s, s)``, ``y`` int64
        of shape ``(n,)``, with ``n_train + n_test = 1797``.  The split is stratified: each
        class is permuted with the seeded generator and its first
        ``round(test_fraction * n_class)`` images go to the test set; both sets are returned
        in a shuffled (seeded) order.  The arrays are fresh copies on every call.

    Raises
    ------
    TypeError
        If ``size``, ``test_fraction`` or ``seed`` is not a number of the right kind, or
        ``dtype`` is not a floating dtype.
    ValueError
        If ``size < 2``, ``test_fraction`` is not strictly between 0 and 1, or it leaves the
        train or the test set empty.

    Notes
    -----
    Source: UCI Machine Learning Repository, "Optical Recognition of Handwritten Digits"
    (E. Alpaydin and C. Kaynak, 1998, https://doi.org/10.24432/C50P49), the 1,797-image copy
    bundled with scikit-learn.  Licence: Creative Commons Attribution 4.0 (CC BY 4.0).
    Class counts, digits 0..9: 178, 182, 177, 183, 181, 182, 181, 179, 174, 180.

    Examples
    --------
    >>> d = load_digits(size=16)
    >>> d.X_train.shape, d.X_test.shape
    ((1438, 1, 16, 16), (359, 1, 16, 16))
    """
    size = _check_size(size)
    test_fraction = _check_fraction(test_fraction)
    seed = _check_seed(seed)
    dtype = _check_dtype(dtype)
    pixels, labels = _raw()
    X = pixels.reshape(-1, 1, _SIDE, _SIDE) / _MAX_PIXEL  # a fresh float64 array
    if size is not None and size != _SIDE:
        X = _resize(X, size)
    train, test = _stratified_split(labels, test_fraction, seed)
    X = X.astype(dtype, copy=False)
    return Digits(X[train], labels[train], X[test], labels[test])


@functools.lru_cache(maxsize=1)
def _raw() -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """The file's pixels ``(1797, 64)`` uint8 and labels ``(1797,)`` int64, read once, read-only."""
    with resources.files(__name__).joinpath(_FILE).open("rb") as raw, gzip.open(raw, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.uint8, ndmin=2)
    pixels = np.ascontiguousarray(table[:, : _SIDE * _SIDE])
    labels = table[:, _SIDE * _SIDE].astype(np.int64)
    for arr in (pixels, labels):
        arr.setflags(write=False)  # the cache is shared: callers get copies, never these
    return pixels, labels


def _resize(X: NDArray[np.float64], size: int) -> NDArray[np.float64]:
    """Resize a stack ``(n, c, h, w)`` to ``(n, c, size, size)`` in one ``zoom`` call."""
    factors = (1.0, 1.0, _zoom_factor(X.shape[2], size), _zoom_factor(X.shape[3], size))
    out = scipy.ndimage.zoom(X, factors, order=1)
    return np.clip(out, 0.0, 1.0, out=out)


def _zoom_factor(n_in: int, n_out: int) -> float:
    """A factor ``f`` for which ``zoom`` makes ``n_out`` samples: ``round(n_in * f) == n_out``.

    ``zoom`` sizes its output by rounding ``n_in * f``; with ``f = n_out / n_in`` float error
    could in principle land on the wrong side of a half, so nudge ``f`` until it does not.
    The interpolation itself depends only on the output size (``grid_mode=False``).
    """
    f = n_out / n_in
    while round(n_in * f) != n_out:
        f = float(np.nextafter(f, np.inf if n_in * f < n_out else -np.inf))
    return f


def _stratified_split(
    labels: NDArray[np.int64], test_fraction: float, seed: int
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Indices of the train and test sets, stratified by label, in a seeded shuffled order."""
    perm = np.random.default_rng(seed).permutation(labels.size)
    by_class = perm[np.argsort(labels[perm], kind="stable")]  # grouped by class, shuffled within
    counts = np.bincount(labels)
    starts = np.cumsum(counts) - counts
    rank = np.empty(labels.size, dtype=np.intp)
    rank[by_class] = np.arange(labels.size) - np.repeat(starts, counts)  # rank within its class
    is_test = rank < np.rint(test_fraction * counts)[labels]
    if is_test.all() or not is_test.any():
        empty = "train" if is_test.all() else "test"
        raise ValueError(f"test_fraction={test_fraction!r} leaves the {empty} set empty")
    return perm[~is_test[perm]], perm[is_test[perm]]


def _check_size(size: object) -> int | None:
    if size is None:
        return None
    if not isinstance(size, (numbers.Integral, np.integer)) or isinstance(size, bool):
        raise TypeError(f"size must be an int or None, got {size!r}")
    if size < 2:
        raise ValueError(f"size must be >= 2, got {size!r}")
    return int(size)


def _check_fraction(test_fraction: object) -> float:
    if not isinstance(test_fraction, (numbers.Real, np.floating)) or isinstance(
        test_fraction, bool
    ):
        raise TypeError(f"test_fraction must be a real number, got {test_fraction!r}")
    if not 0.0 < test_fraction < 1.0:  # also refuses NaN
        raise ValueError(f"test_fraction must be strictly between 0 and 1, got {test_fraction!r}")
    return float(test_fraction)


def _check_seed(seed: object) -> int:
    if not isinstance(seed, (numbers.Integral, np.integer)) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {seed!r}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed!r}")
    return int(seed)


def _check_dtype(dtype: DTypeLike) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError as err:
        raise TypeError(f"dtype must be a floating dtype, got {dtype!r}") from err
    if dt.kind != "f":
        raise TypeError(f"dtype must be a floating dtype, got {dtype!r}")
    return dt
