"""Structured Jacobians: the stored factors give the same flat matrix as the flat build, entry
for entry, and every product through the factors equals the flat product.

The oracle for each structured Jacobian is the flat build of the same builder
(``structured=False``), which is the first wave's code path, itself held to loop oracles and
basis columns in the other test files.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import vecjac as vj
from vecjac import jacobians as jac
from vecjac.structure import per_sample_rmat, per_sample_rmatmat

BATCHES = [1, 2, 3, 5]
REL = 1e-12


def same_entries(a: sp.csr_array, b: sp.csr_array) -> None:
    """Same shape, same stored entries (positions and values), explicit zeros included."""
    a, b = a.sorted_indices(), b.sorted_indices()
    assert a.shape == b.shape and a.nnz == b.nnz
    np.testing.assert_array_equal(a.indptr, b.indptr)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.data, b.data)


def close(got, expected):
    got, expected = np.asarray(got), np.asarray(expected)
    scale = max(float(np.abs(expected).max(initial=0.0)), 1e-300)
    assert got.shape == expected.shape
    assert float(np.abs(got - expected).max(initial=0.0)) <= REL * scale


def builders(N: int, rng):
    """(name, structured builder, flat builder) for every builder kind and several settings."""
    A = rng.standard_normal((N, 2, 6, 5))
    K = rng.standard_normal((3, 2, 3, 2))
    I = rng.standard_normal((N, 3, 6, 4))
    I[..., 0, :2] = I[..., 1, :2]  # ties for max pooling
    B = rng.standard_normal((7, N))
    W = rng.standard_normal((7, 4))
    Zfc = rng.standard_normal((4, N))
    cases = []
    for stride, padding in [(1, 0), ((2, 1), 1), (3, (0, 2))]:
        cases += [
            (f"conv_wrt_input s{stride} p{padding}",
             lambda s, st=stride, p=padding: jac.conv_wrt_input(K, A.shape, st, p, structured=s)),
            (f"conv_wrt_kernel s{stride} p{padding}",
             lambda s, st=stride, p=padding: jac.conv_wrt_kernel(A, K.shape, st, p,
                                                                 structured=s)),
        ]
    cases += [
        ("conv_wrt_bias", lambda s: jac.conv_wrt_bias((N, 3, 4, 2), structured=s)),
        ("conv_wrt_input one sample", lambda s: jac.conv_wrt_input(K, A.shape[1:], 1, 1,
                                                                   structured=s)),
        ("conv_wrt_kernel one sample", lambda s: jac.conv_wrt_kernel(A[0], K.shape, 1, 1,
                                                                     structured=s)),
    ]
    for kind, size, stride, padding, ties in [("avg", 2, None, 0, "first"),
                                              ("avg", 3, 2, 1, "first"),
                                              ("max", 2, None, 0, "first"),
                                              ("max", 2, 1, 1, "split"),
                                              ("l2", (2, 3), 1, 0, "first")]:
        cases.append((f"pool {kind} {size} {stride} {padding} {ties}",
                      lambda s, a=(kind, size, stride, padding, ties): jac.pool(
                          I, *a, structured=s)))
    for kind in ("sigmoid", "relu", "leaky_relu", "softplus", "identity"):
        cases.append((f"activation {kind}", lambda s, k=kind: jac.activation(I, k,
                                                                             structured=s)))
    cases += [
        ("activation softmax", lambda s: jac.activation(Zfc, "softmax", structured=s)),
        ("dense_wrt_input", lambda s: jac.dense_wrt_input(W, N, structured=s)),
        ("dense_wrt_weight", lambda s: jac.dense_wrt_weight(B, 4, structured=s)),
        ("dense_wrt_bias", lambda s: jac.dense_wrt_bias(4, N, structured=s)),
        ("flatten F", lambda s: jac.flatten(I.shape, structured=s)),
        ("flatten C", lambda s: jac.flatten(I.shape, "C", structured=s)),
    ]
    P = np.exp(Zfc) / np.exp(Zfc).sum(axis=0)
    labels = rng.integers(0, 4, N)
    T = rng.standard_normal((4, N))
    T[0] = Zfc[0]  # squared error: a row with zero entries, stored all the same
    cases += [
        ("loss cross_entropy", lambda s: jac.loss(P, labels, "cross_entropy", structured=s)[1]),
        ("loss squared_error zeros", lambda s: jac.loss(Zfc, T, structured=s)[1]),
        ("loss_from_logits", lambda s: jac.loss_from_logits(Zfc, labels, structured=s)[1]),
    ]
    return cases


CASE_NAMES = [name for name, _ in builders(2, np.random.default_rng(0))]


@pytest.mark.parametrize("N", BATCHES)
@pytest.mark.parametrize("case", CASE_NAMES)
def test_structured_equals_flat_build_and_its_products(case, N):
    rng = np.random.default_rng(N)
    build = dict(builders(N, rng))[case]
    structured, flat = build(True), build(False)
    assert (structured.of_shape, structured.wrt_shape) == (flat.of_shape, flat.wrt_shape)
    assert structured.nnz == flat.nnz and structured.shape == flat.shape
    assert structured.nbytes <= flat.nbytes
    M = flat.matrix
    same_entries(structured.matrix, M)
    fresh = build(True)  # products through the factors, before anything is materialised
    rows, cols = M.shape
    r, v = rng.standard_normal(rows), rng.standard_normal(cols)
    R, V = rng.standard_normal((3, rows)), rng.standard_normal((cols, 3))
    close(r @ fresh, r @ M)
    close(R @ fresh, R @ M)
    close(fresh @ v, M @ v)
    close(fresh @ V, M @ V)
    op = fresh.linear_operator()
    close(op.matvec(v), M @ v)
    close(op.rmatvec(r), M.T @ r)  # J^T v
    close(op.matmat(V), M @ V)
    close(op.rmatmat(R.T), M.T @ R.T)
    assert fresh._matrix is None or fresh.structure.startswith("flat")


PARAMETER_CASES = [name for name in CASE_NAMES if name.startswith(("conv_wrt_kernel s",
                                                                   "conv_wrt_bias",
                                                                   "dense_wrt_weight",
                                                                   "dense_wrt_bias"))]


@pytest.mark.parametrize("N", BATCHES)
@pytest.mark.parametrize("case", PARAMETER_CASES)
def test_per_sample_products_equal_a_loop_over_the_flat_blocks(case, N):
    """Sample ``n``'s part of each row times sample ``n``'s block of rows, against slices of
    the flat matrix sample by sample (an independent loop)."""
    rng = np.random.default_rng(10 + N)
    build = dict(builders(N, rng))[case]
    M = build(False).matrix.toarray()
    R = rng.standard_normal((3, M.shape[0]))
    h = M.shape[0] // N
    expected = np.stack([R[:, n * h:(n + 1) * h] @ M[n * h:(n + 1) * h] for n in range(N)])
    got = per_sample_rmatmat(build(True)._structure, R, N)
    assert got.shape == (N, 3, M.shape[1])
    close(got, expected)
    close(per_sample_rmat(build(True)._structure, R[1], N), expected[:, 1])


def test_structure_descriptions():
    rng = np.random.default_rng(0)
    K = rng.standard_normal((16, 8, 3, 3))
    J = jac.conv_wrt_input(K, (64, 8, 14, 14), 1, 1)
    assert J.structure == "kron(I_64, 3136x1568 nnz 204800)"
    assert len(J.factors) == 1 and J.factors[0].shape == (3136, 1568)
    assert J.nnz == 64 * 204800 and J.shape == (64 * 3136, 64 * 1568)
    Jk = jac.conv_wrt_kernel(rng.standard_normal((64, 8, 14, 14)), K.shape, 1, 1)
    assert Jk.structure == "rows 64 x kron(I_16, 196x72), P nnz 819200"
    assert jac.activation(np.zeros((2, 3)), "tanh").structure == "diag(6)"
    assert vj.Jacobian(sp.eye_array(3), "a", "b", (3,), (3,)).structure == "flat 3x3 nnz 3"


def test_the_notes_flatten_is_the_identity_and_stores_one_entry():
    """``B2 = vec(A2)``: ``identity(n)``, one 1 stored; ``r @ J`` is a new array equal to
    ``r``; scaled, it is an ordinary diagonal; its flat form is the flat build's."""
    J = jac.flatten((2, 3, 4, 5))
    assert J.structure == "identity(120)" and J.nbytes == 8 and J.nnz == 120
    r = np.arange(120.0)
    out = r @ J
    assert out is not r and not np.shares_memory(out, r)
    np.testing.assert_array_equal(out, r)
    np.testing.assert_array_equal(J @ r, r)
    same_entries(J.matrix, jac.flatten((2, 3, 4, 5), structured=False).matrix)
    assert (2 * J).structure == "diag(120)"
    np.testing.assert_array_equal(r @ (2 * J), 2 * r)
    single = jac.flatten((3, 4, 5), dtype=np.float32)
    assert (np.ones(60) @ single).dtype == np.float64  # promoted as NumPy does
    assert (np.ones(60, dtype=np.float32) @ single).dtype == np.float32


CONFIGS = [  # CNN settings: every pooling kind, activations, strides, paddings
    dict(pool="avg", activation="sigmoid"),
    dict(pool="max", activation="relu", stride=[2, 1]),
    dict(pool="l2", activation="tanh", padding=[0, 1]),
    dict(pool=None, activation="softplus", output="sigmoid", loss="binary_cross_entropy",
         n_out=1),
    dict(pool=["avg", "max"], activation="leaky_relu", output="identity",
         loss="squared_error", n_out=3),
]


@pytest.mark.parametrize("N", [1, 2, 5])
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(map(str, c.values())))
def test_chain_products_through_the_factors_equal_flat_products(config, N):
    rng = np.random.default_rng(N)
    settings = dict(input_shape=(2, 10, 9), channels=(2, 3), n_out=4)
    net = vj.CNN(**{**settings, **config})
    X = rng.standard_normal((N, 2, 10, 9))
    y = rng.integers(0, max(net.n_out, 2), N) if net.loss_kind != "squared_error" else \
        rng.standard_normal((N, net.n_out))
    S = net.jacobians(X, y)
    F = net.jacobians(X, y, structured=False)
    assert set(S) == set(F)
    for name in S:
        same_entries(S[name].matrix, F[name].matrix)
    chain = net.chain + ["X"]
    for upper, middle, lower in zip(chain, chain[1:], chain[2:], strict=False):
        first = S[f"d{upper}/d{middle}"]
        for second_name in [f"d{middle}/d{lower}"] + [f"d{middle}/d{t}"
                                                      for t in net._params_of(middle)]:
            got = (net.jacobians(X, y)[first.name] @ net.jacobians(X, y)[second_name]).matrix
            close(got.toarray(), (F[first.name].matrix @ F[second_name].matrix).toarray())
    for of, wrt in [("Z2", "X"), ("A3", "X"), ("A3", "K1"), ("J", "A1")]:
        for order in ("reverse", "forward"):
            got = net.jacobian(X, of, wrt, y=y, order=order)
            flat = net.jacobian(X, of, wrt, y=y, order=order, structured=False)
            close(got.toarray(), flat.toarray())


def test_per_sample_end_to_end_stays_one_block_per_sample(rng):
    net = vj.CNN(input_shape=(1, 12, 12), channels=(2, 3))
    X = rng.standard_normal((6, 1, 12, 12))
    dZ1_dX = net.jacobian(X, "Z1", "X")
    assert dZ1_dX.structure.startswith("kron(I_6,")
    dZ2_dX = net.jacobian(X, "Z2", "X")
    # the activation makes the samples' values differ; their pattern is one (Shared)
    assert dZ2_dX.structure.startswith("shared(6 x")
    close(dZ2_dX.toarray(), net.jacobian(X, "Z2", "X", structured=False).toarray())


def test_network_N_jacobians_hold_a_tenth_of_their_flat_bytes(rng):
    """The issue's network N: batch 64, 1x28x28, conv 8 and 16, avg pool, FC 10."""
    net = vj.CNN(input_shape=(1, 28, 28), channels=(8, 16), kernel_size=3, padding=1)
    X, y = rng.random((64, 1, 28, 28)), rng.integers(0, 10, 64)
    structured = sum(J.nbytes for J in net.jacobians(X, y).values())
    flat = sum(J.nbytes for J in net.jacobians(X, y, structured=False).values())
    assert structured <= flat / 10, (structured, flat)


def test_materialising_checks_the_budget_for_the_flat_size(rng, restore_budget):
    K = rng.standard_normal((4, 2, 3, 3))
    J = jac.conv_wrt_input(K, (50, 2, 16, 16), 1, 1)
    flat_bytes = J.nnz * (8 + 4) + (J.shape[0] + 1) * 4
    vj.set_memory_budget(flat_bytes // 2)  # the factors fit, the flat matrix does not
    J = jac.conv_wrt_input(K, (50, 2, 16, 16), 1, 1)
    with pytest.raises(vj.MemoryBudgetError, match="flat matrix of dZ/dA .*set_memory_budget"):
        _ = J.matrix
    assert (np.ones(J.shape[0]) @ J).shape == (J.shape[1],)  # products still work


@pytest.fixture
def restore_budget():
    before = vj.get_memory_budget()
    yield before
    vj.set_memory_budget(before)


@pytest.mark.parametrize("N", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("stride, padding, mode", [(1, 1, "zeros"), ((2, 1), (0, 2), "zeros"),
                                                   (1, 1, "circular"), (2, 0, "zeros")])
def test_conv_products_through_the_direct_kernels_equal_flat_products(N, stride, padding, mode):
    """``R @ dZ/dA`` (matrix product and col2im) and ``R @ dZ/dK`` (one product with the
    unfolded input, given by the forward pass or unfolded on first use) equal the flat
    products; the lazy factors keep their description, and build to the flat matrix."""
    rng = np.random.default_rng(N)
    A, K = rng.standard_normal((N, 2, 7, 6)), rng.standard_normal((3, 2, 3, 2))
    _, cols = vj.direct.conv2d(A, K, None, stride, padding, return_cols=True, padding_mode=mode)
    kw = dict(padding_mode=mode)
    built = {
        "dZ/dA": jac.conv_wrt_input(K, A.shape, stride, padding, **kw),
        "dZ/dK": jac.conv_wrt_kernel(A, K.shape, stride, padding, **kw),
        "dZ/dK with cols": jac.conv_wrt_kernel(A, K.shape, stride, padding, cols=cols, **kw),
    }
    flat = {"dZ/dA": jac.conv_wrt_input(K, A.shape, stride, padding, structured=False, **kw),
            "dZ/dK": jac.conv_wrt_kernel(A, K.shape, stride, padding, structured=False, **kw)}
    for name, J in built.items():
        F = flat[name.split()[0]].matrix
        described, nnz = J.structure, J.nnz
        R = rng.standard_normal((3, F.shape[0]))
        close(R @ J, R @ F)
        close(R[0] @ J, R[0] @ F)
        close(J.gradient(R[1]), vj.unvec(R[1] @ F, J.wrt_shape))
        assert J._structure.rows is not None and nnz == F.nnz
        assert J.nbytes <= flat[name.split()[0]].nbytes  # builds the factor
        assert J.structure == described  # the factor has the nnz announced
        same_entries(J.matrix, F)


def test_structured_jacobians_keep_the_parameters_they_were_built_at(rng):
    """Training updates K and W in place; a Jacobian built before keeps its values, built
    lazily or not."""
    K, W = rng.standard_normal((3, 2, 3, 3)), rng.standard_normal((12, 4))
    J_conv = jac.conv_wrt_input(K, (2, 2, 5, 5), 1, 1)
    J_dense = jac.dense_wrt_input(W, 2)
    expected = [jac.conv_wrt_input(K, (2, 2, 5, 5), 1, 1, structured=False).toarray(),
                jac.dense_wrt_input(W, 2, structured=False).toarray()]
    K += 1.0
    W *= 3.0
    for J, flat in zip((J_conv, J_dense), expected, strict=True):
        row = rng.standard_normal(J.shape[0])
        close(row @ J, row @ flat)
        close(J.toarray(), flat)


def test_the_loss_row_is_kept_dense_with_every_entry_stored(rng):
    """``dJ/dA`` is a dense row (structure ``"dense 1xn"``): its flat form stores all ``n``
    entries, zeros included, as the flat build does; ``J``'s value is the same either way."""
    A3, y = np.full((3, 2), 0.5), np.array([[0.5, 1.0], [0.0, 0.5], [0.5, 0.5]])
    J, row = jac.loss(A3, y)
    J_flat, flat = jac.loss(A3, y, structured=False)
    assert J == J_flat == pytest.approx(0.5 * 0.5)
    assert row.structure == "dense 1x6" and row.nnz == 6 and flat.structure == "flat 1x6 nnz 6"
    oracle = sp.csr_array((vj.vec(A3 - y), np.arange(6), np.array([0, 6])), shape=(1, 6))
    same_entries(row.matrix, oracle)  # the note's row, written out by hand
    same_entries(flat.matrix, oracle)
    assert np.count_nonzero(row.matrix.data) == 2  # four stored zeros
    np.testing.assert_array_equal(row.gradient(), A3 - y)
    np.testing.assert_array_equal(row.T.toarray(), flat.matrix.T.toarray())
