"""The shipped digits: the file's identity, and what :func:`vecjac.data.load_digits` returns."""

from __future__ import annotations

import gzip
import hashlib
from importlib import resources

import numpy as np
import pytest
import scipy.ndimage

from vecjac.data import Digits, load_digits
from vecjac.data import _zoom_factor as zoom_factor

SHA256 = "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22"
N_IMAGES = 1797
N_FEATURES = 64
CLASS_COUNTS = np.array([178, 182, 177, 183, 181, 182, 181, 179, 174, 180])  # digits 0..9


def _file():
    return resources.files("vecjac.data").joinpath("digits.csv.gz")


def _table() -> np.ndarray:
    """The shipped file read independently of the loader: (1797, 65) ints."""
    with _file().open("rb") as raw, gzip.open(raw, "rt") as f:
        return np.loadtxt(f, delimiter=",", dtype=np.int64)


def _all(d: Digits) -> tuple[np.ndarray, np.ndarray]:
    return np.concatenate([d.X_train, d.X_test]), np.concatenate([d.y_train, d.y_test])


# -- the file -------------------------------------------------------------------------------


def test_checksum_of_shipped_file():
    assert hashlib.sha256(_file().read_bytes()).hexdigest() == SHA256


def test_source_note_names_checksum_and_licence():
    note = resources.files("vecjac.data").joinpath("SOURCE.txt").read_text(encoding="utf-8")
    for needle in (SHA256, "CC BY 4.0", "Alpaydin", "Kaynak", "10.24432/C50P49"):
        assert needle in note


def test_file_shape_range_and_label_counts():
    table = _table()
    assert table.shape == (N_IMAGES, N_FEATURES + 1)
    pixels, labels = table[:, :N_FEATURES], table[:, N_FEATURES]
    assert pixels.min() == 0 and pixels.max() == 16
    np.testing.assert_array_equal(np.bincount(labels, minlength=10), CLASS_COUNTS)


# -- the loader: shapes, scale, resizing ----------------------------------------------------


@pytest.mark.parametrize("size, side", [(None, 8), (8, 8), (2, 2), (9, 9), (16, 16), (22, 22)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_shapes_dtypes_and_range(size, side, dtype):
    d = load_digits(size=size, dtype=dtype)
    assert isinstance(d, Digits)
    X, y = _all(d)
    assert X.shape == (N_IMAGES, 1, side, side)
    assert d.X_train.shape[1:] == d.X_test.shape[1:] == (1, side, side)
    assert X.dtype == dtype and y.dtype == np.int64
    assert 0.0 <= X.min() and X.max() <= 1.0
    np.testing.assert_array_equal(np.bincount(y, minlength=10), CLASS_COUNTS)


def test_unresized_is_the_file_over_16():
    table = _table()
    X, y = _all(load_digits(test_fraction=0.5, seed=3))
    loaded = np.column_stack([X.reshape(N_IMAGES, N_FEATURES) * 16, y])
    assert X.max() == 1.0
    np.testing.assert_array_equal(np.unique(loaded, axis=0), np.unique(table, axis=0))


@pytest.mark.parametrize("size", [16, 22])
def test_resize_preserves_mean_intensity(size):
    small, big = load_digits(), load_digits(size=size)
    np.testing.assert_array_equal(small.y_train, big.y_train)  # same split, same order
    mean_small = small.X_train.mean(axis=(1, 2, 3))
    mean_big = big.X_train.mean(axis=(1, 2, 3))
    assert abs(mean_big.mean() / mean_small.mean() - 1) < 0.1
    assert np.abs(mean_big - mean_small).max() < 0.1


@pytest.mark.parametrize("size", [5, 16, 22])
def test_resize_equals_zooming_each_image(size):
    """The one stacked ``zoom`` call equals the naive loop over images."""
    small, big = load_digits(), load_digits(size=size)
    factor = zoom_factor(8, size)
    naive = np.stack([scipy.ndimage.zoom(img[0], factor, order=1) for img in small.X_test])
    np.testing.assert_allclose(big.X_test[:, 0], np.clip(naive, 0, 1), rtol=0, atol=1e-12)


@pytest.mark.parametrize("n_in", [3, 7, 8, 10, 28])
def test_zoom_factor_gives_exact_size(n_in):
    for n_out in range(2, 200):
        assert round(n_in * zoom_factor(n_in, n_out)) == n_out


# -- the split ------------------------------------------------------------------------------


def test_split_is_deterministic_and_fresh():
    a, b = load_digits(size=16), load_digits(size=16)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
        assert not np.shares_memory(u, v) and u.flags.writeable
    a.X_train[:] = -1.0
    a.y_train[:] = -1
    c = load_digits(size=16)
    np.testing.assert_array_equal(c.X_train, b.X_train)
    np.testing.assert_array_equal(c.y_train, b.y_train)


def test_different_seed_gives_different_split():
    a, b = load_digits(seed=0), load_digits(seed=1)
    assert a.X_test.shape == b.X_test.shape
    assert not np.array_equal(a.X_test, b.X_test)


@pytest.mark.parametrize("test_fraction", [0.05, 0.2, 1 / 3, 0.5, 0.9])
@pytest.mark.parametrize("seed", [0, 7])
def test_split_is_stratified_and_a_partition(test_fraction, seed):
    d = load_digits(test_fraction=test_fraction, seed=seed)
    test_counts = np.bincount(d.y_test, minlength=10)
    assert np.all(np.abs(test_counts - test_fraction * CLASS_COUNTS) <= 1)
    np.testing.assert_array_equal(np.bincount(d.y_train, minlength=10), CLASS_COUNTS - test_counts)
    X, y = _all(d)
    rows = np.column_stack([X.reshape(N_IMAGES, -1), y])
    reference = _all(load_digits(seed=seed + 1))  # a different split of the same images
    expected = np.column_stack([reference[0].reshape(N_IMAGES, -1), reference[1]])
    np.testing.assert_array_equal(np.unique(rows, axis=0), np.unique(expected, axis=0))


def test_split_order_is_shuffled():
    """Neither set comes back sorted by class (mini-batches should see every digit)."""
    d = load_digits()
    assert np.any(np.diff(d.y_train) < 0) and np.any(np.diff(d.y_test) < 0)


# -- bad arguments --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"size": 16.0}, TypeError, "size"),
        ({"size": "16"}, TypeError, "size"),
        ({"size": True}, TypeError, "size"),
        ({"size": 1}, ValueError, "size"),
        ({"size": 0}, ValueError, "size"),
        ({"size": -4}, ValueError, "size"),
        ({"test_fraction": "0.2"}, TypeError, "test_fraction"),
        ({"test_fraction": None}, TypeError, "test_fraction"),
        ({"test_fraction": 0}, ValueError, "test_fraction"),
        ({"test_fraction": 1.0}, ValueError, "test_fraction"),
        ({"test_fraction": -0.2}, ValueError, "test_fraction"),
        ({"test_fraction": float("nan")}, ValueError, "test_fraction"),
        ({"test_fraction": 0.001}, ValueError, "test_fraction.*test set empty"),
        ({"test_fraction": 0.999}, ValueError, "test_fraction.*train set empty"),
        ({"seed": 1.5}, TypeError, "seed"),
        ({"seed": -1}, ValueError, "seed"),
        ({"dtype": np.int64}, TypeError, "dtype"),
        ({"dtype": "not a dtype"}, TypeError, "dtype"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        load_digits(**kwargs)
