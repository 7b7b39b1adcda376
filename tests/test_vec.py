"""vec / unvec, the index maps of docs/design.md, section 1, the shape rule, order conversion.

Oracles: the naive ``vec_naive`` (column by column, slice by slice), the explicit index
formulas of docs/design.md, section 1 written out element by element, the note's appendix listings
of ``vec A``, ``vec beta`` and ``vec Z``, the note's output-size formula, and a C-order
Jacobian built column by column from ``direct.conv2d`` with NumPy's ``ravel`` order.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st
from oracles import CASES, conv_cases, output_size, pair, vec_naive

import vecjac as vj
from vecjac import direct
from vecjac.jacobians import conv_wrt_input, conv_wrt_kernel

# Every shape of docs/design.md, section 1, plus the degenerate ones.
SHAPES = {
    "feature map (C,H,W)": (3, 4, 5),
    "batch (N,C,H,W)": (2, 3, 4, 5),
    "kernels (C_out,C_in,kh,kw)": (3, 2, 4, 5),
    "bias (C_out,)": (7,),
    "FC weight (n_in,n_out)": (6, 4),
    "flattened map (C*H*W,)": (60,),
    "one channel (1,H,W)": (1, 3, 4),
    "single pixel (1,1,1)": (1, 1, 1),
    "scalar ()": (),
}
shape_params = pytest.mark.parametrize("shape", list(SHAPES.values()), ids=list(SHAPES))
small_shapes = st.lists(st.integers(1, 4), min_size=0, max_size=5).map(tuple)


# --- vec and unvec ---------------------------------------------------------------------------
@shape_params
def test_vec_matches_naive_column_stacking(shape, rng):
    x = rng.standard_normal(shape)
    np.testing.assert_array_equal(vj.vec(x), vec_naive(x))


@given(shape=small_shapes)
def test_vec_matches_naive_any_shape(shape):
    x = np.arange(int(np.prod(shape))).reshape(shape)
    np.testing.assert_array_equal(vj.vec(x), vec_naive(x))


@shape_params
@pytest.mark.parametrize("order", ["F", "C"])
def test_unvec_inverts_vec(shape, order, rng):
    x = rng.standard_normal(shape)
    v = vj.vec(x, order=order)
    assert v.shape == (x.size,)
    back = vj.unvec(v, shape, order=order)
    assert back.shape == shape
    np.testing.assert_array_equal(back, x)
    np.testing.assert_array_equal(vj.vec(vj.unvec(v, shape, order=order), order=order), v)


@given(shape=small_shapes, order=st.sampled_from(["F", "C"]))
def test_unvec_inverts_vec_any_shape(shape, order):
    x = np.arange(int(np.prod(shape)), dtype=float).reshape(shape)
    np.testing.assert_array_equal(vj.unvec(vj.vec(x, order=order), shape, order=order), x)


def test_vec_c_order_is_numpy_ravel(rng):
    x = rng.standard_normal((2, 3, 4, 5))
    np.testing.assert_array_equal(vj.vec(x, order="C"), x.ravel())


def test_unvec_accepts_a_gradient_column(rng):
    x = rng.standard_normal((2, 3, 4))
    column = vj.vec(x)[:, None]  # the shape of J.T @ (1 x n row)^T
    np.testing.assert_array_equal(vj.unvec(column, x.shape), x)


def test_vec_of_a_small_matrix_stacks_columns():
    np.testing.assert_array_equal(vj.vec(np.array([[1, 2], [3, 4]])), [1, 3, 2, 4])


def test_vec_of_the_appendix_matrices_reads_as_the_note_lists_them():
    """The note's appendix lists vec A = [a11 a21 a31 a12 ...], vec beta = [b11 b21 b12 b22],
    vec Z = [z11 z21 z31 z41 z12 ...]; label element (r, s), 1-based, as the number 10 r + s."""
    def labelled(h, w):
        return np.array([[10 * r + s for s in range(1, w + 1)] for r in range(1, h + 1)])

    listed_A = [11, 21, 31, 12, 22, 32, 13, 23, 33, 14, 24, 34]
    listed_beta = [11, 21, 12, 22]
    listed_Z = [11, 21, 31, 41, 12, 22, 32, 42, 13, 23, 33, 43]
    for (h, w), listed in [((3, 4), listed_A), ((2, 2), listed_beta), ((4, 3), listed_Z)]:
        np.testing.assert_array_equal(vj.vec(labelled(h, w)), listed)
        np.testing.assert_array_equal(vj.vec(labelled(h, w)[None]), listed)  # one channel
        np.testing.assert_array_equal(vj.vec(labelled(h, w)[None, None]), listed)  # kernel


# --- the explicit index formulas of docs/design.md, section 1, element by element -------------
def _check_formula(shape, formula, rng):
    """``flat_index(shape)[idx] == formula(idx)`` and ``vec(x)[formula(idx)] == x[idx]``."""
    index = vj.flat_index(shape)
    assert index.shape == shape
    x = rng.standard_normal(shape)
    v = vj.vec(x)
    seen = set()
    for idx in itertools.product(*(range(n) for n in shape)):
        position = formula(*idx)
        assert index[idx] == position, (idx, index[idx], position)
        assert v[position] == x[idx]
        seen.add(position)
    assert seen == set(range(x.size))  # a permutation of 0 .. size-1


def test_index_formula_feature_map(rng):
    C, H, W = 3, 4, 5
    _check_formula((C, H, W), lambda c, r, s: c * H * W + s * H + r, rng)


def test_index_formula_batch(rng):
    N, C, H, W = 2, 3, 4, 5
    _check_formula((N, C, H, W), lambda n, c, r, s: n * C * H * W + c * H * W + s * H + r, rng)


def test_index_formula_kernels(rng):
    C_out, C_in, kh, kw = 3, 2, 4, 5
    _check_formula(
        (C_out, C_in, kh, kw), lambda j, i, u, v: (j * C_in + i) * kh * kw + v * kh + u, rng
    )


def test_index_formula_bias(rng):
    _check_formula((7,), lambda j: j, rng)


def test_index_formula_fc_weight_is_column_major(rng):
    n_in, n_out = 6, 4
    _check_formula((n_in, n_out), lambda m, k: m + k * n_in, rng)


def test_flattened_feature_map_equals_vec(rng):
    """``B2 = [vec A_1; ...; vec A_c]`` is ``vec(A)``, and a vector is its own vec."""
    A = rng.standard_normal((3, 4, 5))
    B = np.concatenate([vec_naive(A[c]) for c in range(3)])
    np.testing.assert_array_equal(vj.vec(A), B)
    np.testing.assert_array_equal(vj.vec(B), B)


@shape_params
def test_flat_index_c_order_is_arange(shape):
    n = int(np.prod(shape))
    np.testing.assert_array_equal(vj.flat_index(shape, order="C"), np.arange(n).reshape(shape))


@shape_params
def test_order_permutation_maps_c_to_f(shape, rng):
    x = rng.standard_normal(shape)
    p = vj.order_permutation(shape)
    np.testing.assert_array_equal(vj.vec(x, "F"), vj.vec(x, "C")[p])


# --- the shape rule ----------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES, ids=repr)
def test_conv_output_shape_is_the_note_formula(case):
    (hs, ws), (hp, wp) = pair(case.stride), pair(case.padding)
    expected = (output_size(case.H, case.kh, hs, hp), output_size(case.W, case.kw, ws, wp))
    got = vj.conv_output_shape((case.H, case.W), (case.kh, case.kw), case.stride, case.padding)
    assert got == expected
    assert got == (case.hz, case.wz)
    A, K, _, _ = case.arrays(np.random.default_rng(0))
    assert direct.conv2d(A, K, stride=case.stride, padding=case.padding).shape == case.output_shape


@given(case=conv_cases())
def test_conv_output_shape_hypothesis(case):
    got = vj.conv_output_shape((case.H, case.W), (case.kh, case.kw), case.stride, case.padding)
    assert got == (case.hz, case.wz)
    assert min(got) >= 1


def test_conv_output_shape_of_the_appendix():
    assert vj.conv_output_shape((3, 4), (2, 2), stride=(1, 2), padding=(1, 1)) == (4, 3)


# --- F <-> C order of a Jacobian, against a brute-force C-order Jacobian ------------------------
def _c_order_jacobian(f, x_shape):
    """Dense C-order Jacobian of a *linear* ``f``: column k is ``f(e_k).ravel()``, ``e_k`` the
    k-th basis array in ``x.ravel()`` order."""
    n = int(np.prod(x_shape))
    columns = []
    for k in range(n):
        e = np.zeros(n)
        e[k] = 1.0
        columns.append(np.asarray(f(e.reshape(x_shape))).ravel())
    return np.stack(columns, axis=1)


CONVERT_CASES = [c for c in CASES if c.N is None][:6] + [c for c in CASES if c.N is not None][:2]


def _conv_jacobians(case, rng):
    """(J_F, J_C) pairs for dZ/dA and dZ/dK; J_C is the brute-force C-order matrix."""
    A, K, _, _ = case.arrays(rng)
    s, p = case.stride, case.padding
    J_A = conv_wrt_input(K, case.input_shape, s, p)
    C_A = _c_order_jacobian(lambda X: direct.conv2d(X, K, stride=s, padding=p), case.input_shape)
    J_K = conv_wrt_kernel(A, case.kernel_shape, s, p)
    C_K = _c_order_jacobian(lambda X: direct.conv2d(A, X, stride=s, padding=p), case.kernel_shape)
    return [(J_A, C_A), (J_K, C_K)]


@pytest.mark.parametrize("case", CONVERT_CASES, ids=repr)
def test_convert_order_jacobian_to_c_matches_brute_force(case, rng):
    for J, J_C in _conv_jacobians(case, rng):
        converted = vj.convert_order(J, to="C")
        assert isinstance(converted, vj.Jacobian)
        assert (converted.of, converted.wrt) == (J.of, J.wrt)
        assert (converted.of_shape, converted.wrt_shape) == (J.of_shape, J.wrt_shape)
        np.testing.assert_allclose(converted.toarray(), J_C, rtol=0, atol=1e-12)
        # the default direction is to C
        np.testing.assert_allclose(vj.convert_order(J).toarray(), J_C, rtol=0, atol=1e-12)


@pytest.mark.parametrize("case", CONVERT_CASES, ids=repr)
def test_convert_order_jacobian_to_f_inverts(case, rng):
    for J, J_C in _conv_jacobians(case, rng):
        # a Jacobian knows its order (since wave 2): a C-order matrix is declared as such
        as_c = vj.Jacobian(J_C, J.of, J.wrt, J.of_shape, J.wrt_shape, order="C")
        back = vj.convert_order(as_c, to="F")
        assert isinstance(back, vj.Jacobian)
        np.testing.assert_allclose(back.toarray(), J.toarray(), rtol=0, atol=1e-12)
        round_trip = vj.convert_order(vj.convert_order(J, to="C"), to="F")
        np.testing.assert_array_equal(round_trip.toarray(), J.toarray())


@pytest.mark.parametrize("case", CONVERT_CASES, ids=repr)
def test_convert_order_bare_matrices(case, rng):
    for J, J_C in _conv_jacobians(case, rng):
        shapes = (J.of_shape, J.wrt_shape)
        # sparse, F -> C
        out = vj.convert_order(J.matrix, *shapes, to="C")
        assert sp.issparse(out)
        np.testing.assert_allclose(out.toarray(), J_C, rtol=0, atol=1e-12)
        # dense, F -> C
        out = vj.convert_order(J.toarray(), *shapes, to="C")
        assert isinstance(out, np.ndarray)
        np.testing.assert_allclose(out, J_C, rtol=0, atol=1e-12)
        # sparse and dense, C -> F
        out = vj.convert_order(sp.csr_array(J_C), *shapes, to="F")
        assert sp.issparse(out)
        np.testing.assert_allclose(out.toarray(), J.toarray(), rtol=0, atol=1e-12)
        out = vj.convert_order(J_C, of_shape=J.of_shape, wrt_shape=J.wrt_shape, to="F")
        np.testing.assert_allclose(out, J.toarray(), rtol=0, atol=1e-12)
