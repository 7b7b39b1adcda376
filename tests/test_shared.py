"""Blocks of one pattern (structure.Shared) and the path products behind them (vecjac.paths).

Oracles: each sample's block multiplied by scipy on its own, dense loops over the paths, and
the flat matrices the structures stand for (block_diag of the blocks, scipy products).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import vecjac as vj
from vecjac.paths import shared_product
from vecjac.structure import Diagonal, Kron, Shared, product


def random_csr(rng, shape, density, explicit_zero=False):
    M = sp.random_array(shape, density=density, format="csr", rng=rng)
    M.sum_duplicates()
    if explicit_zero and M.nnz:
        M.data[0] = 0.0
    return sp.csr_array(M)


def blocks_of(s: Shared):
    """Each block of ``s`` as its own matrix, from the pattern and the values by hand."""
    out = []
    for k in range(s.n):
        out.append(sp.csr_array((s.values[:, k], s.pattern.indices, s.pattern.indptr),
                                shape=s.block))
    return out


def close(got, expected, tol=1e-12):
    got, expected = np.asarray(got), np.asarray(expected)
    assert got.shape == expected.shape
    scale = max(np.abs(expected).max(initial=0.0), 1e-300)
    assert np.abs(got - expected).max(initial=0.0) <= tol * scale


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("n", [1, 3, 5])
def test_shared_product_equals_each_blocks_own_product(seed, n):
    rng = np.random.default_rng(seed)
    p, q, m = rng.integers(1, 9, size=3)
    A = random_csr(rng, (p, q), 0.4, explicit_zero=seed % 2 == 0)
    B = random_csr(rng, (q, m), 0.4)
    values = rng.standard_normal((B.nnz, n))
    pattern, got = shared_product(A, B, values)
    assert got.shape == (pattern.nnz, n) and pattern.has_sorted_indices
    for k in range(n):
        B_k = sp.csr_array((values[:, k], B.indices, B.indptr), shape=B.shape)
        block = sp.csr_array((got[:, k], pattern.indices, pattern.indptr), shape=(p, m))
        close(block.toarray(), (A @ B_k).toarray())


def test_shared_product_pattern_holds_every_path_by_a_loop():
    """Every entry (r, c) reached by a path r -> j -> c is stored, and only those."""
    rng = np.random.default_rng(7)
    A, B = random_csr(rng, (6, 7), 0.3), random_csr(rng, (7, 5), 0.3)
    pattern, _ = shared_product(A, B, np.ones((B.nnz, 2)))
    reached = {(r, c) for r, j in zip(*A.nonzero(), strict=True)
               for jj, c in zip(*B.nonzero(), strict=True) if jj == j}
    assert set(zip(*pattern.nonzero(), strict=True)) == reached


def test_shared_product_of_empty_factors():
    A, B = sp.csr_array((3, 4)), sp.csr_array(np.eye(4, 2))
    pattern, values = shared_product(A, B, np.ones((B.nnz, 3)))
    assert pattern.shape == (3, 2) and pattern.nnz == 0 and values.shape == (0, 3)


@pytest.fixture
def shared(rng):
    M = random_csr(rng, (4, 6), 0.5)
    return Shared.scaled(M, rng.standard_normal(3 * 4), 3, "rows"), M


def test_shared_flat_matrix_is_the_block_diagonal(shared):
    s, _ = shared
    flat = s.materialise()
    assert flat.shape == s.shape == (12, 18) and flat.nnz == s.nnz
    close(flat.toarray(), sp.block_diag(blocks_of(s)).toarray())
    assert s.nbytes < flat.data.nbytes + flat.indices.nbytes + flat.indptr.nbytes + 1000


def test_shared_scaled_is_diag_times_kron(rng):
    M = random_csr(rng, (4, 6), 0.5)
    d_rows, d_cols = rng.standard_normal(12), rng.standard_normal(18)
    K = Kron(3, M).materialise()
    close(Shared.scaled(M, d_rows, 3, "rows").materialise().toarray(),
          (sp.diags_array(d_rows) @ K).toarray())
    close(Shared.scaled(M, d_cols, 3, "cols").materialise().toarray(),
          (K @ sp.diags_array(d_cols)).toarray())


def test_shared_products_transpose_and_scaling_match_the_flat_matrix(shared, rng):
    s, _ = shared
    flat = s.materialise().toarray()
    R, V = rng.standard_normal((2, 12)), rng.standard_normal((18, 3))
    close(s.rmatmat(R), R @ flat)
    close(s.matmat(V), flat @ V)
    close(s.transpose().materialise().toarray(), flat.T)
    close(s.map(lambda x: 2 * x).materialise().toarray(), 2 * flat)
    d = rng.standard_normal(12)
    close(s.scale(d, "rows").materialise().toarray(), np.diag(d) @ flat)
    d = rng.standard_normal(18)
    close(s.scale(d, "cols").materialise().toarray(), flat @ np.diag(d))
    close(s.coarsen(1).materialise().toarray(), flat)
    assert s.coarsen(1).n == 1 and s.coarsen(3) is s


@pytest.mark.parametrize("left", [True, False])
def test_product_rules_keep_the_pattern_shared(shared, rng, left):
    s, _ = shared
    A = random_csr(rng, (5, 4), 0.5) if left else random_csr(rng, (6, 7), 0.5)
    kron = Kron(3, A)
    got = product(kron, s) if left else product(s, kron)
    assert isinstance(got, Shared) and got.n == 3
    expected = (kron.materialise() @ s.materialise() if left
                else s.materialise() @ kron.materialise())
    close(got.materialise().toarray(), expected.toarray())
    d = Diagonal(rng.standard_normal(got.shape[0]))
    close(product(d, got).materialise().toarray(), d.d[:, None] * expected.toarray())


def test_a_finer_shared_meets_a_coarser_kron(rng):
    """Average pooling's I_{N C} (x) P times a diagonal is Shared over N C blocks; times the
    next layer's I_N (x) M it is seen as N coarser blocks, still one pattern."""
    P, M = random_csr(rng, (2, 3), 0.6), random_csr(rng, (4 * 3, 5), 0.5)
    fine = product(Kron(4 * 3, P), Diagonal(rng.standard_normal(4 * 3 * 3)))
    assert isinstance(fine, Shared) and fine.n == 12
    got = product(fine, Kron(3, M))
    assert isinstance(got, Shared) and got.n == 3
    close(got.materialise().toarray(), (fine.materialise() @ Kron(3, M).materialise()).toarray())


def test_network_dZ2_dX_is_one_pattern_in_every_order(rng):
    net = vj.CNN(input_shape=(1, 10, 10), channels=(2, 3), seed=1)
    X = rng.standard_normal((4, 1, 10, 10))
    flat = net.jacobian(X, "Z2", "X", structured=False).toarray()
    for order in ("reverse", "forward", "optimal"):
        J = net.jacobian(X, "Z2", "X", order=order)
        assert J.structure.startswith("shared(4 x"), order
        close(J.toarray(), flat)
        close(np.ones(J.shape[0]) @ J, np.ones(J.shape[0]) @ flat)
    shared_bytes = net.jacobian(X, "Z2", "X", order="optimal").nbytes
    assert shared_bytes < net.jacobian(X, "Z2", "X", structured=False).nbytes


def test_values_of_the_wrong_shape_are_refused():
    with pytest.raises(ValueError, match=r"values must have shape \(pattern.nnz, n\)"):
        Shared(2, sp.csr_array(np.eye(3)), np.ones((3, 3)))


def test_kept_plans_serve_new_values_and_never_another_pattern(rng, monkeypatch):
    from vecjac import paths

    paths.clear_plans()
    A, B = random_csr(rng, (7, 6), 0.4), random_csr(rng, (6, 5), 0.4)
    values = rng.standard_normal((B.nnz, 3))
    first = shared_product(A, B, values)
    assert len(paths._plans) == 1
    A2 = A.copy()
    A2.data = rng.standard_normal(A.nnz)  # same pattern, new values: the plan is reused
    pattern, got = shared_product(A2, B, values)
    assert len(paths._plans) == 1 and (pattern != first[0]).nnz == 0
    for k in range(3):
        B_k = sp.csr_array((values[:, k], B.indices, B.indptr), shape=B.shape)
        block = sp.csr_array((got[:, k], pattern.indices, pattern.indptr), shape=pattern.shape)
        close(block.toarray(), (A2 @ B_k).toarray())
    monkeypatch.setattr(paths, "_key", lambda M: "collide")  # every pattern one key
    A3 = random_csr(rng, (7, 6), 0.5)
    pattern, got = shared_product(A3, B, values)
    B_0 = sp.csr_array((values[:, 0], B.indices, B.indptr), shape=B.shape)
    close(sp.csr_array((got[:, 0], pattern.indices, pattern.indptr),
                       shape=pattern.shape).toarray(), (A3 @ B_0).toarray())
    for _ in range(paths.PLANS + 2):
        shared_product(random_csr(rng, (7, 6), 0.5), B, values)
    assert len(paths._plans) <= paths.PLANS
    vj.jacobians.clear_pattern_cache()
    assert len(paths._plans) == 0
