"""The seeds' worked examples, written out by hand from the texts, as tests.

1. The note's appendix (section 4): ``A`` 3x4, ``beta`` 2x2, padding (1, 1), stride (1, 2),
   ``Z`` 4x3.  The tables below are copied from the note's rep.2 (1-based symbols) and from
   reading rep.2 row by row for ``d vecZ / d vecbeta``; the code is 0-based.
2. The third text: ``X`` 3x3, ``K`` 2x2, bias ``B``, stride 1, no padding, ``Z`` 2x2, and every
   partial it writes out.  Where the extracted text is garbled (e.g. one line reads
   ``dL/dX_12 = dL/dZ_11 K_11``), the partials below are derived from its ``Z_11 .. Z_22``
   formulas, which are legible and consistent.
"""

from __future__ import annotations

import numpy as np
import pytest

import vecjac as vj
from vecjac import direct
from vecjac.jacobians import conv_pattern, conv_wrt_bias, conv_wrt_input, conv_wrt_kernel

# --- 1. the note's appendix --------------------------------------------------------------------
STRIDE, PADDING = (1, 2), (1, 1)

# rep.2, entry z_pq = sum of a_rs * beta_uv, as ((r, s), (u, v)) pairs, 1-based.
REP2 = {
    (1, 1): {((1, 1), (2, 2))},
    (1, 2): {((1, 2), (2, 1)), ((1, 3), (2, 2))},
    (1, 3): {((1, 4), (2, 1))},
    (2, 1): {((1, 1), (1, 2)), ((2, 1), (2, 2))},
    (2, 2): {((1, 2), (1, 1)), ((1, 3), (1, 2)), ((2, 2), (2, 1)), ((2, 3), (2, 2))},
    (2, 3): {((1, 4), (1, 1)), ((2, 4), (2, 1))},
    (3, 1): {((2, 1), (1, 2)), ((3, 1), (2, 2))},
    (3, 2): {((2, 2), (1, 1)), ((2, 3), (1, 2)), ((3, 2), (2, 1)), ((3, 3), (2, 2))},
    (3, 3): {((2, 4), (1, 1)), ((3, 4), (2, 1))},
    (4, 1): {((3, 1), (1, 2))},
    (4, 2): {((3, 2), (1, 1)), ((3, 3), (1, 2))},
    (4, 3): {((3, 4), (1, 1))},
}

# d vecZ / d vecbeta, 12 x 4, rows in vec Z order (z11 z21 z31 z41 z12 ... z43), columns in
# vec beta order (b11 b21 b12 b22); each entry is the a_rs it equals, "0" where it is zero.
DZ_DBETA = [
    # b11    b21    b12    b22
    ["0", "0", "0", "a11"],  # z11 = a11 b22
    ["0", "0", "a11", "a21"],  # z21 = a11 b12 + a21 b22
    ["0", "0", "a21", "a31"],  # z31 = a21 b12 + a31 b22
    ["0", "0", "a31", "0"],  # z41 = a31 b12
    ["0", "a12", "0", "a13"],  # z12 = a12 b21 + a13 b22
    ["a12", "a22", "a13", "a23"],  # z22 = a12 b11 + a13 b12 + a22 b21 + a23 b22
    ["a22", "a32", "a23", "a33"],  # z32 = a22 b11 + a23 b12 + a32 b21 + a33 b22
    ["a32", "0", "a33", "0"],  # z42 = a32 b11 + a33 b12
    ["0", "a14", "0", "0"],  # z13 = a14 b21
    ["a14", "a24", "0", "0"],  # z23 = a14 b11 + a24 b21
    ["a24", "a34", "0", "0"],  # z33 = a24 b11 + a34 b21
    ["a34", "0", "0", "0"],  # z43 = a34 b11
]


def _appendix(rng):
    A = rng.standard_normal((3, 4))
    beta = rng.standard_normal((2, 2))
    return A, beta


def _a(A, r, s):  # 1-based a_rs
    return A[r - 1, s - 1]


def _vec_pos(r, s, h):  # 1-based (r, s) of an h-row matrix -> 0-based vec position
    return (s - 1) * h + (r - 1)


def test_appendix_output_shape():
    assert vj.conv_output_shape((3, 4), (2, 2), STRIDE, PADDING) == (4, 3)
    Z = direct.conv2d(np.ones((1, 3, 4)), np.ones((1, 1, 2, 2)), stride=STRIDE, padding=PADDING)
    assert Z.shape == (1, 4, 3)


def test_appendix_rep2_numbers(rng):
    """Each z_pq equals the sum rep.2 writes for it, for random A and beta."""
    A, beta = _appendix(rng)
    Z = direct.conv2d(A[None], beta[None, None], stride=STRIDE, padding=PADDING)[0]
    for (p, q), terms in REP2.items():
        expected = sum(_a(A, *a) * _a(beta, *b) for a, b in terms)
        assert Z[p - 1, q - 1] == pytest.approx(expected, rel=1e-14, abs=1e-14), (p, q)


def test_appendix_z32(rng):
    A, beta = _appendix(rng)
    Z = direct.conv2d(A[None], beta[None, None], stride=STRIDE, padding=PADDING)[0]
    a, b = A, beta
    z32 = a[1, 1] * b[0, 0] + a[1, 2] * b[0, 1] + a[2, 1] * b[1, 0] + a[2, 2] * b[1, 1]
    assert Z[2, 1] == pytest.approx(z32, rel=1e-14)


def test_appendix_pattern_rows_are_the_rep2_pairs():
    """Row z_pq of the pattern pairs exactly the (a_rs, beta_uv) of rep.2 (0-based in code)."""
    P = conv_pattern((1, 3, 4), (1, 1, 2, 2), STRIDE, PADDING)
    assert P.output_shape == (1, 4, 3)
    for (p, q), terms in REP2.items():
        row = _vec_pos(p, q, 4)
        lo, hi = P.indptr[row], P.indptr[row + 1]
        got = set(zip(P.a_index[lo:hi].tolist(), P.k_index[lo:hi].tolist(), strict=True))
        expected = {(_vec_pos(*a, 3), _vec_pos(*b, 2)) for a, b in terms}
        assert got == expected, (p, q)
    # z_32 in particular: a_22 b_11, a_23 b_12, a_32 b_21, a_33 b_22 -> vec A 4, 7, 5, 8
    lo, hi = P.indptr[6], P.indptr[7]
    assert set(zip(P.a_index[lo:hi].tolist(), P.k_index[lo:hi].tolist(), strict=True)) == {
        (4, 0), (7, 2), (5, 1), (8, 3)
    }


def test_appendix_dz32_dbeta21_is_a32(rng):
    A, beta = _appendix(rng)
    J = conv_wrt_kernel(A[None], (1, 1, 2, 2), STRIDE, PADDING).toarray()
    # vec Z = [z11 z21 z31 z41 z12 z22 z32 ...]: z32 is row 6; vec beta = [b11 b21 b12 b22]
    assert J[6, 1] == A[2, 1]  # a_32
    # the whole column d vecZ / d beta_21 is vec(A * [[0, 0], [1, 0]])  (eq. a1-3)
    E21 = np.array([[[[0.0, 0.0], [1.0, 0.0]]]])
    np.testing.assert_array_equal(
        J[:, 1], vj.vec(direct.conv2d(A[None], E21, stride=STRIDE, padding=PADDING))
    )


def test_appendix_dz32_dA23_is_beta12(rng):
    A, beta = _appendix(rng)
    J = conv_wrt_input(beta[None, None], (1, 3, 4), STRIDE, PADDING).toarray()
    # vec A = [a11 a21 a31 a12 a22 a32 a13 a23 ...]: a_23 is column 7
    assert J[6, 7] == beta[0, 1]  # beta_12
    # the whole column d vecZ / d A_23 is vec(dA/dA_23 * beta)  (eq. a2-3)
    E23 = np.zeros((1, 3, 4))
    E23[0, 1, 2] = 1.0
    np.testing.assert_array_equal(
        J[:, 7], vj.vec(direct.conv2d(E23, beta[None, None], stride=STRIDE, padding=PADDING))
    )


def test_appendix_symbolic_dZ_dbeta_is_the_hand_written_table(rng):
    """The gather map labels every stored entry of dvecZ/dvecbeta with the a_rs it copies."""
    P = conv_pattern((1, 3, 4), (1, 1, 2, 2), STRIDE, PADDING)
    symbols = [["0"] * 4 for _ in range(12)]
    for row in range(12):
        for k in range(P.indptr[row], P.indptr[row + 1]):
            col, a = int(P.k_index[k]), int(P.a_index[k])
            r, s = a % 3 + 1, a // 3 + 1  # vec position in a 3-row matrix, back to 1-based
            assert symbols[row][col] == "0"  # no entry stored twice
            symbols[row][col] = f"a{r}{s}"
    assert symbols == DZ_DBETA
    # and the numeric matrix evaluates the same table
    A, _ = _appendix(rng)
    expected = np.array(
        [[0.0 if e == "0" else _a(A, int(e[1]), int(e[2])) for e in row] for row in DZ_DBETA]
    )
    J = conv_wrt_kernel(A[None], (1, 1, 2, 2), STRIDE, PADDING)
    assert J.shape == (12, 4)
    np.testing.assert_array_equal(J.toarray(), expected)


def test_appendix_hand_tables_agree_with_each_other():
    """The 12 x 4 table and rep.2 were typed separately: they must say the same thing."""
    for (p, q), terms in REP2.items():
        row = DZ_DBETA[_vec_pos(p, q, 4)]
        from_rep2 = {_vec_pos(*b, 2): f"a{a[0]}{a[1]}" for a, b in terms}
        assert {c: e for c, e in enumerate(row) if e != "0"} == from_rep2


def test_appendix_dZ_dA_from_rep2(rng):
    """d vecZ / d vecA (12 x 12) read off rep.2: entry (z_pq, a_rs) is the beta_uv paired
    with a_rs in z_pq."""
    A, beta = _appendix(rng)
    expected = np.zeros((12, 12))
    for (p, q), terms in REP2.items():
        for a, b in terms:
            expected[_vec_pos(p, q, 4), _vec_pos(*a, 3)] = _a(beta, *b)
    J = conv_wrt_input(beta[None, None], (1, 3, 4), STRIDE, PADDING)
    np.testing.assert_array_equal(J.toarray(), expected)


# --- 2. the third text: 3x3 X, 2x2 K, bias B, stride 1, no padding -----------------------------
@pytest.fixture
def third_text(rng):
    X = rng.standard_normal((3, 3))
    K = rng.standard_normal((2, 2))
    B = float(rng.standard_normal())
    dZ = rng.standard_normal((2, 2))

    def x(m, n):
        return X[m - 1, n - 1]

    def k(m, n):
        return K[m - 1, n - 1]

    def g(m, n):  # dL/dZ_mn
        return dZ[m - 1, n - 1]

    return X, K, B, dZ, x, k, g


def test_third_text_forward(third_text):
    X, K, B, _, x, k, _ = third_text
    Z = direct.conv2d(X[None], K[None, None], [B])[0]
    expected = {
        (1, 1): x(1, 1) * k(1, 1) + x(1, 2) * k(1, 2) + x(2, 1) * k(2, 1) + x(2, 2) * k(2, 2) + B,
        (1, 2): x(1, 2) * k(1, 1) + x(1, 3) * k(1, 2) + x(2, 2) * k(2, 1) + x(2, 3) * k(2, 2) + B,
        (2, 1): x(2, 1) * k(1, 1) + x(2, 2) * k(1, 2) + x(3, 1) * k(2, 1) + x(3, 2) * k(2, 2) + B,
        (2, 2): x(2, 2) * k(1, 1) + x(2, 3) * k(1, 2) + x(3, 2) * k(2, 1) + x(3, 3) * k(2, 2) + B,
    }
    assert Z.shape == (2, 2)
    for (m, n), value in expected.items():
        assert Z[m - 1, n - 1] == pytest.approx(value, rel=1e-14, abs=1e-14)


def _third_text_gradients(third_text):
    """dL/dK, dL/dB, dL/dX as the text writes them (correct versions of garbled lines)."""
    _, _, _, dZ, x, k, g = third_text
    dK = {
        (1, 1): g(1, 1) * x(1, 1) + g(1, 2) * x(1, 2) + g(2, 1) * x(2, 1) + g(2, 2) * x(2, 2),
        (1, 2): g(1, 1) * x(1, 2) + g(1, 2) * x(1, 3) + g(2, 1) * x(2, 2) + g(2, 2) * x(2, 3),
        (2, 1): g(1, 1) * x(2, 1) + g(1, 2) * x(2, 2) + g(2, 1) * x(3, 1) + g(2, 2) * x(3, 2),
        (2, 2): g(1, 1) * x(2, 2) + g(1, 2) * x(2, 3) + g(2, 1) * x(3, 2) + g(2, 2) * x(3, 3),
    }
    dB = g(1, 1) + g(1, 2) + g(2, 1) + g(2, 2)
    dX = {
        (1, 1): g(1, 1) * k(1, 1),
        (1, 2): g(1, 1) * k(1, 2) + g(1, 2) * k(1, 1),
        (1, 3): g(1, 2) * k(1, 2),
        (2, 1): g(1, 1) * k(2, 1) + g(2, 1) * k(1, 1),
        (2, 2): g(1, 1) * k(2, 2) + g(1, 2) * k(2, 1) + g(2, 1) * k(1, 2) + g(2, 2) * k(1, 1),
        (2, 3): g(1, 2) * k(2, 2) + g(2, 2) * k(1, 2),
        (3, 1): g(2, 1) * k(2, 1),
        (3, 2): g(2, 1) * k(2, 2) + g(2, 2) * k(2, 1),
        (3, 3): g(2, 2) * k(2, 2),
    }
    assert dB == pytest.approx(dZ.sum())  # dL/dB = sum(dL/dZ)
    return dK, dB, dX


def _assert_table(array, table):
    for (m, n), value in table.items():
        assert array[m - 1, n - 1] == pytest.approx(value, rel=1e-13, abs=1e-13), (m, n)


def test_third_text_partials_by_conv2d_backward(third_text):
    X, K, _, dZ, *_ = third_text
    dK_t, dB_t, dX_t = _third_text_gradients(third_text)
    dX, dK, db = direct.conv2d_backward(dZ[None], X[None], K[None, None])
    _assert_table(dK[0, 0], dK_t)
    assert db[0] == pytest.approx(dB_t, rel=1e-13)
    _assert_table(dX[0], dX_t)


def test_third_text_partials_by_its_own_formulas(third_text):
    """dL/dK = conv(X, dL/dZ), dL/dB = sum(dL/dZ), dL/dX = full conv with K rotated 180."""
    X, K, _, dZ, *_ = third_text
    dK_t, dB_t, dX_t = _third_text_gradients(third_text)
    _assert_table(direct.kernel_gradient(X[None], dZ[None], 2)[0, 0], dK_t)
    assert direct.bias_gradient(dZ[None])[0] == pytest.approx(dB_t, rel=1e-13)
    _assert_table(direct.input_gradient(dZ[None], K[None, None], 3)[0], dX_t)
    # the text's picture: dL/dZ padded by one, correlated with [[K22, K21], [K12, K11]]
    padded = np.pad(dZ, 1)
    rotated = np.array([[K[1, 1], K[1, 0]], [K[0, 1], K[0, 0]]])
    full = direct.conv2d(padded[None], rotated[None, None])[0]
    _assert_table(full, dX_t)


def test_third_text_partials_by_jacobian_transposes(third_text):
    X, K, _, dZ, *_ = third_text
    dK_t, dB_t, dX_t = _third_text_gradients(third_text)
    g = vj.vec(dZ[None])
    dX = vj.unvec(conv_wrt_input(K[None, None], (1, 3, 3)).T @ g, (1, 3, 3))[0]
    dK = vj.unvec(conv_wrt_kernel(X[None], (1, 1, 2, 2)).T @ g, (1, 1, 2, 2))[0, 0]
    dB = (conv_wrt_bias((1, 2, 2)).T @ g)[0]
    _assert_table(dX, dX_t)
    _assert_table(dK, dK_t)
    assert dB == pytest.approx(dB_t, rel=1e-13)


def test_third_text_single_partials_as_jacobian_entries(third_text):
    """Each dZ_ij/dX_mn and dZ_ij/dK_mn is one entry: e.g. dZ_22/dX_22 = K_11, dZ_11/dX_22 =
    K_22, dZ_12/dK_21 = X_22; and dZ_12/dX_11 = dZ_21/dX_11 = dZ_22/dX_11 = 0 (the text)."""
    X, K, _, _, x, k, _ = third_text
    JX = conv_wrt_input(K[None, None], (1, 3, 3)).toarray()
    JK = conv_wrt_kernel(X[None], (1, 1, 2, 2)).toarray()

    def z(i, j):
        return _vec_pos(i, j, 2)

    def xx(m, n):
        return _vec_pos(m, n, 3)

    assert JX[z(2, 2), xx(2, 2)] == k(1, 1)
    assert JX[z(1, 1), xx(2, 2)] == k(2, 2)
    assert JX[z(1, 2), xx(2, 2)] == k(2, 1)
    assert JX[z(2, 1), xx(2, 2)] == k(1, 2)
    assert JX[z(1, 1), xx(1, 1)] == k(1, 1)
    assert JX[z(1, 2), xx(1, 1)] == JX[z(2, 1), xx(1, 1)] == JX[z(2, 2), xx(1, 1)] == 0.0
    assert JK[z(1, 2), _vec_pos(2, 1, 2)] == x(2, 2)
    assert JK[z(2, 2), _vec_pos(2, 2, 2)] == x(3, 3)
