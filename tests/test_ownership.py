"""Every public builder returns a matrix that owns its arrays, with the package's index dtype.

docs/design.md, section 3: builders keep sparsity patterns in read-only caches and assemble
every matrix through ``jacobians._csr.assemble_csr``.  Outside ``shared_patterns()`` the user
may change a returned matrix in place (``eliminate_zeros``, ``sort_indices``, writing its
arrays); that must work, and must change neither a cache (the next build is identical) nor the
arrays the matrix was built from.  Index arrays are int32 when every index and ``nnz`` fit in
int32 (``budget.index_dtype``), int64 otherwise.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from vecjac import jacobians as jac
from vecjac.budget import check_csr_budget, csr_nbytes, index_dtype
from vecjac.jacobians._csr import assemble_csr


def _inputs():
    """Fixed inputs with zeros in them, so that ``eliminate_zeros`` has work to do."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((2, 5, 5))
    A[:, 1, 1] = 0.0
    A_batch = rng.standard_normal((3, 2, 5, 5))
    A_batch[:, :, 2, :] = 0.0
    K = rng.standard_normal((3, 2, 3, 3))
    K[0, 0] = 0.0
    I = rng.standard_normal((2, 6, 6))
    I[0, :2, :2] = 0.0  # an all-zero window: an explicit zero of L2 pooling
    I_ties = np.round(rng.standard_normal((2, 3, 6, 6)))  # ties for max pooling's "split"
    Z = rng.standard_normal((2, 4, 4))
    Z[0, 0, :] = 0.0
    W = np.asfortranarray(rng.standard_normal((6, 4)))  # W.T is C-contiguous: a view of W
    W[0, 0] = 0.0
    B = rng.standard_normal((6, 3))
    B[1] = 0.0
    A3 = rng.random((4, 3))
    return dict(A=A, A_batch=A_batch, K=K, I=I, I_ties=I_ties, Z=Z, W=W, B=B, A3=A3,
                b1=rng.standard_normal(6), y=np.array([0, 3, 1]))


X = _inputs()

BUILDERS = {
    # convolution
    "conv_wrt_input": lambda: jac.conv_wrt_input(X["K"], X["A"].shape, 1, 1),
    "conv_wrt_input batch stride": lambda: jac.conv_wrt_input(
        X["K"], X["A_batch"].shape, (2, 1), (1, 0)),
    "conv_wrt_kernel": lambda: jac.conv_wrt_kernel(X["A"], X["K"].shape, 1, 1),
    "conv_wrt_kernel one kernel": lambda: jac.conv_wrt_kernel(X["A"][:1], (1, 1, 2, 2)),
    "conv_wrt_kernel batch": lambda: jac.conv_wrt_kernel(X["A_batch"], X["K"].shape, 2, 1),
    "conv_wrt_bias": lambda: jac.conv_wrt_bias((3, 4, 4)),
    "conv_wrt_bias batch": lambda: jac.conv_wrt_bias((2, 3, 4, 4)),
    "conv_block_wrt_input": lambda: jac.conv_block_wrt_input(X["K"][0, 0], (5, 5), 1, 1),
    "conv_block_wrt_kernel": lambda: jac.conv_block_wrt_kernel(X["A"][0], (3, 3), 2, 0),
    # pooling
    "pool avg": lambda: jac.pool(X["I"], "avg"),
    "pool avg padded": lambda: jac.pool(X["I"], "avg", 3, 2, 1),
    "pool max first": lambda: jac.pool(X["I"], "max"),
    "pool max first batch padded": lambda: jac.pool(X["I_ties"], "max", 3, 2, 1),
    "pool max split": lambda: jac.pool(X["I_ties"], "max", ties="split"),
    "pool max split overlapping": lambda: jac.pool(X["I_ties"], "max", 3, 1, 1, "split"),
    "pool l2": lambda: jac.pool(X["I"], "l2"),
    "pool l2 batch overlapping": lambda: jac.pool(X["I_ties"], "l2", 3, 2, 1),
    "pool_block avg": lambda: jac.pool_block(X["I"][0], "avg"),
    "pool_block max": lambda: jac.pool_block(X["I"][0], "max", 3, 1),
    "pool_block l2": lambda: jac.pool_block(X["I"][0], "l2"),
    # activations
    "activation relu": lambda: jac.activation(X["Z"], "relu"),
    "activation sigmoid": lambda: jac.activation(X["Z"], "sigmoid"),
    "activation identity vector": lambda: jac.activation(X["b1"], "identity"),
    "activation softmax": lambda: jac.activation(X["A3"], "softmax"),
    "activation softmax one sample": lambda: jac.activation(X["b1"], "softmax"),
    # fully connected and flatten
    "dense_wrt_input": lambda: jac.dense_wrt_input(X["W"]),
    "dense_wrt_input batch": lambda: jac.dense_wrt_input(X["W"], 3),
    "dense_wrt_weight": lambda: jac.dense_wrt_weight(X["B"][:, 0], 4),
    "dense_wrt_weight one output": lambda: jac.dense_wrt_weight(X["B"][:, 1], 1),
    "dense_wrt_weight batch": lambda: jac.dense_wrt_weight(X["B"], 4),
    "dense_wrt_bias": lambda: jac.dense_wrt_bias(4),
    "dense_wrt_bias batch": lambda: jac.dense_wrt_bias(4, 3),
    "flatten F": lambda: jac.flatten((2, 3, 4)),
    "flatten C batch": lambda: jac.flatten((3, 2, 3, 4), "C"),
    # the loss row
    "loss row": lambda: jac.loss(X["A3"], X["y"], "squared_error")[1],
    "loss row mean": lambda: jac.loss(X["A3"], X["y"], "cross_entropy", "mean")[1],
    "loss_from_logits row": lambda: jac.loss_from_logits(X["A3"], X["y"])[1],
}


def _arrays(matrix):
    return [matrix.data.copy(), matrix.indices.copy(), matrix.indptr.copy()]


@pytest.mark.parametrize("name", list(BUILDERS))
def test_in_place_operations_work_and_leave_caches_alone(name):
    build = BUILDERS[name]
    inputs = {key: value.copy() for key, value in X.items()}
    first = build().matrix
    before, dense = _arrays(first), first.toarray()
    itype = index_dtype(first.nnz, first.shape)
    assert first.indices.dtype == itype and first.indptr.dtype == itype
    for array in (first.data, first.indices, first.indptr):
        assert array.flags.writeable
        assert not any(np.shares_memory(array, value) for value in X.values())

    first.eliminate_zeros()
    first.has_sorted_indices = False  # make sort_indices write to the arrays
    first.sort_indices()
    np.testing.assert_array_equal(first.toarray(), dense)
    # write over everything: nothing may reach a cache or an input
    first.data[:] = -7.0
    first.indices[:] = 0
    first.indptr[:] = 0

    second = build().matrix
    for got, expected in zip(_arrays(second), before, strict=True):
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)
    for key, value in X.items():
        np.testing.assert_array_equal(value, inputs[key])


def test_shared_patterns_still_share_the_max_pooling_cache():
    """Inside ``shared_patterns()`` the cached read-only ``indptr`` is used as it is."""
    with jac.shared_patterns():
        shared = jac.pool(X["I"], "max").matrix
        again = jac.pool(X["I"], "max").matrix
    assert not shared.indptr.flags.writeable
    assert np.shares_memory(shared.indptr, again.indptr)
    own = jac.pool(X["I"], "max").matrix
    assert own.indptr.flags.writeable and not np.shares_memory(own.indptr, shared.indptr)


# --- the index-dtype rule ---------------------------------------------------------------------
INT32_MAX = 2**31 - 1


@pytest.mark.parametrize(
    "nnz, shape, expected",
    [
        (0, (1, 1), np.int32),
        (10, (4, 5), np.int32),
        (INT32_MAX, (INT32_MAX, INT32_MAX), np.int32),
        (INT32_MAX + 1, (3, 3), np.int64),  # indptr[-1] = nnz does not fit
        (5, (1, INT32_MAX + 1), np.int64),  # a column index may not fit
        (5, (INT32_MAX + 1, 1), np.int64),  # scipy's own rule looks at both dimensions
        (2**40, (2**35, 2**36), np.int64),
    ],
)
def test_index_dtype_rule(nnz, shape, expected):
    assert index_dtype(nnz, shape) is expected
    # the same choice as scipy makes for a CSR array of that size
    assert sp.get_index_dtype(maxval=max(nnz, *shape)) == expected
    index_size = np.dtype(expected).itemsize
    assert csr_nbytes(nnz, shape[0], 8, shape[1]) == nnz * (8 + index_size) + (
        shape[0] + 1) * index_size
    assert check_csr_budget(nnz, shape, np.float64, "test", max_bytes=2**62) is expected


def test_assemble_csr_applies_the_rule():
    """Small index arrays of any integer dtype become int32; a shape over 2**31 needs int64."""
    data, indices, indptr = np.ones(2), np.array([0, 3]), np.array([0, 1, 2])
    small = assemble_csr(data, indices.astype(np.int64), indptr.astype(np.int64), (2, 4))
    assert small.indices.dtype == np.int32 and small.indptr.dtype == np.int32
    large = assemble_csr(data, np.array([0, INT32_MAX], dtype=np.int32), indptr.astype(np.int32),
                         (2, INT32_MAX + 1))
    assert large.indices.dtype == np.int64 and large.indptr.dtype == np.int64
    assert large[1, INT32_MAX] == 1.0


def test_assemble_csr_copies_read_only_arrays_only():
    data, indices, indptr = np.ones(2), np.array([0, 3], np.int32), np.array([0, 1, 2], np.int32)
    fresh = assemble_csr(data, indices, indptr, (2, 4))
    for got, given in zip((fresh.data, fresh.indices, fresh.indptr), (data, indices, indptr),
                          strict=True):
        assert np.shares_memory(got, given)  # writeable arrays are used, not copied
    for array in (data, indices, indptr):
        array.setflags(write=False)
    copied = assemble_csr(data, indices, indptr, (2, 4))
    for got, given in zip((copied.data, copied.indices, copied.indptr), (data, indices, indptr),
                          strict=True):
        assert got.flags.writeable and not np.shares_memory(got, given)
    with jac.shared_patterns():
        shared = assemble_csr(data, indices, indptr, (2, 4))
    assert np.shares_memory(shared.indices, indices) and np.shares_memory(shared.indptr, indptr)
    assert shared.data.flags.writeable and not np.shares_memory(shared.data, data)
